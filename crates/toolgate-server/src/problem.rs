//! Errors as RFC 9457 `application/problem+json`: a stable `code`, a title,
//! a detail, and the request `field` that is wrong when one is. Bad input is
//! always a 4xx; a 5xx means the server could not do its part (the journal).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
pub use toolgate_api::ProblemDoc;
use toolgate_runtime::gateway::{GatewayError, SessionInputError};
use toolgate_runtime::refusal::Refusal;

/// The media type of problems.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer (boxed: handlers return it in every `Err`).
#[derive(Clone, Debug)]
pub struct Problem(Box<ProblemDoc>);

impl std::ops::Deref for Problem {
    type Target = ProblemDoc;
    fn deref(&self) -> &ProblemDoc {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemDoc {
        &mut self.0
    }
}

impl Problem {
    /// A problem with a status, a code and a detail.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Problem(Box::new(ProblemDoc {
            kind: format!("urn:toolgate:problem:{code}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
            field: None,
            diagnostics: None,
        }))
    }

    /// Names the wrong field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: a request field is wrong.
    pub fn bad(field: &str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_request", detail).field(field)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 503: the server could not do its part (nothing happened).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The one mapping of the gateway's refusals to HTTP: who you are (403),
/// what you asked for does not exist (404), the state does not allow it (409).
pub fn refusal(r: &Refusal) -> Problem {
    let status = match r {
        Refusal::WrongTenant | Refusal::SelfApproval | Refusal::WrongGroup => StatusCode::FORBIDDEN,
        Refusal::NoSuchRequest | Refusal::NoSuchLease { .. } => StatusCode::NOT_FOUND,
        Refusal::ReasonRequired => StatusCode::BAD_REQUEST,
        Refusal::StoreUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::DigestMismatch
        | Refusal::ApprovedTwice
        | Refusal::AlreadyApproved
        | Refusal::Rejected
        | Refusal::Expired
        | Refusal::Cancelled { .. }
        | Refusal::IdInUse { .. }
        | Refusal::TokenUnknown
        | Refusal::TokenUsed
        | Refusal::TokenRevoked
        | Refusal::TokenExpired
        | Refusal::TokenBinding
        | Refusal::KillSwitch => StatusCode::CONFLICT,
    };
    let p = Problem::new(status, &r.code(), r.to_string());
    match r {
        Refusal::ReasonRequired => p.field("reason"),
        Refusal::DigestMismatch => p.field("args_digest"),
        Refusal::TokenUnknown
        | Refusal::TokenUsed
        | Refusal::TokenRevoked
        | Refusal::TokenExpired
        | Refusal::TokenBinding => p.field("token"),
        _ => p,
    }
}

/// A session id or a user turn past the limits: 400 naming it, with the
/// gateway's code (nothing was recorded).
fn session_input(e: &SessionInputError) -> Problem {
    let code = miette::Diagnostic::code(e).map_or_else(String::new, |c| c.to_string());
    let field = match e {
        SessionInputError::EmptyId | SessionInputError::IdTooLong { .. } => "session",
        SessionInputError::TurnTooLong { .. } => "text",
    };
    Problem::new(StatusCode::BAD_REQUEST, &code, e.to_string()).field(field)
}

impl From<GatewayError> for Problem {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Refused(r) => refusal(&r),
            GatewayError::Session(e) => session_input(&e),
            GatewayError::Journal(e) => {
                Problem::unavailable(format!("the audit journal could not record: {e}"))
            }
            other => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

/// Turns any error response that is not a problem yet (an unknown route, a
/// wrong method, a body over the limit, a timeout) into one.
pub async fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    if status == StatusCode::BAD_REQUEST {
        // An extractor's rejection (a query string that does not parse): keep its words.
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await;
        let text = bytes.map(|b| String::from_utf8_lossy(&b).into_owned());
        let detail = text.unwrap_or_default();
        return Problem::new(status, "invalid_request", detail).into_response();
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this route does not take this method")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the request body is over the limit"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send `application/json`"),
        _ => ("error", "the request failed"),
    };
    let mut problem = Problem::new(status, code, detail);
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        problem = problem.field("body");
    }
    problem.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_by_who_what_and_state() {
        assert_eq!(refusal(&Refusal::WrongGroup).status, 403);
        assert_eq!(refusal(&Refusal::SelfApproval).status, 403);
        assert_eq!(refusal(&Refusal::NoSuchRequest).status, 404);
        assert_eq!(refusal(&Refusal::TokenUsed).status, 409);
        let stale = refusal(&Refusal::DigestMismatch);
        assert_eq!(
            (stale.status, stale.field.as_deref()),
            (409, Some("args_digest"))
        );
        assert_eq!(stale.code, "toolgate::gateway::digest_mismatch");
        assert_eq!(
            stale.kind,
            "urn:toolgate:problem:toolgate::gateway::digest_mismatch"
        );
        assert_eq!(refusal(&Refusal::ReasonRequired).status, 400);
    }

    #[test]
    fn session_input_past_the_limits_is_a_400_naming_the_field() {
        let long = Problem::from(GatewayError::Session(SessionInputError::IdTooLong {
            chars: 201,
        }));
        assert_eq!((long.status, long.field.as_deref()), (400, Some("session")));
        assert_eq!(long.code, "toolgate::gateway::session_id");
        let turn = Problem::from(GatewayError::Session(SessionInputError::TurnTooLong {
            bytes: 70_000,
        }));
        assert_eq!((turn.status, turn.field.as_deref()), (400, Some("text")));
        assert_eq!(turn.code, "toolgate::gateway::turn_too_long");
    }
}
