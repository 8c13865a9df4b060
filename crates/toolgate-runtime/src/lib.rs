//! Runtime stage of Toolgate: decisions -> enforcement, with a tamper-evident
//! audit journal. This is the only async crate.
//!
//! - [`gateway::Gateway`]: decides each proposed call with the engine and
//!   enforces it: deny, run within a budget, or hold for human approval with
//!   single-use tokens bound to the exact request; a kill switch stops writes.
//! - [`store`]: the gateway's state behind a trait (budget windows, approvals,
//!   tokens, kill switch); [`record`]: the journal's typed records, the only
//!   input of state changes; [`refusal`]: why an approval or token was refused.
//! - [`journal`]: the audit journal: append-only JSON Lines, a SHA-256 hash
//!   chain, group commit with a configurable fsync policy, verification.
//! - [`host`]: what every door opens before it serves (data directory,
//!   journal and state, store, digest key, policy, background tasks, shutdown).

#![deny(missing_docs)]

/// docs/runtime.md's Rust examples, compiled as doctests.
#[doc = include_str!("../../../docs/runtime.md")]
#[cfg(doctest)]
pub struct RuntimeDocDoctests;

pub mod gateway;
pub mod host;
pub mod journal;
pub mod record;
pub mod refusal;
pub mod store;
