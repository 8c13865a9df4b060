//! Gateway state behind an async trait: budget windows, pending approvals
//! (keyed by tenant and call id), issued tokens, the kill switch. Every state
//! change is ONE conditional operation of the store that says whether it
//! happened ([`Store::consume`], [`Store::hold`], [`Store::approve`],
//! [`Store::reject`], [`Store::use_token`], [`Store::kill_switch`]); the
//! gateway then journals what happened. The store makes each operation atomic
//! on its own: [`MemoryStore`] under its mutex, [`RedisStore`](redis::RedisStore)
//! in a server-side script, so several replicas on one Redis grant nothing twice.
//!
//! Each operation is given the [`Record`](crate::record::Record) that describes it and changes the
//! state exactly as [`MemoryStore::apply`] of that record does, so a restart
//! of an embedded gateway ([`replay`] of its journal) rebuilds the same state.
//!
//! Refusal rules are pure functions on the state ([`Pending::admit_approval`],
//! [`Pending::admit_rejection`], [`Token::admit`]), run by every store.

mod memory;
#[cfg(feature = "redis")]
pub mod redis;
pub mod session;

pub use memory::{replay, MemoryStore, ReplayError, StoreState};
pub use session::{
    SessionAnswers, SessionChange, SessionKey, SessionLimits, SessionLookup, SessionQuery,
    SessionRead, SessionSummary, SessionWrite,
};

