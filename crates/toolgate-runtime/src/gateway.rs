//! The gateway: decides every proposed call with the engine and enforces the
//! decision: deny, run within a budget, or hold for human approval, with every
//! step written to the audit journal before its outcome is returned.
//!
//! Order of a call ([`Gateway::authorize`]; [`Gateway::call`] adds the run
//! and [`Gateway::complete`]): the id reserved for its tenant (an id in use
//! is refused before anything is decided); the size and name limits; the
//! engine's decision; the kill switch and the credential scope (so a call
//! refused by them spends nothing); the budget (one unit taken atomically by
//! the store, or the next grant); the shadow policy's comparison; the
//! decision record (a journal failure refuses the call: nothing is returned
//! without its record); then the deny, the hold or the lease.
//!
//! State that grants (a hold, an approval, a rejection, a token's use, a kill
//! switch) changes under one lock (`commit`), in this order: the store's
//! conditional operation (it says whether it happened, atomically, in memory
//! and in Redis alike), then the record of what happened (a refused operation
//! is journaled as refused). A token reaches its caller only after its
//! `token_issued` record; a journal failure after a store operation is
//! returned as an error, so no caller acts on an unrecorded grant. A restart
//! of an embedded gateway rebuilds the memory store from the journal alone
//! (`MemoryStore::apply`, through `StoreState`).

mod approvals;
mod digest;
mod lease;
mod metrics;
mod policy;
mod session;
mod verdict;

/// The attribute an [`Executor`] implementation carries (re-exported: no extra dependency).
pub use async_trait::async_trait;
pub use digest::{canonical, random_token, DigestKey};
pub use lease::{CallState, Lease};
pub use metrics::Metrics;
pub use policy::CompiledPolicy;
pub use session::{check_session_id, SessionInputError, MAX_CHANGE_DIGESTS};
pub use session::{MAX_OBSERVED_BYTES, MAX_TURN_BYTES};
pub use verdict::{Denial, DeniedBy, Hold, Verdict};

use crate::journal::{sha256_hex, Durability, Journal, JournalError};
use crate::record::{self, BudgetUnit, Record};
use crate::refusal::Refusal;
use crate::store::{CallKey, Store, Subject};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;
use toolgate_engine::provenance::SessionView;
use toolgate_engine::{Context, Decision, Outcome, Request, RuleInfo};

/// Milliseconds since the epoch, from a clock the gateway is given.
pub trait Clock: Send + Sync {
    /// Now.
    fn now_ms(&self) -> u64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told (replays and tests).
#[derive(Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// Sets the time.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A boxed error: what an embedder's tool or credential store reports, or a
/// policy's first error.
pub type ToolError = Box<dyn std::error::Error + Send + Sync>;

/// Runs allowed calls for a Rust embedder ([`Gateway::call`],
/// [`Gateway::execute_approved`]). The doors (`policyc serve`, the MCP proxy)
/// never run tools through the gateway: their callers run them after a
/// [`Verdict::Allowed`].
#[async_trait]
pub trait Executor: Send + Sync {
    /// The credentials for `tool` within `scope`: values from the trusted
    /// context only (e.g. `[("tenant", "acme"), ("env", "prod")]`).
    fn credentials(&self, tool: &str, scope: &[(String, Json)]) -> Result<Json, ToolError>;
    /// Runs `tool` with `args` and `credentials`.
    async fn execute(&self, tool: &str, args: &Json, credentials: &Json)
        -> Result<Json, ToolError>;
}

/// A proposed call: what the agent asked for, and the trusted context.
#[derive(Clone, Debug)]
pub struct Call {
    /// The request id (also the approval id, unique per tenant).
    pub id: String,
    /// The agent.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// The arguments (model output).
    pub args: Json,
    /// The trusted context.
    pub context: Context,
    /// The session it belongs to (trusted context from the host, never
    /// model output; at most [`MAX_SESSION_CHARS`](crate::store::session::MAX_SESSION_CHARS) characters): provenance
    /// and session conditions read it. `None`: they are evaluation errors.
    pub session: Option<String>,
}

impl Call {
    /// Its tenant and id.
    pub fn key(&self) -> CallKey {
        CallKey::new(&self.context.tenant, &self.id)
    }

