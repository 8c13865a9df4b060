//! The URL functions `host`, `port`, `scheme` and `path`: one strict gate in
//! front of the `url` crate (the WHATWG URL Standard, which browsers, Node's
//! `fetch` and `reqwest` implement), so that what a policy reads is what an
//! HTTP client connects to, or an error.
//!
//! The gate refuses every string on which clients are known to disagree with
//! each other or with a naive reading (finding C1 of issue #7): anything but
//! `http`, `https`, `ws` or `wss` written `scheme://host`, backslashes,
//! whitespace and control characters, userinfo, a host with a trailing dot,
//! and IPv6 addresses that embed an IPv4 one. `docs/semantics.md` gives the
//! reasons. A refusal is an evaluation error: a deny applies, a grant does not.

use std::net::Ipv6Addr;
use url::{Host, Url};

/// The schemes the URL functions accept.
pub const SCHEMES: [&str; 4] = ["http", "https", "ws", "wss"];

/// Why the URL functions refuse a string. Not a diagnostic: like every
/// evaluation error it only makes a condition fail (closed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not written `scheme://host…` (no scheme, `scheme:host`, `scheme:/host`,
    /// `scheme:///host`, or no host).
    #[error("not an absolute URL written `scheme://host`")]
    NotAbsolute,
    /// A scheme other than `http`, `https`, `ws` and `wss`.
    #[error("scheme `{0}` is not `http`, `https`, `ws` or `wss`")]
    Scheme(String),
    /// A backslash anywhere (WHATWG reads it as `/` in these schemes; others do not).
    #[error("the URL contains a backslash")]
    Backslash,
    /// Whitespace or a control character anywhere (WHATWG drops some of them).
    #[error("the URL contains whitespace or a control character")]
    Whitespace,
    /// A user name or password (`@` before the host).
    #[error("the URL contains userinfo (`@` before the host)")]
    Userinfo,
    /// A domain ending in `.`: the same DNS name as without it, spelt differently.
    #[error("the host ends with `.`")]
    TrailingDot,
    /// An IPv6 address that reaches an IPv4 host (mapped, compatible, NAT64).
    #[error("the IPv6 host embeds an IPv4 address")]
    EmbeddedIpv4,
    /// Refused by the WHATWG parser itself.
    #[error("not a valid URL: {0}")]
    Invalid(url::ParseError),
}

/// Parses `text` as every URL function does, or says why not.
pub fn parse(text: &str) -> Result<Url, UrlError> {
    check_text(text)?;
    let url = Url::parse(text).map_err(UrlError::Invalid)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Userinfo);
    }
    match url.host() {
        Some(Host::Domain(d)) if d.ends_with('.') => Err(UrlError::TrailingDot),
        Some(Host::Ipv6(a)) if embeds_ipv4(a) => Err(UrlError::EmbeddedIpv4),
        Some(_) => Ok(url),
        None => Err(UrlError::NotAbsolute),
    }
}

/// `host(x)`: lower-case, IDNA to ASCII, IPv4 in dotted decimal, IPv6 in
/// brackets, exactly as [`Url::host_str`] gives it.
pub fn host(text: &str) -> Result<String, UrlError> {
    let url = parse(text)?;
    url.host_str()
        .map(str::to_owned)
        .ok_or(UrlError::NotAbsolute)
}

/// `port(x)`: the explicit port, or the scheme's default (80, 443, 80, 443).
pub fn port(text: &str) -> Result<u16, UrlError> {
    parse(text)?
        .port_or_known_default()
        .ok_or(UrlError::NotAbsolute)
}

/// `scheme(x)`: lower-case `http`, `https`, `ws` or `wss`.
pub fn scheme(text: &str) -> Result<String, UrlError> {
    parse(text).map(|u| u.scheme().to_owned())
}

/// `path(x)`: the path as the client sends it (starting with `/`, dot segments
/// resolved, percent-encoding kept), without query or fragment.
pub fn path(text: &str) -> Result<String, UrlError> {
    parse(text).map(|u| u.path().to_owned())
}

