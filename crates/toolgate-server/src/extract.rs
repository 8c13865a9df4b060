//! The JSON body extractor: `application/json` only (else 415), within the
//! body limit (else 413), and a body that does not fit its type is a 400
//! naming the JSON path of the wrong field.

use crate::problem::Problem;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// A JSON request body's bytes, checked as [`JsonBody`] checks them (415,
/// 413) and parsed by the handler (which may pick the type from them).
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json {
            let p = Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent as `content-type: application/json`",
            );
            return Err(p.field("content-type"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    status,
                    "body_too_large",
                    "the request body is over the limit",
                )
                .field("body")
            } else {
                Problem::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()).field("body")
            }
        })?;
        Ok(JsonBytes(bytes))
    }
}

/// Parses a body, naming the path of the field that does not fit.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || path.is_empty() || inner.is_syntax() || inner.is_eof() {
            "body".to_string()
        } else {
            path
        };
        let detail = if inner.is_syntax() || inner.is_eof() {
            format!("the body is not valid JSON: {inner}")
        } else {
            format!("`{field}`: {inner}")
        };
        Problem::new(StatusCode::BAD_REQUEST, "invalid_body", detail).field(field)
    })
}
