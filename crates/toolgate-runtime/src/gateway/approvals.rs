//! Human approval and the kill switch: holding a call (which reserves its id
//! for its tenant, bound to its arguments), approving with the digest the
//! approver reviewed, rejecting, running an approved call once with its
//! token, and engaging or releasing the kill switch. Each is one conditional
//! operation of the store (atomic there, across replicas too), whose outcome
//! the gateway then journals under `commit`, so this replica's journal records
//! what it did, in the order it did it.

use super::{digest, request, CallOutcome, Denial, DeniedBy, Gateway, GatewayError, Hold, Verdict};
use crate::journal::sha256_hex;
use crate::record::{self, Record};
use crate::refusal::Refusal;
use crate::store::{Approver, Binding, CallKey, KillScope, Pending, PendingState, Subject};
use std::sync::atomic::Ordering;
use toolgate_check::ir::HumanApproval;
use toolgate_engine::provenance::SessionView;
use toolgate_engine::Decision;

impl Gateway {
    /// Holds a call for approval. The id is reserved (for this tenant) and
    /// bound to these arguments in one critical section with its record; a
    /// call whose id is in use is refused and journaled with its own binding.
    pub(super) async fn hold(
        &self,
        call: &super::Call,
        binding: Binding,
        d: &Decision<'_>,
        approval: &HumanApproval,
        now: u64,
        rule: Option<String>,
    ) -> Result<Verdict, GatewayError> {
        let expires_at = approval
            .expires_secs
            .map(|s| now.saturating_add(s.saturating_mul(1000)));
        let key = call.key();
        let args_digest = binding.args_digest.clone();
        let requested = record::ApprovalRequested {
            key,
            binding,
            group: approval.group.clone(),
            count: approval.count,
            expires_at,
            args: self.policy().journal_args(&call.tool, &call.args),
            rule: rule.clone(),
            reason: d.reason().to_string(),
            requested_at: now,
            session: call.session.clone(),
            endorse: self.endorsed_digests(call, d),
        };
        let subject = Subject {
            tenant: &call.context.tenant,
            agent: &call.agent,
            write: self.policy().is_write(&call.tool),
        };
        let _commit = self.commit.lock().await;
        let held = self.store.hold(&requested, subject, now).await;
        if let Err(refusal) = held.unwrap_or_else(|e| Err(e.into())) {
            let refused = record::ApprovalRequestRefused {
                key: requested.key,
                binding: requested.binding,
                why: refusal.to_string(),
                code: refusal.code(),
            };
            self.record(&Record::ApprovalRequestRefused(refused))
                .await?;
            return Err(refusal.into());
        }
        let hold = Hold {
            id: call.id.clone(),
            rule,
            reason: requested.reason.clone(),
            group: requested.group.clone(),
            count: approval.count,
            args_digest,
            expires_at,
        };
        self.record(&Record::ApprovalRequested(requested)).await?;
        Ok(Verdict::Pending(hold))
    }
    /// A pending call, as approvers review it.
    pub async fn pending(&self, key: &CallKey) -> Result<Option<Pending>, GatewayError> {
        Ok(self.store.pending(key).await.map_err(Refusal::from)?)
    }

    /// Every call waiting for approval now.
    pub async fn waiting(&self) -> Result<Vec<Pending>, GatewayError> {
        let now = self.clock.now_ms();
        Ok(self.store.waiting(now).await.map_err(Refusal::from)?)
    }

    /// Records an approval of the pending call `key` by `who`, who reviewed
    /// the arguments whose keyed digest is `args_digest`. Returns the token
    /// once enough distinct approvers of the right group have approved. Every
    /// refusal is journaled too. See [`Gateway::approve_hold`] to bind the
    /// approval to the hold reviewed as well.
    pub async fn approve(
        &self,
        key: &CallKey,
        who: &Approver,
        args_digest: &str,
        reason: &str,
    ) -> Result<Option<String>, GatewayError> {
        self.approve_hold(key, who, args_digest, None, reason).await
    }

