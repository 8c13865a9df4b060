//! Human approval and the kill switch: holding a call (which reserves its id
//! for its tenant, bound to its arguments), approving with the digest the
//! approver reviewed, rejecting, running an approved call once with its
//! token, and engaging or releasing the kill switch. Each grant is journaled
//! and then applied to the store under `commit`, so the store and the journal
//! agree by construction.

use super::{
    digest, request, Authorized, CredentialProvider, Gateway, GatewayError, Lease, ToolExecutor,
};
use crate::journal::sha256_hex;
use crate::record::{self, Record};
use crate::refusal::Refusal;
use crate::store::{Approver, Binding, CallKey, KillScope, Pending, PendingState};
use serde_json::Value as Json;
use std::sync::atomic::Ordering;
use toolgate_engine::{Decision, Outcome};

/// Tokens of approvals with no expiry expire this long after they are issued.
const TOKEN_TTL_MS: u64 = 15 * 60 * 1000;

impl<C: CredentialProvider, X: ToolExecutor> Gateway<C, X> {
    /// Holds a call for approval. The id is reserved (for this tenant) and
    /// bound to these arguments in one critical section with its record; a
    /// call whose id is in use is refused and journaled with its own binding.
    pub(super) async fn hold(
        &self,
        call: &super::Call,
        binding: Binding,
        d: &Decision<'_>,
        now: u64,
        rule: Option<String>,
    ) -> Result<Authorized, GatewayError> {
        let (group, count, expires_at) = match d.approval.as_deref() {
            Some(toolgate_check::ir::Approval::Human {
                group,
                count,
                expires_secs,
            }) => (
                group.clone(),
                *count,
                expires_secs.map(|s| now.saturating_add(s.saturating_mul(1000))),
            ),
            // An approval-required decision always names its approval; fail closed.
            _ => (Some(String::new()), u32::MAX, Some(now)),
        };
        let key = call.key();
        let _commit = self.commit.lock().await;
        let in_use = match self.store.pending_state(&key, now) {
            Some(PendingState::Waiting) => Some("waiting for approval"),
            Some(PendingState::Approved) => Some("approved and its token not yet used"),
            Some(PendingState::Finished) | None => None,
        };
        // Checked again under the lock a kill switch takes: a call held after
        // the switch was engaged would escape its cancellation.
        let write = self.policy().is_write(&call.tool);
        let refusal = if self.store.killed(&call.context.tenant, &call.agent, write) {
            Some(Refusal::KillSwitch)
        } else {
            in_use.map(|state| Refusal::IdInUse {
                id: call.id.clone(),
                state,
            })
        };
        if let Some(refusal) = refusal {
            let refused = record::ApprovalRequestRefused {
                key,
                binding,
                why: refusal.to_string(),
                code: refusal.code(),
            };
            self.record(&Record::ApprovalRequestRefused(refused))
                .await?;
            return Err(refusal.into());
        }
        let args_digest = binding.args_digest.clone();
        let requested = Record::ApprovalRequested(record::ApprovalRequested {
            key,
            binding,
            group,
            count,
            expires_at,
            args: self.policy().journal_args(&call.tool, &call.args),
            rule: rule.clone(),
            reason: d.reason.to_string(),
            requested_at: now,
        });
        self.record(&requested).await?;
        self.store.apply(&requested);
        Ok(Authorized::Pending {
            id: call.id.clone(),
            rule,
            expires_at,
            args_digest,
        })
    }

    /// A pending call, as approvers review it.
    pub fn pending(&self, key: &CallKey) -> Option<Pending> {
        self.store.pending(key)
    }

    /// Every call waiting for approval now.
    pub fn waiting(&self) -> Vec<Pending> {
        self.store.waiting(self.clock.now_ms())
    }

