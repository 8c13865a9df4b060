//! The journal's records, one typed enum: the gateway writes them, and a
//! restarted embedded gateway rebuilds its store from them
//! (`MemoryStore::apply`, which changes state exactly as the live operations
//! did), so the two can never disagree. On disk each is a line
//! `{"seq":N,"ts_ms":T,"kind":"<kind>","prev":"<hex>","body":{...}}`
//! (docs/runtime.md lists every kind and field). A record of a kind this
//! version does not know is an error, never skipped.

use crate::journal::Durability;
use crate::store::{Binding, CallKey, KillScope, SessionKey};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// One journal record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Record {
    /// A policy was loaded.
    PolicyLoad(PolicyLoad),
    /// A call was decided (before anything else happens to it).
    Decision(Decision),
    /// A budgeted grant's window was full; the call fell back to the next grant.
    BudgetExhausted(BudgetExhausted),
    /// A call is held for approval: reserves its id, bound to its arguments.
    ApprovalRequested(ApprovalRequested),
    /// A request for approval was refused (its id is in use), with its own binding.
    ApprovalRequestRefused(ApprovalRequestRefused),
    /// An approver approved.
    ApprovalGranted(ApprovalGranted),
    /// An approval was refused.
    ApprovalRefused(Refused),
    /// An approver rejected the call.
    ApprovalRejected(ApprovalRejected),
    /// A rejection was refused.
    RejectionRefused(Refused),
    /// The call is fully approved: a single-use token was issued.
    TokenIssued(TokenIssued),
    /// A token was used: the approved call runs.
    TokenUsed(TokenUsed),
    /// A token was refused.
    TokenRefused(TokenRefused),
    /// A kill switch was engaged or released.
    KillSwitch(KillSwitch),
    /// A tool ran (or could not), with its outcome.
    Execution(Execution),
    /// A result was reported for a call with no open lease.
    ResultRefused(ResultRefused),
    /// An allowed call's result was not reported before its lease expired.
    ResultMissing(ResultMissing),
    /// A new policy was refused (it did not check clean); the old one keeps serving.
    PolicyRefused(PolicyRefused),
    /// The shadow policy decided a call differently from the live one.
    ShadowDiffers(ShadowDiffers),
    /// A front door refused a caller (wrong role, tenant, env or agent).
    AccessDenied(AccessDenied),
    /// A front door's note about a tool it relays (the MCP proxy: an upstream
    /// tool hidden because the policy does not declare it, or an upstream
    /// annotation that contradicts the policy's class). Changes no state.
    ToolNotice(ToolNotice),
    /// The operator opened a journal inconsistent with its checkpoints (written by the journal).
    JournalOverride(Json),
    /// Unsealed records found at open were set aside (written by the journal).
    UnsealedSetAside(Json),
    /// A set-aside record that only restricts, journaled again and applied.
    Restored(Restored),
    /// A user turn in a session (keyed digests of its keys, never its text).
    SessionTurn(SessionTurn),
    /// A tool's output observed in a session (keyed digests, by label).
    SessionObserved(SessionObserved),
    /// Values endorsed in a session by a granted approval (keyed digests).
    SessionEndorsed(SessionEndorsed),
    /// A call allowed to run in a session (`session.calls(T)` counts it).
    SessionCall(SessionCall),
}

impl Record {
    /// A record from its journal line.
    pub fn from_line(line: &str) -> Result<Record, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    /// The `ts_ms` of a journal line, if it has one.
    pub fn time_of_line(line: &str) -> Option<u64> {
        #[derive(Deserialize)]
        struct Ts {
            ts_ms: u64,
        }
        serde_json::from_str::<Ts>(line).ok().map(|t| t.ts_ms)
    }

    /// `(kind, body)` as the journal writes them.
    pub fn to_kind_body(&self) -> (String, Json) {
        match serde_json::to_value(self) {
            Ok(Json::Object(mut m)) => {
                let kind = m
                    .remove("kind")
                    .and_then(|k| k.as_str().map(String::from))
                    .unwrap_or_default();
                (kind, m.remove("body").unwrap_or(Json::Null))
            }
            // Every variant serialises to an object with a kind and a body.
            _ => (String::new(), Json::Null),
        }
    }

    /// Whether the record only restricts: it spends a budget unit or a token,
    /// engages a kill switch, or rejects a call. Applying a forged one can only
    /// deny more, so such records are never dropped (see [`Restored`]).
    pub fn restricts(&self) -> bool {
        match self {
            Record::Decision(d) => d.budget.is_some(),
            Record::KillSwitch(k) => k.engaged,
            Record::TokenUsed(_) | Record::ApprovalRejected(_) => true,
            _ => false,
        }
    }

