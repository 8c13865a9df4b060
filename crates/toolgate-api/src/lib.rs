//! Toolgate's HTTP contract, both ways: the bodies a caller sends and the
//! answers it gets (serde, and utoipa schemas with the `openapi` feature),
//! the one conversion of a wire call into the gateway's [`Call`] with one set
//! of limits ([`CallRequest::into_call`]; names past them are the gateway's
//! to deny and journal), the one Rust client (`client`
//! feature: the operator CLI and `mcp-proxy --gateway` use it) and the plain
//! HTTP listener both doors serve with (`listen` feature).
//!
//! Closed sets are enums ([`Outcome`], [`CallState`], [`KillTools`]); open
//! objects (`args`, `context`, `scope`) are declared open.

#![deny(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "listen")]
pub mod listen;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use thiserror::Error;
use toolgate_engine::Context;
use toolgate_runtime::gateway::{Call, MAX_NAME_BYTES};

/// What `POST /v1/calls` (and `/execute`) decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Execute it once, then report the result.
    Allowed,
    /// Not let through.
    Denied,
    /// Held for approval.
    Pending,
}

/// Where a call stands (`GET /v1/calls/{id}`): a held call's state, or the
/// outcome of a call that was not held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Held, waiting for approvals.
    Pending,
    /// Approved: its token runs it once.
    Approved,
    /// Rejected by an approver.
    Rejected,
    /// Its request for approval or its token expired.
    Expired,
    /// Cancelled by a kill switch.
    Cancelled,
    /// Run (approved and its token used, or allowed and its result reported ok).
    Executed,
    /// Allowed; its result not reported yet.
    Allowed,
    /// Denied.
    Denied,
    /// Allowed and its result reported as failed.
    Failed,
    /// Allowed and its result never came.
    ResultMissing,
}

/// A proposed tool call.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The call id (unique per tenant; also the approval id). Generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The calling agent (within the key's agents).
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// The arguments, as the model wrote them.
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = HashMap<String, serde_json::Value>))]
    pub args: Json,
    /// The trusted context, from the service's own request (never the model).
    pub context: ContextIn,
    /// The session the call belongs to (the host's id, at most 200
    /// characters; never model output): provenance and session conditions
    /// read it, and fail closed without it. `/v1/decide` reads the session
    /// as it is and changes nothing in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// The trusted context: tenant and env (within the key's), and the policy's declared fields.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContextIn {
    /// The tenant.
    pub tenant: String,
    /// The env.
    pub env: String,
    /// The policy's declared context fields.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = HashMap<String, serde_json::Value>))]
    pub fields: Map<String, Json>,
}

/// `POST /v1/decide`: one request or a list.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum DecideBody {
    /// One request.
    One(CallRequest),
    /// Several.
    Many(Vec<CallRequest>),
}

/// The gateway's answer to a call.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallAnswer {
    /// The call id.
    pub call: String,
    /// Its tenant.
    pub tenant: String,
    /// `allowed` (execute it once, then report the result), `denied` or `pending`.
    pub outcome: Outcome,
    /// Why (the policy's reason); absent for an allowed call.
    pub reason: Option<String>,
    /// The deciding rule (`file:line:column`).
    pub rule: Option<String>,
    /// The credential scope of an allowed call (load credentials for exactly this).
    #[cfg_attr(feature = "openapi", schema(value_type = HashMap<String, serde_json::Value>))]
    pub scope: Map<String, Json>,
    /// The approval a pending call waits for.
    pub approval: Option<ApprovalNeeded>,
    /// Allowed: when an unreported result becomes `result_missing`; pending: when the request for approval expires (ms).
    pub expires_at: Option<u64>,
}

/// What a pending call waits for.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalNeeded {
    /// The approval id (the call id).
    pub id: String,
    /// The keyed digest of the arguments approvers approve.
    pub args_digest: String,
    /// The group approvers must belong to.
    pub group: Option<String>,
    /// Distinct approvals needed.
    pub count: u32,
    /// When the request expires (ms), if it does.
    pub expires_at: Option<u64>,
}

/// Where a call stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallStatus {
    /// The call id.
    pub call: String,
    /// Its tenant.
    pub tenant: String,
    /// `pending`, `approved`, `rejected`, `expired`, `cancelled`, `executed` (held calls);
    /// `allowed`, `denied`, `executed`, `failed`, `result_missing` (calls that were not held).
    pub state: CallState,
    /// When approved: the single-use token for `POST /v1/calls/{id}/execute`.
    pub token: Option<String>,
}

