//! The embedded store: the gateway's state in this process's memory, rebuilt
//! from the journal on restart ([`replay`], [`StoreState`]). Each operation
//! runs under one mutex and changes the state exactly as applying its record
//! does ([`MemoryStore::apply`]).

mod leases;

use super::session::{
    Session, SessionChange, SessionKey, SessionLimits, SessionRead, SessionWrite,
};
use super::{
    normalise_identity, Admitted, Approver, Binding, CallKey, KillScope, LeaseHolder, Pending,
    PendingState, Store, StoreError, StoreSizes, Subject, Token, TOKEN_TTL_MS,
};
use crate::record::{ApprovalGranted, ApprovalRejected, ApprovalRequested, KillSwitch, Record};
use crate::record::{TokenIssued, TokenUsed};
use crate::refusal::Refusal;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

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
    /// Sessions by [`SessionKey::slot`]; a decision reads one without copying it.
    #[serde(default)]
    sessions: HashMap<String, Arc<Session>>,
    /// Their TTL and cap (the defaults unless a test sets others).
    #[serde(skip)]
    session_limits: SessionLimits,
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
    /// Ids in use (calls being decided, open leases): one process's, not
    /// journaled state (a restart forgets them, as it forgets its callers).
    leases: Mutex<leases::Leases>,
}

impl MemoryStore {
    /// Tells the store the time of a record it is about to apply, so that a
    /// store rebuilt from the journal prunes as the live one does.
    pub fn observe_time(&self, ms: u64) {
        let mut s = self.state();
        s.now = s.now.max(ms);
    }

