//! `/v1/decide` and `/v1/calls`: a service asks before each tool call, runs
//! it only when allowed, reports the result; a held call is polled and, once
//! approved, executed with its single-use token.

use crate::auth::Caller;
use crate::extract::{parse, JsonBody, JsonBytes};
use crate::keys::Role;
use crate::problem::{refusal, Problem, ProblemDoc};
use crate::{App, LongPolls};
use axum::extract::{Extension, Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json_};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toolgate_engine::{Context, Request};
use toolgate_runtime::gateway::{Call, Denial, GatewayError, Hold, Lease, Verdict};
use toolgate_runtime::refusal::Refusal;
use toolgate_runtime::store::CallKey;
use utoipa::{IntoParams, ToSchema};

/// What `POST /v1/calls` (and `/execute`) decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Execute it once, then report the result.
    Allowed,
    /// Not let through.
    Denied,
    /// Held for approval.
    Pending,
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

/// Where a call stands (`GET /v1/calls/{id}`): a held call's state, or the
/// outcome of a call that was not held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
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

impl StateName {
    fn held(s: &toolgate_runtime::gateway::CallState) -> StateName {
        use toolgate_runtime::gateway::CallState as S;
        match s {
            S::Pending => StateName::Pending,
            S::Approved { .. } => StateName::Approved,
            S::Rejected => StateName::Rejected,
            S::Expired => StateName::Expired,
            S::Cancelled => StateName::Cancelled,
            S::Executed => StateName::Executed,
        }
    }

    fn recent(r: crate::index::Recent) -> StateName {
        use crate::index::Recent as R;
        match r {
            R::Allowed => StateName::Allowed,
            R::Denied => StateName::Denied,
            R::Executed(true) => StateName::Executed,
            R::Executed(false) => StateName::Failed,
            R::ResultMissing => StateName::ResultMissing,
        }
    }
}

/// A proposed tool call.
#[derive(Debug, Deserialize, ToSchema)]
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
    #[schema(value_type = HashMap<String, serde_json::Value>)]
    pub args: Json_,
    /// The trusted context, from the service's own request (never the model).
    pub context: ContextIn,
}

/// The trusted context: tenant and env (within the key's), and the policy's declared fields.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContextIn {
    /// The tenant.
    pub tenant: String,
    /// The env.
    pub env: String,
    /// The policy's declared context fields.
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, serde_json::Value>)]
    pub fields: Map<String, Json_>,
}

fn empty_object() -> Json_ {
    Json_::Object(Map::new())
}

impl CallRequest {
    /// The call, with a generated id when none was given.
    fn into_call(self) -> Result<Call, Problem> {
        self.into_call_or(new_id)
    }

    /// The call to decide for `/v1/decide`, which journals nothing and reads
    /// no id: an absent id stays empty (no random id made for nothing).
    fn into_decided(self) -> Result<Call, Problem> {
        self.into_call_or(|| Ok(String::new()))
    }

    fn into_call_or(self, new_id: fn() -> Result<String, Problem>) -> Result<Call, Problem> {
        for (field, value) in [
            ("agent", &self.agent),
            ("tool", &self.tool),
            ("context.tenant", &self.context.tenant),
            ("context.env", &self.context.env),
        ] {
            if value.trim().is_empty() {
                return Err(Problem::bad(field, format!("`{field}` must not be empty")));
            }
        }
        let id = match self.id {
            Some(id) if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) => {
                return Err(Problem::bad(
                    "id",
                    "`id` must be 1 to 200 characters, none a control character",
                ));
            }
            Some(id) => id,
            None => new_id()?,
        };
        Ok(Call {
            id,
            agent: self.agent,
            tool: self.tool,
            args: self.args,
            context: Context {
                tenant: self.context.tenant,
                env: self.context.env,
                fields: self.context.fields,
            },
        })
    }
}

fn new_id() -> Result<String, Problem> {
    let token = toolgate_runtime::gateway::random_token().map_err(Problem::from)?;
    Ok(format!("c_{}", token.get(..24).unwrap_or(&token)))
}

/// `POST /v1/decide`: one request or a list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum DecideBody {
    /// One request.
    One(CallRequest),
    /// Several.
    Many(Vec<CallRequest>),
}

/// `POST /v1/decide`'s answer: one decision (an object) for one request, a
/// list of them for a list. Only its schema is used (the handler answers JSON).
pub struct DecideAnswer;

