//! `/v1/approvals`: approvers list held calls (arguments as journaled,
//! redacted fields redacted), approve the digest they reviewed, or reject.
//! The approver is the key: its name, groups and tenants; the gateway
//! refuses self-approval, the wrong group or tenant, and a stale digest.
//! A key limited to some envs or agents sees and acts on their calls only.

use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::problem::Problem;
use crate::App;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use toolgate_api::{
    ApprovalGiven, ApprovalItem, ApprovalList, ApprovalResult, ApproveBody, CallState, ProblemDoc,
    RejectBody,
};
use toolgate_engine::Context;
use toolgate_runtime::host::keys::Role;
use toolgate_runtime::store::{CallKey, Pending};
use utoipa::IntoParams;

/// Filters of `GET /v1/approvals`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `pending` (the default; the only state listed).
    pub state: Option<String>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this agent.
    pub agent: Option<String>,
    /// Only this tool.
    pub tool: Option<String>,
}

async fn item(app: &App, p: Pending) -> Result<ApprovalItem, Problem> {
    let state = app
        .host
        .gateway
        .call_state(&p.key)
        .await?
        .map_or(CallState::Expired, |s| CallState::from(&s));
    // What approvers are shown travels with the pending call (store and snapshots).
    Ok(ApprovalItem {
        id: p.key.id.clone(),
        tenant: p.key.tenant.clone(),
        env: p.binding.env.clone(),
        agent: p.binding.agent.clone(),
        tool: p.binding.tool.clone(),
        args: p.args.clone(),
        args_digest: p.binding.args_digest.clone(),
        rule: p.rule.clone(),
        reason: Some(p.reason.clone()),
        requested_at: Some(p.requested_at),
        expires_at: p.expires_at,
        group: p.group.clone(),
        count: p.count,
        approvals: p
            .approvals
            .into_iter()
            .map(|(approver, reason)| ApprovalGiven { approver, reason })
            .collect(),
        state,
    })
}

/// Held calls waiting for approval, within the key's tenants.
#[utoipa::path(get, path = "/v1/approvals", tag = "approvals", params(ListQuery),
    responses((status = 200, body = ApprovalList), (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<ApprovalList>, Problem> {
    caller
        .require(&app, &[Role::Approver, Role::Operator], "list approvals")
        .await?;
    if q.state.as_deref().is_some_and(|s| s != "pending") {
        return Err(Problem::bad("state", "only `state=pending` is listed"));
    }
    let key = &caller.0;
    let mut waiting: Vec<Pending> = app
        .host
        .gateway
        .waiting()
        .await?
        .into_iter()
        .filter(|p| key.allows_call(&p.key.tenant, &p.binding.env, &p.binding.agent))
        .filter(|p| q.tenant.as_deref().is_none_or(|t| t == p.key.tenant))
        .filter(|p| q.agent.as_deref().is_none_or(|a| a == p.binding.agent))
        .filter(|p| q.tool.as_deref().is_none_or(|t| t == p.binding.tool))
        .collect();
    waiting.sort_by(|a, b| a.key.cmp(&b.key));
    let mut approvals: Vec<ApprovalItem> = Vec::with_capacity(waiting.len());
    for p in waiting {
        approvals.push(item(&app, p).await?);
    }
    approvals.sort_by_key(|a| a.requested_at);
    Ok(Json(ApprovalList { approvals }))
}

/// The tenant of an approval id: given, the key's only tenant, or the one
/// tenant with a waiting call of this id.
async fn tenant_of(
    app: &App,
    caller: &Caller,
    id: &str,
    given: Option<&str>,
) -> Result<String, Problem> {
    if given.is_some() || caller.0.tenants.len() == 1 {
        return caller.tenant(app, given, "approve").await;
    }
    let mut tenants: Vec<String> = app
        .host
        .gateway
        .waiting()
        .await?
        .into_iter()
        .filter(|p| p.key.id == id && caller.0.allows_tenant(&p.key.tenant))
        .map(|p| p.key.tenant)
        .collect();
    tenants.dedup();
    match tenants.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Problem::not_found(format!(
            "no call `{id}` is waiting for approval"
        ))),
        _ => Err(Problem::bad(
            "tenant",
            format!("calls `{id}` of several tenants wait: give `?tenant=`"),
        )),
    }
}

