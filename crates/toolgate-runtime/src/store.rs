//! Gateway state behind a trait: budget windows, pending approvals (keyed by
//! tenant and call id), issued tokens, the kill switch. Every operation is
//! atomic on its own. State changes come in two kinds:
//!
//! - **consumes** (a budget unit, a token use) are taken first, atomically, and
//!   journaled after: losing one in a crash only refuses;
//! - **grants** (a pending approval, an approval, a rejection, a token, a kill
//!   switch) become visible only after their record is durable: the gateway
//!   journals the [`Record`] and then calls [`Store::apply`] with it, under one
//!   lock, and a restart applies the same records in the same order
//!   ([`replay`]), so the live state and the journal cannot disagree.
//!
//! Refusal rules are pure functions on the state ([`Pending::admit_approval`],
//! [`Pending::admit_rejection`], [`Token::admit`]), run under the store's lock.

use crate::record::Record;
use crate::refusal::Refusal;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// What an approval must be bound to: the exact request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Binding {
    /// The agent.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// Keyed digest (HMAC-SHA-256) of the canonical JSON of the arguments.
    pub args_digest: String,
    /// The tenant.
    pub tenant: String,
    /// The env.
    pub env: String,
    /// Keyed digest of the canonical JSON of the context's other fields.
    pub context_digest: String,
}

/// A pending call's key: call ids are unique per tenant, not across tenants.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallKey {
    /// The tenant (from the trusted context).
    pub tenant: String,
    /// The call id.
    #[serde(rename = "call")]
    pub id: String,
}

impl CallKey {
    /// A key.
    pub fn new(tenant: &str, id: &str) -> Self {
        CallKey {
            tenant: tenant.to_string(),
            id: id.to_string(),
        }
    }
}

/// Which tenants an approver may approve for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantScope {
    /// Every tenant (an operator-level approver).
    Any,
    /// Only these tenants.
    Only(Vec<String>),
}

impl TenantScope {
    /// Whether `tenant` is within the scope.
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            TenantScope::Any => true,
            TenantScope::Only(tenants) => tenants.iter().any(|t| t == tenant),
        }
    }
}

/// Someone who may approve or reject. The identity comes from the caller's
/// authentication, never from the request being approved.
#[derive(Clone, Debug)]
pub struct Approver {
    /// Their identity.
    pub name: String,
    /// Their groups.
    pub groups: Vec<String>,
    /// The tenants they may approve for.
    pub tenants: TenantScope,
}

/// An identity as compared: Unicode NFKC (full-width and other compatibility
/// forms folded), surrounding whitespace removed, lower case, so
/// `Support-Bot `, `ｓｕｐｐｏｒｔ-bot` and `support-bot` are the same person.
pub fn normalise_identity(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    name.nfkc().collect::<String>().trim().to_lowercase()
}

/// A call waiting for approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Tenant and call id.
    pub key: CallKey,
    /// What it approves.
    pub binding: Binding,
    /// The group approvers must belong to, if any.
    pub group: Option<String>,
    /// Distinct approvers needed.
    pub count: u32,
    /// When the request for approval expires (ms), if it does.
    pub expires_at: Option<u64>,
    /// Who approved so far (name as given, reason).
    pub approvals: Vec<(String, String)>,
    /// Rejected (by whom, why).
    pub rejected: Option<(String, String)>,
    /// The digest of the token issued when it was fully approved.
    pub token: Option<String>,
    /// Cancelled by the kill switch (by whom, why).
    pub cancelled: Option<(String, String)>,
    /// The arguments as journaled (redacted fields replaced), for approvers.
    #[serde(default)]
    pub args: serde_json::Value,
    /// The rule that requires the approval (`file:line:column`).
    #[serde(default)]
    pub rule: Option<String>,
    /// Its reason.
    #[serde(default)]
    pub reason: String,
    /// When the call was held (ms).
    #[serde(default)]
    pub requested_at: u64,
}

/// The state of a pending call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingState {
    /// Waiting for approvals.
    Waiting,
    /// Approved; its token is outstanding.
    Approved,
    /// Rejected, expired, cancelled, or approved and its token used or expired:
    /// its id may be used again.
    Finished,
}