    /// [`Gateway::approve`] of the hold made at `held_at` (the pending call's
    /// `requested_at` the approver reviewed), if given: an id held again
    /// since (expired, rejected or cancelled, then held anew) is refused as a
    /// stale digest, even with the same arguments.
    pub async fn approve_hold(
        &self,
        key: &CallKey,
        who: &Approver,
        args_digest: &str,
        held_at: Option<u64>,
        reason: &str,
    ) -> Result<Option<String>, GatewayError> {
        let now = self.clock.now_ms();
        let token = digest::random_token()?;
        let grant = record::ApprovalGranted {
            key: key.clone(),
            approver: who.name.clone(),
            groups: who.groups.clone(),
            args_digest: args_digest.to_string(),
            held_at,
            reason: reason.to_string(),
        };
        let _commit = self.commit.lock().await;
        let admitted = match self.write_of(key).await {
            Ok(write) => {
                let digest = sha256_hex(token.as_bytes());
                let sealed = self.digest.seal_token(&token, &digest).unwrap_or_default();
                let approved = self
                    .store
                    .approve(&grant, who, write, &digest, &sealed, now);
                approved.await.unwrap_or_else(|e| Err(e.into()))
            }
            Err(refusal) => Err(refusal),
        };
        let issued = match admitted {
            Ok(issued) => issued,
            Err(refusal) => {
                self.metrics.refusals.fetch_add(1, Ordering::Relaxed);
                let refused = refused(key, who, reason, &refusal);
                self.record(&Record::ApprovalRefused(refused)).await?;
                return Err(refusal.into());
            }
        };
        self.record(&Record::ApprovalGranted(grant)).await?;
        self.metrics.approvals.fetch_add(1, Ordering::Relaxed);
        let Some(issued) = issued else {
            return Ok(None);
        };
        let token = self.issued(issued, token, now).await?;
        self.endorse(key, now).await;
        Ok(Some(token))
    }

    /// Whether the pending call `key` runs a write tool (for the kill switch).
    async fn write_of(&self, key: &CallKey) -> Result<bool, Refusal> {
        match self.store.pending(key).await? {
            Some(p) => Ok(self.policy().is_write(&p.binding.tool)),
            None => Err(Refusal::NoSuchRequest),
        }
    }

    /// Journals a token the store issued and hands it to `wait_for_approval`.
    async fn issued(
        &self,
        issued: record::TokenIssued,
        token: String,
        now: u64,
    ) -> Result<String, GatewayError> {
        let (key, expires_at) = (issued.key.clone(), issued.expires_at);
        self.record(&Record::TokenIssued(issued)).await?;
        let mut ready = self.lock_ready();
        ready.retain(|_, (_, exp)| *exp > now);
        ready.insert(key, (token.clone(), expires_at));
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
        let now = self.clock.now_ms();
        let rejected = record::ApprovalRejected {
            key: key.clone(),
            approver: who.name.clone(),
            reason: reason.to_string(),
        };
        let _commit = self.commit.lock().await;
        // A rejection only restricts: it takes effect first, so a journal
        // failure cannot leave a journaled rejection that did not happen.
        let admitted = self.store.reject(&rejected, who, now).await;
        if let Err(refusal) = admitted.unwrap_or_else(|e| Err(e.into())) {
            self.metrics.refusals.fetch_add(1, Ordering::Relaxed);
            let refused = refused(key, who, reason, &refusal);
            self.record(&Record::RejectionRefused(refused)).await?;
            return Err(refusal.into());
        }
        self.record(&Record::ApprovalRejected(rejected)).await
    }

    /// Runs an approved call with its token (`authorize_approved`,
    /// `executor`, `complete`): executed, or denied by the live policy.
    pub async fn execute_approved(
        &self,
        call: &super::Call,
        token: &str,
        executor: &dyn super::Executor,
    ) -> Result<CallOutcome, GatewayError> {
        match self.authorize_approved(call, token).await? {
            Verdict::Allowed(lease) => {
                let output = self.run(call, &lease, executor).await?;
                let rule = lease.rule;
                Ok(CallOutcome::Executed { output, rule })
            }
            Verdict::Denied(denial) => Ok(CallOutcome::Denied(denial)),
            Verdict::Pending(hold) => Ok(CallOutcome::Pending(hold)),
        }
    }

