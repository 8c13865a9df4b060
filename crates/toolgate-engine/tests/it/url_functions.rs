//! Finding C1 of issue #7: `host()` must name the host a real HTTP client
//! (WHATWG: browsers, `fetch`, the `url` crate and so `reqwest`) connects to,
//! or fail, so that a grant on `host(args.url)` cannot be satisfied by a URL
//! that goes elsewhere and a deny-list of addresses cannot be dodged by
//! spelling the address differently. Each case below was a working bypass.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use serde_json::json;
use toolgate_engine::{Context, Engine, Outcome, Request};

const TOOLS: &str = "tool http.get read { url: string };\n";

/// URLs that every WHATWG client (and `requests`) sends to `evil.com`, but
/// that the old `host()` read as `docs.example.com`.
const HOST_BYPASSES: [&str; 5] = [
    r"https://evil.com\@docs.example.com/",
    "https:evil.com/?x=://docs.example.com",
    "https:/evil.com/?x=://docs.example.com",
    r"https:\\evil.com/?x=://docs.example.com",
    "evil.com/?next=https://docs.example.com/",
];

/// Spellings of 169.254.169.254 and 127.0.0.1 that clients connect to.
const NUMERIC_HOSTS: [(&str, &str); 6] = [
    ("http://2852039166/", "169.254.169.254"),
    ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
    ("http://169.254.43518/", "169.254.169.254"),
    ("http://127.1/", "127.0.0.1"),
    ("http://0177.0.0.1/", "127.0.0.1"),
    ("http://[::ffff:a9fe:a9fe]/", "169.254.169.254"),
];

fn engine(rules: &str) -> Engine {
    let text = format!("{TOOLS}{rules}\nagent bot {{}}\n");
    let parsed = toolgate_syntax::parse(&text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let checked = toolgate_check::check(&parsed.file, &text);
    let policy = checked.policy.expect("the policy checks");
    Engine::new(&policy, "p.policy").expect("a checked policy compiles")
}

fn decide(engine: &Engine, url: &str) -> Outcome {
    let args = json!({ "url": url });
    let context = Context {
        tenant: "acme".into(),
        env: "prod".into(),
        fields: serde_json::Map::new(),
    };
    let req = Request {
        agent: "bot",
        tool: "http.get",
        args: &args,
        context: &context,
        now: None,
        session: None,
    };
    engine.decide(&req).outcome()
}

/// URLs that do go to `docs.example.com`.
const REAL: [&str; 2] = [
    "https://docs.example.com/guide",
    "HTTPS://Docs.Example.COM:443/a?b#c",
];

fn assert_grant_holds_only_for_the_real_host(rules: &str, real: &[&str]) {
    let e = engine(rules);
    for url in real {
        assert_eq!(decide(&e, url), Outcome::Allow, "{url} under {rules}");
    }
    for url in HOST_BYPASSES {
        assert_eq!(decide(&e, url), Outcome::Deny, "{url} under {rules}");
    }
}

#[test]
fn a_host_grant_is_not_satisfied_by_a_url_that_goes_elsewhere() {
    assert_grant_holds_only_for_the_real_host(
        r#"allow http.get when host(args.url) == "docs.example.com";"#,
        &REAL,
    );
}

#[test]
fn the_language_reference_example_of_5_6_cannot_be_bypassed() {
    // The example as docs/language.md §5.6 used to write it.
    assert_grant_holds_only_for_the_real_host(
        r#"let doc_host = "docs.example.com";
allow http.get when host(args.url) == doc_host and args.url matches regex "^https://[^/]+/";"#,
        &REAL[..1],
    );
}

#[test]
fn a_deny_list_of_addresses_catches_every_spelling_of_them() {
    let e = engine(
        r#"allow http.get;
deny http.get when host(args.url) in ["169.254.169.254", "127.0.0.1"];"#,
    );
    assert_eq!(decide(&e, "http://docs.example.com/"), Outcome::Allow);
    for (url, _) in NUMERIC_HOSTS {
        assert_eq!(decide(&e, url), Outcome::Deny, "{url}");
    }
}

#[test]
fn an_address_grant_holds_for_the_canonical_address_only() {
    let e = engine(r#"allow http.get when host(args.url) == "127.0.0.1";"#);
    for (url, address) in NUMERIC_HOSTS {
        if address == "127.0.0.1" {
            assert_eq!(decide(&e, url), Outcome::Allow, "{url}");
        }
    }
    assert_eq!(decide(&e, "http://127.0.0.2/"), Outcome::Deny);
}

/// The example docs/language.md §5.6 gives now: no raw-URL pattern at all.
const LANGUAGE_EXAMPLE: &str = r#"let doc_host = "docs.example.com";
allow http.get when scheme(args.url) == "https" and host(args.url) == doc_host and port(args.url) == 443 and path(args.url) starts_with "/guides/";"#;

#[test]
fn the_new_language_reference_example_reads_each_part_of_the_url() {
    let e = engine(LANGUAGE_EXAMPLE);
    for url in [
        "https://docs.example.com/guides/a?x=1",
        "HTTPS://DOCS.example.com:443/guides/../guides/b#top",
    ] {
        assert_eq!(decide(&e, url), Outcome::Allow, "{url}");
    }
    for url in HOST_BYPASSES.into_iter().chain([
        "http://docs.example.com/guides/a",
        "https://docs.example.com:8443/guides/a",
        "https://docs.example.com/guides/../admin",
        "https://docs.example.com/guides/%2e%2e/admin",
        "https://docs.example.com/admin?/guides/",
        "https://docs.example.com./guides/a",
        "https://user@docs.example.com/guides/a",
    ]) {
        assert_eq!(decide(&e, url), Outcome::Deny, "{url}");
    }
}

#[test]
fn explain_evaluates_the_url_functions_as_the_engine_does() {
    let text = format!("{TOOLS}{LANGUAGE_EXAMPLE}\nagent bot {{}}\n");
    let parsed = toolgate_syntax::parse(&text);
    let policy = toolgate_check::check(&parsed.file, &text)
        .policy
        .expect("the policy checks");
    let context = Context {
        tenant: "acme".into(),
        env: "prod".into(),
        fields: serde_json::Map::new(),
    };
    let explained = |url: &str| {
        let args = json!({ "url": url });
        let req = Request {
            agent: "bot",
            tool: "http.get",
            args: &args,
            context: &context,
            now: None,
            session: None,
        };
        toolgate_engine::explain(&policy, &req)
            .into_iter()
            .map(|t| t.verdict)
            .collect::<Vec<_>>()
    };
    use toolgate_engine::Verdict;
    assert_eq!(
        explained("https://docs.example.com/guides/a"),
        [Verdict::Holds]
    );
    let refused = explained(r"https://evil.com\@docs.example.com/guides/");
    assert!(
        matches!(refused.as_slice(), [Verdict::Error { missing: false, at, .. }] if &text[at.start..at.end] == r#"scheme(args.url) == "https""#),
        "{refused:?}"
    );
    let wrong_port = explained("https://docs.example.com:1/guides/");
    assert!(
        matches!(wrong_port.as_slice(), [Verdict::False { at }] if &text[at.start..at.end] == "port(args.url) == 443"),
        "{wrong_port:?}"
    );
}