    /// The engine's view of it, without a time or a session (set them with
    /// struct update: a condition reading either is otherwise an evaluation
    /// error, which fails closed).
    pub fn as_request(&self) -> Request<'_> {
        Request {
            agent: &self.agent,
            tool: &self.tool,
            args: &self.args,
            context: &self.context,
            now: None,
            session: None,
        }
    }
}

/// What became of a call.
#[derive(Clone, Debug, PartialEq)]
pub enum CallOutcome {
    /// The tool ran.
    Executed {
        /// Its output.
        output: Json,
        /// The granting rule (`file:line:column`).
        rule: Option<String>,
    },
    /// Waiting for approval (approve it with its id and the call's tenant).
    Pending(Hold),
    /// Not let through.
    Denied(Denial),
}

/// Why the gateway could not decide, record or do what it was asked (a
/// deny is not an error: it is [`Verdict::Denied`]).
#[derive(Debug, Error)]
pub enum GatewayError {
    /// An approval, rejection, token or request for approval was refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Credentials could not be loaded.
    #[error("credentials: {0}")]
    Credentials(#[source] ToolError),
    /// The tool failed.
    #[error("tool failed: {0}")]
    Execution(#[source] ToolError),
    /// The policy could not be compiled: its first syntax, check or compile error.
    #[error("policy `{file}`: {source}")]
    Policy {
        /// The policy's file name.
        file: String,
        /// The first error.
        #[source]
        source: ToolError,
    },
    /// The digest key file could not be read or created.
    #[error("digest key `{}`: {source}", path.display())]
    Key {
        /// The key file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The digest key file does not hold a key.
    #[error("digest key `{}` is not 64 hex digits", path.display())]
    KeyNotHex {
        /// The key file.
        path: std::path::PathBuf,
    },
    /// The state rebuilt from the journal is not a gateway state.
    #[error("gateway state: not a snapshot: {0}")]
    State(#[source] serde_json::Error),
    /// The operating system's random source failed.
    #[error("no randomness: {0}")]
    Random(#[source] getrandom::Error),
    /// The journal could not record: nothing happens without a record.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A session change past the limits (an id, a turn); nothing was recorded.
    #[error(transparent)]
    Session(#[from] SessionInputError),
}

/// The longest call id, agent or tool name a call may bring (bytes).
pub const MAX_NAME_BYTES: usize = 256;

/// Limits on what one call may bring.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest arguments (their JSON, in bytes); larger calls are denied and
    /// journaled without their arguments. Default 64 KiB.
    pub max_args_bytes: u64,
    /// How long a service has to report an allowed call's result before it is
    /// journaled as `result_missing` (by `Gateway::expire_leases`). Default 5 minutes.
    pub lease_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_args_bytes: 64 * 1024,
            lease_ms: 5 * 60 * 1000,
        }
    }
}

/// What a gateway runs on.
pub struct Services {
    /// The audit journal (opened; its state already given to `store`).
    pub journal: Journal,
    /// The state.
    pub store: Arc<dyn Store>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The key of argument digests (stable across restarts).
    pub digest_key: DigestKey,
    /// Limits.
    pub limits: Limits,
    /// This replica's id, written into every record (`body.replica`) when
    /// several gateways share one state store; `None` for a lone gateway.
    pub replica: Option<String>,
}

/// The gateway. Share it behind an `Arc`.
pub struct Gateway {
    /// The live policy; `reload` swaps it whole.
    policy: std::sync::RwLock<Arc<CompiledPolicy>>,
    /// A candidate decided beside the live one; differences are journaled.
    shadow: std::sync::RwLock<Option<Arc<CompiledPolicy>>>,
    journal: Journal,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    digest: DigestKey,
    limits: Limits,
    replica: Option<String>,
    /// Held while a grant is changed in the store and journaled, so this
    /// replica's journal records its grants in the order they happened.
    commit: tokio::sync::Mutex<()>,
    /// Tokens of approvals completed in this process, for `wait_for_approval`,
    /// with their expiry.
    ready: std::sync::Mutex<HashMap<CallKey, (String, u64)>>,
    /// Ids this process reserved or leased while the store could not answer
    /// (`--redis-down reads-only` still runs plain reads): their results come
    /// back to this process, as before leases were shared.
    local_leases: std::sync::Mutex<HashMap<CallKey, crate::store::LeaseHolder>>,
    approved: tokio::sync::Notify,
    /// Allowed calls whose result is not reported yet, and new calls being
    /// decided: one per tenant and id.
    metrics: Metrics,
}

/// A decision after the kill switch, the credential scope and the budget. A
/// deny the gateway makes (kill switch, scope, store) is a `Decision::Deny`
/// citing the grant it overrode, if any.
struct Settled<'e> {
    decision: Decision<'e>,
    /// What decided, when the decision is a deny.
    by: DeniedBy,
    budget: Option<BudgetUnit>,
}

impl Gateway {
    /// A gateway for a compiled policy; records the policy load.
    pub async fn open(policy: CompiledPolicy, services: Services) -> Result<Self, GatewayError> {
        let g = Gateway {
            policy: std::sync::RwLock::new(Arc::new(policy)),
            shadow: std::sync::RwLock::new(None),
            journal: services.journal,
            store: services.store,
            clock: services.clock,
            digest: services.digest_key,
            limits: services.limits,
            replica: services.replica,
            commit: tokio::sync::Mutex::new(()),
            ready: std::sync::Mutex::new(HashMap::new()),
            local_leases: std::sync::Mutex::new(HashMap::new()),
            approved: tokio::sync::Notify::new(),
            metrics: Metrics::default(),
        };
        let current = g.policy();
        g.record_with(
            &current,
            &Record::PolicyLoad(policy_load(&current)),
            Durability::Durable,
        )
        .await?;
        Ok(g)
    }

    /// Replaces the live policy (hot reload); journaled as `policy_load`.
    /// Calls already being decided finish under the policy they started with.
    pub async fn reload(&self, policy: CompiledPolicy) -> Result<(), GatewayError> {
        let policy = Arc::new(policy);
        self.record_with(
            &policy,
            &Record::PolicyLoad(policy_load(&policy)),
            Durability::Durable,
        )
        .await?;
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
        Ok(())
    }

    /// Journals a policy that was refused (it did not check clean), with its
    /// diagnostics; the live policy keeps serving.
    pub async fn refuse_policy(
        &self,
        text: &str,
        diagnostics: Vec<String>,
    ) -> Result<(), GatewayError> {
        let refused = record::PolicyRefused {
            refused: sha256_hex(text.as_bytes()),
            diagnostics,
        };
        self.record(&Record::PolicyRefused(refused)).await
    }

    /// Sets (or clears) the shadow policy: every call is also decided with it,
    /// and each call where the two outcomes differ is journaled as
    /// `shadow_differs` and counted; the live policy alone enforces.
    pub fn set_shadow(&self, shadow: Option<CompiledPolicy>) {
        *self.shadow.write().unwrap_or_else(|p| p.into_inner()) = shadow.map(Arc::new);
    }

    /// The shadow policy, if any.
    pub fn shadow(&self) -> Option<Arc<CompiledPolicy>> {
        self.shadow
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counters since start.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Journals a front door's refusal of a caller.
    pub async fn access_denied(
        &self,
        caller: &str,
        action: &str,
        why: &str,
    ) -> Result<(), GatewayError> {
        let denied = record::AccessDenied {
            caller: caller.to_string(),
            action: action.to_string(),
            why: why.to_string(),
        };
        self.record(&Record::AccessDenied(denied)).await
    }

    /// Journals a front door's note about a tool it relays (no state changes).
    pub async fn tool_notice(&self, notice: record::ToolNotice) -> Result<(), GatewayError> {
        self.record(&Record::ToolNotice(notice)).await
    }

    /// Journals a record (with the policy's hash), as durable as
    /// [`Record::durability`] asks: sealed records are covered by a signed
    /// checkpoint before this returns.
    async fn record(&self, record: &Record) -> Result<(), GatewayError> {
        let policy = self.policy();
        let durability = match self.unread_session_state(&policy, record) {
            true => Durability::Written,
            false => record.durability(|tool| policy.is_write(tool)),
        };
        self.record_with(&policy, record, durability).await
    }

    /// Whether `record` changes only session state no rule of the live or the
    /// shadow policy reads: a count of `session.calls(T)` no rule asks, a
    /// taint no `session.tainted` reads. Such a record is written before the
    /// gateway acts (a crash of the process loses none) rather than sealed
    /// (an fdatasync and a signed checkpoint per call).
    fn unread_session_state(&self, live: &CompiledPolicy, record: &Record) -> bool {
        let shadow = self.shadow();
        let none_reads = |reads: &dyn Fn(&CompiledPolicy) -> bool| {
            std::iter::once(live)
                .chain(shadow.as_deref())
                .all(|p| !reads(p))
        };
        match record {
            Record::SessionCall(c) => none_reads(&|p| p.reads_calls(&c.tool)),
            Record::SessionObserved(o) if !o.capped => none_reads(&|p| p.reads_taint()),
            _ => false,
        }
    }

    /// Journals a call's decision: durable before the gateway acts on it when
    /// the policy that decided calls the tool a write (or it took a budget
    /// unit), written (and synced within `LAZY_SYNC`) for a read.
    async fn record_decision(
        &self,
        decided_by: &CompiledPolicy,
        decision: record::Decision,
    ) -> Result<(), GatewayError> {
        let record = Record::Decision(decision);
        let durability = record.durability(|tool| decided_by.is_write(tool));
        self.record_with(&self.policy(), &record, durability).await
    }

    async fn record_with(
        &self,
        policy: &CompiledPolicy,
        record: &Record,
        durability: Durability,
    ) -> Result<(), GatewayError> {
        let (kind, mut body) = record.to_kind_body();
        body["policy"] = json!(policy.hash);
        if let Some(replica) = &self.replica {
            body["replica"] = json!(replica);
        }
        let now = self.clock.now_ms();
        self.journal
            .append_with(&kind, now, body, durability)
            .await?;
        Ok(())
    }

    /// The time a policy's `now` reads for a decision made at this moment:
    /// the gateway's clock (`None` only for a clock beyond year 9999).
    pub fn now(&self) -> Option<toolgate_engine::Timestamp> {
        timestamp(self.clock.now_ms())
    }

    /// The live policy.
    pub fn policy(&self) -> Arc<CompiledPolicy> {
        // Replacing the Arc is one assignment: a poisoned lock holds a whole policy.
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The state store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The binding a call's approval and token are bound to (its
    /// `args_digest` is what an approver approves).
    pub fn binding(&self, call: &Call) -> crate::store::Binding {
        self.digest.binding(call)
    }

    /// Forgets state that can no longer matter (also done on its own every few thousand operations).
    pub async fn prune(&self) -> Result<(), GatewayError> {
        let now = self.clock.now_ms();
        self.lock_ready().retain(|_, (_, exp)| *exp > now);
        self.store.prune(now).await.map_err(Refusal::from)?;
        Ok(())
    }

    fn lock_ready(&self) -> std::sync::MutexGuard<'_, HashMap<CallKey, (String, u64)>> {
        // Each change to the map is one insert or remove: a poisoned lock holds a whole map.
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides and enforces one call and, when it is allowed, runs it with
    /// `executor`: `authorize`, execute, `complete`.
    pub async fn call(
        &self,
        call: &Call,
        executor: &dyn Executor,
    ) -> Result<CallOutcome, GatewayError> {
        match self.authorize(call).await? {
            Verdict::Pending(hold) => Ok(CallOutcome::Pending(hold)),
            Verdict::Denied(denial) => Ok(CallOutcome::Denied(denial)),
            Verdict::Allowed(lease) => {
                let output = self.run(call, &lease, executor).await?;
                Ok(CallOutcome::Executed {
                    output,
                    rule: lease.rule,
                })
            }
        }
    }

    /// Decides one call and enforces the decision without running it: a
    /// denial is [`Verdict::Denied`]; an allowed call comes back with a [`Lease`] (the
    /// caller may execute it once, with credentials for the lease's scope,
    /// and reports the result with `complete`); a call needing approval is
    /// held. The decision is journaled before this returns; a journal failure
    /// refuses the call. A call whose id is in use for its tenant (an open
    /// lease, a call being decided, a hold waiting or approved) is refused
    /// before it is decided: ids never collide.
    pub async fn authorize(&self, call: &Call) -> Result<Verdict, GatewayError> {
        self.reserve(call).await?;
        let authorized = self.decide_reserved(call).await;
        if !matches!(authorized, Ok(Verdict::Allowed(_))) {
            self.release(&call.key()).await;
        }
        authorized
    }

    async fn decide_reserved(&self, call: &Call) -> Result<Verdict, GatewayError> {
        let now = self.clock.now_ms();
        let policy = self.policy();
        let args_bytes = digest::json_len(&call.args);
        if let Some(reason) = self.oversized(call, args_bytes) {
            return self.deny_oversized(call, args_bytes, reason, now).await;
        }
        let lens = self.session_lens(call, &policy, now).await;
        let req = request(call, now, lens.as_ref().map(|l| l as &dyn SessionView));
        let settled = self.settle(&policy, call, &req, now).await?;
        self.compare_shadow(&policy, call, &req).await?;
        let rule = rule_text(&settled.decision);
        let binding = self.digest.binding(call);
        let decision = record::Decision {
            call: call.id.clone(),
            agent: call.agent.clone(),
            tool: call.tool.clone(),
            tenant: call.context.tenant.clone(),
            env: call.context.env.clone(),
            args_digest: binding.args_digest.clone(),
            args: policy.journal_args(&call.tool, &call.args),
            args_bytes,
            decision: settled.decision.outcome().as_str().to_string(),
            reason: settled.decision.reason().to_string(),
            rule: rule.clone(),
            accepted_risk: accepted_risk(&settled),
            budget: settled.budget.clone(),
            provenance: policy.provenance_notes(&req),
            at: now,
        };
        self.record_decision(&policy, decision).await?;
        self.metrics.count(settled.decision.outcome());
        match &settled.decision {
            Decision::Deny { reason, .. } => Ok(Verdict::Denied(Denial {
                reason: reason.to_string(),
                rule,
                by: settled.by,
            })),
            Decision::ApprovalRequired { approval, .. } => {
                let d = &settled.decision;
                self.hold(call, binding, d, approval, now, rule).await
            }
            Decision::Allow { .. } => {
                // Counting changes the session: the decision's view of it
                // ends first, or the memory store would copy the session.
                let req = request(call, now, None);
                drop(lens);
                self.count_call(call, now).await?;
                let lease = self.lease(call, &req, &settled.decision, rule, now);
                Ok(Verdict::Allowed(lease.await))
            }
        }
    }

    /// Why a call is too large to decide or journal whole, if it is: its
    /// arguments over `max_args_bytes`, or an id, agent or tool name over
    /// `MAX_NAME_BYTES`.
    fn oversized(&self, call: &Call, args_bytes: u64) -> Option<String> {
        if args_bytes > self.limits.max_args_bytes {
            return Some(format!(
                "the arguments are {args_bytes} bytes, over the limit of {} bytes",
                self.limits.max_args_bytes
            ));
        }
        [
            ("call id", &call.id),
            ("agent", &call.agent),
            ("tool", &call.tool),
        ]
        .into_iter()
        .find(|(_, v)| v.len() > MAX_NAME_BYTES)
        .map(|(what, v)| {
            format!(
                "the {what} is {} bytes, over the limit of {MAX_NAME_BYTES} bytes",
                v.len()
            )
        })
        .or_else(|| {
            let id = call.session.as_deref()?;
            check_session_id(id).err().map(|e| e.to_string())
        })
    }

    async fn deny_oversized(
        &self,
        call: &Call,
        args_bytes: u64,
        reason: String,
        now: u64,
    ) -> Result<Verdict, GatewayError> {
        let cut = |s: &str| s.chars().take(64).collect::<String>();
        let decision = record::Decision {
            call: cut(&call.id),
            agent: cut(&call.agent),
            tool: cut(&call.tool),
            tenant: cut(&call.context.tenant),
            env: cut(&call.context.env),
            args_digest: String::new(),
            args: Json::Null,
            args_bytes,
            decision: "deny".into(),
            reason: reason.clone(),
            rule: None,
            accepted_risk: None,
            budget: None,
            provenance: Vec::new(),
            at: now,
        };
        self.record(&Record::Decision(decision)).await?;
        self.metrics.count(Outcome::Deny);
        let by = DeniedBy::Limit;
        Ok(Verdict::Denied(Denial {
            reason,
            rule: None,
            by,
        }))
    }

    /// The engine's decision, then the kill switch and the credential scope
    /// (checked before any budget unit is taken, so a refused call spends
    /// nothing), then the budget: a budgeted allow takes one unit or falls
    /// back to the next grant.
    async fn settle<'e>(
        &self,
        policy: &'e CompiledPolicy,
        call: &Call,
        req: &Request<'_>,
        now: u64,
    ) -> Result<Settled<'e>, GatewayError> {
        let mut decision = policy.engine.decide(req);
        let write = policy.is_write(&call.tool);
        let settled = |decision: Decision<'e>, by| Settled {
            decision,
            by,
            budget: None,
        };
        // A deny the gateway makes cites the rule it overrode, if any.
        let denied = |rule: Option<&'e RuleInfo>, by, reason: String| Settled {
            decision: Decision::Deny {
                reason: reason.into(),
                rule,
            },
            by,
            budget: None,
        };
        if let Decision::Deny { .. } = decision {
            return Ok(settled(decision, DeniedBy::Policy));
        }
        if let Some(refusal) = self.stopped_by(call, write).await {
            // The kill switch (or a store that cannot say) decided, not the
            // grant it overrode: cite no rule.
            let by = match refusal {
                Refusal::KillSwitch => DeniedBy::KillSwitch,
                _ => DeniedBy::Store,
            };
            return Ok(denied(None, by, refusal.to_string()));
        }
        // What decides a deny reached from here: the policy, or an exhausted budget.
        let mut by = DeniedBy::Policy;
        loop {
            if let Some(why) = missing_scope(&decision, req) {
                return Ok(denied(decision.rule(), DeniedBy::Scope, why));
            }
            let Decision::Allow {
                rule,
                budget: Some(budgeted),
                ..
            } = &decision
            else {
                return Ok(settled(decision, by));
            };
            let key = budgeted.key(rule, req);
            // A budget shared by every tenant (`per agent`) is kept apart from any one tenant's.
            let tenant = key.tenant.clone().unwrap_or_default();
            let key = window_key(&key);
            let window_ms = budgeted.budget.window_secs.saturating_mul(1000);
            let taken = self
                .store
                .consume(&tenant, &key, budgeted.budget.limit, window_ms, now)
                .await;
            let taken = match taken {
                Ok(taken) => taken,
                Err(e) => {
                    let why = Refusal::from(e).to_string();
                    return Ok(denied(Some(*rule), DeniedBy::Store, why));
                }
            };
            if taken {
                let unit = Some(BudgetUnit { key, window_ms });
                return Ok(Settled {
                    budget: unit,
                    ..settled(decision, by)
                });
            }
            let exhausted = record::BudgetExhausted {
                call: call.id.clone(),
                tenant: call.context.tenant.clone(),
                key,
            };
            self.record(&Record::BudgetExhausted(exhausted)).await?;
            by = DeniedBy::Budget;
            decision = budgeted.fallback.as_ref().clone();
        }
    }