/// The result of an allowed call, as the service reports it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResultBody {
    /// Whether the tool succeeded.
    pub ok: bool,
    /// Its error, when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// What the tool returned (any JSON; a string for text), observed in the
    /// call's session. Absent for a call of a session: the session is
    /// tainted unless the tool's whole output is labelled trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Json>,
}

/// A recorded result.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recorded {
    /// The call id.
    pub call: String,
    /// Its tenant.
    pub tenant: String,
    /// Always true: the result is journaled.
    pub recorded: bool,
}

/// The go-ahead request for an approved call.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// The single-use token (from `GET /v1/calls/{id}` once approved).
    pub token: String,
    /// The arguments, exactly as approved.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub args: Json,
    /// The trusted context, as in the original call (its declared fields are bound too);
    /// when absent, the tenant and env of the approved call with no other fields.
    #[serde(default)]
    pub context: Option<ContextIn>,
}

impl Outcome {
    /// `allowed`, `denied` or `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Pending => "pending",
        }
    }
}

impl CallState {
    /// The state's name on the wire (`result_missing`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Pending => "pending",
            CallState::Approved => "approved",
            CallState::Rejected => "rejected",
            CallState::Expired => "expired",
            CallState::Cancelled => "cancelled",
            CallState::Executed => "executed",
            CallState::Allowed => "allowed",
            CallState::Denied => "denied",
            CallState::Failed => "failed",
            CallState::ResultMissing => "result_missing",
        }
    }
}

impl From<&toolgate_runtime::gateway::CallState> for CallState {
    fn from(s: &toolgate_runtime::gateway::CallState) -> CallState {
        use toolgate_runtime::gateway::CallState as S;
        match s {
            S::Pending => CallState::Pending,
            S::Approved { .. } => CallState::Approved,
            S::Rejected => CallState::Rejected,
            S::Expired => CallState::Expired,
            S::Cancelled => CallState::Cancelled,
            S::Executed => CallState::Executed,
        }
    }
}

/// `POST /v1/sessions/{session}/turns`: what the user said, as the host
/// received it (never model output).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TurnBody {
    /// The user's words (at most 64 KiB). Only keyed digests of its tokens
    /// and its length are kept, never the text.
    pub text: String,
    /// The session's tenant: needed when the key has more than one, and
    /// within the key's tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// A recorded user turn.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TurnRecorded {
    /// The tenant.
    pub tenant: String,
    /// The session.
    pub session: String,
    /// The turn's length in characters (what the journal keeps of it, with
    /// keyed digests of its tokens).
    pub chars: u64,
}

/// What may be shown of a session (`GET /v1/sessions/{session}`): counts
/// and the taint flag, never a value, a digest or a length.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionSummary {
    /// The tenant.
    pub tenant: String,
    /// The session.
    pub session: String,
    /// Whether untrusted content reached the agent in this session.
    pub tainted: bool,
    /// User turns recorded.
    pub turns: u64,
    /// Tool outputs observed.
    pub observations: u64,
    /// Approvals whose values were endorsed in this session.
    pub endorsed: u64,
    /// Calls allowed to run in this session, by tool.
    pub calls: std::collections::BTreeMap<String, u64>,
}

impl SessionSummary {
    /// The wire form of the runtime's summary of `session` of `tenant`.
    pub fn new(
        tenant: String,
        session: String,
        s: toolgate_runtime::store::SessionSummary,
    ) -> SessionSummary {
        SessionSummary {
            tenant,
            session,
            tainted: s.tainted,
            turns: s.turns,
            observations: s.observations,
            endorsed: s.endorsed,
            calls: s.calls,
        }
    }
}

/// Which tools a kill switch stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KillTools {
    /// Writes stop; reads go on.
    Writes,
    /// Every call stops.
    All,
}

fn empty_object() -> Json {
    Json::Object(Map::new())
}

/// Why a wire call is not a call (the field it names is a JSON path of the body).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The id is empty, too long, or holds a control character.
    #[error("`{field}` must be 1 to {max} bytes, none a control character", max = MAX_NAME_BYTES)]
    Name {
        /// The field.
        field: &'static str,
    },
    /// A name the call needs is empty.
    #[error("`{field}` must not be empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// The operating system's random source failed (a call id could not be made).
    #[error("no randomness for a call id: {0}")]
    Random(String),
}

impl WireError {
    /// The request field that is wrong, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            WireError::Name { field } | WireError::Empty { field } => Some(field),
            WireError::Random(_) => None,
        }
    }
}