    /// Records an approval of the pending call `key` by `who`, who reviewed
    /// the arguments whose keyed digest is `args_digest`. Returns the token
    /// once enough distinct approvers of the right group have approved. Every
    /// refusal is journaled too.
    pub async fn approve(
        &self,
        key: &CallKey,
        who: &Approver,
        args_digest: &str,
        reason: &str,
    ) -> Result<Option<String>, GatewayError> {
        let _commit = self.commit.lock().await;
        let now = self.clock.now_ms();
        let admitted = match self.store.pending(key) {
            None => Err(Refusal::NoSuchRequest),
            Some(p) if self.stopped(&p) => Err(Refusal::KillSwitch),
            Some(p) => p
                .admit_approval(who, args_digest, reason, now)
                .map(|completes| (p, completes)),
        };
        let (pending, completes) = match admitted {
            Ok(ok) => ok,
            Err(refusal) => {
                self.metrics.refusals.fetch_add(1, Ordering::Relaxed);
                let refused = refused(key, who, reason, &refusal);
                self.record(&Record::ApprovalRefused(refused)).await?;
                return Err(refusal.into());
            }
        };
        let granted = Record::ApprovalGranted(record::ApprovalGranted {
            key: key.clone(),
            approver: who.name.clone(),
            groups: who.groups.clone(),
            args_digest: args_digest.to_string(),
            reason: reason.to_string(),
        });
        self.record(&granted).await?;
        self.store.apply(&granted);
        self.metrics.approvals.fetch_add(1, Ordering::Relaxed);
        if !completes {
            return Ok(None);
        }
        self.issue_token(pending, now).await.map(Some)
    }

    async fn issue_token(&self, pending: Pending, now: u64) -> Result<String, GatewayError> {
        let token = digest::random_token()?;
        let expires_at = pending
            .expires_at
            .unwrap_or(now.saturating_add(TOKEN_TTL_MS));
        let issued = Record::TokenIssued(record::TokenIssued {
            key: pending.key.clone(),
            token_digest: sha256_hex(token.as_bytes()),
            expires_at,
            binding: pending.binding,
        });
        self.record(&issued).await?;
        self.store.apply(&issued);
        let mut ready = self.lock_ready();
        ready.retain(|_, (_, exp)| *exp > now);
        ready.insert(pending.key, (token.clone(), expires_at));
        drop(ready);
        self.approved.notify_waiters();
        Ok(token)
    }

