//! `/v1/sessions/{session}`: the host records what the user said (a turn)
//! and reads what may be shown of a session (counts and taint, never a
//! value). A session is `(tenant, session)`; the tenant comes from the key,
//! as for calls. Outputs reach a session through `POST /v1/calls/{id}/result`.

use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::problem::Problem;
use crate::App;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use toolgate_api::{ProblemDoc, SessionSummary, TurnBody, TurnRecorded};
use toolgate_runtime::host::keys::Role;
use toolgate_runtime::store::SessionWrite;
use utoipa::IntoParams;

/// Query parameters naming a session's tenant.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// The session's tenant (needed when the key has more than one).
    pub tenant: Option<String>,
}

/// 409: the session is a tombstone (evicted after its idle TTL, or over its
/// cap): nothing is recorded, and decisions on it fail closed until it is
/// forgotten one TTL later.
fn gone(tenant: &str, session: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "session_gone",
        format!(
            "session `{session}` of tenant `{tenant}` was evicted or went over its cap: \
             nothing is recorded in it and decisions on it fail closed; start a new session"
        ),
    )
    .field("session")
}

/// Records what the user said in a session (keyed digests of its tokens and
/// its length, never the text); a session never seen starts here.
///
/// The tenant is the key's when it has exactly one, else the body's `tenant`
/// (within the key's tenants). A turn that takes the session over its cap
/// closes the session (409 `session_capped`); a closed session records
/// nothing (409 `session_gone`).
#[utoipa::path(post, path = "/v1/sessions/{session}/turns", tag = "sessions", request_body = TurnBody,
    params(("session" = String, Path, description = "the session id (1 to 200 characters; the host's, never model output)")),
    responses(
        (status = 201, description = "the turn is recorded", body = TurnRecorded),
        (status = 413, description = "the body is over the limit", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 400, body = ProblemDoc, content_type = "application/problem+json"), (status = 401, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, body = ProblemDoc, content_type = "application/problem+json"), (status = 409, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 503, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn turn(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(session): Path<String>,
    JsonBody(body): JsonBody<TurnBody>,
) -> Result<(StatusCode, Json<TurnRecorded>), Problem> {
    const ACTION: &str = "record a user turn";
    caller.require(&app, &[Role::Service], ACTION).await?;
    let tenant = caller.tenant(&app, body.tenant.as_deref(), ACTION).await?;
    let gateway = &app.host.gateway;
    match gateway.user_turn(&tenant, &session, &body.text).await? {
        SessionWrite::Recorded => Ok((
            StatusCode::CREATED,
            Json(TurnRecorded {
                chars: body.text.chars().count() as u64,
                tenant,
                session,
            }),
        )),
        SessionWrite::Capped => Err(Problem::new(
            StatusCode::CONFLICT,
            "session_capped",
            format!(
                "the turn took session `{session}` of tenant `{tenant}` over its cap: the session \
                 is tainted and closed, and decisions on it fail closed; start a new session"
            ),
        )
        .field("text")),
        SessionWrite::Gone => Err(gone(&tenant, &session)),
    }
}

/// What may be shown of a session: `tainted`, the numbers of turns,
/// observed outputs and endorsements, and the allowed calls by tool; never
/// a value, a digest or a length. A session never seen is empty (reading
/// does not start it); a closed one is 409 `session_gone`.
///
/// Service and operator keys of the session's tenant read it.
#[utoipa::path(get, path = "/v1/sessions/{session}", tag = "sessions",
    params(("session" = String, Path, description = "the session id"), SessionQuery),
    responses((status = 200, body = SessionSummary), (status = 400, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, body = ProblemDoc, content_type = "application/problem+json"), (status = 403, body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, body = ProblemDoc, content_type = "application/problem+json"), (status = 503, body = ProblemDoc, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn summary(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(session): Path<String>,
    Query(q): Query<SessionQuery>,
) -> Result<Json<SessionSummary>, Problem> {
    const ACTION: &str = "read a session";
    caller
        .require(&app, &[Role::Service, Role::Operator], ACTION)
        .await?;
    let tenant = caller.tenant(&app, q.tenant.as_deref(), ACTION).await?;
    match app.host.gateway.session_summary(&tenant, &session).await? {
        Some(summary) => Ok(Json(SessionSummary::new(tenant, session, summary))),
        None => Err(gone(&tenant, &session)),
    }
}
