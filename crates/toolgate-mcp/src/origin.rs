//! DNS-rebinding protection for `--listen` (the MCP Streamable HTTP
//! transport: servers MUST validate `Origin`). The listener binds loopback
//! only, so a request whose `Host` or `Origin` names any other host comes
//! from a page that rebound its name to 127.0.0.1: it is refused with 403
//! before its key is even looked at. A missing `Origin` (non-browser
//! clients) is fine; a missing or unparsable `Host` is not.

use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The middleware: passes local requests on, refuses the others.
pub async fn local_only(request: Request, next: Next) -> Response {
    match refusal(request.headers()) {
        None => next.run(request).await,
        Some(why) => {
            let body =
                json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": why}});
            (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
        }
    }
}

/// Why the request is not a local one, if it is not.
fn refusal(headers: &HeaderMap) -> Option<String> {
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    match text(header::HOST) {
        Some(host) if is_local(&format!("http://{host}/")) => {}
        Some(host) => return Some(format!("`Host: {host}` is not this loopback listener")),
        None => return Some("a `Host` header is required".into()),
    }
    match text(header::ORIGIN) {
        Some(origin) if !is_local(origin) => {
            Some(format!("`Origin: {origin}` is not a loopback origin"))
        }
        _ => None,
    }
}

/// Whether `url` is an http(s) URL of a loopback host.
fn is_local(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(header::HOST, HeaderValue::from_str(v).unwrap());
        }
        if let Some(v) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn loopback_hosts_and_origins_pass() {
        for host in [
            "127.0.0.1:8282",
            "localhost:8282",
            "LOCALHOST",
            "[::1]:9",
            "127.0.0.2",
        ] {
            assert_eq!(refusal(&headers(Some(host), None)), None, "{host}");
        }
        let ok = headers(Some("127.0.0.1:1"), Some("http://localhost:3000"));
        assert_eq!(refusal(&ok), None);
    }

    #[test]
    fn other_hosts_and_origins_are_refused() {
        for host in [
            "evil.example.com",
            "evil.example.com:8282",
            "localhost.evil.com",
            "10.0.0.1",
        ] {
            assert!(refusal(&headers(Some(host), None)).is_some(), "{host}");
        }
        assert!(refusal(&headers(None, None)).is_some());
        for origin in [
            "http://evil.example.com",
            "null",
            "file://",
            "http://127.0.0.1.evil.com",
        ] {
            let h = headers(Some("127.0.0.1:1"), Some(origin));
            assert!(refusal(&h).is_some(), "{origin}");
        }
    }
}
