//! What the gateway made of a call: a [`Verdict`]. A deny is a value, not an
//! error: every door has one `match` over it, and `GatewayError` means only
//! that the gateway could not decide or could not record.

use super::Lease;

/// What `authorize` decided for a call (journaled before it is returned).
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Execute it once, then `complete`.
    Allowed(Lease),
    /// Not let through.
    Denied(Denial),
    /// Held for approval.
    Pending(Hold),
}

/// Why a call was denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The reason, worded for the caller.
    pub reason: String,
    /// The deciding rule (`file:line:column`), if a rule decided.
    pub rule: Option<String>,
    /// What decided.
    pub by: DeniedBy,
}

/// What decided a denial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeniedBy {
    /// The policy: a deny rule, no grant, a condition that failed closed.
    Policy,
    /// A limit on what a call may bring (argument size, name length).
    Limit,
    /// A kill switch.
    KillSwitch,
    /// The granting rule's credential scope has no value in the trusted context.
    Scope,
    /// The budget is exhausted and no other grant applies.
    Budget,
    /// The shared store did not answer (Redis down): not a policy decision,
    /// and never an allow.
    Store,
}

impl DeniedBy {
    /// `policy`, `limit`, `kill_switch`, `scope`, `budget` or `store`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeniedBy::Policy => "policy",
            DeniedBy::Limit => "limit",
            DeniedBy::KillSwitch => "kill_switch",
            DeniedBy::Scope => "scope",
            DeniedBy::Budget => "budget",
            DeniedBy::Store => "store",
        }
    }
}

/// A call held for approval, and the approval it waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// The call id (approve it with the call's tenant).
    pub id: String,
    /// The rule that requires the approval.
    pub rule: Option<String>,
    /// Why (the rule's reason).
    pub reason: String,
    /// The approvers' group, if the rule names one.
    pub group: Option<String>,
    /// How many distinct approvers.
    pub count: u32,
    /// The keyed digest of the arguments approvers approve.
    pub args_digest: String,
    /// When the request for approval expires (ms), if it does.
    pub expires_at: Option<u64>,
}
