//! Leases: an allowed call the caller executes itself (a sidecar's service,
//! the MCP proxy's upstream), reported back with `complete`; a result that
//! never comes is journaled as `result_missing`. A new call reserves its id
//! here while it is decided, so one id has at most one open lease. And the
//! state of a call, as a service polls it.

use super::{CredentialProvider, Gateway, GatewayError, ToolExecutor};
use crate::record::{self, Record};
use crate::refusal::Refusal;
use crate::store::{CallKey, PendingState};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use toolgate_engine::{Decision, Request};

/// An id in use: a call being decided (no deadline yet) or an open lease.
#[derive(Clone, Debug)]
pub(super) struct Open {
    agent: String,
    env: String,
    expires_at: Option<u64>,
}

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

impl<C: CredentialProvider, X: ToolExecutor> Gateway<C, X> {
    pub(super) fn lease(
        &self,
        call: &super::Call,
        req: &Request<'_>,
        d: &Decision<'_>,
        rule: Option<String>,
        now: u64,
    ) -> Lease {
        let key = call.key();
        let expires_at = now.saturating_add(self.limits.lease_ms);
        let open = Open {
            agent: call.agent.clone(),
            env: call.context.env.clone(),
            expires_at: Some(expires_at),
        };
        self.lock_leases().insert(key.clone(), open);
        Lease {
            key,
            scope: d.scope_values(req),
            rule,
            expires_at,
        }
    }

    fn lock_leases(&self) -> std::sync::MutexGuard<'_, HashMap<CallKey, Open>> {
        // Each change is one insert or remove: a poisoned lock holds a whole map.
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves a new call's id for its tenant while it is decided. Refused
    /// (and journaled as `approval_request_refused`, with the call's own
    /// binding) when the id has an open lease, is being decided, or has a
    /// hold waiting for approval or holding an unused token.
    pub(super) async fn reserve(&self, call: &super::Call) -> Result<(), GatewayError> {
        let key = call.key();
        let leased = {
            let mut leases = self.lock_leases();
            let leased = leases.contains_key(&key);
            if !leased {
                let open = Open {
                    agent: call.agent.clone(),
                    env: call.context.env.clone(),
                    expires_at: None,
                };
                leases.insert(key.clone(), open);
            }
            leased
        };
        let state = if leased {
            Some("allowed and its result not yet reported")
        } else {
            match self.store.pending_state(&key, self.clock.now_ms()).await {
                Ok(Some(PendingState::Waiting)) => Some("waiting for approval"),
                Ok(Some(PendingState::Approved)) => Some("approved and its token not yet used"),
                Ok(_) => None,
                Err(e) => {
                    self.release(&key);
                    return Err(Refusal::from(e).into());
                }
            }
        };
        let Some(state) = state else {
            return Ok(());
        };
        if !leased {
            self.release(&key);
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

    /// Frees an id reserved for a call that was not allowed.
    pub(super) fn release(&self, key: &CallKey) {
        let mut leases = self.lock_leases();
        if leases.get(key).is_some_and(|o| o.expires_at.is_none()) {
            leases.remove(key);
        }
    }

    /// The agent and env of the open lease of `key`, if there is one: a
    /// front door accepts its result only from a caller that may act for them.
    pub fn lease_holder(&self, key: &CallKey) -> Option<(String, String)> {
        let leases = self.lock_leases();
        let open = leases.get(key).filter(|o| o.expires_at.is_some())?;
        Some((open.agent.clone(), open.env.clone()))
    }

    /// Reports an allowed call's result (journaled as `execution`). A result
    /// for a call with no open lease is refused and journaled.
    pub async fn complete(
        &self,
        key: &CallKey,
        result: Result<(), String>,
    ) -> Result<(), GatewayError> {
        let known = {
            let mut leases = self.lock_leases();
            let open = leases.get(key).is_some_and(|o| o.expires_at.is_some());
            open && leases.remove(key).is_some()
        };
        if !known {
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
        self.record(&Record::Execution(execution)).await
    }

    /// Journals `result_missing` for every lease whose result did not come in
    /// time, and forgets it; returns how many. A front door calls it periodically.
    pub async fn expire_leases(&self) -> Result<usize, GatewayError> {
        let now = self.clock.now_ms();
        let expired: Vec<(CallKey, u64)> = {
            let mut leases = self.lock_leases();
            let gone: Vec<(CallKey, u64)> = leases
                .iter()
                .filter_map(|(k, o)| Some((k.clone(), o.expires_at?)))
                .filter(|(_, deadline)| *deadline <= now)
                .collect();
            for (k, _) in &gone {
                leases.remove(k);
            }
            gone
        };
        for (key, expired_at) in &expired {
            self.metrics.results_missing.fetch_add(1, Ordering::Relaxed);
            let missing = record::ResultMissing {
                key: key.clone(),
                expired_at: *expired_at,
            };
            self.record(&Record::ResultMissing(missing)).await?;
        }
        Ok(expired.len())
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