impl Pending {
    fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    fn state(&self, tokens: &HashMap<String, Token>, now: u64) -> PendingState {
        if self.rejected.is_some() || self.cancelled.is_some() {
            return PendingState::Finished;
        }
        match &self.token {
            Some(digest) => match tokens.get(digest) {
                Some(t) if t.admit_any(now).is_ok() => PendingState::Approved,
                _ => PendingState::Finished,
            },
            None if self.expired(now) => PendingState::Finished,
            None => PendingState::Waiting,
        }
    }

    /// Whether `who` may add an approval now, for the arguments they reviewed
    /// (`args_digest`); `Ok(true)` when theirs completes the count.
    pub fn admit_approval(
        &self,
        who: &Approver,
        args_digest: &str,
        reason: &str,
        now: u64,
    ) -> Result<bool, Refusal> {
        self.admit_common(who, reason, now)?;
        let me = normalise_identity(&who.name);
        if args_digest != self.binding.args_digest {
            return Err(Refusal::DigestMismatch);
        }
        if self
            .approvals
            .iter()
            .any(|(n, _)| normalise_identity(n) == me)
        {
            return Err(Refusal::ApprovedTwice);
        }
        Ok(self.approvals.len() as u64 + 1 >= u64::from(self.count))
    }

    /// Whether `who` may reject now.
    pub fn admit_rejection(&self, who: &Approver, reason: &str, now: u64) -> Result<(), Refusal> {
        self.admit_common(who, reason, now)
    }

    fn admit_common(&self, who: &Approver, reason: &str, now: u64) -> Result<(), Refusal> {
        if reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired);
        }
        if !who.tenants.allows(&self.key.tenant) {
            return Err(Refusal::WrongTenant);
        }
        if normalise_identity(&who.name) == normalise_identity(&self.binding.agent) {
            return Err(Refusal::SelfApproval);
        }
        if self.group.as_ref().is_some_and(|g| !who.groups.contains(g)) {
            return Err(Refusal::WrongGroup);
        }
        if let Some((by, _)) = &self.cancelled {
            return Err(Refusal::Cancelled { by: by.clone() });
        }
        if self.rejected.is_some() {
            return Err(Refusal::Rejected);
        }
        if self.token.is_some() || self.approvals.len() as u64 >= u64::from(self.count) {
            return Err(Refusal::AlreadyApproved);
        }
        if self.expired(now) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

/// A single-use token, known by its SHA-256 (the token itself is never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The pending call it was issued for.
    pub key: CallKey,
    /// The exact request it may run.
    pub binding: Binding,
    /// When it expires (ms).
    pub expires_at: u64,
    /// Used (or revoked by the kill switch).
    pub used: bool,
    /// Revoked by the kill switch.
    pub revoked: bool,
}

impl Token {
    fn admit_any(&self, now: u64) -> Result<(), Refusal> {
        if self.revoked {
            return Err(Refusal::TokenRevoked);
        }
        if self.used {
            return Err(Refusal::TokenUsed);
        }
        if now >= self.expires_at {
            return Err(Refusal::TokenExpired);
        }
        Ok(())
    }

    /// Whether this token may run `binding` now.
    pub fn admit(&self, binding: &Binding, now: u64) -> Result<(), Refusal> {
        self.admit_any(now)?;
        if *binding != self.binding {
            return Err(Refusal::TokenBinding);
        }
        Ok(())
    }
}

/// What a kill switch stops.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KillScope {
    /// One tenant, or every tenant.
    pub tenant: Option<String>,
    /// One agent, or every agent.
    pub agent: Option<String>,
    /// Reads too (for an agent misbehaving with reads), not only writes.
    pub all_tools: bool,
}

impl KillScope {
    /// Whether this scope stops a call of `agent` for `tenant` (a write or not).
    pub fn stops(&self, tenant: &str, agent: &str, write: bool) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
            && self.agent.as_deref().is_none_or(|a| a == agent)
            && (write || self.all_tools)
    }

    fn covers(&self, b: &Binding) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == b.tenant)
            && self.agent.as_deref().is_none_or(|a| a == b.agent)
    }
}