use crate::record::{ApprovalGranted, ApprovalRejected, ApprovalRequested, KillSwitch};
use crate::record::{TokenIssued, TokenUsed};
use crate::refusal::Refusal;
use serde::{Deserialize, Serialize};

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
    /// The held call's session, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Digests of the values its approval endorses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endorse: Vec<String>,
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
    /// A call just held for approval, as its record describes it.
    pub fn requested(r: &ApprovalRequested) -> Pending {
        Pending {
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
            session: r.session.clone(),
            endorse: r.endorse.clone(),
        }
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// Its state at `now`, given its token (looked up by `self.token`), if any.
    pub fn state(&self, token: Option<&Token>, now: u64) -> PendingState {
        if self.rejected.is_some() || self.cancelled.is_some() {
            return PendingState::Finished;
        }
        match &self.token {
            Some(_) => match token {
                Some(t) if t.admit_any(now).is_ok() => PendingState::Approved,
                _ => PendingState::Finished,
            },
            None if self.expired(now) => PendingState::Finished,
            None => PendingState::Waiting,
        }
    }

    /// Whether `who` may add `grant` now: for the arguments they reviewed
    /// (`args_digest`) and, if they said which, the hold they reviewed
    /// (`held_at`, this hold's `requested_at`: an id re-held since is another
    /// hold, refused as a stale digest); `Ok(true)` when theirs completes the count.
    pub fn admit_approval(
        &self,
        who: &Approver,
        grant: &ApprovalGranted,
        now: u64,
    ) -> Result<bool, Refusal> {
        self.admit_common(who, &grant.reason, now)?;
        let me = normalise_identity(&who.name);
        let other_hold = grant.held_at.is_some_and(|t| t != self.requested_at);
        if grant.args_digest != self.binding.args_digest || other_hold {
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
    /// The token sealed with the replicas' shared digest key
    /// (`DigestKey::seal_token`), so that any replica can hand it to the
    /// service; only a store shared by replicas keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
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

    /// Whether this scope covers a pending call or token bound to `b`
    /// (engaging it cancels and revokes them).
    pub fn covers(&self, b: &Binding) -> bool {
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

/// What a store that keeps no sessions answers to session operations: the
/// store's denial, so provenance conditions fail closed.
pub const NO_SESSIONS: &str = "this state store keeps no sessions: session operations fail closed";

/// Tokens of approvals with no expiry expire this long after they are issued.
pub const TOKEN_TTL_MS: u64 = 15 * 60 * 1000;

/// The store could not answer (a networked store is unreachable or refused):
/// the gateway fails closed on it, with this reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("{0}")]
#[diagnostic(code(toolgate::gateway::store_unavailable))]
pub struct StoreError(pub String);

/// What a store operation that may be refused returns: `Err` when the store
/// could not answer, `Ok(Err(refusal))` when the state does not allow it (and
/// nothing changed), `Ok(Ok(..))` when it happened.
pub type Admitted<T> = Result<Result<T, Refusal>, StoreError>;

/// Who a call is, for the kill switch.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The agent.
    pub agent: &'a str,
    /// Whether the tool writes.
    pub write: bool,
}

/// An id in use for its tenant: a call being decided (`expires_at` none), or
/// an allowed call whose result is awaited until `expires_at` (an open lease).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseHolder {
    /// The call's agent.
    pub agent: String,
    /// The call's env.
    pub env: String,
    /// When an unreported result becomes `result_missing` (ms); none while the call is decided.
    pub expires_at: Option<u64>,
    /// The call's tool (its output's labels, when the result is observed).
    #[serde(default)]
    pub tool: String,
    /// The call's session, if it has one (its result is observed there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// The gateway's state operations. Each changing operation is atomic and
/// conditional: it checks and changes in one step, and returns whether it
/// happened. Networked stores answer [`StoreError`] when they cannot.
///
/// An `async_trait` (boxed futures) rather than native `async fn`s: the
/// gateway holds the store as `Arc<dyn Store>` (the memory or the Redis
/// store, chosen at start), which native async trait methods do not allow;
/// one allocation per operation is nothing beside a journal write or a
/// network round trip.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Takes one unit of the budget `key` if fewer than `limit` were taken
    /// in the `window_ms` before `now`; returns whether it did. `tenant` is
    /// the budget's tenant (empty for a budget every tenant shares): a
    /// networked store keeps the window with that tenant's state.
    async fn consume(
        &self,
        tenant: &str,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<bool, StoreError>;
    /// Holds a call for approval (`request`): refused when a kill switch
    /// stops `subject` or the id is waiting or approved with its token unused.
    async fn hold(
        &self,
        request: &ApprovalRequested,
        subject: Subject<'_>,
        now: u64,
    ) -> Admitted<()>;
    /// Adds `grant` by `who` (admitted by [`Pending::admit_approval`], refused
    /// when a kill switch stops the call, `write` being its tool's class); when
    /// it completes the count, issues the token whose SHA-256 is
    /// `token_digest` in the same step and returns its record. `sealed` is
    /// the token sealed for other replicas (a store of one process ignores it).
    async fn approve(
        &self,
        grant: &ApprovalGranted,
        who: &Approver,
        write: bool,
        token_digest: &str,
        sealed: &str,
        now: u64,
    ) -> Admitted<Option<TokenIssued>>;
    /// The sealed token of the token with this digest (issued for `key`), if
    /// the store keeps it.
    async fn sealed_token(
        &self,
        key: &CallKey,
        digest: &str,
    ) -> Result<Option<String>, StoreError> {
        let _ = (key, digest);
        Ok(None)
    }
    /// Rejects a pending call (admitted by [`Pending::admit_rejection`]).
    async fn reject(&self, rejected: &ApprovalRejected, who: &Approver, now: u64) -> Admitted<()>;
    /// Uses a token once for `binding` (admitted by [`Token::admit`]; refused
    /// when a kill switch stops `subject`).
    async fn use_token(
        &self,
        used: &TokenUsed,
        binding: &Binding,
        subject: Subject<'_>,
        now: u64,
    ) -> Admitted<()>;
    /// Engages (cancelling the pending calls and revoking the unused tokens it
    /// covers) or releases a kill switch.
    async fn kill_switch(&self, kill: &KillSwitch) -> Result<(), StoreError>;
    /// Whether a kill switch stops `subject`.
    async fn killed(&self, subject: Subject<'_>) -> Result<bool, StoreError>;
    /// The engaged kill switch scopes.
    async fn kill_scopes(&self) -> Result<Vec<KillScope>, StoreError>;
    /// A copy of the pending call `key`, if there is one.
    async fn pending(&self, key: &CallKey) -> Result<Option<Pending>, StoreError>;
    /// The pending call's state at `now`, if there is one.
    async fn pending_state(
        &self,
        key: &CallKey,
        now: u64,
    ) -> Result<Option<PendingState>, StoreError>;
    /// Every pending call still waiting for approvals at `now`, by key.
    async fn waiting(&self, now: u64) -> Result<Vec<Pending>, StoreError>;
    /// Whether the token with this digest (issued for `key`) was used, not
    /// merely revoked.
    async fn token_used(&self, key: &CallKey, digest: &str) -> Result<bool, StoreError>;
    /// Reserves `key` for a call being decided (`holder.expires_at` none);
    /// false when the id is already reserved or leased.
    async fn reserve_lease(&self, key: &CallKey, holder: &LeaseHolder) -> Result<bool, StoreError>;
    /// Opens the lease of an allowed call (`holder.expires_at` set), replacing its reservation.
    async fn open_lease(
        &self,
        key: &CallKey,
        holder: &LeaseHolder,
        now: u64,
    ) -> Result<(), StoreError>;
    /// Frees the reservation of a call that was not allowed (an open lease stays).
    async fn release_lease(&self, key: &CallKey) -> Result<(), StoreError>;
    /// The open lease of `key`, if there is one (whichever replica opened it).
    async fn lease(&self, key: &CallKey) -> Result<Option<LeaseHolder>, StoreError>;
    /// Closes the open lease of `key`; true for exactly one caller (a result
    /// reported to any replica, or the expiry).
    async fn take_lease(&self, key: &CallKey) -> Result<bool, StoreError>;
    /// Closes and returns up to `max` open leases expired at `now` (each to
    /// one caller only, across replicas), with their deadlines.
    async fn take_expired_leases(
        &self,
        now: u64,
        max: usize,
    ) -> Result<Vec<(CallKey, u64)>, StoreError>;
    /// Records the fingerprint of the digest key this gateway uses when the
    /// store has none; the one recorded when it differs (a shared store's
    /// gateways must share one key, or their tokens and digests do not
    /// match). A store of one process has nothing to compare: `None`.
    async fn claim_digest_key(&self, fingerprint: &str) -> Result<Option<String>, StoreError> {
        let _ = fingerprint;
        Ok(None)
    }
    /// Forgets what can no longer matter at `now` (a store with expiry of its
    /// own may do nothing).
    async fn prune(&self, now: u64) -> Result<(), StoreError>;
    /// Applies a session change ([`session`]: a user turn, an observed
    /// output, endorsed values, an allowed call) in one step, creating the
    /// session when first named; says whether it was recorded, took the
    /// session over its cap, or found a tombstone. A store that keeps no
    /// sessions answers [`StoreError`]: session operations fail closed.
    async fn session_change(&self, change: &SessionChange) -> Result<SessionWrite, StoreError> {
        let _ = change;
        Err(StoreError(NO_SESSIONS.to_string()))
    }
    /// The whole session at `now` (an id never seen is an empty session; an
    /// evicted or capped one is [`SessionRead::Gone`]): for inspection, not
    /// for decisions, which read [`Store::session_lookup`].
    async fn session(&self, key: &SessionKey, now: u64) -> Result<SessionRead, StoreError> {
        let _ = (key, now);
        Err(StoreError(NO_SESSIONS.to_string()))
    }
    /// What may be shown of a session at `now` (its counts and taint, for
    /// `GET /v1/sessions/{id}`); `None` for a tombstone (evicted or over its
    /// cap). Read through [`Store::session`] unless a store answers it more
    /// cheaply; a store that keeps no sessions answers [`StoreError`].
    async fn session_summary(
        &self,
        key: &SessionKey,
        now: u64,
    ) -> Result<Option<SessionSummary>, StoreError> {
        Ok(match self.session(key, now).await? {
            SessionRead::Live(s) => Some(s.summary()),
            SessionRead::Gone => None,
        })
    }
    /// What one decision at `now` asks of a session ([`SessionQuery`]), and
    /// nothing more: a networked store answers it in one round trip. By
    /// default answered from [`Store::session`].
    async fn session_lookup(
        &self,
        key: &SessionKey,
        query: &SessionQuery,
        now: u64,
    ) -> Result<SessionLookup, StoreError> {
        Ok(match self.session(key, now).await? {
            SessionRead::Live(s) => SessionLookup::Live(s.answer(query)),
            SessionRead::Gone => SessionLookup::Gone,
        })
    }
    /// Whether the store answers now (for `/readyz`); an embedded store always does.
    fn healthy(&self) -> bool {
        true
    }
}
