//! `/v1/decide` and `/v1/calls`: a service asks before each tool call, runs
//! it only when allowed, reports the result; a held call is polled and, once
//! approved, executed with its single-use token.

use crate::auth::Caller;
use crate::extract::{parse, JsonBody, JsonBytes};
use crate::problem::{refusal, Problem};
use crate::{App, LongPolls};
use axum::extract::{Extension, Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value as Json_};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toolgate_api::{
    ApprovalNeeded, CallAnswer, CallRequest, CallState, CallStatus, DecideBody, ExecuteBody,
    Outcome, ProblemDoc, Recorded, ResultBody,
};
use toolgate_engine::Context;
use toolgate_runtime::gateway::{Call, Denial, GatewayError, Hold, Lease, Verdict};
use toolgate_runtime::host::keys::Role;
use toolgate_runtime::refusal::Refusal;
use toolgate_runtime::store::CallKey;
use utoipa::{IntoParams, ToSchema};

/// The wire state of a call that was not held, from the journal's index.
fn recent(r: toolgate_runtime::host::index::Recent) -> CallState {
    use toolgate_runtime::host::index::Recent as R;
    match r {
        R::Allowed => CallState::Allowed,
        R::Denied => CallState::Denied,
        R::Executed(true) => CallState::Executed,
        R::Executed(false) => CallState::Failed,
        R::ResultMissing => CallState::ResultMissing,
    }
}

/// A wire call that is not a call, as a 400 naming the field (or a 500
/// when no id could be made).
fn wire_problem(e: toolgate_api::WireError) -> Problem {
    match e.field() {
        Some(field) => Problem::bad(field, e.to_string()),
        None => Problem::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "no_randomness",
            e.to_string(),
        ),
    }
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
/// no budget is charged, no kill switch is consulted. A request with a
/// `session` is decided against that session as it is now, and changes
/// nothing in it.
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
        let call = item
            .into_decided()
            .map_err(|e| prefixed(wire_problem(e), &prefix))?;
        caller
            .within(&app, &call.agent, &call.context, "decide")
            .await?;
        let decided = app
            .host
            .gateway
            .evaluate(&call, |policy, req| {
                policy.engine().decide(req).to_json(req)
            })
            .await;
        out.push(decided.map_err(|e| prefixed(e.into(), &prefix))?);
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
    let call = body.into_call().map_err(wire_problem)?;
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
    if app.host.index.recent(&call.key()).is_some() {
        return Err(in_use("decided"));
    }
    let start = Instant::now();
    let result = app.host.gateway.authorize(&call).await;
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
    let (agent, tool) = app.host.with_summary(|s| {
        let agent = s.agents.contains(&call.agent);
        let tool = s.tools.iter().any(|t| t.name == call.tool);
        (
            if agent { call.agent.as_str() } else { "other" },
            if tool { call.tool.as_str() } else { "other" },
        )
    });
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
    let held = app.host.gateway.call_state(key).await?;
    let ((state, token), agent, env) = match (held, app.host.gateway.pending(key).await?) {
        (Some(s), Some(p)) => {
            let token = match &s {
                toolgate_runtime::gateway::CallState::Approved { token } => token.clone(),
                _ => None,
            };
            ((CallState::from(&s), token), p.binding.agent, p.binding.env)
        }
        _ => match app.host.index.recent(key) {
            Some(r) => ((recent(r.outcome), None), r.agent, r.env),
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
        if status.state != CallState::Pending || Instant::now() >= deadline {
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
    if let Some((agent, env)) = app.host.gateway.lease_holder(&key).await? {
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
        Err(body.error.clone().unwrap_or_else(|| "failed".into()))
    };
    let output = body.output.as_ref();
    app.host.gateway.complete(&key, outcome, output).await?;
    Ok(Json(Recorded {
        call: id,
        tenant,
        recorded: true,
    }))
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
        app.host.gateway.pending(&key).await?.ok_or_else(|| {
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
        session: None,
        id,
        agent: pending.binding.agent.clone(),
        tool: pending.binding.tool.clone(),
        args: body.args,
        context,
    };
    caller
        .within(&app, &call.agent, &call.context, "execute a call")
        .await?;
    match app
        .host
        .gateway
        .authorize_approved(&call, &body.token)
        .await?
    {
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