    /// Waits until the pending call `key` is fully approved (in this process)
    /// and returns its token, or `None` when `timeout` passes first. The token
    /// stays claimable until it is used, so a second wait returns it again.
    pub async fn wait_for_approval(
        &self,
        key: &CallKey,
        timeout: std::time::Duration,
    ) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.approved.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some((token, _)) = self.lock_ready().get(key) {
                return Some(token.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Rejects a pending call: an approver of the rule's group and tenant,
    /// with a reason, before it is fully approved. Refusals are journaled.
    pub async fn reject(
        &self,
        key: &CallKey,
        who: &Approver,
        reason: &str,
    ) -> Result<(), GatewayError> {
        let _commit = self.commit.lock().await;
        let now = self.clock.now_ms();
        let admitted = match self.store.pending(key) {
            None => Err(Refusal::NoSuchRequest),
            Some(p) => p.admit_rejection(who, reason, now),
        };
        if let Err(refusal) = admitted {
            self.metrics.refusals.fetch_add(1, Ordering::Relaxed);
            let refused = refused(key, who, reason, &refusal);
            self.record(&Record::RejectionRefused(refused)).await?;
            return Err(refusal.into());
        }
        let rejected = Record::ApprovalRejected(record::ApprovalRejected {
            key: key.clone(),
            approver: who.name.clone(),
            reason: reason.to_string(),
        });
        // A rejection only restricts: it takes effect first, so a journal
        // failure cannot leave a journaled rejection that did not happen.
        self.store.apply(&rejected);
        self.record(&rejected).await
    }

    /// Runs an approved call with its token (`authorize_approved`, the
    /// gateway's executor, `complete`).
    pub async fn execute_approved(
        &self,
        call: &super::Call,
        token: &str,
    ) -> Result<Json, GatewayError> {
        let lease = self.authorize_approved(call, token).await?;
        self.run(call, &lease).await
    }

    /// The go-ahead for an approved call: the token must match this exact
    /// call, be unused, unexpired and unrevoked, no kill switch may stop it,
    /// and the live policy must not deny it now. Returns a lease: the caller
    /// executes the call once and reports with `complete`.
    pub async fn authorize_approved(
        &self,
        call: &super::Call,
        token: &str,
    ) -> Result<Lease, GatewayError> {
        let key = call.key();
        let binding = self.digest.binding(call);
        let policy = self.policy();
        let write = policy.is_write(&call.tool);
        let now = self.clock.now_ms();
        let token_digest = sha256_hex(token.as_bytes());
        let used = if self.store.killed(&call.context.tenant, &call.agent, write) {
            Err(Refusal::KillSwitch)
        } else {
            self.store.use_token(&token_digest, &binding, now)
        };
        if let Err(refusal) = used {
            self.metrics.refusals.fetch_add(1, Ordering::Relaxed);
            let refused = record::TokenRefused {
                key,
                why: refusal.to_string(),
                code: refusal.code(),
            };
            self.record(&Record::TokenRefused(refused)).await?;
            return Err(refusal.into());
        }
        let spent = record::TokenUsed {
            key: key.clone(),
            token_digest,
        };
        self.record(&Record::TokenUsed(spent)).await?;
        self.lock_ready().remove(&key);
        let req = request(call);
        let decision = policy.engine.decide(&req);
        let refused = match decision.outcome {
            Outcome::Deny => Some(decision.reason.to_string()),
            _ => super::missing_scope(&decision, &req),
        };
        if let Some(reason) = refused {
            let execution = record::Execution {
                call: call.id.clone(),
                tenant: call.context.tenant.clone(),
                ok: false,
                error: Some(reason.clone()),
            };
            self.record(&Record::Execution(execution)).await?;
            return Err(GatewayError::Denied { reason, rule: None });
        }
        let rule = super::rule_text(&decision);
        Ok(self.lease(call, &req, &decision, rule, now))
    }

    /// Engages or releases a kill switch. Engaging one cancels the pending
    /// approvals and revokes the outstanding tokens of its scope (the same
    /// record does both, live and on restart). Releasing removes exactly the
    /// scope that was engaged.
    pub async fn kill_switch(
        &self,
        scope: KillScope,
        engaged: bool,
        by: &str,
        reason: &str,
    ) -> Result<(), GatewayError> {
        let _commit = self.commit.lock().await;
        let kill = Record::KillSwitch(record::KillSwitch {
            scope,
            engaged,
            by: by.to_string(),
            reason: reason.to_string(),
        });
        if engaged {
            // Engaging only restricts: it takes effect before it is journaled
            // (and stays in effect if journaling fails).
            self.store.apply(&kill);
            self.record(&kill).await?;
        } else {
            self.record(&kill).await?;
            self.store.apply(&kill);
        }
        let now = self.clock.now_ms();
        let store = &self.store;
        self.lock_ready()
            .retain(|k, _| store.pending_state(k, now) == Some(PendingState::Approved));
        Ok(())
    }

    /// The engaged kill switch scopes.
    pub fn kill_scopes(&self) -> Vec<KillScope> {
        self.store.kill_scopes()
    }
}

impl<C: CredentialProvider, X: ToolExecutor> Gateway<C, X> {
    /// Whether a kill switch now covers this pending call.
    fn stopped(&self, p: &Pending) -> bool {
        let write = self.policy().is_write(&p.binding.tool);
        self.store
            .killed(&p.binding.tenant, &p.binding.agent, write)
    }
}

fn refused(key: &CallKey, who: &Approver, reason: &str, refusal: &Refusal) -> record::Refused {
    record::Refused {
        key: key.clone(),
        approver: who.name.clone(),
        reason: reason.to_string(),
        why: refusal.to_string(),
        code: refusal.code(),
    }
}
