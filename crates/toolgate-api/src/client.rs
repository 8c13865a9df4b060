//! The one Rust client of the HTTP API (blocking, `ureq`): the operator CLI
//! and `mcp-proxy --gateway` use it. Answers are read into the API's types;
//! an error status is a [`ClientError::Server`] with the problem's text.

use crate::{
    ApprovalItem, ApprovalList, ApprovalResult, ApproveBody, AuditRecord, CallAnswer, CallRequest,
    CallStatus, ExecuteBody, KillBody, KillStatus, Recorded, RejectBody, ResultBody, ServerStatus,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use thiserror::Error;

/// Why a request did not get the answer it asked for.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The problem's text: `STATUS title: detail (field `f`)`, then any diagnostics.
        message: String,
    },
    /// No usable answer: connection, TLS, or a body that is not what was asked for.
    #[error("{0}")]
    Transport(String),
}

/// A server and the key to talk to it with.
#[derive(Clone)]
pub struct Client {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `base` (no trailing slash needed) with an optional bearer
    /// key; every request ends within `timeout` (long polls included).
    pub fn new(base: &str, key: Option<String>, timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            key: key.filter(|k| !k.trim().is_empty()),
            agent,
        }
    }

    /// Whether a key is set.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    fn auth(&self) -> Option<String> {
        self.key.as_ref().map(|k| format!("Bearer {}", k.trim()))
    }

    /// `GET path`, the body as text.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(a) = self.auth() {
            req = req.header("authorization", a);
        }
        finish(&url, req.call())
    }

    /// `GET path`, the body read as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        parse(&self.get_text(path)?)
    }

    /// `POST path` with a JSON body, the answer read as `T`.
    pub fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let text = serde_json::to_string(body)
            .map_err(|e| ClientError::Transport(format!("cannot write the request: {e}")))?;
        let mut req = self
            .agent
            .post(&url)
            .header("content-type", "application/json");
        if let Some(a) = self.auth() {
            req = req.header("authorization", a);
        }
        parse(&finish(&url, req.send(text))?)
    }

    /// `POST /v1/calls`: the gateway's decision on a call.
    pub fn call(&self, call: &CallRequest) -> Result<CallAnswer, ClientError> {
        self.post("/v1/calls", call)
    }

    /// `POST /v1/calls/{id}/result`: an allowed call's result.
    pub fn result(
        &self,
        id: &str,
        tenant: &str,
        body: &ResultBody,
    ) -> Result<Recorded, ClientError> {
        let path = format!(
            "/v1/calls/{}/result{}",
            encode(id),
            query(&[("tenant", Some(tenant))])
        );
        self.post(&path, body)
    }

    /// `GET /v1/calls/{id}`, waiting up to `wait` (`25s`) while it is pending.
    pub fn status(
        &self,
        id: &str,
        tenant: &str,
        wait: Option<&str>,
    ) -> Result<CallStatus, ClientError> {
        let q = query(&[("tenant", Some(tenant)), ("wait", wait)]);
        self.get(&format!("/v1/calls/{}{q}", encode(id)))
    }

    /// `POST /v1/calls/{id}/execute`: the go-ahead of an approved call.
    pub fn execute(
        &self,
        id: &str,
        tenant: &str,
        body: &ExecuteBody,
    ) -> Result<CallAnswer, ClientError> {
        let path = format!(
            "/v1/calls/{}/execute{}",
            encode(id),
            query(&[("tenant", Some(tenant))])
        );
        self.post(&path, body)
    }

    /// `GET /v1/approvals` with its filters (`tenant`, `agent`, `tool`).
    pub fn approvals(&self, filters: &[(&str, Option<&str>)]) -> Result<ApprovalList, ClientError> {
        self.get(&format!("/v1/approvals{}", query(filters)))
    }

    /// `GET /v1/approvals/{id}`.
    pub fn approval(&self, id: &str, tenant: Option<&str>) -> Result<ApprovalItem, ClientError> {
        self.get(&format!(
            "/v1/approvals/{}{}",
            encode(id),
            query(&[("tenant", tenant)])
        ))
    }

    /// `POST /v1/approvals/{id}/approve`.
    pub fn approve(
        &self,
        id: &str,
        tenant: Option<&str>,
        body: &ApproveBody,
    ) -> Result<ApprovalResult, ClientError> {
        let path = format!(
            "/v1/approvals/{}/approve{}",
            encode(id),
            query(&[("tenant", tenant)])
        );
        self.post(&path, body)
    }

    /// `POST /v1/approvals/{id}/reject`.
    pub fn reject(
        &self,
        id: &str,
        tenant: Option<&str>,
        body: &RejectBody,
    ) -> Result<ApprovalResult, ClientError> {
        let path = format!(
            "/v1/approvals/{}/reject{}",
            encode(id),
            query(&[("tenant", tenant)])
        );
        self.post(&path, body)
    }

    /// `GET /v1/kill-switch`.
    pub fn kill_status(&self) -> Result<KillStatus, ClientError> {
        self.get("/v1/kill-switch")
    }

    /// `GET /v1/status`.
    pub fn server_status(&self) -> Result<ServerStatus, ClientError> {
        self.get("/v1/status")
    }

    /// `GET /v1/audit` with its filters, one record per line as written
    /// (a line that is not a record is skipped).
    pub fn audit(&self, filters: &[(&str, Option<&str>)]) -> Result<Vec<AuditRecord>, ClientError> {
        let text = self.get_text(&format!("/v1/audit{}", query(filters)))?;
        Ok(audit_records(&text).collect())
    }

    /// `POST /v1/kill-switch`.
    pub fn kill_switch(&self, body: &KillBody) -> Result<KillStatus, ClientError> {
        self.post("/v1/kill-switch", body)
    }
}