    /// Why a kill switch (or a store that cannot say) stops this call, if it does.
    async fn stopped_by(&self, call: &Call, write: bool) -> Option<Refusal> {
        let subject = Subject {
            tenant: &call.context.tenant,
            agent: &call.agent,
            write,
        };
        match self.store.killed(subject).await {
            Ok(false) => None,
            Ok(true) => Some(Refusal::KillSwitch),
            Err(e) => Some(Refusal::from(e)),
        }
    }

    /// Loads credentials for the lease's scope (from the trusted context
    /// only), runs the tool with `executor`, completes the lease.
    async fn run(
        &self,
        call: &Call,
        lease: &Lease,
        executor: &dyn Executor,
    ) -> Result<Json, GatewayError> {
        let result = match executor.credentials(&call.tool, &lease.scope) {
            Ok(creds) => executor
                .execute(&call.tool, &call.args, &creds)
                .await
                .map_err(GatewayError::Execution),
            Err(e) => Err(GatewayError::Credentials(e)),
        };
        let reported = result.as_ref().map(|_| ()).map_err(ToString::to_string);
        self.complete(&lease.key, reported, result.as_ref().ok())
            .await?;
        result
    }

    /// Whether the shadow policy decides this call otherwise; journals and
    /// counts each difference. The shadow decides statelessly (no budgets).
    async fn compare_shadow(
        &self,
        live: &CompiledPolicy,
        call: &Call,
        req: &Request<'_>,
    ) -> Result<(), GatewayError> {
        let Some(shadow) = self.shadow() else {
            return Ok(());
        };
        let theirs = shadow.engine.decide(req);
        let live_engine = live.engine.decide(req).outcome();
        if theirs.outcome() == live_engine {
            return Ok(());
        }
        self.metrics.shadow_differs.fetch_add(1, Ordering::Relaxed);
        let differs = record::ShadowDiffers {
            call: call.id.clone(),
            tenant: call.context.tenant.clone(),
            live: live_engine.as_str().to_string(),
            shadow: theirs.outcome().as_str().to_string(),
            shadow_rule: rule_text(&theirs),
            shadow_policy: shadow.hash.clone(),
        };
        self.record(&Record::ShadowDiffers(differs)).await
    }
}

