//! Why the gateway refused an approval, a rejection, a token or a request for
//! approval: one typed enum, so every front door maps refusals to its protocol
//! in one `match`, never by comparing strings.

use miette::Diagnostic;
use thiserror::Error;

/// A refusal, with a stable code.
#[derive(Clone, Debug, Error, Diagnostic, PartialEq, Eq)]
pub enum Refusal {
    /// No pending call with this tenant and id.
    #[error("no such request")]
    #[diagnostic(code(toolgate::gateway::no_such_request))]
    NoSuchRequest,
    /// Approvals and rejections need a reason.
    #[error("a reason is required")]
    #[diagnostic(code(toolgate::gateway::reason_required))]
    ReasonRequired,
    /// The approver may not approve for this tenant.
    #[error("the approver may not approve for this tenant")]
    #[diagnostic(code(toolgate::gateway::wrong_tenant))]
    WrongTenant,
    /// The agent (under any spelling) cannot approve its own call.
    #[error("the agent cannot approve its own request")]
    #[diagnostic(code(toolgate::gateway::self_approval))]
    SelfApproval,
    /// The approver is not in the rule's group.
    #[error("the approver is not in the required group")]
    #[diagnostic(code(toolgate::gateway::wrong_group))]
    WrongGroup,
    /// The approver reviewed other arguments than the pending call's.
    #[error("the arguments digest does not match the pending call: the approver reviewed other arguments")]
    #[diagnostic(
        code(toolgate::gateway::digest_mismatch),
        help("look at the pending call again and approve the digest it shows")
    )]
    DigestMismatch,
    /// One approver, one approval.
    #[error("the same approver cannot approve twice")]
    #[diagnostic(code(toolgate::gateway::approved_twice))]
    ApprovedTwice,
    /// Fully approved already.
    #[error("the request is already approved")]
    #[diagnostic(code(toolgate::gateway::already_approved))]
    AlreadyApproved,
    /// Rejected already.
    #[error("the request was rejected")]
    #[diagnostic(code(toolgate::gateway::rejected))]
    Rejected,
    /// The request for approval expired.
    #[error("the request for approval has expired")]
    #[diagnostic(code(toolgate::gateway::expired))]
    Expired,
    /// A kill switch cancelled it.
    #[error("the request was cancelled by a kill switch (engaged by `{by}`)")]
    #[diagnostic(code(toolgate::gateway::cancelled))]
    Cancelled {
        /// Who engaged the kill switch.
        by: String,
    },
    /// A call with this id is waiting for approval or holds an unused token.
    #[error("call `{id}` is already {state} for this tenant")]
    #[diagnostic(
        code(toolgate::gateway::id_in_use),
        help("use a new call id; an id is free again once its call is rejected, expired, cancelled or executed")
    )]
    IdInUse {
        /// The id.
        id: String,
        /// `waiting for approval` or `approved and its token not yet used`.
        state: &'static str,
    },
    /// No such token.
    #[error("unknown token")]
    #[diagnostic(code(toolgate::gateway::token_unknown))]
    TokenUnknown,
    /// Used already.
    #[error("token already used")]
    #[diagnostic(code(toolgate::gateway::token_used))]
    TokenUsed,
    /// Revoked by a kill switch.
    #[error("token revoked by a kill switch")]
    #[diagnostic(code(toolgate::gateway::token_revoked))]
    TokenRevoked,
    /// Expired.
    #[error("token expired")]
    #[diagnostic(code(toolgate::gateway::token_expired))]
    TokenExpired,
    /// Bound to another request.
    #[error("token is bound to another request")]
    #[diagnostic(code(toolgate::gateway::token_binding))]
    TokenBinding,
    /// No allowed call with this tenant and id is waiting for its result.
    #[error("no allowed call `{id}` is waiting for its result")]
    #[diagnostic(code(toolgate::gateway::no_such_lease))]
    NoSuchLease {
        /// The call id.
        id: String,
    },
    /// The state store (Redis) could not answer: nothing that needs state is
    /// granted until it does.
    #[error("the state store is unavailable: {why}")]
    #[diagnostic(
        code(toolgate::gateway::store_unavailable),
        help("the gateway fails closed while its state store is down and resumes on its own when it answers")
    )]
    StoreUnavailable {
        /// What the store said.
        why: String,
    },
    /// A kill switch stops this call now.
    #[error("the kill switch is engaged: writes are stopped")]
    #[diagnostic(code(toolgate::gateway::kill_switch))]
    KillSwitch,
}

impl From<crate::store::StoreError> for Refusal {
    fn from(e: crate::store::StoreError) -> Self {
        Refusal::StoreUnavailable { why: e.0 }
    }
}

impl Refusal {
    /// The stable code, as journaled.
    pub fn code(&self) -> String {
        self.diagnostic_code()
    }

    fn diagnostic_code(&self) -> String {
        Diagnostic::code(self).map_or_else(String::new, |c| c.to_string())
    }
}
