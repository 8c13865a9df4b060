//! The operator's endpoints: kill switch, audit, policy and reload, keys,
//! status, metrics; and the unauthenticated health checks.

use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::problem::Problem;
use crate::App;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json_};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use toolgate_api::{
    AuditRecord, KillBody, KillScopeView, KillStatus, KillTools, ProblemDoc, ServerStatus,
};
use toolgate_runtime::host::data::{self, Head};
use toolgate_runtime::host::keys::{Key, Role};
use toolgate_runtime::host::policy::PolicySummary;
use toolgate_runtime::host::ReloadError;
use toolgate_runtime::store::KillScope;
use utoipa::{IntoParams, ToSchema};

/// The engaged kill switches `key` may see: every-tenant ones and its tenants'.
async fn engaged(app: &App, key: &Key) -> Result<KillStatus, Problem> {
    let engaged = app
        .host
        .gateway
        .kill_scopes()
        .await?
        .into_iter()
        .filter(|s| s.tenant.as_deref().is_none_or(|t| key.allows_tenant(t)))
        .map(|s| KillScopeView {
            tenant: s.tenant,
            agent: s.agent,
            tools: if s.all_tools {
                KillTools::All
            } else {
                KillTools::Writes
            },
        })
        .collect();
    Ok(KillStatus { engaged })
}

