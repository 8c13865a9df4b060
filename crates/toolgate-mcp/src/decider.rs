//! Who decides: the relay's one small client trait over the gateway, so a
//! proxy can run the gateway in-process ([`Local`], the default) or use a
//! shared `policyc serve` ([`crate::remote::Remote`], `--gateway URL`) for
//! decisions, approvals, kill switch and journal. Either way the relay makes
//! the same calls: `authorize`, `complete`, `held`, `execute`.

use serde_json::Value as Json;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use toolgate_runtime::gateway::{Call, CallState, Denial, DeniedBy, GatewayError, Verdict};
use toolgate_runtime::record::ToolNotice;
use toolgate_runtime::store::{Approver, CallKey, TenantScope};

/// A boxed future (the trait is used as `dyn`).
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a call did not go through, worded for the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The reason.
    pub reason: String,
    /// The deciding rule (`file:line:column`), if a rule decided.
    pub rule: Option<String>,
    /// A decision (the policy, a limit or the kill switch), not a failure to decide.
    pub denial: bool,
}

/// What the gateway made of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// Execute it once, then `complete` with this key.
    Allowed(CallKey),
    /// Held for approval.
    Pending {
        /// The call (approval) id.
        id: String,
        /// The rule requiring the approval.
        rule: Option<String>,
        /// The keyed digest approvers approve.
        args_digest: String,
    },
    /// Not let through.
    Refused(Refused),
}

/// Where a held call stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// Still waiting.
    Pending,
    /// Approved: this token runs it once.
    Approved(String),
    /// Anything else (`rejected`, `expired`, `cancelled`, `executed`, `unknown`).
    Finished(String),
}

/// The gateway, as the relay uses it.
pub trait Decider: Send + Sync {
    /// Decides a call (journaled by the gateway).
    fn authorize<'a>(&'a self, call: &'a Call) -> Fut<'a, Decided>;
    /// Reports an allowed call's outcome with what the agent read of it
    /// (`output`, observed in the call's session; `None`: nothing the
    /// gateway can index, so the session is tainted unless the tool's whole
    /// output is labelled trusted). Whether the result and its output were
    /// recorded: when not, the relay decides no later call of the session
    /// (the agent read an output its session never saw: fail closed).
    fn complete<'a>(
        &'a self,
        key: &'a CallKey,
        outcome: Result<(), String>,
        output: Option<&'a Json>,
    ) -> Fut<'a, bool>;
    /// Where a held call stands; with `wait`, waits up to that long for its approval.
    fn held<'a>(&'a self, key: &'a CallKey, wait: Option<Duration>) -> Fut<'a, Held>;
    /// The go-ahead for an approved call with its token.
    fn execute<'a>(&'a self, call: &'a Call, token: &'a str) -> Fut<'a, Decided>;
    /// Records a note about an upstream tool.
    fn notice(&self, notice: ToolNotice) -> Fut<'_, ()>;
    /// Records a refused downstream caller.
    fn access_denied<'a>(&'a self, caller: &'a str, why: &'a str) -> Fut<'a, ()>;
    /// Whether the held call's approvers are the client's own user
    /// (`require approval from "user"`), who may approve it through MCP elicitation.
    fn user_approves<'a>(&'a self, key: &'a CallKey) -> Fut<'a, bool>;
    /// Records the client's user's approval of the held call, bound to the
    /// arguments' digest; the token once the call is fully approved.
    fn approve_as_user<'a>(
        &'a self,
        key: &'a CallKey,
        args_digest: &'a str,
    ) -> Fut<'a, Option<String>>;
}

/// The approvers' group whose approval the client's user may give through MCP elicitation.
pub const USER_GROUP: &str = "user";

/// How often a wait for an approval looks for a rejection or an expiry.
const SLICE: Duration = Duration::from_millis(250);

/// The gateway in this process.
pub struct Local(pub Arc<toolgate_runtime::gateway::Gateway>);

