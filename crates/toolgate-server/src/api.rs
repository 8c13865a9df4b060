//! The request handlers, by area: calls and decisions, sessions, approvals,
//! and the operator's endpoints.

pub mod admin;
pub mod approvals;
pub mod calls;
pub mod sessions;