/// The checks made on the text before parsing: characters, scheme, authority.
fn check_text(text: &str) -> Result<(), UrlError> {
    if text.contains('\\') {
        return Err(UrlError::Backslash);
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::Whitespace);
    }
    let (scheme, rest) = text.split_once("://").ok_or(UrlError::NotAbsolute)?;
    let is_scheme = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    };
    if !is_scheme(scheme) {
        return Err(UrlError::NotAbsolute);
    }
    if !SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err(UrlError::Scheme(scheme.to_owned()));
    }
    // Without backslashes, the authority of these schemes ends at `/`, `?` or `#`.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(UrlError::NotAbsolute);
    }
    if authority.contains('@') {
        return Err(UrlError::Userinfo);
    }
    Ok(())
}

/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, other than `::` and `::1`) and NAT64
/// (`64:ff9b::/96`, `64:ff9b:1::/48`) addresses: a dual-stack socket or a
/// NAT64 gateway sends them to the IPv4 host.
fn embeds_ipv4(a: Ipv6Addr) -> bool {
    let s = a.segments();
    let zero = |range: std::ops::Range<usize>| s[range].iter().all(|x| *x == 0);
    let mapped = zero(0..5) && s[5] == 0xffff;
    let translated = zero(0..4) && s[4] == 0xffff && s[5] == 0;
    let compatible = zero(0..6) && !a.is_loopback() && !a.is_unspecified();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && (zero(2..6) || s[2] == 1);
    mapped || translated || compatible || nat64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_urls_give_what_a_client_uses() {
        let u = "HTTPS://Docs.Example.COM:8443/a/./b/../c%2Fd?q=1#f";
        assert_eq!(host(u).as_deref(), Ok("docs.example.com"));
        assert_eq!(port(u), Ok(8443));
        assert_eq!(scheme(u).as_deref(), Ok("https"));
        assert_eq!(path(u).as_deref(), Ok("/a/c%2Fd"));
        assert_eq!(port("ws://x.test"), Ok(80));
        assert_eq!(port("wss://x.test"), Ok(443));
        assert_eq!(path("http://x.test").as_deref(), Ok("/"));
        assert_eq!(path("http://x.test/%2e%2e/etc").as_deref(), Ok("/etc"));
        assert_eq!(host("http://[::1]:80/").as_deref(), Ok("[::1]"));
        assert_eq!(
            host("http://bücher.example/").as_deref(),
            Ok("xn--bcher-kva.example")
        );
        assert_eq!(host("http://ev%69l.com/").as_deref(), Ok("evil.com"));
        assert_eq!(host("http://127.0.0.1./").as_deref(), Ok("127.0.0.1"));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        for (url, why) in [
            ("docs.example.com/x", UrlError::NotAbsolute),
            ("//docs.example.com/x", UrlError::NotAbsolute),
            ("https:docs.example.com", UrlError::NotAbsolute),
            ("https:///evil.com/", UrlError::NotAbsolute),
            ("ftp://x.test/", UrlError::Scheme("ftp".into())),
            ("file://x.test/", UrlError::Scheme("file".into())),
            ("https://x.test\\y", UrlError::Backslash),
            (" https://x.test/", UrlError::Whitespace),
            ("https://x.te\tst/", UrlError::Whitespace),
            ("https://x.test/\u{7f}", UrlError::Whitespace),
            ("https://u:p@x.test/", UrlError::Userinfo),
            ("https://@x.test/", UrlError::Userinfo),
            ("https://x.test./", UrlError::TrailingDot),
            ("http://[::ffff:127.0.0.1]/", UrlError::EmbeddedIpv4),
            ("http://[::7f00:1]/", UrlError::EmbeddedIpv4),
            ("http://[64:ff9b::7f00:1]/", UrlError::EmbeddedIpv4),
        ] {
            assert_eq!(host(url), Err(why), "{url}");
        }
        assert!(matches!(
            host("http://exa mple.com%00/"),
            Err(UrlError::Whitespace)
        ));
        assert!(matches!(host("http://a%00b/"), Err(UrlError::Invalid(_))));
        assert!(matches!(host("http://:80/"), Err(UrlError::Invalid(_))));
    }
}