/// The engaged kill switches.
#[utoipa::path(get, path = "/v1/kill-switch", tag = "operator",
    responses((status = 200, body = KillStatus), (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn kill_status(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<KillStatus>, Problem> {
    caller
        .require(&app, &[Role::Operator], "read the kill switch")
        .await?;
    Ok(Json(engaged(&app, &caller.0).await?))
}

/// Engages or releases a kill switch (durable: it is journaled before it takes effect).
/// Engaging cancels the scope's pending approvals and revokes its unused tokens.
#[utoipa::path(post, path = "/v1/kill-switch", tag = "operator", request_body = KillBody,
    responses(
        (status = 413, description = "the body is over the limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 200, body = KillStatus), (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json"), (status = 503, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn kill_switch(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody<KillBody>,
) -> Result<Json<KillStatus>, Problem> {
    caller
        .require(&app, &[Role::Operator], "use the kill switch")
        .await?;
    let all_tools = body.tools == Some(KillTools::All);
    if body.reason.trim().is_empty() {
        return Err(Problem::bad("reason", "a reason is required"));
    }
    let empty = |v: &Option<String>| v.as_deref().is_some_and(|s| s.trim().is_empty());
    if empty(&body.tenant) || empty(&body.agent) {
        let field = if empty(&body.tenant) {
            "tenant"
        } else {
            "agent"
        };
        return Err(Problem::bad(
            field,
            format!("`{field}` must not be empty (leave it out for all)"),
        ));
    }
    caller
        .for_tenant(&app, body.tenant.as_deref(), "use the kill switch")
        .await?;
    let scope = KillScope {
        tenant: body.tenant,
        agent: body.agent,
        all_tools,
    };
    app.host
        .gateway
        .kill_switch(scope, body.engaged, caller.name(), &body.reason)
        .await?;
    Ok(Json(engaged(&app, &caller.0).await?))
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// From this time: ms since the epoch, or a duration ago (`30m`, `2h`).
    pub since: Option<String>,
    /// Until this time (ms since the epoch, or a duration ago).
    pub until: Option<String>,
    /// Only records after this sequence number (for following).
    pub after: Option<u64>,
    /// Only this kind (`decision`, `approval_granted`, `kill_switch`, ...).
    pub kind: Option<String>,
    /// Only this call id.
    pub call: Option<String>,
    /// Only this tenant.
    pub tenant: Option<String>,
}

fn time_param(field: &str, text: &str, now: u64) -> Result<u64, Problem> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let ago = crate::api::calls::parse_duration(text).ok_or_else(|| {
        Problem::bad(
            field,
            format!("`{field}` is ms since the epoch or a duration like `30m`"),
        )
    })?;
    Ok(now.saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(u64::MAX)))
}

/// Whether one journal record passes the filters and is within the key's
/// tenants (a key limited to some tenants sees only records of them).
fn passes(record: &AuditRecord, q: &AuditQuery, key: &Key, since: u64, until: u64) -> bool {
    let tenant = record.field("tenant");
    (key.tenants.is_empty() || tenant.is_some_and(|t| key.allows_tenant(t)))
        && (since..=until).contains(&record.ts_ms)
        && q.after.is_none_or(|a| record.seq > a)
        && q.kind.as_deref().is_none_or(|k| record.kind == k)
        && q.call
            .as_deref()
            .is_none_or(|c| record.field("call") == Some(c))
        && q.tenant.as_deref().is_none_or(|t| tenant == Some(t))
}

/// The journal's records, filtered, streamed as NDJSON (one record per line, as written).
#[utoipa::path(get, path = "/v1/audit", tag = "operator", params(AuditQuery),
    responses((status = 200, description = "NDJSON: one journal record (an `AuditRecord`) per line, exactly as written", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ProblemDoc, content_type = "application/problem+json"), (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn audit(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Problem> {
    caller
        .require(&app, &[Role::Operator], "read the audit journal")
        .await?;
    let now = toolgate_runtime::host::now_ms();
    let since = q
        .since
        .as_deref()
        .map_or(Ok(0), |s| time_param("since", s, now))?;
    let until = q
        .until
        .as_deref()
        .map_or(Ok(u64::MAX), |s| time_param("until", s, now))?;
    let lines = data::read_audit(&app.host.data)
        .map_err(|e| Problem::unavailable(format!("cannot read the journal: {e}")))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let key = caller.0;
    tokio::task::spawn_blocking(move || {
        let mut chunk = String::new();
        for line in lines {
            let Ok(line) = line else { break };
            let keep = serde_json::from_str::<AuditRecord>(&line)
                .is_ok_and(|r| passes(&r, &q, &key, since, until));
            if keep {
                chunk.push_str(&line);
                chunk.push('\n');
            }
            if chunk.len() >= 64 * 1024
                && tx
                    .blocking_send(Ok(Bytes::from(std::mem::take(&mut chunk))))
                    .is_err()
            {
                return;
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(Bytes::from(chunk)));
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let body = axum::body::Body::from_stream(stream);
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// The journal head: the last record's sequence number and hash.
#[utoipa::path(get, path = "/v1/audit/head", tag = "operator",
    responses((status = 200, body = Head), (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn audit_head(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<Head>, Problem> {
    caller
        .require(&app, &[Role::Operator], "read the audit journal")
        .await?;
    let head = data::audit_head(&app.host.data)
        .map_err(|e| Problem::unavailable(format!("cannot read the journal: {e}")))?;
    head.map(Json)
        .ok_or_else(|| Problem::not_found("the journal is empty"))
}

/// The live policy, and the shadow one if any.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// The live policy.
    #[serde(flatten)]
    pub live: PolicySummary,
    /// The shadow policy, decided beside the live one.
    pub shadow: Option<PolicySummary>,
}

/// The live policy: name, sha256, load time, tools with classes, agents.
#[utoipa::path(get, path = "/v1/policy", tag = "operator",
    responses((status = 200, body = PolicyView), (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn policy(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<PolicyView>, Problem> {
    caller
        .require(&app, &[Role::Operator], "read the policy")
        .await?;
    let shadow = app.host.shadow();
    Ok(Json(PolicyView {
        live: app.host.summary(),
        shadow,
    }))
}

/// Re-reads the policy file and swaps it in if it checks clean; otherwise
/// journals the refusal and answers with its diagnostics (the old one keeps serving).
pub async fn reload_policy(app: &App) -> Result<PolicySummary, Problem> {
    let reloaded = app.host.reload().await;
    count_reload(app, &reloaded);
    match reloaded {
        Ok(summary) => Ok(summary),
        Err(ReloadError::Gateway(e)) => Err(e.into()),
        Err(ReloadError::Refused { path, diagnostics }) => {
            let mut p = Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "policy_refused",
                format!("`{path}` does not check clean; the old policy keeps serving"),
            )
            .field("policy");
            p.diagnostics = Some(diagnostics);
            Err(p)
        }
    }
}

/// Counts a reload (from the API or SIGHUP) in `/metrics`.
pub fn count_reload(app: &App, reloaded: &Result<PolicySummary, ReloadError>) {
    match reloaded {
        Ok(_) => app.stats.reloads_ok.fetch_add(1, Ordering::Relaxed),
        Err(ReloadError::Refused { .. }) => {
            app.stats.reloads_refused.fetch_add(1, Ordering::Relaxed)
        }
        Err(ReloadError::Gateway(_)) => 0,
    };
}

/// Reloads the policy from its file (as SIGHUP does).
#[utoipa::path(post, path = "/v1/policy/reload", tag = "operator",
    responses((status = 200, body = PolicySummary), (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "the new policy does not check clean: its diagnostics", body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn reload(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<PolicySummary>, Problem> {
    caller
        .require(&app, &[Role::Operator], "reload the policy")
        .await?;
    caller.for_tenant(&app, None, "reload the policy").await?;
    reload_policy(&app).await.map(Json)
}

/// The keys (names, roles and scopes; never secrets or hashes).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Every key.
    pub keys: Vec<Key>,
}

/// Lists the keys.
#[utoipa::path(get, path = "/v1/keys", tag = "operator",
    responses((status = 200, body = KeyList), (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn keys(State(app): State<Arc<App>>, caller: Caller) -> Result<Json<KeyList>, Problem> {
    caller.require(&app, &[Role::Operator], "list keys").await?;
    caller.for_tenant(&app, None, "list keys").await?;
    let keys = app
        .keys
        .keys()
        .map_err(Problem::unavailable)?
        .iter()
        .map(Key::public)
        .collect();
    Ok(Json(KeyList { keys }))
}

/// Policy, uptime, pending count, kill switch and journal head.
#[utoipa::path(get, path = "/v1/status", tag = "operator",
    responses((status = 200, body = ServerStatus), (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn status(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<ServerStatus>, Problem> {
    caller
        .require(&app, &[Role::Operator], "read the status")
        .await?;
    let summary = app.host.summary();
    let key = &caller.0;
    let waiting = app.host.gateway.waiting().await?;
    let pending = waiting
        .iter()
        .filter(|p| key.allows_tenant(&p.key.tenant))
        .count();
    Ok(Json(ServerStatus {
        policy: summary.name,
        policy_sha256: summary.sha256,
        uptime_secs: toolgate_runtime::host::now_ms().saturating_sub(app.host.started_at) / 1000,
        pending,
        kill_switch: engaged(&app, key).await?.engaged,
        journal_head: data::audit_head(&app.host.data).ok().flatten(),
    }))
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operator",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn metrics(State(app): State<Arc<App>>, caller: Caller) -> Result<Response, Problem> {
    caller
        .require(&app, &[Role::Operator], "read metrics")
        .await?;
    caller.for_tenant(&app, None, "read metrics").await?;
    let text = crate::metrics::render(&app).await;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Alive.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "the process is up", body = Object)))]
pub async fn healthz() -> Json<Json_> {
    Json(json!({"status": "ok"}))
}

/// Ready: a policy is loaded and the journal is writable.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready", body = Object), (status = 503, body = ProblemDoc, content_type = "application/problem+json")))]
pub async fn readyz(State(app): State<Arc<App>>) -> Result<Json<Json_>, Problem> {
    if !data::journal_writable(&app.host.data.0) {
        return Err(Problem::unavailable("the journal is not writable"));
    }
    if !app.host.gateway.store().healthy() {
        return Err(Problem::unavailable(
            "the state store (redis) does not answer: calls that need state are denied",
        ));
    }
    Ok(Json(
        json!({"status": "ready", "policy": app.host.summary().sha256}),
    ))
}
