//! The operator CLI's HTTP client: one blocking `ureq` agent, the bearer key
//! from `TOOLGATE_KEY`, and server errors (RFC 9457 problems) turned into a
//! message and an exit status.

use crate::Exit;
use serde_json::Value;
use std::time::Duration;

/// Why a request to the server failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server answered with an error status.
    Server {
        /// The HTTP status.
        status: u16,
        /// The message (problem title, detail and field).
        message: String,
    },
    /// No usable answer: connection, TLS or a body that is not what was expected.
    Transport(String),
    /// Bad usage found before asking the server.
    Usage(String),
    /// Refused before asking the server (a stale digest).
    Refused(String),
}

impl Failure {
    /// Prints the failure and picks the exit status: refused (1) for
    /// 401/403/404/409, usage (2) for bad requests, server errors and transport.
    pub(crate) fn report(&self) -> Exit {
        match self {
            Failure::Server { status, message } => {
                eprintln!("error: {message}");
                match status {
                    401 | 403 | 404 | 409 => Exit::Findings,
                    _ => Exit::Usage,
                }
            }
            Failure::Transport(message) | Failure::Usage(message) => {
                eprintln!("error: {message}");
                Exit::Usage
            }
            Failure::Refused(message) => {
                eprintln!("error: {message}");
                Exit::Findings
            }
        }
    }
}

/// A server and the key to talk to it with.
pub(crate) struct Client {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

/// The text of a problem+json answer: `title: detail (field `f`)`, then any diagnostics.
fn problem_message(status: u16, text: &str) -> String {
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

impl Client {
    /// A client for `base` (no trailing slash needed) with an optional bearer key.
    pub(crate) fn new(base: &str, key: Option<String>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(90)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            key: key.filter(|k| !k.trim().is_empty()),
            agent,
        }
    }

    fn auth(&self) -> Option<String> {
        self.key.as_ref().map(|k| format!("Bearer {}", k.trim()))
    }

    /// `GET path` returning the body as text.
    pub(crate) fn get_text(&self, path: &str) -> Result<String, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(a) = self.auth() {
            req = req.header("authorization", a);
        }
        self.finish(&url, req.call())
    }

    /// `GET path` returning JSON.
    pub(crate) fn get(&self, path: &str) -> Result<Value, Failure> {
        let text = self.get_text(path)?;
        parse(&text)
    }

    /// `POST path` with a JSON body, returning JSON.
    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .agent
            .post(&url)
            .header("content-type", "application/json");
        if let Some(a) = self.auth() {
            req = req.header("authorization", a);
        }
        let text = self.finish(&url, req.send(body.to_string()))?;
        parse(&text)
    }

    fn finish(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, Failure> {
        let mut resp = result.map_err(|e| {
            Failure::Transport(format!(
                "cannot reach the server at `{url}`: {e} (set `--url` or `TOOLGATE_URL`)"
            ))
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::Transport(format!("reading the answer from `{url}`: {e}")))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let mut message = problem_message(status, &text);
        if status == 401 && self.key.is_none() {
            message.push_str(" (set `TOOLGATE_KEY` to an operator or approver key)");
        }
        Err(Failure::Server { status, message })
    }
}

fn parse(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text)
        .map_err(|e| Failure::Transport(format!("the server's answer is not JSON: {e}")))
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub(crate) fn encode(text: &str) -> String {
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
pub(crate) fn query(pairs: &[(&str, Option<&str>)]) -> String {
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
    }
}