/// A budget window's key: the rule's identity (hashed), agent, tool, tenant.
fn window_key(key: &toolgate_engine::BudgetKey) -> String {
    json!([
        sha256_hex(key.rule_identity.as_bytes()).get(..16),
        key.agent,
        key.tool,
        key.tenant
    ])
    .to_string()
}

fn policy_load(policy: &CompiledPolicy) -> record::PolicyLoad {
    record::PolicyLoad {
        name: policy.name.clone(),
    }
}

/// The engine's view of a call, decided at the gateway clock's `now_ms`
/// (what a policy's `now` reads; a clock beyond jiff's range gives no `now`,
/// so conditions reading it fail closed).
/// `session` is the call's session as the store holds it (`None` for a
/// call without one: provenance and session conditions are then
/// evaluation errors, which fail closed).
fn request<'a>(call: &'a Call, now_ms: u64, session: Option<&'a dyn SessionView>) -> Request<'a> {
    Request {
        now: timestamp(now_ms),
        session,
        ..call.as_request()
    }
}

fn timestamp(ms: u64) -> Option<toolgate_engine::Timestamp> {
    let ms = i64::try_from(ms).ok()?;
    toolgate_engine::Timestamp::from_millisecond(ms).ok()
}

/// The granting rule's `@accepted_risk`, for the decision record of a call
/// it grants (allowed, or held for approval).
fn accepted_risk(s: &Settled<'_>) -> Option<String> {
    let rule = match &s.decision {
        Decision::Deny { .. } => return None,
        Decision::Allow { rule, .. } | Decision::ApprovalRequired { rule, .. } => rule,
    };
    rule.accepted_risk.as_deref().map(String::from)
}