/// The held call `key`, once the caller is shown to act for its tenant,
/// env and agent (else 403, journaled); `None` when there is no such call.
async fn reviewable(
    app: &App,
    caller: &Caller,
    key: &CallKey,
    action: &str,
) -> Result<Option<Pending>, Problem> {
    let Some(pending) = app.host.gateway.pending(key).await? else {
        return Ok(None);
    };
    let context = Context {
        tenant: key.tenant.clone(),
        env: pending.binding.env.clone(),
        fields: serde_json::Map::new(),
    };
    caller
        .within(app, &pending.binding.agent, &context, action)
        .await?;
    Ok(Some(pending))
}

/// Query naming an approval's tenant.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalQuery {
    /// The call's tenant (needed when several tenants have a call of this id).
    pub tenant: Option<String>,
}

/// One held call, in any state.
#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "approvals",
    params(("id" = String, Path, description = "the approval (call) id"), ApprovalQuery),
    responses((status = 200, body = ApprovalItem), (status = 401, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, body = ProblemDoc, content_type = "application/problem+json"), (status = 404, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn show(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ApprovalQuery>,
) -> Result<Json<ApprovalItem>, Problem> {
    caller
        .require(&app, &[Role::Approver, Role::Operator], "read an approval")
        .await?;
    let tenant = tenant_of(&app, &caller, &id, q.tenant.as_deref()).await?;
    let pending = reviewable(
        &app,
        &caller,
        &CallKey::new(&tenant, &id),
        "read an approval",
    )
    .await?
    .ok_or_else(|| Problem::not_found(format!("no held call `{id}` for tenant `{tenant}`")))?;
    Ok(Json(item(&app, pending).await?))
}

async fn result(app: &App, key: &CallKey) -> Result<ApprovalResult, Problem> {
    let pending = app.host.gateway.pending(key).await?;
    Ok(ApprovalResult {
        id: key.id.clone(),
        tenant: key.tenant.clone(),
        state: app
            .host
            .gateway
            .call_state(key)
            .await?
            .map_or(CallState::Expired, |s| CallState::from(&s)),
        approvals: pending
            .as_ref()
            .map_or(0, |p| u32::try_from(p.approvals.len()).unwrap_or(u32::MAX)),
        count: pending.as_ref().map_or(1, |p| p.count),
    })
}

/// Approves a held call as this key's approver; the token goes to the service, not here.
#[utoipa::path(post, path = "/v1/approvals/{id}/approve", tag = "approvals", request_body = ApproveBody,
    params(("id" = String, Path, description = "the approval (call) id"), ApprovalQuery),
    responses(
        (status = 413, description = "the body is over the limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 200, body = ApprovalResult), (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json"), (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn approve(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ApprovalQuery>,
    JsonBody(body): JsonBody<ApproveBody>,
) -> Result<Json<ApprovalResult>, Problem> {
    caller.require(&app, &[Role::Approver], "approve").await?;
    let tenant = tenant_of(&app, &caller, &id, q.tenant.as_deref()).await?;
    let key = CallKey::new(&tenant, &id);
    reviewable(&app, &caller, &key, "approve").await?;
    let who = caller.approver();
    app.host
        .gateway
        .approve_hold(
            &key,
            &who,
            &body.args_digest,
            body.requested_at,
            &body.reason,
        )
        .await?;
    Ok(Json(result(&app, &key).await?))
}

/// Rejects a held call as this key's approver.
#[utoipa::path(post, path = "/v1/approvals/{id}/reject", tag = "approvals", request_body = RejectBody,
    params(("id" = String, Path, description = "the approval (call) id"), ApprovalQuery),
    responses(
        (status = 413, description = "the body is over the limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 200, body = ApprovalResult), (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json"), (status = 404, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn reject(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ApprovalQuery>,
    JsonBody(body): JsonBody<RejectBody>,
) -> Result<Json<ApprovalResult>, Problem> {
    caller.require(&app, &[Role::Approver], "reject").await?;
    let tenant = tenant_of(&app, &caller, &id, q.tenant.as_deref()).await?;
    let key = CallKey::new(&tenant, &id);
    reviewable(&app, &caller, &key, "reject").await?;
    app.host
        .gateway
        .reject(&key, &caller.approver(), &body.reason)
        .await?;
    Ok(Json(result(&app, &key).await?))
}