    /// What the gateway waits for before it acts on this record (under
    /// [`Fsync::Writes`]; `Always` syncs every record, `Never` only sealed
    /// ones): [`Durability::Sealed`] for the records that grant or spend (a
    /// hold, an approval, a rejection, a token issued or used, a kill switch,
    /// a budget unit, a restored restriction); [`Durability::Durable`] for the other records
    /// that precede a state change or a write's execution (a write's
    /// decision, a policy load); [`Durability::Written`] for the rest, which
    /// grant nothing: a read's decision, results reported or missing,
    /// refusals, notes. `is_write` says whether a tool is a write in the
    /// policy that decided (only a decision asks it).
    ///
    /// [`Fsync::Writes`]: crate::journal::Fsync::Writes
    pub fn durability(&self, is_write: impl Fn(&str) -> bool) -> Durability {
        match self {
            Record::Decision(d) if d.budget.is_some() => Durability::Sealed,
            Record::ApprovalRequested(_)
            | Record::ApprovalGranted(_)
            | Record::ApprovalRejected(_)
            | Record::TokenIssued(_)
            | Record::TokenUsed(_)
            | Record::KillSwitch(_)
            | Record::Restored(_)
            | Record::SessionCall(_) => Durability::Sealed,
            // Cutting a taint or a tombstone would let a provenance grant apply.
            Record::SessionObserved(o) if o.taints || o.capped => Durability::Sealed,
            Record::SessionTurn(t) if t.capped => Durability::Sealed,
            Record::SessionEndorsed(e) if e.capped => Durability::Sealed,
            Record::Decision(d) if is_write(&d.tool) => Durability::Durable,
            Record::PolicyLoad(_) | Record::JournalOverride(_) | Record::UnsealedSetAside(_) => {
                Durability::Durable
            }
            // Losing one of these only restricts: a value stays untrusted, a turn unheard.
            Record::SessionObserved(_) | Record::SessionTurn(_) | Record::SessionEndorsed(_) => {
                Durability::Written
            }
            Record::Decision(_)
            | Record::BudgetExhausted(_)
            | Record::ApprovalRequestRefused(_)
            | Record::ApprovalRefused(_)
            | Record::RejectionRefused(_)
            | Record::TokenRefused(_)
            | Record::Execution(_)
            | Record::ResultRefused(_)
            | Record::ResultMissing(_)
            | Record::PolicyRefused(_)
            | Record::ShadowDiffers(_)
            | Record::AccessDenied(_)
            | Record::ToolNotice(_) => Durability::Written,
        }
    }

    /// Whether the record grants or spends state, so it must be covered by a
    /// signed checkpoint before it is acknowledged (cutting it would re-open a
    /// token, release a kill switch, restore a budget or lift a taint).
    pub fn sealed(&self) -> bool {
        self.durability(|_| false) == Durability::Sealed
    }

    /// The session a session record changes, if it is one.
    pub fn session(&self) -> Option<&SessionKey> {
        match self {
            Record::SessionTurn(r) => Some(&r.key),
            Record::SessionObserved(r) => Some(&r.key),
            Record::SessionEndorsed(r) => Some(&r.key),
            Record::SessionCall(r) => Some(&r.key),
            _ => None,
        }
    }
}

/// `policy_load`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyLoad {
    /// The policy's name, if it declares one.
    pub name: Option<String>,
}

/// One unit taken from a budget window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUnit {
    /// The window's key (rule identity, agent, tool, tenant).
    pub key: String,
    /// The window's length.
    pub window_ms: u64,
}

/// `decision`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The call id.
    pub call: String,
    /// The agent.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// The tenant.
    pub tenant: String,
    /// The env.
    pub env: String,
    /// Keyed digest of the arguments (never the plain SHA-256: redacted values
    /// could be recovered from it by brute force).
    pub args_digest: String,
    /// The arguments, fields marked `redact` replaced; `null` when too large.
    pub args: Json,
    /// Size of the arguments' JSON in bytes.
    pub args_bytes: u64,
    /// `allow`, `deny` or `approval_required`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// The deciding rule (`file:line:column`).
    pub rule: Option<String>,
    /// The granting rule's `@accepted_risk("...")`, when a rule that accepts
    /// a reviewed risk granted the call (allowed or held). Absent in records
    /// written before it existed and for every other call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_risk: Option<String>,
    /// The budget unit taken, if any.
    pub budget: Option<BudgetUnit>,
    /// Every `x from SOURCE` condition of the call's cell and what it found
    /// (which source satisfied it, or where the value was seen instead);
    /// absent when the cell has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<ProvenanceNote>,
    /// Decision time (ms).
    pub at: u64,
}

