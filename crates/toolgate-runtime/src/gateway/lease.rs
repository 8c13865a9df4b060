//! Leases: an allowed call the caller executes itself (a sidecar's service,
//! the MCP proxy's upstream), reported back with `complete`; a result that
//! never comes is journaled as `result_missing`. Leases are Store state
//! ([`Store::reserve_lease`] and the rest): with a shared store, a result
//! reported to any replica closes the lease, and exactly one of the result
//! and the expiry takes it. A new call reserves its id while it is decided,
//! so one id has at most one open lease. And the state of a call, as a
//! service polls it.
//!
//! [`Store::reserve_lease`]: crate::store::Store::reserve_lease

use super::{Gateway, GatewayError};
use crate::record::{self, Record};
use crate::refusal::Refusal;
use crate::store::{CallKey, LeaseHolder, PendingState, SessionKey};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use toolgate_engine::{Decision, Request};

/// An allowed call: the caller may execute it once, with credentials for
/// exactly `scope`, and reports its result with [`Gateway::complete`].
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    /// Tenant and call id.
    pub key: CallKey,
    /// The credential scope (values from the trusted context only).
    pub scope: Vec<(String, Json)>,
    /// The granting rule (`file:line:column`).
    pub rule: Option<String>,
    /// When an unreported result becomes `result_missing` (ms).
    pub expires_at: u64,
}

/// Where a held call stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallState {
    /// Waiting for approvals.
    Pending,
    /// Approved: its token (when it was approved in this process) runs it once.
    Approved {
        /// The token, if this process holds it.
        token: Option<String>,
    },
    /// Rejected by an approver.
    Rejected,
    /// Its request for approval or its token expired.
    Expired,
    /// Cancelled by a kill switch.
    Cancelled,
    /// Approved and its token used.
    Executed,
}

impl CallState {
    /// `pending`, `approved`, `rejected`, `expired`, `cancelled` or `executed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CallState::Pending => "pending",
            CallState::Approved { .. } => "approved",
            CallState::Rejected => "rejected",
            CallState::Expired => "expired",
            CallState::Cancelled => "cancelled",
            CallState::Executed => "executed",
        }
    }
}

/// Leases taken from the store per round of `expire_leases`.
const EXPIRE_BATCH: usize = 256;