/// How many entries the store holds (for bounds and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreSizes {
    /// Budget windows.
    pub windows: usize,
    /// Budget units in all windows.
    pub units: usize,
    /// Pending calls (waiting, approved or finished and not yet pruned).
    pub pending: usize,
    /// Tokens.
    pub tokens: usize,
    /// Engaged kill switch scopes.
    pub kill_scopes: usize,
}

/// The gateway's state operations.
pub trait Store: Send + Sync {
    /// Takes one unit of the budget `key` if fewer than `limit` were taken in
    /// the `window_ms` before `now`; returns whether it did (a consume).
    fn consume(&self, key: &str, limit: u64, window_ms: u64, now: u64) -> bool;
    /// A copy of the pending call `key`, if there is one.
    fn pending(&self, key: &CallKey) -> Option<Pending>;
    /// The pending call's state at `now`, if there is one.
    fn pending_state(&self, key: &CallKey, now: u64) -> Option<PendingState>;
    /// Every pending call still waiting for approvals at `now`.
    fn waiting(&self, now: u64) -> Vec<Pending>;
    /// Uses a token (by digest) for `binding` at `now` (a consume).
    fn use_token(&self, digest: &str, binding: &Binding, now: u64) -> Result<CallKey, Refusal>;
    /// Whether the token with this digest was used (not merely revoked).
    fn token_used(&self, digest: &str) -> bool;
    /// Applies a journaled record's state change (grants live; everything on replay).
    fn apply(&self, record: &Record);
    /// Whether a kill switch stops a call of `agent` for `tenant`.
    fn killed(&self, tenant: &str, agent: &str, write: bool) -> bool;
    /// The engaged kill switch scopes.
    fn kill_scopes(&self) -> Vec<KillScope>;
    /// Forgets what can no longer matter at `now`: finished calls, used or
    /// expired tokens, budget windows with no unit inside their window.
    fn prune(&self, now: u64);
    /// How many entries it holds.
    fn sizes(&self) -> StoreSizes;
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Window {
    window_ms: u64,
    times: VecDeque<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    windows: HashMap<String, Window>,
    pending: HashMap<String, Pending>,
    tokens: HashMap<String, Token>,
    kill: Vec<KillScope>,
    /// Operations since the last prune.
    #[serde(skip)]
    ops: u64,
    /// The latest time seen (for pruning on access).
    #[serde(skip)]
    now: u64,
    /// Entries left by the last prune.
    #[serde(skip)]
    live: u64,
}

/// Pending calls are stored under this string form of their key.
fn slot(key: &CallKey) -> String {
    // JSON of the pair: unambiguous whatever the tenant and id contain.
    serde_json::json!([key.tenant, key.id]).to_string()
}

/// A store prunes itself after this many operations, or as many as it had
/// entries left by its last prune if that is more: amortised O(1) per
/// operation, and never more than about twice the live entries plus this.
const PRUNE_EVERY: u64 = 1024;

/// The state in this process's memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// Tells the store the time of a record it is about to apply, so that a
    /// store rebuilt from the journal prunes as the live one does.
    pub fn observe_time(&self, ms: u64) {
        let mut s = self.state();
        s.now = s.now.max(ms);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change below is made whole before the guard drops, and none
        // panics midway, so a poisoned lock holds a consistent state: recover it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The whole state, for a snapshot.
    pub fn export(&self) -> serde_json::Value {
        serde_json::to_value(&*self.state()).unwrap_or(serde_json::Value::Null)
    }

    /// A store holding a snapshot's state.
    pub fn restore(state: &serde_json::Value) -> Result<MemoryStore, String> {
        let state: State = serde_json::from_value(state.clone())
            .map_err(|e| format!("not a gateway state snapshot: {e}"))?;
        Ok(MemoryStore {
            state: Mutex::new(state),
        })
    }

    fn tick(s: &mut State, now: u64) {
        s.now = s.now.max(now);
        s.ops += 1;
        if s.ops >= PRUNE_EVERY.max(s.live) {
            let at = s.now;
            prune_state(s, at);
        }
    }
}

fn prune_state(s: &mut State, now: u64) {
    s.ops = 0;
    s.windows.retain(|_, w| {
        w.times
            .back()
            .is_some_and(|t| t.saturating_add(w.window_ms) > now)
    });
    let tokens = &s.tokens;
    s.pending
        .retain(|_, p| p.state(tokens, now) != PendingState::Finished);
    s.tokens
        .retain(|_, t| !t.used && !t.revoked && now < t.expires_at);
    s.live = (s.windows.len() + s.pending.len() + s.tokens.len()) as u64;
}

fn add_unit(s: &mut State, key: &str, window_ms: u64, at: u64) {
    let w = s.windows.entry(key.to_string()).or_default();
    w.window_ms = window_ms;
    // Units arrive in journal order, not always in time order: keep them
    // sorted (the window is pruned when it is next consumed from).
    let at_or_after = w.times.partition_point(|t| *t <= at);
    w.times.insert(at_or_after, at);
}

impl Store for MemoryStore {
    fn consume(&self, key: &str, limit: u64, window_ms: u64, now: u64) -> bool {
        let mut s = self.state();
        Self::tick(&mut s, now);
        let w = s.windows.entry(key.to_string()).or_default();
        w.window_ms = window_ms;
        while w
            .times
            .front()
            .is_some_and(|t| t.saturating_add(window_ms) <= now)
        {
            w.times.pop_front();
        }
        if (w.times.len() as u64) < limit {
            // Sorted even if the clock stepped back (pruning reads the newest at the back).
            let at_or_after = w.times.partition_point(|t| *t <= now);
            w.times.insert(at_or_after, now);
            true
        } else {
            false
        }
    }