/// `NAME (file:line:col)` for a rule with an `@id`, else `file:line:col`.
fn rule_text(d: &Decision<'_>) -> Option<String> {
    d.rule().map(ToString::to_string)
}

/// Why a granted call cannot get credentials: a scope value the trusted
/// context does not give (an absent optional `ctx` field) must not widen them.
fn missing_scope(d: &Decision<'_>, req: &Request<'_>) -> Option<String> {
    let scope = d.scope_values(req);
    let (name, _) = scope.iter().find(|(_, v)| v.is_null())?;
    Some(format!(
        "the credential scope needs `{name}`, which the request context does not give"
    ))
}

/// Opens the gateway's journal and its state: `Journal::open` with the
/// gateway's [`StoreState`](crate::store::StoreState), the store restored from
/// it, and, when records after the last checkpoint were set aside, every one
/// of them that only restricts (`Record::restricts`: a budget unit, a token
/// used, a kill switch engaged, a rejection) journaled again as `restored`
/// and applied, so neither a crash before sealing nor a rolled-back
/// checkpoint file can re-open a token, release a kill switch or refill a
/// budget. Every front door opens its journal through this.
pub async fn open_journal(
    path: &std::path::Path,
    config: crate::journal::JournalConfig,
) -> Result<
    (
        Journal,
        Arc<crate::store::MemoryStore>,
        crate::journal::Opened,
    ),
    GatewayError,