/// A verdict as the relay takes it.
fn decided(verdict: Verdict) -> Decided {
    match verdict {
        Verdict::Allowed(lease) => Decided::Allowed(lease.key),
        Verdict::Pending(hold) => Decided::Pending {
            id: hold.id,
            rule: hold.rule,
            args_digest: hold.args_digest,
        },
        Verdict::Denied(denial) => Decided::Refused(denied(denial)),
    }
}

/// A denial; one by a store that did not answer is a failure to decide, not the policy's.
fn denied(d: Denial) -> Refused {
    Refused {
        denial: d.by != DeniedBy::Store,
        reason: d.reason,
        rule: d.rule,
    }
}

/// What the gateway could not do, or refused (a token, an id in use).
fn refused(e: GatewayError) -> Decided {
    Decided::Refused(match e {
        GatewayError::Refused(r) => Refused {
            reason: r.to_string(),
            rule: None,
            denial: true,
        },
        other => Refused {
            reason: other.to_string(),
            rule: None,
            denial: false,
        },
    })
}

impl Decider for Local {
    fn authorize<'a>(&'a self, call: &'a Call) -> Fut<'a, Decided> {
        Box::pin(async move {
            match self.0.authorize(call).await {
                Ok(verdict) => decided(verdict),
                Err(e) => refused(e),
            }
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a CallKey,
        outcome: Result<(), String>,
        output: Option<&'a Json>,
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            match self.0.complete(key, outcome, output).await {
                Ok(_) => true,
                Err(e) => {
                    eprintln!("toolgate: cannot journal the result of `{}`: {e}", key.id);
                    false
                }
            }
        })
    }

    fn held<'a>(&'a self, key: &'a CallKey, wait: Option<Duration>) -> Fut<'a, Held> {
        Box::pin(async move {
            // In slices, so that a rejection or an expiry ends the wait early.
            let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if let Some(token) = self.0.wait_for_approval(key, left.min(SLICE)).await {
                    return Held::Approved(token);
                }
                let held = match self.0.call_state(key).await {
                    Ok(Some(CallState::Pending)) => Held::Pending,
                    Ok(Some(CallState::Approved { token: Some(t) })) => Held::Approved(t),
                    Ok(Some(other)) => Held::Finished(other.as_str().to_string()),
                    Ok(None) => Held::Finished("unknown".into()),
                    // The store did not answer: not approved (fail closed).
                    Err(e) => Held::Finished(format!("unknown ({e})")),
                };
                if held != Held::Pending || tokio::time::Instant::now() >= deadline {
                    return held;
                }
            }
        })
    }

    fn execute<'a>(&'a self, call: &'a Call, token: &'a str) -> Fut<'a, Decided> {
        Box::pin(async move {
            match self.0.authorize_approved(call, token).await {
                Ok(verdict) => decided(verdict),
                Err(e) => refused(e),
            }
        })
    }

    fn notice(&self, notice: ToolNotice) -> Fut<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.0.tool_notice(notice).await {
                eprintln!("toolgate: cannot journal a tool notice: {e}");
            }
        })
    }

    fn access_denied<'a>(&'a self, caller: &'a str, why: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.0.access_denied(caller, "mcp", why).await {
                eprintln!("toolgate: cannot journal a refused caller: {e}");
            }
        })
    }

    fn user_approves<'a>(&'a self, key: &'a CallKey) -> Fut<'a, bool> {
        Box::pin(async move {
            let group = self
                .0
                .pending(key)
                .await
                .ok()
                .flatten()
                .and_then(|p| p.group);
            group.as_deref() == Some(USER_GROUP)
        })
    }

    fn approve_as_user<'a>(
        &'a self,
        key: &'a CallKey,
        args_digest: &'a str,
    ) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let who = Approver {
                name: format!("mcp-user@{}", key.tenant),
                groups: vec![USER_GROUP.to_string()],
                tenants: TenantScope::Only(vec![key.tenant.clone()]),
            };
            let reason = "approved by the user through MCP elicitation";
            match self.0.approve(key, &who, args_digest, reason).await {
                Ok(token) => token,
                Err(e) => {
                    eprintln!(
                        "toolgate: the user's approval of `{}` was refused: {e}",
                        key.id
                    );
                    None
                }
            }
        })
    }
}