impl Gateway {
    /// Opens the lease of an allowed call in the store, so that any replica
    /// takes its result; in this process when the store cannot answer (then
    /// the result must come back here).
    pub(super) async fn lease(
        &self,
        call: &super::Call,
        req: &Request<'_>,
        d: &Decision<'_>,
        rule: Option<String>,
        now: u64,
    ) -> Lease {
        let key = call.key();
        let expires_at = now.saturating_add(self.limits.lease_ms);
        let holder = LeaseHolder {
            agent: call.agent.clone(),
            env: call.context.env.clone(),
            expires_at: Some(expires_at),
            tool: call.tool.clone(),
            session: call.session.clone(),
        };
        if let Err(e) = self.store.open_lease(&key, &holder, now).await {
            eprintln!(
                "toolgate: the store cannot open the lease of `{}`, kept here: {e}",
                key.id
            );
            self.lock_local().insert(key.clone(), holder);
        } else {
            self.lock_local().remove(&key);
        }
        Lease {
            key,
            scope: d.scope_values(req),
            rule,
            expires_at,
        }
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, HashMap<CallKey, LeaseHolder>> {
        // Each change is one insert or remove: a poisoned lock holds a whole map.
        self.local_leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves a new call's id for its tenant while it is decided. Refused
    /// (and journaled as `approval_request_refused`, with the call's own
    /// binding) when the id has an open lease, is being decided, or has a
    /// hold waiting for approval or holding an unused token. When the store
    /// cannot answer, only this process's ids are checked (the call is then
    /// decided as `--redis-down` says: state is never granted without it).
    pub(super) async fn reserve(&self, call: &super::Call) -> Result<(), GatewayError> {
        let key = call.key();
        let holder = LeaseHolder {
            agent: call.agent.clone(),
            env: call.context.env.clone(),
            expires_at: None,
            tool: call.tool.clone(),
            session: call.session.clone(),
        };
        const LEASED: &str = "allowed and its result not yet reported";
        // The reason the id is in use, and whether this call reserved it first.
        let (state, reserved) = match self.store.reserve_lease(&key, &holder).await {
            Ok(false) => (Some(LEASED), false),
            Ok(true) => match self.store.pending_state(&key, self.clock.now_ms()).await {
                Ok(Some(PendingState::Waiting)) => (Some("waiting for approval"), true),
                Ok(Some(PendingState::Approved)) => {
                    (Some("approved and its token not yet used"), true)
                }
                Ok(_) | Err(_) => (None, true),
            },
            Err(_) => {
                let mut local = self.lock_local();
                match local.contains_key(&key) {
                    true => (Some(LEASED), false),
                    false => {
                        local.insert(key.clone(), holder);
                        (None, true)
                    }
                }
            }
        };
        let Some(state) = state else {
            return Ok(());
        };
        if reserved {
            self.release(&key).await;
        }
        let refusal = Refusal::IdInUse {
            id: key.id.clone(),
            state,
        };
        self.metrics.refusals.fetch_add(1, Ordering::Relaxed);
        let refused = record::ApprovalRequestRefused {
            key,
            binding: self.digest.binding(call),
            why: refusal.to_string(),
            code: refusal.code(),
        };
        self.record(&Record::ApprovalRequestRefused(refused))
            .await?;
        Err(refusal.into())
    }

    /// Frees an id reserved for a call that was not allowed (a store that
    /// does not answer lets its reservation expire on its own).
    pub(super) async fn release(&self, key: &CallKey) {
        {
            let mut local = self.lock_local();
            if local.get(key).is_some_and(|h| h.expires_at.is_none()) {
                local.remove(key);
            }
        }
        if let Err(e) = self.store.release_lease(key).await {
            eprintln!("toolgate: cannot free the id `{}`: {e}", key.id);
        }
    }

    /// The agent and env of the open lease of `key`, if there is one (opened
    /// by any replica): a front door accepts its result only from a caller
    /// that may act for them.
    pub async fn lease_holder(
        &self,
        key: &CallKey,
    ) -> Result<Option<(String, String)>, GatewayError> {
        let holder = self.open_holder(key).await?;
        Ok(holder.map(|h| (h.agent, h.env)))
    }

    /// Closes the open lease of `key`, here or in the store; whether there was one.
    async fn take_lease(&self, key: &CallKey) -> Result<bool, GatewayError> {
        {
            let mut local = self.lock_local();
            if local.get(key).is_some_and(|h| h.expires_at.is_some()) {
                local.remove(key);
                return Ok(true);
            }
        }
        Ok(self.store.take_lease(key).await.map_err(Refusal::from)?)
    }

    /// Reports an allowed call's result (journaled as `execution`), to this
    /// or any replica sharing the store, with the tool's output when the
    /// caller has it. A result for a call with no open lease is refused and
    /// journaled. A call of a session has its output observed there
    /// (precise point 5); a result without one taints the session unless
    /// every position of the tool's output is labelled trusted (what the
    /// agent read is unknown: fail closed).
    pub async fn complete(
        &self,
        key: &CallKey,
        result: Result<(), String>,
        output: Option<&Json>,
    ) -> Result<(), GatewayError> {
        let holder = self.open_holder(key).await?;
        if holder.is_none() || !self.take_lease(key).await? {
            let refusal = Refusal::NoSuchLease { id: key.id.clone() };
            self.metrics.refusals.fetch_add(1, Ordering::Relaxed);
            let refused = record::ResultRefused {
                key: key.clone(),
                why: refusal.to_string(),
            };
            self.record(&Record::ResultRefused(refused)).await?;
            return Err(refusal.into());
        }
        let execution = record::Execution {
            call: key.id.clone(),
            tenant: key.tenant.clone(),
            ok: result.is_ok(),
            error: result.err(),
        };
        self.record(&Record::Execution(execution)).await?;
        let Some(LeaseHolder {
            tool,
            session: Some(session),
            ..
        }) = holder
        else {
            return Ok(());
        };
        let session = SessionKey::new(&key.tenant, &session);
        self.observe(session, &key.id, &tool, output).await?;
        Ok(())
    }

    /// The holder of the open lease of `key`, here or in the store.
    async fn open_holder(&self, key: &CallKey) -> Result<Option<LeaseHolder>, GatewayError> {
        let local = self.lock_local().get(key).cloned();
        match local.filter(|h| h.expires_at.is_some()) {
            Some(h) => Ok(Some(h)),
            None => Ok(self.store.lease(key).await.map_err(Refusal::from)?),
        }
    }

    /// Leases expired at `now`: this process's, then the store's (each
    /// taken by one replica only).
    async fn expired_leases(&self, now: u64) -> Result<Vec<(CallKey, u64)>, GatewayError> {
        let mut expired: Vec<(CallKey, u64)> = {
            let mut local = self.lock_local();
            let gone: Vec<(CallKey, u64)> = local
                .iter()
                .filter_map(|(k, h)| Some((k.clone(), h.expires_at?)))
                .filter(|(_, deadline)| *deadline <= now)
                .collect();
            for (k, _) in &gone {
                local.remove(k);
            }
            gone
        };
        // This process's are journaled even when the store does not answer.
        match self.store.take_expired_leases(now, EXPIRE_BATCH).await {
            Ok(taken) => expired.extend(taken),
            Err(e) if !expired.is_empty() => {
                eprintln!("toolgate: cannot take the store's expired leases now: {e}");
            }
            Err(e) => return Err(Refusal::from(e).into()),
        }
        Ok(expired)
    }

    /// Journals `result_missing` for every lease whose result did not come in
    /// time (each by one replica only), and closes it; returns how many. A
    /// front door calls it periodically.
    pub async fn expire_leases(&self) -> Result<usize, GatewayError> {
        let now = self.clock.now_ms();
        let mut count = 0;
        loop {
            let expired = self.expired_leases(now).await?;
            for (key, expired_at) in &expired {
                self.metrics.results_missing.fetch_add(1, Ordering::Relaxed);
                let missing = record::ResultMissing {
                    key: key.clone(),
                    expired_at: *expired_at,
                };
                self.record(&Record::ResultMissing(missing)).await?;
            }
            count += expired.len();
            if expired.len() < EXPIRE_BATCH {
                return Ok(count);
            }
        }
    }

    /// Where a held call stands, if the gateway knows it.
    pub async fn call_state(&self, key: &CallKey) -> Result<Option<CallState>, GatewayError> {
        let now = self.clock.now_ms();
        let unavailable = |e| GatewayError::Refused(Refusal::from(e));
        let Some(pending) = self.store.pending(key).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let token = pending.token.as_deref().unwrap_or("");
        let Some(state) = self
            .store
            .pending_state(key, now)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        Ok(Some(match state {
            PendingState::Waiting => CallState::Pending,
            PendingState::Approved => CallState::Approved {
                token: self.ready_token(key, pending.token.as_deref()).await,
            },
            PendingState::Finished if pending.rejected.is_some() => CallState::Rejected,
            PendingState::Finished if pending.cancelled.is_some() => CallState::Cancelled,
            PendingState::Finished if pending.token.is_none() => CallState::Expired,
            PendingState::Finished => match self.store.token_used(key, token).await {
                Ok(true) => CallState::Executed,
                Ok(false) => CallState::Expired,
                Err(e) => return Err(unavailable(e)),
            },
        }))
    }

    /// The token of an approved call: completed in this process (the store
    /// shows an approval a moment before its token is journaled and handed
    /// over, both under `commit`: an answer waits for that to finish), or
    /// by another replica, which sealed it in the shared store.
    async fn ready_token(&self, key: &CallKey, digest: Option<&str>) -> Option<String> {
        if let Some((token, _)) = self.lock_ready().get(key) {
            return Some(token.clone());
        }
        {
            let _commit = self.commit.lock().await;
            if let Some((token, _)) = self.lock_ready().get(key) {
                return Some(token.clone());
            }
        }
        let digest = digest?;
        let sealed = self.store.sealed_token(key, digest).await.ok()??;
        self.digest.open_token(&sealed, digest)
    }
}