    fn pending(&self, key: &CallKey) -> Option<Pending> {
        self.state().pending.get(&slot(key)).cloned()
    }

    fn pending_state(&self, key: &CallKey, now: u64) -> Option<PendingState> {
        let s = self.state();
        s.pending.get(&slot(key)).map(|p| p.state(&s.tokens, now))
    }

    fn waiting(&self, now: u64) -> Vec<Pending> {
        let s = self.state();
        let mut out: Vec<Pending> = s
            .pending
            .values()
            .filter(|p| p.state(&s.tokens, now) == PendingState::Waiting)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    fn use_token(&self, digest: &str, binding: &Binding, now: u64) -> Result<CallKey, Refusal> {
        let mut s = self.state();
        Self::tick(&mut s, now);
        let token = s.tokens.get_mut(digest).ok_or(Refusal::TokenUnknown)?;
        token.admit(binding, now)?;
        token.used = true;
        Ok(token.key.clone())
    }

    fn token_used(&self, digest: &str) -> bool {
        self.state()
            .tokens
            .get(digest)
            .is_some_and(|t| t.used && !t.revoked)
    }

    fn apply(&self, record: &Record) {
        let mut s = self.state();
        apply_record(&mut s, record);
        let now = s.now;
        Self::tick(&mut s, now);
    }

    fn killed(&self, tenant: &str, agent: &str, write: bool) -> bool {
        self.state()
            .kill
            .iter()
            .any(|k| k.stops(tenant, agent, write))
    }

    fn kill_scopes(&self) -> Vec<KillScope> {
        self.state().kill.clone()
    }

    fn prune(&self, now: u64) {
        prune_state(&mut self.state(), now);
    }

    fn sizes(&self) -> StoreSizes {
        let s = self.state();
        StoreSizes {
            windows: s.windows.len(),
            units: s.windows.values().map(|w| w.times.len()).sum(),
            pending: s.pending.len(),
            tokens: s.tokens.len(),
            kill_scopes: s.kill.len(),
        }
    }
}

/// The one place a record changes state. Records that change nothing (a
/// denial, a refusal, an execution result) are ignored here on purpose.
fn apply_record(s: &mut State, record: &Record) {
    match record {
        Record::Decision(d) => {
            if let Some(unit) = &d.budget {
                add_unit(s, &unit.key, unit.window_ms, d.at);
            }
        }
        Record::ApprovalRequested(r) => {
            let p = Pending {
                key: r.key.clone(),
                binding: r.binding.clone(),
                group: r.group.clone(),
                count: r.count,
                expires_at: r.expires_at,
                approvals: Vec::new(),
                rejected: None,
                token: None,
                cancelled: None,
                args: r.args.clone(),
                rule: r.rule.clone(),
                reason: r.reason.clone(),
                requested_at: r.requested_at,
            };
            s.pending.insert(slot(&r.key), p);
        }
        Record::ApprovalGranted(r) => {
            // Applied as admitted: a repeated approver (a retried, journaled
            // approval) or a call no longer waiting changes nothing.
            let now = s.now;
            let tokens = &s.tokens;
            let waiting = s
                .pending
                .get(&slot(&r.key))
                .is_some_and(|p| p.state(tokens, now) == PendingState::Waiting);
            if let Some(p) = s.pending.get_mut(&slot(&r.key)).filter(|_| waiting) {
                let me = normalise_identity(&r.approver);
                if !p.approvals.iter().any(|(n, _)| normalise_identity(n) == me) {
                    p.approvals.push((r.approver.clone(), r.reason.clone()));
                }
            }
        }
        Record::ApprovalRejected(r) => {
            if let Some(p) = s.pending.get_mut(&slot(&r.key)) {
                p.rejected = Some((r.approver.clone(), r.reason.clone()));
            }
        }
        Record::TokenIssued(r) => {
            if let Some(p) = s.pending.get_mut(&slot(&r.key)) {
                p.token = Some(r.token_digest.clone());
            }
            let token = Token {
                key: r.key.clone(),
                binding: r.binding.clone(),
                expires_at: r.expires_at,
                used: false,
                revoked: false,
            };
            s.tokens.insert(r.token_digest.clone(), token);
        }
        Record::TokenUsed(r) => {
            if let Some(t) = s.tokens.get_mut(&r.token_digest) {
                t.used = true;
            }
        }
        Record::KillSwitch(k) => apply_kill_switch(s, k),
        // Only what restricts is ever restored (a forged `restored` granting
        // anything changes nothing).
        Record::Restored(r) if r.record.restricts() => apply_record(s, &r.record),
        _ => {}
    }
}

fn apply_kill_switch(s: &mut State, k: &crate::record::KillSwitch) {
    if !k.engaged {
        s.kill.retain(|scope| *scope != k.scope);
        return;
    }
    if !s.kill.contains(&k.scope) {
        s.kill.push(k.scope.clone());
    }
    // Approvals and tokens given before the switch do not outlive it.
    for p in s.pending.values_mut() {
        if k.scope.covers(&p.binding) && p.cancelled.is_none() {
            p.cancelled = Some((k.by.clone(), k.reason.clone()));
        }
    }
    for t in s.tokens.values_mut() {
        if k.scope.covers(&t.binding) && !t.used {
            t.revoked = true;
        }
    }
}

/// Applies a journal's records to a store, in order: how a restarted gateway
/// gets the budget windows, pending approvals, tokens and kill switch it had.
/// A line that is not a known record is an error (fail closed: a journal this
/// version does not understand is not half-applied).
pub fn replay(store: &dyn Store, lines: &[String]) -> Result<(), ReplayError> {
    for (i, line) in lines.iter().enumerate() {
        let record = Record::from_line(line).map_err(|why| ReplayError {
            line: i as u64 + 1,
            why,
        })?;
        store.apply(&record);
    }
    Ok(())
}

/// A journal record that could not be applied.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("journal record {line} cannot be applied: {why}")]
#[diagnostic(
    code(toolgate::gateway::replay),
    help("the journal was written by another version or edited; the gateway does not start on state it cannot rebuild")
)]
pub struct ReplayError {
    /// The record's position among the lines given (1-based).
    pub line: u64,
    /// Why.
    pub why: String,
}

/// The gateway's state as the journal derives it: a [`MemoryStore`] that
/// applies each committed record with the same [`Store::apply`] the live
/// gateway uses. `Journal::open` replays the journal (from its latest
/// snapshot) into one, the writer keeps one so that snapshots are exact, and
/// a restarted gateway starts from [`MemoryStore::restore`] of its export.
#[derive(Default)]
pub struct StoreState(MemoryStore);

impl crate::journal::StateMachine for StoreState {
    fn apply(&mut self, line: &str) -> Result<(), String> {
        let record = Record::from_line(line)?;
        if let Some(ts) = Record::time_of_line(line) {
            self.0.observe_time(ts);
        }
        self.0.apply(&record);
        Ok(())
    }

    fn export(&self) -> serde_json::Value {
        self.0.export()
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.0 = MemoryStore::restore(state)?;
        Ok(())
    }
}
