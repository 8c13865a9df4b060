//! The OpenAPI 3.1 document, generated from the handlers and types
//! (`utoipa`), served at `/v1/openapi.json` and checked in as docs/openapi.json.

use crate::api::{admin, approvals, calls, sessions};
use axum::Json;
use toolgate_api as api;
use toolgate_runtime::host::{data, keys, policy};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API's document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Toolgate gateway API", description = "Decisions, calls, sessions, approvals, kill switch and audit over HTTP (`policyc serve`). See docs/server.md."),
    paths(
        calls::decide, calls::create, calls::state, calls::result, calls::execute,
        sessions::turn, sessions::summary,
        approvals::list, approvals::show, approvals::approve, approvals::reject,
        admin::kill_status, admin::kill_switch, admin::audit, admin::audit_head,
        admin::policy, admin::reload, admin::keys, admin::status, admin::metrics,
        admin::healthz, admin::readyz,
    ),
    components(schemas(
        api::ProblemDoc, api::CallRequest, api::ContextIn, api::DecideBody, calls::DecideAnswer, api::CallAnswer,
        api::ApprovalNeeded, api::CallStatus, api::ResultBody, api::Recorded, api::ExecuteBody,
        api::Outcome, api::CallState, api::KillTools,
        api::TurnBody, api::TurnRecorded, api::SessionSummary,
        api::ApprovalItem, api::ApprovalGiven, api::ApprovalList, api::ApproveBody,
        api::RejectBody, api::ApprovalResult, api::KillScopeView, api::KillStatus,
        api::KillBody, admin::PolicyView, admin::KeyList, admin::Status, data::Head, data::SignedHead,
        policy::PolicySummary, policy::ToolSummary, keys::Key, keys::Role,
    )),
    modifiers(&Bearer),
    tags(
        (name = "calls", description = "a service asks before each tool call (service keys)"),
        (name = "sessions", description = "the host records user turns and reads a session's summary (service keys; operators read)"),
        (name = "approvals", description = "humans approve or reject held calls (approver keys)"),
        (name = "operator", description = "kill switch, policy, audit, metrics (operator keys)"),
        (name = "health", description = "unauthenticated health checks"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("an API key from `policyc keys add`"))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document as JSON (pretty, with a final newline: the checked-in form).
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut text = doc.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> Json<serde_json::Value> {
    Json(serde_json::from_str(&document()).unwrap_or_default())
}
