//! Engine stage of Toolgate: checked [`toolgate_check::ir::Policy`] -> [`Engine`]
//! (a decision table); [`Request`] -> [`Decision`].
//!
//! Pure: no I/O, no async, no global state, no budgets or clocks (the runtime
//! owns those). An `Engine` is `Send + Sync` and cheap to share behind an `Arc`.
//! The semantics are written down in `docs/semantics.md`; `reference` (feature
//! `reference`) is a deliberately simple interpreter of them used as the
//! tests' oracle.

#![deny(missing_docs)]

mod cache;
pub mod compare;
mod dates;
mod decision;
pub(crate) mod eval;
mod explain;
mod floor;
mod ireval;
pub mod matrix;
pub mod provenance;
#[cfg(feature = "reference")]
pub mod reference;
mod request;
pub mod schema;
pub mod search;
mod table;
pub mod urls;
mod value;

pub use decision::{BudgetKey, Budgeted, Decision, Outcome, RuleInfo};
pub use explain::{
    explain, has_from, provenance as explain_provenance, Finding, ProvenanceTrace, RuleTrace,
    Verdict,
};
pub use request::{Context, OwnedRequest, Request, RequestError};
/// The instant `now` reads (RFC 3339 in and out; `jiff`'s type).
pub use toolgate_check::time::Timestamp;

/// The README's Rust examples, compiled as doctests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// A compiled policy, ready to decide.
#[derive(Debug)]
pub struct Engine {
    table: table::Table,
}

/// A policy that could not be compiled (a checked policy always compiles;
/// this reports a bug rather than panicking).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("internal error: cannot compile the policy: {0}")]
#[diagnostic(
    code(toolgate::engine::internal),
    help("this is a bug in toolgate; please report it with the policy")
)]
pub struct CompileError(String);

impl Engine {
    /// Compiles a checked policy; `file` is named in decisions' rule locations.
    pub fn new(policy: &toolgate_check::ir::Policy, file: &str) -> Result<Engine, CompileError> {
        table::Table::compile(policy, file)
            .map(|table| Engine { table })
            .map_err(CompileError)
    }

    /// Like [`Engine::new`], with an LRU cache of condition outcomes holding
    /// up to `capacity` entries (see `docs/performance.md` for when it pays).
    pub fn with_cache(
        policy: &toolgate_check::ir::Policy,
        file: &str,
        capacity: std::num::NonZeroUsize,
    ) -> Result<Engine, CompileError> {
        let mut engine = Engine::new(policy, file)?;
        engine.table.cache = Some(cache::Cache::new(capacity));
        Ok(engine)
    }

    /// Decides a request. Never panics; anything unexpected denies.
    pub fn decide(&self, req: &Request<'_>) -> Decision<'_> {
        self.table.decide(req)
    }

    /// What deciding `req` may ask its session: a superset of the lookups
    /// [`Engine::decide`] makes, for a store that answers them in one trip.
    pub fn session_asks(&self, req: &Request<'_>) -> provenance::SessionAsks {
        self.table.session_asks(req)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn engine_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::Engine>();
    }
}
