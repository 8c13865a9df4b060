//! The request handlers, by area: calls and decisions, approvals, and the
//! operator's endpoints.

pub mod admin;
pub mod approvals;
pub mod calls;
