//! The request handlers, by area: calls and decisions, sessions, approvals,
//! and the operator's endpoints.

pub(crate) mod admin;
pub(crate) mod approvals;
pub(crate) mod calls;
pub(crate) mod sessions;
