//! `/v1/approvals`: approvers list held calls (arguments as journaled,
//! redacted fields redacted), approve the digest they reviewed, or reject.
//! The approver is the key: its name, groups and tenants; the gateway
//! refuses self-approval, the wrong group or tenant, and a stale digest.
//! A key limited to some envs or agents sees and acts on their calls only.

use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::keys::Role;
use crate::problem::{Problem, ProblemDoc};
use crate::App;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use std::sync::Arc;
use toolgate_engine::Context;
use toolgate_runtime::store::{CallKey, Pending};
use utoipa::{IntoParams, ToSchema};

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

/// One held call, as an approver reviews it.
#[derive(Debug, Serialize, ToSchema)]
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
    #[schema(value_type = Object)]
    pub args: Json_,
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
    /// `pending`, `approved`, `rejected`, `expired`, `cancelled` or `executed`.
    pub state: String,
}

/// An approval given.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalGiven {
    /// Who.
    pub approver: String,
    /// Why.
    pub reason: String,
}

/// The list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    /// The held calls, oldest first.
    pub approvals: Vec<ApprovalItem>,
}

async fn item(app: &App, p: Pending) -> Result<ApprovalItem, Problem> {
    let state = app
        .gateway
        .call_state(&p.key)
        .await?
        .map_or("expired", |s| s.as_str())
        .to_string();
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
    let Some(pending) = app.gateway.pending(key).await? else {
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

/// An approval.
#[derive(Debug, Deserialize, ToSchema)]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Why.
    pub reason: String,
}

/// Where an approval stands after an approver acted.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalResult {
    /// The approval (call) id.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// `pending` (more approvals needed), `approved` or `rejected`.
    pub state: String,
    /// Approvals so far.
    pub approvals: u32,
    /// Approvals needed.
    pub count: u32,
}

async fn result(app: &App, key: &CallKey) -> Result<ApprovalResult, Problem> {
    let pending = app.gateway.pending(key).await?;
    Ok(ApprovalResult {
        id: key.id.clone(),
        tenant: key.tenant.clone(),
        state: app
            .gateway
            .call_state(key)
            .await?
            .map_or("expired", |s| s.as_str())
            .to_string(),
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
    app.gateway
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
    app.gateway
        .reject(&key, &caller.approver(), &body.reason)
        .await?;
    Ok(Json(result(&app, &key).await?))
}