    /// The go-ahead for an approved call: the token must match this exact
    /// call, be unused, unexpired and unrevoked, no kill switch may stop it,
    /// and the live policy must not deny it now. Returns a lease
    /// ([`Verdict::Allowed`]: the caller executes the call once and reports
    /// with `complete`) or the live policy's denial; never `Pending`. A token
    /// that does not fit is refused ([`GatewayError::Refused`]).
    pub async fn authorize_approved(
        &self,
        call: &super::Call,
        token: &str,
    ) -> Result<Verdict, GatewayError> {
        let key = call.key();
        let binding = self.digest.binding(call);
        let policy = self.policy();
        let write = policy.is_write(&call.tool);
        let now = self.clock.now_ms();
        let spent = record::TokenUsed {
            key: key.clone(),
            token_digest: sha256_hex(token.as_bytes()),
        };
        let subject = Subject {
            tenant: &call.context.tenant,
            agent: &call.agent,
            write,
        };
        let used = self.store.use_token(&spent, &binding, subject, now).await;
        if let Err(refusal) = used.unwrap_or_else(|e| Err(e.into())) {
            self.metrics.refusals.fetch_add(1, Ordering::Relaxed);
            let refused = record::TokenRefused {
                key,
                why: refusal.to_string(),
                code: refusal.code(),
            };
            self.record(&Record::TokenRefused(refused)).await?;
            return Err(refusal.into());
        }
        self.record(&Record::TokenUsed(spent)).await?;
        self.lock_ready().remove(&key);
        // The approved call runs in the session it was held in.
        let held = self.store.pending(&key).await.map_err(Refusal::from)?;
        let call = &super::Call {
            session: held
                .and_then(|p| p.session)
                .or_else(|| call.session.clone()),
            ..call.clone()
        };
        let lens = self.session_lens(call, &policy, now).await;
        let req = request(call, now, lens.as_ref().map(|l| l as &dyn SessionView));
        let decision = policy.engine.decide(&req);
        let refused = match &decision {
            Decision::Deny { reason, .. } => Some((reason.to_string(), DeniedBy::Policy)),
            _ => super::missing_scope(&decision, &req).map(|why| (why, DeniedBy::Scope)),
        };
        if let Some((reason, by)) = refused {
            let execution = record::Execution {
                call: call.id.clone(),
                tenant: call.context.tenant.clone(),
                ok: false,
                error: Some(reason.clone()),
            };
            self.record(&Record::Execution(execution)).await?;
            let rule = None;
            return Ok(Verdict::Denied(Denial { reason, rule, by }));
        }
        let rule = super::rule_text(&decision);
        // The view ends before counting changes the session (see `decide_reserved`).
        let req = request(call, now, None);
        drop(lens);
        self.count_call(call, now).await?;
        let lease = self.lease(call, &req, &decision, rule, now).await;
        Ok(Verdict::Allowed(lease))
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
        let kill = record::KillSwitch {
            scope,
            engaged,
            by: by.to_string(),
            reason: reason.to_string(),
        };
        let _commit = self.commit.lock().await;
        // Engaging only restricts: it takes effect before it is journaled
        // (and stays in effect if journaling fails). Releasing is journaled
        // first, so a journal failure leaves it engaged.
        if !engaged {
            self.record(&Record::KillSwitch(kill.clone())).await?;
        }
        if let Err(e) = self.store.kill_switch(&kill).await {
            if !engaged {
                // The journaled release did not happen: say so, engaged again.
                let kept = record::KillSwitch {
                    engaged: true,
                    reason: format!("not released: {e}"),
                    ..kill
                };
                self.record(&Record::KillSwitch(kept)).await?;
            }
            return Err(Refusal::from(e).into());
        }
        if engaged {
            self.record(&Record::KillSwitch(kill)).await?;
        }
        let now = self.clock.now_ms();
        let ready: Vec<CallKey> = self.lock_ready().keys().cloned().collect();
        for key in ready {
            let state = self.store.pending_state(&key, now).await;
            if !matches!(state, Ok(Some(PendingState::Approved))) {
                self.lock_ready().remove(&key);
            }
        }
        Ok(())
    }

    /// The engaged kill switch scopes.
    pub async fn kill_scopes(&self) -> Result<Vec<KillScope>, GatewayError> {
        Ok(self.store.kill_scopes().await.map_err(Refusal::from)?)
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