impl utoipa::PartialSchema for DecideAnswer {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder};
        OneOfBuilder::new()
            .item(ObjectBuilder::new())
            .item(ArrayBuilder::new().items(ObjectBuilder::new()))
            .into()
    }
}

impl ToSchema for DecideAnswer {}

/// A pure decision (the same JSON as `policyc eval`): nothing is journaled,
/// no budget is charged, no kill switch is consulted.
#[utoipa::path(post, path = "/v1/decide", tag = "calls",
    request_body(content = DecideBody, description = "one request or a list"),
    responses(
        (status = 413, description = "the body is over the limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 200, description = "the decision, or one per request", body = DecideAnswer),
        (status = 400, body = ProblemDoc, content_type = "application/problem+json"), (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn decide(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBytes(body): JsonBytes,
) -> Result<Json<Json_>, Problem> {
    caller.require(&app, &[Role::Service], "decide").await?;
    let policy = app.gateway.policy();
    // Parsed straight into requests (a list names its wrong field `[i].field`).
    let many = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let items: Vec<CallRequest> = match many {
        true => parse(&body)?,
        false => vec![parse(&body)?],
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let prefix = if many {
            format!("[{i}]")
        } else {
            String::new()
        };
        let call = item.into_decided().map_err(|p| prefixed(p, &prefix))?;
        caller
            .within(&app, &call.agent, &call.context, "decide")
            .await?;
        let req = Request {
            agent: &call.agent,
            tool: &call.tool,
            args: &call.args,
            context: &call.context,
            now: app.gateway.now(),
            session: None,
        };
        out.push(policy.engine().decide(&req).to_json(&req));
    }
    Ok(Json(if many {
        Json_::Array(out)
    } else {
        out.pop().unwrap_or_default()
    }))
}

fn prefixed(mut p: Problem, prefix: &str) -> Problem {
    if !prefix.is_empty() {
        p.field = p.field.take().map(|f| format!("{prefix}.{f}"));
    }
    p
}

/// The gateway's answer to a call.
#[derive(Debug, Serialize, ToSchema)]
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
    #[schema(value_type = HashMap<String, serde_json::Value>)]
    pub scope: Map<String, Json_>,
    /// The approval a pending call waits for.
    pub approval: Option<ApprovalNeeded>,
    /// Allowed: when an unreported result becomes `result_missing`; pending: when the request for approval expires (ms).
    pub expires_at: Option<u64>,
}

/// What a pending call waits for.
#[derive(Debug, Serialize, ToSchema)]
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

fn allowed(lease: Lease) -> CallAnswer {
    CallAnswer {
        call: lease.key.id,
        tenant: lease.key.tenant,
        outcome: Outcome::Allowed,
        reason: None,
        rule: lease.rule,
        scope: lease.scope.into_iter().collect(),
        approval: None,
        expires_at: Some(lease.expires_at),
    }
}

fn denied(call: &Call, denial: Denial) -> CallAnswer {
    CallAnswer {
        call: call.id.clone(),
        tenant: call.context.tenant.clone(),
        outcome: Outcome::Denied,
        reason: Some(denial.reason),
        rule: denial.rule,
        scope: Map::new(),
        approval: None,
        expires_at: None,
    }
}

fn held(call: &Call, hold: Hold) -> CallAnswer {
    CallAnswer {
        call: hold.id.clone(),
        tenant: call.context.tenant.clone(),
        outcome: Outcome::Pending,
        reason: Some(hold.reason),
        rule: hold.rule,
        scope: Map::new(),
        approval: Some(ApprovalNeeded {
            id: hold.id,
            args_digest: hold.args_digest,
            group: hold.group,
            count: hold.count,
            expires_at: hold.expires_at,
        }),
        expires_at: hold.expires_at,
    }
}

/// Decides and enforces a call: `allowed` means the service may execute it
/// once with credentials for `scope`, then `POST /v1/calls/{id}/result`.
#[utoipa::path(post, path = "/v1/calls", tag = "calls", request_body = CallRequest,
    responses(
        (status = 413, description = "the body is over the limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 200, body = CallAnswer), (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json"), (status = 409, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody<CallRequest>,
) -> Result<Json<CallAnswer>, Problem> {
    caller.require(&app, &[Role::Service], "call").await?;
    let call = body.into_call()?;
    caller
        .within(&app, &call.agent, &call.context, "call")
        .await?;
    let in_use = |state| {
        refusal(&Refusal::IdInUse {
            id: call.id.clone(),
            state,
        })
        .field("id")
    };
    if app.index.recent(&call.key()).is_some() {
        return Err(in_use("decided"));
    }
    let start = Instant::now();
    let result = app.gateway.authorize(&call).await;
    let answer = match result {
        Ok(Verdict::Allowed(lease)) => allowed(lease),
        Ok(Verdict::Pending(hold)) => held(&call, hold),
        Ok(Verdict::Denied(denial)) => denied(&call, denial),
        Err(GatewayError::Refused(Refusal::IdInUse { state, .. })) => return Err(in_use(state)),
        Err(e) => return Err(e.into()),
    };
    count(
        &app,
        &call,
        answer.outcome.as_str(),
        start.elapsed().as_secs_f64(),
    );
    Ok(Json(answer))
}

fn count(app: &App, call: &Call, outcome: &str, secs: f64) {
    let (agent, tool) = {
        let s = app.summary.read().unwrap_or_else(|p| p.into_inner());
        let agent = s.agents.contains(&call.agent);
        let tool = s.tools.iter().any(|t| t.name == call.tool);
        (
            if agent { call.agent.as_str() } else { "other" },
            if tool { call.tool.as_str() } else { "other" },
        )
    };
    app.stats.decision(outcome, agent, tool, secs);
}

/// Query parameters naming a call's tenant.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// The call's tenant (needed when the key has more than one).
    pub tenant: Option<String>,
    /// Long poll: wait up to this long while the call is pending (`30s`, `500ms`, `2m`, or seconds).
    pub wait: Option<String>,
}

/// Where a call stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallStatus {
    /// The call id.
    pub call: String,
    /// Its tenant.
    pub tenant: String,
    /// `pending`, `approved`, `rejected`, `expired`, `cancelled`, `executed` (held calls);
    /// `allowed`, `denied`, `executed`, `failed`, `result_missing` (calls that were not held).
    pub state: StateName,
    /// When approved: the single-use token for `POST /v1/calls/{id}/execute`.
    pub token: Option<String>,
}

/// Parses `30s`, `500ms`, `2m` or a number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.saturating_mul(60))),
        "h" => Some(Duration::from_secs(n.saturating_mul(3600))),
        _ => None,
    }
}