> {
    let state = Box::new(crate::store::StoreState::default());
    let (journal, opened) = Journal::open(path, config, state)?;
    let store = crate::store::MemoryStore::restore(&opened.state).map_err(GatewayError::State)?;
    if let Some(aside) = &opened.set_aside {
        restore_restrictions(&journal, &store, &aside.backup).await?;
    }
    Ok((journal, Arc::new(store), opened))
}

async fn restore_restrictions(
    journal: &Journal,
    store: &crate::store::MemoryStore,
    backup: &std::path::Path,
) -> Result<(), GatewayError> {
    let io = |source| {
        GatewayError::Journal(JournalError::Io {
            path: backup.display().to_string(),
            source,
        })
    };
    let text = std::fs::read(backup).map_err(io)?;
    for line in text.split(|b| *b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let Ok(inner) = Record::from_line(line) else {
            continue;
        };
        if !inner.restricts() {
            continue;
        }
        let from_seq = serde_json::from_str::<Json>(line)
            .ok()
            .and_then(|v| v["seq"].as_u64())
            .unwrap_or(0);
        let ts = Record::time_of_line(line).unwrap_or(0);
        let restored = Record::Restored(record::Restored {
            from_seq,
            record: Box::new(inner),
        });
        let (kind, body) = restored.to_kind_body();
        store.observe_time(ts);
        store.apply(&restored);
        journal.append_sealed(&kind, ts, body).await?;
    }
    Ok(())
}
