//! The gateway: decides every proposed call with the engine and enforces the
//! decision: deny, run within a budget, or hold for human approval, with every
//! step written to the audit journal before its outcome is returned.

use crate::journal::{sha256_hex, Journal, JournalError};
use crate::store::{Binding, Pending, Store};
use serde_json::{json, Value as Json};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;
use toolgate_engine::{Context, Decision, Engine, Outcome, Request};

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

/// Loads credentials for one tool, scoped by values from the trusted context only.
pub trait CredentialProvider: Send + Sync {
    /// The credentials for `tool` within `scope` (e.g. `[("tenant", "acme"), ("env", "prod")]`).
    fn load(&self, tool: &str, scope: &[(String, Json)]) -> Result<Json, String>;
}

/// Calls a tool.
pub trait ToolExecutor: Send + Sync {
    /// Runs `tool` with `args` and `credentials`.
    fn execute(
        &self,
        tool: &str,
        args: &Json,
        credentials: &Json,
    ) -> impl std::future::Future<Output = Result<Json, String>> + Send;
}

/// A proposed call: what the agent asked for, and the trusted context.
#[derive(Clone, Debug)]
pub struct Call {
    /// The request id (also the approval id).
    pub id: String,
    /// The agent.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// The arguments (model output).
    pub args: Json,
    /// The trusted context.
    pub context: Context,
}

/// Someone who may approve.
#[derive(Clone, Debug)]
pub struct Approver {
    /// Their identity.
    pub name: String,
    /// Their groups.
    pub groups: Vec<String>,
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
    /// Waiting for approval.
    Pending {
        /// Approve it with this id (the call's id).
        id: String,
        /// The rule that requires the approval (`file:line:column`).
        rule: Option<String>,
        /// When the request for approval expires (ms since the epoch), if it does.
        expires_at: Option<u64>,
    },
}

/// Why the gateway refused.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// The policy denies the call.
    #[error("denied: {reason}")]
    Denied {
        /// Why.
        reason: String,
        /// The deciding rule (`file:line:column`), if a rule decided.
        rule: Option<String>,
    },
    /// An approval was refused.
    #[error("approval refused: {0}")]
    Approval(String),
    /// A token was refused.
    #[error("token refused: {0}")]
    Token(String),
    /// Credentials could not be loaded.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The tool failed.
    #[error("tool failed: {0}")]
    Execution(String),
    /// The journal could not record: nothing happens without a record.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Canonical JSON: object keys sorted, no whitespace (the args digest's input).