/// Where a call stands, once the caller is shown to act for its agent and
/// env (else 403, journaled: its token is its agent's); `None` when the
/// server knows no such call.
async fn status_of(
    app: &App,
    caller: &Caller,
    key: &CallKey,
) -> Result<Option<CallStatus>, Problem> {
    let held = app.gateway.call_state(key).await?;
    let ((state, token), agent, env) = match (held, app.gateway.pending(key).await?) {
        (Some(s), Some(p)) => {
            let token = match &s {
                toolgate_runtime::gateway::CallState::Approved { token } => token.clone(),
                _ => None,
            };
            ((StateName::held(&s), token), p.binding.agent, p.binding.env)
        }
        _ => match app.index.recent(key) {
            Some(r) => ((StateName::recent(r.outcome), None), r.agent, r.env),
            None => return Ok(None),
        },
    };
    let context = Context {
        tenant: key.tenant.clone(),
        env,
        fields: Map::new(),
    };
    caller.within(app, &agent, &context, "read a call").await?;
    Ok(Some(CallStatus {
        call: key.id.clone(),
        tenant: key.tenant.clone(),
        state,
        token,
    }))
}

/// A call's state; `?wait=30s` holds the answer while it is pending.
///
/// Only a key that may act for the call's agent and env reads it (else 403).
/// When every long poll's place is taken, `?wait=` answers at once.
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls",
    params(("id" = String, Path, description = "the call id"), TenantQuery),
    responses((status = 200, body = CallStatus), (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json"), (status = 404, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn state(
    State(app): State<Arc<App>>,
    Extension(polls): Extension<LongPolls>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<CallStatus>, Problem> {
    caller
        .require(&app, &[Role::Service], "read a call")
        .await?;
    let tenant = caller
        .tenant(&app, q.tenant.as_deref(), "read a call")
        .await?;
    let wait = match q.wait.as_deref() {
        None => Duration::ZERO,
        Some(w) => parse_duration(w)
            .ok_or_else(|| Problem::bad("wait", "`wait` must look like `30s`, `500ms` or `2m`"))?,
    };
    let key = CallKey::new(&tenant, &id);
    let deadline = Instant::now() + wait.min(app.max_wait);
    let mut permit = None;
    loop {
        let status = status_of(&app, &caller, &key)
            .await?
            .ok_or_else(|| Problem::not_found(format!("no call `{id}` for tenant `{tenant}`")))?;
        if status.state != StateName::Pending || Instant::now() >= deadline {
            return Ok(Json(status));
        }
        // Waiting needs one of the long polls' places; without one, answer now.
        if permit.is_none() {
            permit = polls.0.clone().try_acquire_owned().ok();
            if permit.is_none() {
                return Ok(Json(status));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The result of an allowed call, as the service reports it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultBody {
    /// Whether the tool succeeded.
    pub ok: bool,
    /// Its error, when it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// A recorded result.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    /// The call id.
    pub call: String,
    /// Its tenant.
    pub tenant: String,
    /// Always true: the result is journaled.
    pub recorded: bool,
}

/// Reports an allowed call's result (journaled as `execution`).
#[utoipa::path(post, path = "/v1/calls/{id}/result", tag = "calls", request_body = ResultBody,
    params(("id" = String, Path, description = "the call id"), TenantQuery),
    responses(
        (status = 413, description = "the body is over the limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 200, body = Recorded), (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json"), (status = 404, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn result(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TenantQuery>,
    JsonBody(body): JsonBody<ResultBody>,
) -> Result<Json<Recorded>, Problem> {
    caller
        .require(&app, &[Role::Service], "report a result")
        .await?;
    let tenant = caller
        .tenant(&app, q.tenant.as_deref(), "report a result")
        .await?;
    let key = CallKey::new(&tenant, &id);
    if let Some((agent, env)) = app.gateway.lease_holder(&key).await? {
        let context = Context {
            tenant: tenant.clone(),
            env,
            fields: Map::new(),
        };
        caller
            .within(&app, &agent, &context, "report a result")
            .await?;
    }
    let outcome = if body.ok {
        Ok(())
    } else {
        Err(body.error.unwrap_or_else(|| "failed".into()))
    };
    app.gateway.complete(&key, outcome).await?;
    Ok(Json(Recorded {
        call: id,
        tenant,
        recorded: true,
    }))
}

/// The go-ahead request for an approved call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// The single-use token (from `GET /v1/calls/{id}` once approved).
    pub token: String,
    /// The arguments, exactly as approved.
    #[schema(value_type = Object)]
    pub args: Json_,
    /// The trusted context, as in the original call (its declared fields are bound too);
    /// when absent, the tenant and env of the approved call with no other fields.
    #[serde(default)]
    pub context: Option<ContextIn>,
}

/// Executes an approved call: the token must match this exact call, be
/// unused and unexpired, and no kill switch may stop it. `allowed` comes
/// back with the scope; report the result as for any allowed call.
#[utoipa::path(post, path = "/v1/calls/{id}/execute", tag = "calls", request_body = ExecuteBody,
    params(("id" = String, Path, description = "the call id"), TenantQuery),
    responses(
        (status = 413, description = "the body is over the limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 200, body = CallAnswer), (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json"), (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn execute(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TenantQuery>,
    JsonBody(body): JsonBody<ExecuteBody>,
) -> Result<Json<CallAnswer>, Problem> {
    caller
        .require(&app, &[Role::Service], "execute a call")
        .await?;
    let given = body
        .context
        .as_ref()
        .map(|c| c.tenant.as_str())
        .or(q.tenant.as_deref());
    let tenant = caller.tenant(&app, given, "execute a call").await?;
    let key = CallKey::new(&tenant, &id);
    let pending =
        app.gateway.pending(&key).await?.ok_or_else(|| {
            Problem::not_found(format!("no held call `{id}` for tenant `{tenant}`"))
        })?;
    let context = match body.context {
        Some(c) => Context {
            tenant: c.tenant,
            env: c.env,
            fields: c.fields,
        },
        None => Context {
            tenant,
            env: pending.binding.env.clone(),
            fields: Map::new(),
        },
    };
    let call = Call {
        id,
        agent: pending.binding.agent.clone(),
        tool: pending.binding.tool.clone(),
        args: body.args,
        context,
    };
    caller
        .within(&app, &call.agent, &call.context, "execute a call")
        .await?;
    match app.gateway.authorize_approved(&call, &body.token).await? {
        Verdict::Allowed(lease) => Ok(Json(allowed(lease))),
        Verdict::Denied(denial) => Ok(Json(denied(&call, denial))),
        Verdict::Pending(hold) => Ok(Json(held(&call, hold))),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_the_docs_say() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        for bad in [
            "",
            "s",
            "-1s",
            "1d",
            "1.5s",
            "forever",
            "99999999999999999999s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
