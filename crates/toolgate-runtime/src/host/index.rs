//! A read-only view of the journal for the API: what each held call asked
//! for (its arguments as journaled, redacted), its rule, reason and time, and
//! the outcome of recent calls that were not held. It is fed the journal's
//! records (on open, and by a sink as each is committed); it decides nothing.

use crate::journal::AuditSink;
use crate::record::{Decision, Execution, Record};
use crate::store::CallKey;
use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How many recent call outcomes are remembered.
const RECENT: usize = 100_000;

/// A held call as it was decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    /// The decision record.
    pub decision: Decision,
}

/// The outcome of a call that was not held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recent {
    /// Allowed; its result is not reported yet.
    Allowed,
    /// Denied.
    Denied,
    /// Allowed and its result reported (`ok` or not).
    Executed(bool),
    /// Allowed and its result never came.
    ResultMissing,
}

impl Recent {
    /// The state's name in `GET /v1/calls/{id}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Recent::Allowed => "allowed",
            Recent::Denied => "denied",
            Recent::Executed(true) => "executed",
            Recent::Executed(false) => "failed",
            Recent::ResultMissing => "result_missing",
        }
    }
}

/// A recent call that was not held: its outcome, and the agent and env it
/// was made for (empty when its decision is no longer known), so that only
/// keys that may act for them read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentCall {
    /// Its outcome.
    pub outcome: Recent,
    /// The calling agent.
    pub agent: String,
    /// The env.
    pub env: String,
}

/// The view.
pub struct Index {
    budget_exhausted: AtomicU64,
    held: Mutex<HashMap<CallKey, Held>>,
    recent: Mutex<LruCache<CallKey, RecentCall>>,
}

impl Default for Index {
    fn default() -> Self {
        let cap = NonZeroUsize::new(RECENT).unwrap_or(NonZeroUsize::MIN);
        Index {
            budget_exhausted: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
            recent: Mutex::new(LruCache::new(cap)),
        }
    }
}

impl Index {
    /// Takes in one journal line (only decisions and results matter).
    pub fn observe(&self, line: &str) {
        if line.contains("\"kind\":\"budget_exhausted\"") {
            self.budget_exhausted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let interesting = [
            "\"kind\":\"decision\"",
            "\"kind\":\"execution\"",
            "\"kind\":\"result_missing\"",
        ];
        if !interesting.iter().any(|k| line.contains(k)) {
            return;
        }
        if let Some(d) = Brief::of(line) {
            let key = CallKey::new(&d.tenant, &d.call);
            let outcome = match d.decision.as_str() {
                "allow" => Recent::Allowed,
                _ => Recent::Denied,
            };
            self.lock_held().remove(&key);
            return self.set_recent(key, outcome, d.agent, d.env);
        }
        match Record::from_line(line) {
            Ok(Record::Decision(d)) => self.decided(d),
            Ok(Record::Execution(e)) => self.executed(&e),
            Ok(Record::ResultMissing(m)) => self.set_outcome(m.key, Recent::ResultMissing),
            _ => {}
        }
    }

    fn decided(&self, d: Decision) {
        let key = CallKey::new(&d.tenant, &d.call);
        match d.decision.as_str() {
            "approval_required" => {
                self.lock_held().insert(key, Held { decision: d });
            }
            "allow" => {
                self.lock_held().remove(&key);
                self.set_recent(key, Recent::Allowed, d.agent, d.env);
            }
            _ => {
                self.lock_held().remove(&key);
                self.set_recent(key, Recent::Denied, d.agent, d.env);
            }
        }
    }

    fn executed(&self, e: &Execution) {
        let key = CallKey::new(&e.tenant, &e.call);
        if !self.lock_held().contains_key(&key) {
            self.set_outcome(key, Recent::Executed(e.ok));
        }
    }

    fn set_recent(&self, key: CallKey, outcome: Recent, agent: String, env: String) {
        let call = RecentCall {
            outcome,
            agent,
            env,
        };
        self.lock_recent().put(key, call);
    }

    /// A later outcome of a recent call: it keeps its agent and env.
    fn set_outcome(&self, key: CallKey, outcome: Recent) {
        let mut recent = self.lock_recent();
        match recent.get_mut(&key) {
            Some(call) => call.outcome = outcome,
            None => {
                let unknown = RecentCall {
                    outcome,
                    agent: String::new(),
                    env: String::new(),
                };
                recent.put(key, unknown);
            }
        }
    }

    fn lock_recent(&self) -> std::sync::MutexGuard<'_, LruCache<CallKey, RecentCall>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<CallKey, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many `budget_exhausted` records it saw (this journal, all time).
    pub fn budget_exhausted(&self) -> u64 {
        self.budget_exhausted.load(Ordering::Relaxed)
    }

    /// What a held call asked for.
    pub fn held(&self, key: &CallKey) -> Option<Held> {
        self.lock_held().get(key).cloned()
    }

    /// A recent call that was not held.
    pub fn recent(&self, key: &CallKey) -> Option<RecentCall> {
        self.lock_recent().peek(key).cloned()
    }

    /// The held calls it knows.
    pub fn held_keys(&self) -> Vec<CallKey> {
        self.lock_held().keys().cloned().collect()
    }

    /// Forgets held calls the gateway no longer knows.
    pub fn retain_held(&self, keep: impl Fn(&CallKey) -> bool) {
        self.lock_held().retain(|k, _| keep(k));
    }
}

/// What the recent view keeps of a decision that was not held, read
/// without its arguments (most of a busy journal).
#[derive(serde::Deserialize)]
struct Brief {
    kind: String,
    body: BriefDecision,
}

#[derive(serde::Deserialize)]
struct BriefDecision {
    call: String,
    tenant: String,
    agent: String,
    env: String,
    decision: String,
}

impl Brief {
    /// A decision's brief, unless the line may hold a call for approval
    /// (then it is read whole, for the arguments the approvers see).
    fn of(line: &str) -> Option<BriefDecision> {
        if line.contains("\"approval_required\"") {
            return None;
        }
        let brief: Brief = serde_json::from_str(line).ok()?;
        (brief.kind == "decision").then_some(brief.body)
    }
}

/// Feeds committed journal lines to an [`Index`].
pub struct IndexSink(pub Arc<Index>);

impl AuditSink for IndexSink {
    fn committed(&mut self, line: &str) {
        self.0.observe(line);
    }
}