/// One provenance condition of a decision (`decision.provenance`). Never
/// the value itself: the arguments are in `args`, redacted as the policy says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceNote {
    /// The condition's rule (`file:line:column`, `@id` first when written).
    pub rule: String,
    /// The condition (`line:column` in the policy file).
    pub at: String,
    /// `true` it holds, `false` it does not, `null` it cannot be evaluated.
    pub holds: Option<bool>,
    /// Holds: the sources that satisfy it ("a user turn", "the call's
    /// context", ...). Does not hold: where the value was seen instead
    /// ("an untrusted output of the session"; empty: nowhere). Cannot be
    /// evaluated: why.
    pub found: Vec<String>,
}

/// `budget_exhausted`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetExhausted {
    /// The call id.
    pub call: String,
    /// The tenant.
    pub tenant: String,
    /// The full window's key.
    pub key: String,
}

/// `approval_requested`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequested {
    /// Tenant and call id.
    #[serde(flatten)]
    pub key: CallKey,
    /// What approvers review and approve.
    pub binding: Binding,
    /// The group approvers must belong to.
    pub group: Option<String>,
    /// Distinct approvers needed.
    pub count: u32,
    /// When the request expires (ms).
    pub expires_at: Option<u64>,
    /// The arguments as journaled (fields marked `redact` replaced): what
    /// approvers are shown.
    #[serde(default)]
    pub args: serde_json::Value,
    /// The rule that requires the approval (`file:line:column`).
    #[serde(default)]
    pub rule: Option<String>,
    /// Its reason.
    #[serde(default)]
    pub reason: String,
    /// When the call was held (ms).
    #[serde(default)]
    pub requested_at: u64,
    /// The held call's session, if it has one: the approved call runs in it
    /// (counted there, its output observed there) whatever the door resends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Keyed digests of the values the rule's `endorse` paths hold in this
    /// call (endorsed in its session when the approval is granted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endorse: Vec<String>,
}

/// `approval_request_refused`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequestRefused {
    /// Tenant and call id.
    #[serde(flatten)]
    pub key: CallKey,
    /// The refused call's own binding.
    pub binding: Binding,
    /// Why.
    pub why: String,
    /// The refusal's code.
    pub code: String,
}

/// `approval_granted`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalGranted {
    /// Tenant and call id.
    #[serde(flatten)]
    pub key: CallKey,
    /// Who approved (from their authentication).
    pub approver: String,
    /// Their groups.
    pub groups: Vec<String>,
    /// The digest they reviewed.
    pub args_digest: String,
    /// When the hold they reviewed was made (its `requested_at`, ms), if
    /// they said: then the approval applies to that hold only, never to a
    /// later hold of the same id (with the same arguments or not). Absent in
    /// records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_at: Option<u64>,
    /// Why.
    pub reason: String,
}

/// `approval_refused` and `rejection_refused`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    /// Tenant and call id.
    #[serde(flatten)]
    pub key: CallKey,
    /// Who tried.
    pub approver: String,
    /// The reason they gave.
    pub reason: String,
    /// Why it was refused.
    pub why: String,
    /// The refusal's code.
    pub code: String,
}

/// `approval_rejected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRejected {
    /// Tenant and call id.
    #[serde(flatten)]
    pub key: CallKey,
    /// Who rejected.
    pub approver: String,
    /// Why.
    pub reason: String,
}

/// `token_issued`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenIssued {
    /// Tenant and call id.
    #[serde(flatten)]
    pub key: CallKey,
    /// SHA-256 of the token (the token itself is never written).
    pub token_digest: String,
    /// When it expires (ms).
    pub expires_at: u64,
    /// The exact request it may run.
    pub binding: Binding,
}

/// `token_used`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenUsed {
    /// Tenant and call id.
    #[serde(flatten)]
    pub key: CallKey,
    /// SHA-256 of the token.
    pub token_digest: String,
}

/// `token_refused`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenRefused {
    /// Tenant and call id.
    #[serde(flatten)]
    pub key: CallKey,
    /// Why.
    pub why: String,
    /// The refusal's code.
    pub code: String,
}

