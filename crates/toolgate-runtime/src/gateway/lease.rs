//! Leases: an allowed call the caller executes itself (a sidecar's service,
//! the MCP proxy's upstream), reported back with `complete`; a result that
//! never comes is journaled as `result_missing`. And the state of a call, as
//! a service polls it.

use super::{CredentialProvider, Gateway, GatewayError, ToolExecutor};
use crate::record::{self, Record};
use crate::refusal::Refusal;
use crate::store::{CallKey, PendingState};
use serde_json::Value as Json;
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

/// What `authorize` decided for a call it did not deny.
#[derive(Clone, Debug, PartialEq)]
pub enum Authorized {
    /// Execute it once, then `complete`.
    Allowed(Lease),
    /// Held for approval.
    Pending {
        /// The call id (approve it with the call's tenant).
        id: String,
        /// The rule that requires the approval.
        rule: Option<String>,
        /// When the request for approval expires (ms), if it does.
        expires_at: Option<u64>,
        /// The keyed digest of the arguments approvers approve.
        args_digest: String,
    },
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
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let open = leases.entry(key.clone()).or_insert((0, 0));
        *open = (open.0.saturating_add(1), open.1.max(expires_at));
        Lease {
            key,
            scope: d.scope_values(req),
            rule,
            expires_at,
        }
    }

    /// Reports an allowed call's result (journaled as `execution`). A result
    /// for a call with no open lease is refused and journaled.
    pub async fn complete(
        &self,
        key: &CallKey,
        result: Result<(), String>,
    ) -> Result<(), GatewayError> {
        let known = {
            let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            match leases.get_mut(key) {
                Some((n, _)) if *n > 1 => {
                    *n -= 1;
                    true
                }
                Some(_) => leases.remove(key).is_some(),
                None => false,
            }
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
            let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<(CallKey, u64)> = leases
                .iter()
                .filter(|(_, (_, deadline))| *deadline <= now)
                .map(|(k, (_, deadline))| (k.clone(), *deadline))
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