pub fn canonical(v: &Json) -> String {
    match v {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Json::String((*k).clone()), canonical(&map[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// The binding of an approval or token to a call.
pub fn binding(call: &Call) -> Binding {
    Binding {
        agent: call.agent.clone(),
        tool: call.tool.clone(),
        args_digest: sha256_hex(canonical(&call.args).as_bytes()),
        tenant: call.context.tenant.clone(),
        env: call.context.env.clone(),
        context_digest: sha256_hex(
            canonical(&Json::Object(call.context.fields.clone())).as_bytes(),
        ),
    }
}

/// The gateway. Share it behind an `Arc`.
pub struct Gateway<C, X> {
    engine: Arc<Engine>,
    policy_hash: String,
    write_tools: Vec<String>,
    /// Per tool, the argument paths the policy marks `redact`.
    redactions: std::collections::HashMap<String, Vec<Vec<String>>>,
    journal: Journal,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    credentials: C,
    executor: X,
    secret: (u64, u64),
    /// Tokens of approvals completed in this process, for `wait_for_approval`.
    ready: std::sync::Mutex<std::collections::HashMap<String, String>>,
    approved: tokio::sync::Notify,
}

impl<C: CredentialProvider, X: ToolExecutor> Gateway<C, X> {
    /// A gateway for a compiled policy; records the policy load.
    #[expect(
        clippy::too_many_arguments,
        reason = "each part is a separate dependency a service supplies"
    )]
    pub async fn new(
        engine: Arc<Engine>,
        policy: &toolgate_check::ir::Policy,
        policy_text: &str,
        journal: Journal,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        credentials: C,
        executor: X,
    ) -> Result<Self, GatewayError> {
        let policy_hash = sha256_hex(policy_text.as_bytes());
        let write_tools = policy
            .tools
            .iter()
            .filter(|t| t.class == toolgate_check::ir::ToolClass::Write)
            .map(|t| t.name.clone())
            .collect();
        let redactions = policy
            .tools
            .iter()
            .filter_map(|t| {
                let mut paths = Vec::new();
                redacted_paths(
                    t.schema.as_deref().unwrap_or(&[]),
                    &mut Vec::new(),
                    &mut paths,
                );
                (!paths.is_empty()).then(|| (t.name.clone(), paths))
            })
            .collect();
        let secret = (
            RandomState::new().build_hasher().finish(),
            RandomState::new().build_hasher().finish(),
        );
        let g = Gateway {
            engine,
            policy_hash,
            write_tools,
            redactions,
            journal,
            store,
            clock,
            credentials,
            executor,
            secret,
            ready: std::sync::Mutex::new(std::collections::HashMap::new()),
            approved: tokio::sync::Notify::new(),
        };
        g.record(
            "policy_load",
            json!({ "policy": g.policy_hash, "name": policy.name }),
        )
        .await?;
        Ok(g)
    }

    async fn record(&self, kind: &str, mut body: Json) -> Result<(), GatewayError> {
        body["policy"] = json!(self.policy_hash);
        self.journal.append(kind, self.clock.now_ms(), body).await?;
        Ok(())
    }

    /// The arguments as the journal records them: fields marked `redact` replaced.
    fn journal_args(&self, call: &Call) -> Json {
        let mut args = call.args.clone();
        for path in self.redactions.get(&call.tool).into_iter().flatten() {
            let mut at = &mut args;
            for (i, key) in path.iter().enumerate() {
                let Some(next) = at.as_object_mut().and_then(|m| m.get_mut(key)) else {
                    break;
                };
                if i + 1 == path.len() {
                    *next = json!("[redacted]");
                    break;
                }
                at = next;
            }
        }
        args
    }

    fn is_write(&self, tool: &str) -> bool {
        self.write_tools.iter().any(|t| t == tool)
    }

    /// Decides and enforces one call. The decision is journaled before
    /// anything else happens; a journal failure refuses the call.
    pub async fn call(&self, call: &Call) -> Result<CallOutcome, GatewayError> {
        let req = Request {
            agent: &call.agent,
            tool: &call.tool,
            args: &call.args,
            context: &call.context,
        };
        let now = self.clock.now_ms();
        let mut decision = self.engine.decide(&req);
        let mut budget_key = None;
        // A budgeted allow takes one unit, or falls back to the next grant.
        while decision.outcome == Outcome::Allow && decision.budget.is_some() {
            let (Some(budget), Some(key)) = (decision.budget, decision.budget_key(&req)) else {
                break;
            };
            let key = json!([key.rule.0, key.agent, key.tool, key.tenant]).to_string();
            if self.store.consume(
                &key,
                budget.limit,
                budget.window_secs.saturating_mul(1000),
                now,
            ) {
                budget_key = Some(key);
                break;
            }
            self.record("budget_exhausted", json!({ "call": call.id, "key": key }))
                .await?;
            decision = match decision.fallback.take() {
                Some(next) => *next,
                None => break,
            };
        }
        // A budgeted allow whose unit was not taken never runs (no key, no fallback: a bug, denied).
        let uncharged =
            decision.outcome == Outcome::Allow && decision.budget.is_some() && budget_key.is_none();
        let killed = uncharged
            || (decision.outcome != Outcome::Deny
                && self.is_write(&call.tool)
                && self.store.killed(&call.context.tenant));
        let b = binding(call);
        let rule = decision
            .rule
            .map(|r| format!("{}:{}:{}", r.file, r.line, r.column));
        let outcome = if killed {
            "deny"
        } else {
            decision.outcome.as_str()
        };
        let reason = if uncharged {
            "internal error: the budget could not be charged"
        } else if killed {
            "the kill switch is engaged: writes are stopped"
        } else {
            &decision.reason
        };
        self.record(
            "decision",
            json!({
                "call": call.id, "agent": call.agent, "tool": call.tool, "tenant": b.tenant, "env": b.env,
                "args_digest": b.args_digest, "args": self.journal_args(call), "decision": outcome, "reason": reason,
                "rule": rule, "budget_key": budget_key, "at": now,
            }),
        )
        .await?;
        if killed || decision.outcome == Outcome::Deny {
            return Err(GatewayError::Denied {
                reason: reason.to_string(),
                rule,
            });
        }
        if decision.outcome == Outcome::ApprovalRequired {
            return self.hold(call, b, &decision, now, rule).await;
        }
        let output = self.execute(call, &req, &decision).await?;
        Ok(CallOutcome::Executed { output, rule })
    }

    async fn hold(
        &self,
        call: &Call,
        b: Binding,
        d: &Decision<'_>,
        now: u64,
        rule: Option<String>,
    ) -> Result<CallOutcome, GatewayError> {
        let (group, count, expires) = match d.approval {
            Some(toolgate_check::ir::Approval::Human {
                group,
                count,
                expires_secs,
            }) => (
                group.clone(),
                *count,
                expires_secs.map(|s| now.saturating_add(s.saturating_mul(1000))),
            ),
            _ => (None, 1, None),
        };
        let pending = Pending {
            id: call.id.clone(),
            binding: b,
            group,
            count,
            expires_at: expires,
            approvals: Vec::new(),
            rejected: None,
        };
        self.record(
            "approval_requested",
            json!({
                "call": call.id, "group": pending.group, "count": count, "expires_at": expires,
                "binding": pending.binding.to_json(),
            }),
        )
        .await?;
        if !self.store.put_pending(pending) {
            // Never replace a request under review: the approvers reviewed those arguments.
            let why = "a call with this id is already waiting for approval";
            self.record(
                "approval_request_refused",
                json!({ "call": call.id, "why": why }),
            )
            .await?;
            return Err(GatewayError::Denied {
                reason: why.into(),
                rule,
            });
        }
        Ok(CallOutcome::Pending {
            id: call.id.clone(),
            rule,
            expires_at: expires,
        })
    }

    async fn execute(
        &self,
        call: &Call,
        req: &Request<'_>,
        d: &Decision<'_>,
    ) -> Result<Json, GatewayError> {
        // Scope values come from the trusted context only (`Decision::scope_values`).
        let scope = d.scope_values(req);
        if let Some((name, _)) = scope.iter().find(|(_, v)| v.is_null()) {
            // An absent optional context field must not widen the credentials.
            let why = format!(
                "the credential scope needs `{name}`, which the request context does not give"
            );
            self.record(
                "execution",
                json!({ "call": call.id, "ok": false, "error": why }),
            )
            .await?;
            return Err(GatewayError::Credentials(why));
        }
        let creds = self
            .credentials
            .load(&call.tool, &scope)
            .map_err(GatewayError::Credentials)?;
        let result = self.executor.execute(&call.tool, &call.args, &creds).await;
        let body = match &result {
            Ok(_) => json!({ "call": call.id, "ok": true }),
            Err(e) => json!({ "call": call.id, "ok": false, "error": e }),
        };
        self.record("execution", body).await?;
        result.map_err(GatewayError::Execution)
    }

    /// Records an approval. Returns the token once enough distinct approvers
    /// of the right group have approved. Every refusal is journaled too.
    pub async fn approve(
        &self,
        id: &str,
        who: &Approver,
        reason: &str,
    ) -> Result<Option<String>, GatewayError> {
        let now = self.clock.now_ms();
        let mut refusal: Option<&'static str> = None;
        let mut granted = false;
        let updated = self.store.with_pending(id, &mut |p| {
            refusal = if reason.trim().is_empty() {
                Some("a reason is required")
            } else if p.rejected.is_some() {
                Some("the request was rejected")
            } else if p.expires_at.is_some_and(|e| now >= e) {
                Some("the request for approval has expired")
            } else if who.name == p.binding.agent {
                Some("the agent cannot approve its own request")
            } else if p.group.as_ref().is_some_and(|g| !who.groups.contains(g)) {
                Some("the approver is not in the required group")
            } else if p.approvals.iter().any(|(n, _)| *n == who.name) {
                Some("the same approver cannot approve twice")
            } else if p.approvals.len() as u32 >= p.count {
                Some("the request is already approved")
            } else {
                None
            };
            if refusal.is_none() {
                p.approvals.push((who.name.clone(), reason.to_string()));
                granted = p.approvals.len() as u32 == p.count;
            }
        });
        let Some(pending) = updated else {
            self.record(
                "approval_refused",
                json!({ "call": id, "approver": who.name, "why": "no such request" }),
            )
            .await?;
            return Err(GatewayError::Approval("no such request".into()));
        };
        if let Some(why) = refusal {
            self.record(
                "approval_refused",
                json!({ "call": id, "approver": who.name, "reason": reason, "why": why }),
            )
            .await?;
            return Err(GatewayError::Approval(why.into()));
        }
        self.record(
            "approval_granted",
            json!({ "call": id, "approver": who.name, "groups": who.groups, "reason": reason }),
        )
        .await?;
        if !granted {
            return Ok(None);
        }
        let token = self.token(id, now);
        let expires_at = pending
            .expires_at
            .unwrap_or(now.saturating_add(15 * 60 * 1000));
        let body = json!({
            "call": id, "token_digest": sha256_hex(token.as_bytes()), "expires_at": expires_at,
            "binding": pending.binding.to_json(),
        });
        self.record("token_issued", body).await?;
        self.store
            .issue_token(&sha256_hex(token.as_bytes()), pending.binding, expires_at);
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), token.clone());
        self.approved.notify_waiters();
        Ok(Some(token))
    }

    /// Waits until the pending call `id` is fully approved (in this process)
    /// and returns its token, or `None` when `timeout` passes first. The token
    /// is handed out once; a second wait for the same call times out.
    pub async fn wait_for_approval(
        &self,
        id: &str,
        timeout: std::time::Duration,
    ) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.approved.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(token) = self
                .ready
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id)
            {
                return Some(token);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Rejects a pending request: an approver of the rule's group, with a
    /// reason, before the request is fully approved. Refusals are journaled.
    pub async fn reject(&self, id: &str, who: &Approver, reason: &str) -> Result<(), GatewayError> {
        let mut refusal: Option<&'static str> = None;
        let found = self.store.with_pending(id, &mut |p| {
            refusal = if reason.trim().is_empty() {
                Some("a reason is required")
            } else if p.group.as_ref().is_some_and(|g| !who.groups.contains(g)) {
                Some("the approver is not in the required group")
            } else if p.rejected.is_some() {
                Some("the request was already rejected")
            } else if p.approvals.len() as u32 >= p.count {
                Some("the request is already approved")
            } else {
                None
            };
            if refusal.is_none() {
                p.rejected = Some((who.name.clone(), reason.to_string()));
            }
        });
        let why = match (found, refusal) {
            (None, _) => Some("no such request"),
            (Some(_), r) => r,
        };
        if let Some(why) = why {
            self.record(
                "rejection_refused",
                json!({ "call": id, "approver": who.name, "why": why }),
            )
            .await?;
            return Err(GatewayError::Approval(why.into()));
        }
        self.record(
            "approval_rejected",
            json!({ "call": id, "approver": who.name, "reason": reason }),
        )
        .await
    }

    /// Runs an approved call with its token: the token must match this exact
    /// call, be unused and unexpired, and writes must not be stopped.
    pub async fn execute_approved(&self, call: &Call, token: &str) -> Result<Json, GatewayError> {
        let b = binding(call);
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&call.id);
        if self.is_write(&call.tool) && self.store.killed(&call.context.tenant) {
            let why = "the kill switch is engaged: writes are stopped";
            self.record("token_refused", json!({ "call": call.id, "why": why }))
                .await?;
            return Err(GatewayError::Token(why.into()));
        }
        if let Err(why) =
            self.store
                .use_token(&sha256_hex(token.as_bytes()), &b, self.clock.now_ms())
        {
            self.record("token_refused", json!({ "call": call.id, "why": why }))
                .await?;
            return Err(GatewayError::Token(why.into()));
        }
        self.record(
            "token_used",
            json!({ "call": call.id, "token_digest": sha256_hex(token.as_bytes()) }),
        )
        .await?;
        let req = Request {
            agent: &call.agent,
            tool: &call.tool,
            args: &call.args,
            context: &call.context,
        };
        let decision = self.engine.decide(&req);
        if decision.outcome == Outcome::Deny {
            let reason = decision.reason.to_string();
            self.record(
                "execution",
                json!({ "call": call.id, "ok": false, "error": reason }),
            )
            .await?;
            return Err(GatewayError::Denied { reason, rule: None });
        }
        self.execute(call, &req, &decision).await
    }

    /// Engages or releases the kill switch, globally or for one tenant.
    pub async fn kill_switch(
        &self,
        tenant: Option<&str>,
        engaged: bool,
        by: &str,
        reason: &str,
    ) -> Result<(), GatewayError> {
        self.record(
            "kill_switch",
            json!({ "tenant": tenant, "engaged": engaged, "by": by, "reason": reason }),
        )
        .await?;
        self.store.set_kill_switch(tenant, engaged);
        Ok(())
    }

    fn token(&self, id: &str, now: u64) -> String {
        sha256_hex(format!("{}:{}:{id}:{now}", self.secret.0, self.secret.1).as_bytes())
    }
}

/// Collects the paths of fields marked `redact` (records are walked; a marked
/// field is redacted whole, whatever its type).
fn redacted_paths(
    fields: &[toolgate_check::ir::Field],
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    for f in fields {
        prefix.push(f.name.clone());
        if f.redact {
            out.push(prefix.clone());
        } else if let toolgate_check::ir::Type::Record(inner) = &f.ty {
            redacted_paths(inner, prefix, out);
        }
        prefix.pop();
    }
}