/// The records of journal lines (NDJSON), skipping lines that are not records.
pub fn audit_records(text: &str) -> impl Iterator<Item = AuditRecord> + '_ {
    text.lines()
        .filter_map(|l| serde_json::from_str::<AuditRecord>(l).ok())
}

fn finish(
    url: &str,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<String, ClientError> {
    let mut resp = result
        .map_err(|e| ClientError::Transport(format!("cannot reach the server at `{url}`: {e}")))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| ClientError::Transport(format!("reading the answer from `{url}`: {e}")))?;
    if (200..300).contains(&status) {
        return Ok(text);
    }
    Err(ClientError::Server {
        status,
        message: problem_message(status, &text),
    })
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ClientError> {
    serde_json::from_str(text).map_err(|e| {
        ClientError::Transport(format!(
            "the server's answer is not what was asked for: {e}"
        ))
    })
}

/// The text of a problem+json answer: `STATUS title: detail (field `f`)`, then any diagnostics.
pub fn problem_message(status: u16, text: &str) -> String {
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        let body = text.trim();
        return if body.is_empty() {
            format!("the server answered {status}")
        } else {
            format!("the server answered {status}: {body}")
        };
    };
    let title = doc["title"].as_str().unwrap_or("error");
    let mut message = format!("{status} {title}");
    if let Some(detail) = doc["detail"].as_str() {
        message.push_str(": ");
        message.push_str(detail);
    }
    if let Some(field) = doc["field"].as_str() {
        message.push_str(&format!(" (field `{field}`)"));
    }
    for d in doc["diagnostics"].as_array().into_iter().flatten() {
        message.push_str(&format!(
            "\n  {}:{}: {}",
            d["line"],
            d["column"],
            d["message"].as_str().unwrap_or("")
        ));
    }
    message
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?a=1&b=2` from the pairs whose value is present (empty when none is).
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_as_title_detail_and_field() {
        let text = r#"{"title":"Bad Request","detail":"a reason is required","field":"reason"}"#;
        assert_eq!(
            problem_message(400, text),
            "400 Bad Request: a reason is required (field `reason`)"
        );
        assert_eq!(problem_message(502, ""), "the server answered 502");
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            query(&[("a", Some("x y&z")), ("b", None), ("c", Some("30m"))]),
            "?a=x%20y%26z&c=30m"
        );
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(encode("a/b~c"), "a%2Fb~c");
    }
}
