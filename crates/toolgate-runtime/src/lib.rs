//! Runtime stage of Toolgate: decisions -> enforcement, with a tamper-evident
//! audit journal. This is the only async crate.
//!
//! Built so far: the audit journal ([`journal`]): append-only JSON Lines, a
//! SHA-256 hash chain, group commit with a configurable fsync policy, and
//! verification that reports the first broken record and a torn last line.
//! The gateway (approvals, budgets, kill switch, credentials) is not built yet.

#![deny(missing_docs)]

pub mod journal;