/// Checks a call id (it names the call in URLs, approvals and the journal):
/// 1 to [`MAX_NAME_BYTES`] bytes, not blank, no control character. Every
/// door that takes a call id from the wire checks with this.
pub fn check_name(field: &'static str, value: &str) -> Result<(), WireError> {
    if value.trim().is_empty()
        || value.len() > MAX_NAME_BYTES
        || value.chars().any(char::is_control)
    {
        return Err(WireError::Name { field });
    }
    Ok(())
}

/// A name the call needs (agent, tool, tenant, env) must not be blank. Its
/// length and characters are the gateway's to judge: it denies a name over
/// [`MAX_NAME_BYTES`] or unknown to the policy and journals the attempt
/// (operator views escape what they print), so the audit keeps it.
fn present(field: &'static str, value: &str) -> Result<(), WireError> {
    if value.trim().is_empty() {
        return Err(WireError::Empty { field });
    }
    Ok(())
}

impl ContextIn {
    /// The trusted context, its names present.
    pub fn into_context(self) -> Result<Context, WireError> {
        present("context.tenant", &self.tenant)?;
        present("context.env", &self.env)?;
        Ok(Context {
            tenant: self.tenant,
            env: self.env,
            fields: self.fields,
        })
    }
}

impl From<&Context> for ContextIn {
    fn from(c: &Context) -> ContextIn {
        ContextIn {
            tenant: c.tenant.clone(),
            env: c.env.clone(),
            fields: c.fields.clone(),
        }
    }
}

impl CallRequest {
    /// The gateway's call, with a generated id (`c_` and 24 random
    /// characters) when none was given. The one conversion of a wire call.
    pub fn into_call(self) -> Result<Call, WireError> {
        self.into_call_or(new_id)
    }

    /// The call to decide without recording it (`/v1/decide`): the same
    /// checks, but an absent id stays empty (no random id made for nothing).
    pub fn into_decided(self) -> Result<Call, WireError> {
        self.into_call_or(|| Ok(String::new()))
    }

    fn into_call_or(self, new_id: fn() -> Result<String, WireError>) -> Result<Call, WireError> {
        let id = match self.id {
            Some(id) => {
                check_name("id", &id)?;
                id
            }
            None => new_id()?,
        };
        present("agent", &self.agent)?;
        present("tool", &self.tool)?;
        Ok(Call {
            id,
            agent: self.agent,
            tool: self.tool,
            args: self.args,
            context: self.context.into_context()?,
            session: self.session,
        })
    }
}

impl From<&Call> for CallRequest {
    fn from(call: &Call) -> CallRequest {
        CallRequest {
            id: Some(call.id.clone()),
            agent: call.agent.clone(),
            tool: call.tool.clone(),
            args: call.args.clone(),
            context: ContextIn::from(&call.context),
            session: call.session.clone(),
        }
    }
}

fn new_id() -> Result<String, WireError> {
    let token =
        toolgate_runtime::gateway::random_token().map_err(|e| WireError::Random(e.to_string()))?;
    Ok(format!("c_{}", token.get(..24).unwrap_or(&token)))
}

/// One held call, as an approver reviews it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalItem {
    /// The approval id (the call id).
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The env.
    pub env: String,
    /// The calling agent.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// The arguments as journaled (fields marked `redact` are redacted).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub args: Json,
    /// The keyed digest of the arguments: approve with this.
    pub args_digest: String,
    /// The rule that requires the approval.
    pub rule: Option<String>,
    /// The policy's reason.
    pub reason: Option<String>,
    /// When it was requested (ms since the epoch).
    pub requested_at: Option<u64>,
    /// When the request expires (ms), if it does.
    pub expires_at: Option<u64>,
    /// The group approvers must belong to.
    pub group: Option<String>,
    /// Distinct approvals needed.
    pub count: u32,
    /// Approvals so far.
    pub approvals: Vec<ApprovalGiven>,
    /// Where it stands: `pending`, `approved`, `rejected`, `expired`, `cancelled` or `executed`.
    pub state: CallState,
}

/// An approval given.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalGiven {
    /// Who.
    pub approver: String,
    /// Why.
    pub reason: String,
}

/// The list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalList {
    /// The held calls, oldest first.
    pub approvals: Vec<ApprovalItem>,
}