/// `kill_switch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KillSwitch {
    /// What it stops.
    #[serde(flatten)]
    pub scope: KillScope,
    /// Engaged or released.
    pub engaged: bool,
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// `execution`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// The call id.
    pub call: String,
    /// The tenant.
    pub tenant: String,
    /// Whether the tool succeeded.
    pub ok: bool,
    /// Its error, if it failed (or why it could not run).
    pub error: Option<String>,
}

/// `result_refused`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRefused {
    /// Tenant and call id.
    #[serde(flatten)]
    pub key: CallKey,
    /// Why.
    pub why: String,
}

/// `result_missing`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultMissing {
    /// Tenant and call id.
    #[serde(flatten)]
    pub key: CallKey,
    /// When the lease expired (ms).
    pub expired_at: u64,
}

/// `policy_refused`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRefused {
    /// SHA-256 of the refused text.
    pub refused: String,
    /// Its diagnostics.
    pub diagnostics: Vec<String>,
}

/// `shadow_differs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShadowDiffers {
    /// The call id.
    pub call: String,
    /// The tenant.
    pub tenant: String,
    /// The live policy's outcome.
    pub live: String,
    /// The shadow policy's outcome.
    pub shadow: String,
    /// The shadow's deciding rule.
    pub shadow_rule: Option<String>,
    /// SHA-256 of the shadow policy's text.
    pub shadow_policy: String,
}

/// `access_denied`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessDenied {
    /// The caller's key name.
    pub caller: String,
    /// What it tried.
    pub action: String,
    /// Why it was refused.
    pub why: String,
}

/// `tool_notice`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolNotice {
    /// The front door (`mcp-proxy`).
    pub door: String,
    /// The tool, as the upstream names it.
    pub tool: String,
    /// `hidden` (not declared in the policy) or `annotation` (an upstream hint contradicts the policy).
    pub what: String,
    /// Details, for a human.
    pub detail: String,
}

/// `restored`: a record that only restricts, found among the records set
/// aside at open (after the last checkpoint: a crash before sealing, or a
/// checkpoint file rolled back), journaled again so its effect is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Restored {
    /// Its seq in the journal it was set aside from.
    pub from_seq: u64,
    /// The record.
    pub record: Box<Record>,
}

/// `session_turn`: what the user said, as the keyed digests of its keys
/// (`provenance::text_keys`) and its length; never the text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTurn {
    /// Tenant and session.
    #[serde(flatten)]
    pub key: SessionKey,
    /// The turn's length in characters.
    pub chars: u64,
    /// Keyed digests of its keys, sorted, each once.
    pub digests: Vec<String>,
    /// It took the session over its cap: the session is tainted and
    /// tombstoned (the digests are not journaled).
    #[serde(default)]
    pub capped: bool,
    /// When (ms).
    pub at: u64,
}

/// `session_observed`: a tool's output observed in a session, as keyed
/// digests of the keys at its trusted and untrusted positions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionObserved {
    /// Tenant and session.
    #[serde(flatten)]
    pub key: SessionKey,
    /// The call whose result it is.
    pub call: String,
    /// Its tool.
    pub tool: String,
    /// The output's JSON length in bytes.
    pub bytes: u64,
    /// Digests at trusted positions, sorted, each once.
    pub trusted: Vec<String>,
    /// Digests at untrusted positions, sorted, each once.
    pub untrusted: Vec<String>,
    /// A non-empty value at an untrusted position: the session is tainted.
    pub taints: bool,
    /// Over the cap (see [`SessionTurn::capped`]).
    #[serde(default)]
    pub capped: bool,
    /// When (ms).
    pub at: u64,
}

/// `session_endorsed`: values an approval endorsed, as keyed digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEndorsed {
    /// Tenant and session.
    #[serde(flatten)]
    pub key: SessionKey,
    /// The approved call.
    pub call: String,
    /// Digests of the endorsed values, sorted, each once.
    pub digests: Vec<String>,
    /// Over the cap (see [`SessionTurn::capped`]).
    #[serde(default)]
    pub capped: bool,
    /// When (ms).
    pub at: u64,
}

/// `session_call`: a call of `tool` allowed to run in a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCall {
    /// Tenant and session.
    #[serde(flatten)]
    pub key: SessionKey,
    /// The call id.
    pub call: String,
    /// Its tool.
    pub tool: String,
    /// When (ms).
    pub at: u64,
}
