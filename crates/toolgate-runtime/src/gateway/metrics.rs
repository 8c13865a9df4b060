//! Counters a front door exports (e.g. as Prometheus text): decisions by
//! outcome, shadow differences, approvals and results.

use std::sync::atomic::{AtomicU64, Ordering};
use toolgate_engine::Outcome;

/// Counters since the gateway started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Calls allowed.
    pub allowed: AtomicU64,
    /// Calls denied (by the policy, a limit or the kill switch).
    pub denied: AtomicU64,
    /// Calls held for approval.
    pub pending: AtomicU64,
    /// Calls the shadow policy decided otherwise.
    pub shadow_differs: AtomicU64,
    /// Approvals recorded.
    pub approvals: AtomicU64,
    /// Refusals (approvals, rejections, tokens, results).
    pub refusals: AtomicU64,
    /// Allowed calls whose result never came.
    pub results_missing: AtomicU64,
}

impl Metrics {
    pub(super) fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Allow => &self.allowed,
            Outcome::Deny => &self.denied,
            Outcome::ApprovalRequired => &self.pending,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(name, help, value)` of every counter.
    pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (
                "toolgate_calls_allowed_total",
                "calls allowed",
                get(&self.allowed),
            ),
            (
                "toolgate_calls_denied_total",
                "calls denied",
                get(&self.denied),
            ),
            (
                "toolgate_calls_pending_total",
                "calls held for approval",
                get(&self.pending),
            ),
            (
                "toolgate_shadow_differs_total",
                "calls the shadow policy decided otherwise",
                get(&self.shadow_differs),
            ),
            (
                "toolgate_approvals_total",
                "approvals recorded",
                get(&self.approvals),
            ),
            (
                "toolgate_refusals_total",
                "approvals, rejections, tokens or results refused",
                get(&self.refusals),
            ),
            (
                "toolgate_results_missing_total",
                "allowed calls whose result never came",
                get(&self.results_missing),
            ),
        ]
    }
}