    /// A record that changes no state was applied at `ms`: the clock and the
    /// pruning count move as for any record (what `apply` of it would do).
    pub fn pass(&self, ms: u64) {
        let mut s = self.state();
        s.now = s.now.max(ms);
        let now = s.now;
        Self::tick(&mut s, now);
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, leases::Leases> {
        // Each change is one insert or remove: a poisoned lock holds a whole map.
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
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
    pub fn restore(state: &serde_json::Value) -> Result<MemoryStore, serde_json::Error> {
        let state: State = serde_json::from_value(state.clone())?;
        Ok(MemoryStore {
            state: Mutex::new(state),
            leases: Mutex::default(),
        })
    }

    /// Applies a journaled record's state change (a restart replays the
    /// journal through this; the live operations change state as it does).
    pub fn apply(&self, record: &Record) {
        let mut s = self.state();
        apply_record(&mut s, record);
        let now = s.now;
        Self::tick(&mut s, now);
    }

    /// Sets the sessions' TTL and cap (tests; a journal replayed with other
    /// limits rebuilds other sessions, so a live store keeps the defaults).
    pub fn set_session_limits(&self, limits: SessionLimits) {
        self.state().session_limits = limits;
    }

    /// How many entries it holds.
    pub fn sizes(&self) -> StoreSizes {
        let s = self.state();
        StoreSizes {
            windows: s.windows.len(),
            units: s.windows.values().map(|w| w.times.len()).sum(),
            pending: s.pending.len(),
            tokens: s.tokens.len(),
            kill_scopes: s.kill.len(),
        }
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
        .retain(|_, p| state_of(p, tokens, now) != PendingState::Finished);
    s.tokens
        .retain(|_, t| !t.used && !t.revoked && now < t.expires_at);
    let limits = s.session_limits;
    s.sessions.retain(|_, x| !x.expired(now, limits));
    for x in s.sessions.values_mut() {
        if matches!(Session::read_at(x, now, limits), SessionRead::Gone) && !x.is_gone() {
            // An idle session's index goes now; its tombstone stays.
            Arc::make_mut(x).age(now, limits);
        }
    }
    s.live = (s.windows.len() + s.pending.len() + s.tokens.len() + s.sessions.len()) as u64;
}

fn add_unit(s: &mut State, key: &str, window_ms: u64, at: u64) {
    let w = s.windows.entry(key.to_string()).or_default();
    w.window_ms = window_ms;
    // Units arrive in journal order, not always in time order: keep them
    // sorted (the window is pruned when it is next consumed from).
    let at_or_after = w.times.partition_point(|t| *t <= at);
    w.times.insert(at_or_after, at);
}

fn state_of(p: &Pending, tokens: &HashMap<String, Token>, now: u64) -> PendingState {
    p.state(p.token.as_ref().and_then(|d| tokens.get(d)), now)
}

fn killed_in(s: &State, who: Subject<'_>) -> bool {
    s.kill
        .iter()
        .any(|k| k.stops(who.tenant, who.agent, who.write))
}

fn consume_in(s: &mut State, key: &str, limit: u64, window_ms: u64, now: u64) -> bool {
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

fn approve_in(
    s: &mut State,
    grant: &ApprovalGranted,
    who: &Approver,
    write: bool,
    token_digest: &str,
    now: u64,
) -> Result<Option<TokenIssued>, Refusal> {
    let p = s
        .pending
        .get(&slot(&grant.key))
        .ok_or(Refusal::NoSuchRequest)?;
    let subject = Subject {
        tenant: &p.binding.tenant,
        agent: &p.binding.agent,
        write,
    };
    if killed_in(s, subject) {
        return Err(Refusal::KillSwitch);
    }
    let completes = p.admit_approval(who, grant, now)?;
    let issued = completes.then(|| TokenIssued {
        key: p.key.clone(),
        token_digest: token_digest.to_string(),
        expires_at: p.expires_at.unwrap_or(now.saturating_add(TOKEN_TTL_MS)),
        binding: p.binding.clone(),
    });
    apply_record(s, &Record::ApprovalGranted(grant.clone()));
    if let Some(issued) = &issued {
        apply_record(s, &Record::TokenIssued(issued.clone()));
    }
    Ok(issued)
}

fn hold_in(
    s: &mut State,
    request: &ApprovalRequested,
    who: Subject<'_>,
    now: u64,
) -> Result<(), Refusal> {
    let state = s
        .pending
        .get(&slot(&request.key))
        .map(|p| state_of(p, &s.tokens, now));
    // Checked in the same step as the reservation: a call held after the
    // switch was engaged would escape its cancellation.
    if killed_in(s, who) {
        return Err(Refusal::KillSwitch);
    }
    let in_use = match state {
        Some(PendingState::Waiting) => Some("waiting for approval"),
        Some(PendingState::Approved) => Some("approved and its token not yet used"),
        Some(PendingState::Finished) | None => None,
    };
    if let Some(state) = in_use {
        return Err(Refusal::IdInUse {
            id: request.key.id.clone(),
            state,
        });
    }
    apply_record(s, &Record::ApprovalRequested(request.clone()));
    Ok(())
}

fn use_token_in(
    s: &mut State,
    used: &TokenUsed,
    binding: &Binding,
    who: Subject<'_>,
    now: u64,
) -> Result<(), Refusal> {
    if killed_in(s, who) {
        return Err(Refusal::KillSwitch);
    }
    let token = s
        .tokens
        .get_mut(&used.token_digest)
        .ok_or(Refusal::TokenUnknown)?;
    token.admit(binding, now)?;
    token.used = true;
    Ok(())
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn reserve_lease(&self, key: &CallKey, holder: &LeaseHolder) -> Result<bool, StoreError> {
        let mut leases = self.leases();
        if leases.contains(key) {
            return Ok(false);
        }
        leases.insert(key, holder);
        Ok(true)
    }

    async fn open_lease(
        &self,
        key: &CallKey,
        holder: &LeaseHolder,
        _now: u64,
    ) -> Result<(), StoreError> {
        self.leases().insert(key, holder);
        Ok(())
    }

    async fn release_lease(&self, key: &CallKey) -> Result<(), StoreError> {
        let mut leases = self.leases();
        if leases.get(key).is_some_and(|h| h.expires_at.is_none()) {
            leases.remove(key);
        }
        Ok(())
    }

    async fn lease(&self, key: &CallKey) -> Result<Option<LeaseHolder>, StoreError> {
        let leases = self.leases();
        Ok(leases.get(key).filter(|h| h.expires_at.is_some()).cloned())
    }

    async fn take_lease(&self, key: &CallKey) -> Result<bool, StoreError> {
        let mut leases = self.leases();
        let open = leases.get(key).is_some_and(|h| h.expires_at.is_some());
        Ok(open && leases.remove(key).is_some())
    }

    async fn take_expired_leases(
        &self,
        now: u64,
        max: usize,
    ) -> Result<Vec<(CallKey, u64)>, StoreError> {
        Ok(self.leases().take_expired(now, max))
    }

    async fn consume(
        &self,
        _tenant: &str,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut s = self.state();
        Self::tick(&mut s, now);
        Ok(consume_in(&mut s, key, limit, window_ms, now))
    }

    async fn hold(&self, request: &ApprovalRequested, who: Subject<'_>, now: u64) -> Admitted<()> {
        let mut s = self.state();
        Self::tick(&mut s, now);
        Ok(hold_in(&mut s, request, who, now))
    }

    async fn approve(
        &self,
        grant: &ApprovalGranted,
        who: &Approver,
        write: bool,
        token_digest: &str,
        _sealed: &str,
        now: u64,
    ) -> Admitted<Option<TokenIssued>> {
        let mut s = self.state();
        Self::tick(&mut s, now);
        Ok(approve_in(&mut s, grant, who, write, token_digest, now))
    }

    async fn reject(&self, rejected: &ApprovalRejected, who: &Approver, now: u64) -> Admitted<()> {
        let mut s = self.state();
        Self::tick(&mut s, now);
        let admitted = match s.pending.get(&slot(&rejected.key)) {
            None => Err(Refusal::NoSuchRequest),
            Some(p) => p.admit_rejection(who, &rejected.reason, now),
        };
        if admitted.is_ok() {
            apply_record(&mut s, &Record::ApprovalRejected(rejected.clone()));
        }
        Ok(admitted)
    }

    async fn use_token(
        &self,
        used: &TokenUsed,
        binding: &Binding,
        who: Subject<'_>,
        now: u64,
    ) -> Admitted<()> {
        let mut s = self.state();
        Self::tick(&mut s, now);
        Ok(use_token_in(&mut s, used, binding, who, now))
    }

    async fn kill_switch(&self, kill: &KillSwitch) -> Result<(), StoreError> {
        self.apply(&Record::KillSwitch(kill.clone()));
        Ok(())
    }

    async fn killed(&self, who: Subject<'_>) -> Result<bool, StoreError> {
        Ok(killed_in(&self.state(), who))
    }

    async fn kill_scopes(&self) -> Result<Vec<KillScope>, StoreError> {
        Ok(self.state().kill.clone())
    }

    async fn pending(&self, key: &CallKey) -> Result<Option<Pending>, StoreError> {
        Ok(self.state().pending.get(&slot(key)).cloned())
    }

    async fn pending_state(
        &self,
        key: &CallKey,
        now: u64,
    ) -> Result<Option<PendingState>, StoreError> {
        let s = self.state();
        Ok(s.pending
            .get(&slot(key))
            .map(|p| state_of(p, &s.tokens, now)))
    }

    async fn waiting(&self, now: u64) -> Result<Vec<Pending>, StoreError> {
        let s = self.state();
        let mut out: Vec<Pending> = s
            .pending
            .values()
            .filter(|p| state_of(p, &s.tokens, now) == PendingState::Waiting)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn token_used(&self, _key: &CallKey, digest: &str) -> Result<bool, StoreError> {
        Ok(self
            .state()
            .tokens
            .get(digest)
            .is_some_and(|t| t.used && !t.revoked))
    }

    async fn prune(&self, now: u64) -> Result<(), StoreError> {
        prune_state(&mut self.state(), now);
        Ok(())
    }

    async fn session_change(&self, change: &SessionChange) -> Result<SessionWrite, StoreError> {
        let mut s = self.state();
        Self::tick(&mut s, change.at());
        Ok(session_in(&mut s, change))
    }

    async fn session(&self, key: &SessionKey, now: u64) -> Result<SessionRead, StoreError> {
        let s = self.state();
        Ok(match s.sessions.get(&key.slot()) {
            Some(x) => Session::read_at(x, now, s.session_limits),
            None => SessionRead::Live(Arc::default()),
        })
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
            let p = Pending::requested(r);
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
                .is_some_and(|p| state_of(p, tokens, now) == PendingState::Waiting);
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
                sealed: None,
            };
            s.tokens.insert(r.token_digest.clone(), token);
        }
        Record::TokenUsed(r) => {
            if let Some(t) = s.tokens.get_mut(&r.token_digest) {
                t.used = true;
            }
        }
        Record::KillSwitch(k) => apply_kill_switch(s, k),
        Record::SessionTurn(_)
        | Record::SessionObserved(_)
        | Record::SessionEndorsed(_)
        | Record::SessionCall(_) => {
            if let Some(change) = SessionChange::from_record(record) {
                session_in(s, &change);
            }
        }
        // Only what restricts is ever restored (a forged `restored` granting
        // anything changes nothing).
        Record::Restored(r) if r.record.restricts() => apply_record(s, &r.record),
        _ => {}
    }
}

/// Applies a session change (creating the session when first named).
fn session_in(s: &mut State, change: &SessionChange) -> SessionWrite {
    let limits = s.session_limits;
    let session = s.sessions.entry(change.key().slot()).or_default();
    Arc::make_mut(session).apply(change, limits)
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
pub fn replay(store: &MemoryStore, lines: &[String]) -> Result<(), ReplayError> {
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
/// applies each committed record with the same [`MemoryStore::apply`] the live
/// gateway uses. `Journal::open` replays the journal (from its latest
/// snapshot) into one, the writer keeps one so that snapshots are exact, and
/// a restarted gateway starts from [`MemoryStore::restore`] of its export.
#[derive(Default)]
pub struct StoreState(MemoryStore);

impl crate::journal::StateMachine for StoreState {
    fn apply(&mut self, line: &str) -> Result<(), String> {
        if let Some(ts) = changes_nothing(line) {
            self.0.pass(ts);
            return Ok(());
        }
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
        self.0 = MemoryStore::restore(state)
            .map_err(|e| format!("not a gateway state snapshot: {e}"))?;
        Ok(())
    }
}

/// The time of a record whose kind `apply_record` passes over (a decision
/// that took no budget unit, the reports and refusals), read without
/// building the record: most of a busy journal. `None` for every other
/// record, and for anything that does not read as a record's head: those
/// are parsed whole (and an unknown kind refused).
fn changes_nothing(line: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        ts_ms: u64,
        #[serde(borrow)]
        kind: std::borrow::Cow<'a, str>,
        body: Body,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        /// Absent: not a decision as written (parsed whole, and refused);
        /// `Some(None)`: `null`, no budget unit.
        #[serde(default, deserialize_with = "present")]
        budget: Option<Option<serde::de::IgnoredAny>>,
    }
    fn present<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<serde::de::IgnoredAny>>, D::Error> {
        <Option<serde::de::IgnoredAny> as serde::Deserialize>::deserialize(d).map(Some)
    }
    let head: Head<'_> = serde_json::from_str(line).ok()?;
    let passes = match head.kind.as_ref() {
        "decision" => matches!(head.body.budget, Some(None)),
        "policy_load"
        | "budget_exhausted"
        | "approval_request_refused"
        | "approval_refused"
        | "rejection_refused"
        | "token_refused"
        | "execution"
        | "result_refused"
        | "result_missing"
        | "policy_refused"
        | "shadow_differs"
        | "access_denied"
        | "tool_notice" => true,
        _ => false,
    };
    passes.then_some(head.ts_ms)
}

#[cfg(test)]
mod tests {
    use super::changes_nothing;

    #[test]
    fn only_records_that_change_nothing_skip_the_whole_parse() {
        let line = |kind: &str, body: &str| {
            format!(r#"{{"body":{body},"kind":"{kind}","prev":"00","seq":1,"ts_ms":42}}"#)
        };
        let read = line("decision", r#"{"budget":null,"call":"c1"}"#);
        assert_eq!(changes_nothing(&read), Some(42));
        assert_eq!(
            changes_nothing(&line("execution", r#"{"ok":true}"#)),
            Some(42)
        );
        let spent = line("decision", r#"{"budget":{"key":"k","window_ms":1}}"#);
        assert_eq!(changes_nothing(&spent), None, "a budget unit is applied");
        let unsure = line("decision", r#"{"call":"c1"}"#);
        assert_eq!(
            changes_nothing(&unsure),
            None,
            "no budget field: parsed whole"
        );
        assert_eq!(changes_nothing(&line("token_used", "{}")), None);
        assert_eq!(changes_nothing(&line("no_such_kind", "{}")), None);
        assert_eq!(changes_nothing("not a record"), None);
    }
}