/// An approval.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The digest of the arguments the approver reviewed (from the listing).
    pub args_digest: String,
    /// The `requested_at` of the hold the approver reviewed (from the
    /// listing), if given: the approval then applies to that hold only, and
    /// is refused (409) if the id was held again since, even with the same arguments.
    #[serde(default)]
    pub requested_at: Option<u64>,
    /// Why.
    pub reason: String,
}

/// A rejection.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Why.
    pub reason: String,
}

/// Where an approval stands after an approver acted.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalResult {
    /// The approval (call) id.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// `pending` (more approvals needed), `approved` or `rejected` (or
    /// `expired`, `cancelled`, `executed` when the hold moved on meanwhile).
    pub state: CallState,
    /// Approvals so far.
    pub approvals: u32,
    /// Approvals needed.
    pub count: u32,
}

/// An engaged kill switch scope.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KillScopeView {
    /// One tenant, or every tenant (null).
    pub tenant: Option<String>,
    /// One agent, or every agent (null).
    pub agent: Option<String>,
    /// `writes` (writes stop) or `all` (reads stop too).
    pub tools: KillTools,
}

/// The engaged kill switches.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KillStatus {
    /// Every engaged scope.
    pub engaged: Vec<KillScopeView>,
}

/// Engage or release a kill switch.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KillBody {
    /// Engage (true) or release (false).
    pub engaged: bool,
    /// One tenant (absent: every tenant).
    #[serde(default)]
    pub tenant: Option<String>,
    /// One agent (absent: every agent).
    #[serde(default)]
    pub agent: Option<String>,
    /// `writes` (the default) or `all` (reads stop too).
    #[serde(default)]
    pub tools: Option<KillTools>,
    /// Why (journaled).
    pub reason: String,
}

/// An RFC 9457 problem document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Problem))]
pub struct ProblemDoc {
    /// `urn:toolgate:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this request.
    pub detail: String,
    /// The stable code (e.g. `toolgate::gateway::wrong_group`, `invalid_body`).
    pub code: String,
    /// The request field that is wrong (a JSON path such as `context.tenant`, or a query parameter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A refused policy's diagnostics.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub diagnostics: Option<Vec<Json>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(id: Option<&str>, agent: &str) -> CallRequest {
        serde_json::from_value(json!({
            "id": id, "agent": agent, "tool": "kb.read", "args": {"q": 1},
            "context": {"tenant": "acme", "env": "prod", "ticket": "T1"}
        }))
        .expect("a call request")
    }

    #[test]
    fn one_set_of_limits_for_every_name() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(request(Some(&"x".repeat(MAX_NAME_BYTES)), "bot")
            .into_call()
            .is_ok());
        assert_eq!(
            request(Some(&long), "bot").into_call().map(|_| ()),
            Err(WireError::Name { field: "id" })
        );
        assert_eq!(
            request(Some("a\nb"), "bot").into_call().map(|_| ()),
            Err(WireError::Name { field: "id" })
        );
        assert_eq!(
            request(None, " ").into_call().map(|_| ()),
            Err(WireError::Empty { field: "agent" })
        );
        // The gateway judges names it may journal: a long or odd agent is its to deny.
        assert!(request(None, &long).into_call().is_ok());
        let made = request(None, "bot").into_call().expect("an id is made");
        assert!(made.id.starts_with("c_") && made.id.len() == 26);
        assert_eq!(made.context.fields["ticket"], json!("T1"));
    }

    #[test]
    fn a_call_goes_to_the_wire_and_back_unchanged() {
        let mut wire = request(Some("c1"), "bot");
        wire.session = Some("s-1".into());
        let call = wire.into_call().expect("a call");
        assert_eq!(call.session.as_deref(), Some("s-1"));
        let back = serde_json::from_value::<CallRequest>(
            serde_json::to_value(CallRequest::from(&call)).expect("serializes"),
        )
        .expect("reads back")
        .into_call()
        .expect("a call");
        assert_eq!(
            (back.id, back.args, back.context, back.session),
            (call.id, call.args, call.context, call.session)
        );
    }

    #[test]
    fn closed_sets_read_their_wire_names() {
        for s in [
            "pending",
            "approved",
            "rejected",
            "expired",
            "cancelled",
            "executed",
            "allowed",
            "denied",
            "failed",
            "result_missing",
        ] {
            let state: CallState = serde_json::from_value(json!(s)).expect("a state");
            assert_eq!(state.as_str(), s);
        }
        assert!(serde_json::from_value::<CallState>(json!("maybe")).is_err());
        assert!(serde_json::from_value::<KillTools>(json!("some")).is_err());
    }
}
