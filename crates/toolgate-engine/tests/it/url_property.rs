//! The URL functions against the WHATWG parser (the `url` crate), on
//! generated URLs built to hit the shapes of finding C1 (issue #7): random
//! schemes and separators (`https:`, `https:/`, `https:\\`, none), userinfo,
//! backslashes, whitespace and control characters, percent-encoding, IDNA,
//! numeric IPv4 hosts in decimal, octal, hex and short forms, IPv6 (also with
//! an embedded IPv4 address), trailing dots, ports and dot segments.
//!
//! Properties: each function either refuses the string or returns exactly
//! what `url::Url::parse` gives (`host_str`, `port_or_known_default`,
//! `scheme`, `path`); it always refuses the shapes `docs/semantics.md` lists;
//! and all four accept the same strings. `PROPTEST_CASES` raises the default
//! of 1024 cases.

use proptest::prelude::*;
use toolgate_engine::urls::{self, UrlError};
use url::Url;

/// The fixed shapes of the finding, kept in every run.
const C1: [&str; 11] = [
    r"https://evil.com\@docs.example.com/",
    "https:evil.com/?x=://docs.example.com",
    "https:/evil.com/?x=://docs.example.com",
    r"https:\\evil.com/?x=://docs.example.com",
    "evil.com/?next=https://docs.example.com/",
    "http://2852039166/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://169.254.43518/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "http://[::ffff:a9fe:a9fe]/",
];

fn scheme() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["http", "https", "ws", "wss", "HTTPS", "hTtP"]).prop_map(String::from),
        1 => prop::sample::select(vec!["ftp", "file", "javascript", "data", "h\ttp", ""]).prop_map(String::from),
        1 => "[a-z][a-z0-9+.-]{0,5}",
    ]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "://", "://", "://", "://", "://", "://", "://", "://", ":", ":/", ":///", r":\\", r":/\",
        "//", "",
    ])
}

fn userinfo() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => Just(String::new()),
        1 => "[a-z%:@.]{0,6}@",
        1 => Just("docs.example.com@".to_string()),
        1 => Just(r"evil.com\@".to_string()),
    ]
}

/// One part of a numeric IPv4 host, in decimal, octal or hex.
fn ipv4_part(max: u32) -> impl Strategy<Value = String> {
    (0..=max, 0..3u8).prop_map(|(n, base)| match base {
        0 => n.to_string(),
        1 => format!("0{n:o}"),
        _ => format!("0x{n:x}"),
    })
}

fn ipv4() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|n| n.to_string()),
        (ipv4_part(255), ipv4_part(0xff_ffff)).prop_map(|(a, b)| format!("{a}.{b}")),
        (ipv4_part(255), ipv4_part(255), ipv4_part(0xffff))
            .prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        prop::collection::vec(ipv4_part(300), 4).prop_map(|p| p.join(".")),
    ]
}

fn ipv6() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u16>(), 8).prop_map(|s| {
            let text: Vec<String> = s.iter().map(|x| format!("{x:x}")).collect();
            format!("[{}]", text.join(":"))
        }),
        prop::sample::select(vec![
            "[::1]",
            "[::]",
            "[::ffff:a9fe:a9fe]",
            "[::ffff:127.0.0.1]",
            "[::7f00:1]",
            "[64:ff9b::a9fe:a9fe]",
            "[2001:DB8::1]",
            "[fe80::1%25eth0]",
            "[::1",
        ])
        .prop_map(String::from),
    ]
}

fn domain() -> impl Strategy<Value = String> {
    let label = prop_oneof![
        8 => "[a-z0-9]{1,8}",
        2 => "[a-z0-9-]{1,8}",
        1 => "[A-Z]{1,4}",
        1 => prop::sample::select(vec!["bücher", "xn--bcher-kva", "ev%69l", "%2e", "a%40b", "docs。example", "ＥＸ", "-", "a_b"]).prop_map(String::from),
    ];
    let dot = prop::bool::weighted(0.1);
    (prop::collection::vec(label, 1..4), dot).prop_map(|(labels, dot)| {
        let mut d = labels.join(".");
        if dot {
            d.push('.');
        }
        d
    })
}

fn port() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        2 => (0..70_000u32).prop_map(|p| format!(":{p}")),
        1 => prop::sample::select(vec![":", ":80", ":443", ":0080", ":x"]).prop_map(String::from),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(vec![
        "a", "b.html", "..", ".", "%2e%2e", "%2E.", "%2F", "%zz", "é", "@x", "?q=://h", "#f", "~",
    ]);
    prop::collection::vec(seg, 0..4).prop_map(|segs| {
        segs.iter().fold(String::new(), |mut p, s| {
            p.push('/');
            p.push_str(s);
            p
        })
    })
}

/// A character WHATWG treats specially, inserted somewhere.
fn noise() -> impl Strategy<Value = Option<(prop::sample::Index, char)>> {
    prop::option::weighted(
        0.1,
        (
            any::<prop::sample::Index>(),
            prop::sample::select(vec![
                '\\', ' ', '\t', '\n', '\r', '\u{0}', '\u{7f}', '\u{85}', '\u{a0}', '\u{3000}',
                '@', '%',
            ]),
        ),
    )
}

fn url_text() -> impl Strategy<Value = String> {
    let host = prop_oneof![6 => domain(), 3 => ipv4(), 2 => ipv6(), 1 => Just(String::new())];
    let built = (
        scheme(),
        separator(),
        userinfo(),
        host,
        port(),
        path(),
        noise(),
    )
        .prop_map(|(scheme, sep, user, host, port, path, noise)| {
            let mut s = format!("{scheme}{sep}{user}{host}{port}{path}");
            if let Some((at, c)) = noise {
                let mut i = at.index(s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                s.insert(i, c);
            }
            s
        });
    prop_oneof![
        1 => prop::sample::select(C1.to_vec()).prop_map(String::from),
        12 => built,
    ]
}

/// The shapes `docs/semantics.md` says are always refused, stated on the text.
fn must_refuse(s: &str) -> bool {
    let bad_char = s
        .chars()
        .any(|c| c == '\\' || c.is_whitespace() || c.is_control());
    let Some((scheme, rest)) = s.split_once("://") else {
        return true;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    bad_char
        || !["http", "https", "ws", "wss"].contains(&scheme.to_ascii_lowercase().as_str())
        || authority.is_empty()
        || authority.contains('@')
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1024);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn host_errors_or_equals_the_whatwg_host(s in url_text()) {
        match urls::host(&s) {
            Err(_) => {}
            Ok(host) => {
                let parsed = Url::parse(&s);
                prop_assert!(parsed.is_ok(), "host() accepted {s:?}, which url refuses");
                let u = parsed.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(Some(host.as_str()), u.host_str(), "{:?}", s);
                prop_assert!(!must_refuse(&s), "host() accepted {:?}", s);
                prop_assert!(u.username().is_empty() && u.password().is_none());
                prop_assert!(!host.ends_with('.'), "{:?}", s);
            }
        }
    }

    #[test]
    fn port_scheme_and_path_error_or_equal_the_whatwg_parts(s in url_text()) {
        let all = (urls::host(&s), urls::port(&s), urls::scheme(&s), urls::path(&s));
        match all {
            (Ok(_), Ok(port), Ok(scheme), Ok(path)) => {
                let u = Url::parse(&s).map_err(|e| TestCaseError::fail(format!("{s:?}: {e}")))?;
                prop_assert_eq!(Some(port), u.port_or_known_default(), "{:?}", s);
                prop_assert_eq!(scheme.as_str(), u.scheme(), "{:?}", s);
                prop_assert_eq!(path.as_str(), u.path(), "{:?}", s);
                prop_assert!(path.starts_with('/'), "{:?}", s);
            }
            (Err(a), Err(b), Err(c), Err(d)) => {
                prop_assert!(a == b && b == c && c == d, "{:?}: different refusals", s);
            }
            other => prop_assert!(false, "{s:?}: the functions disagree on acceptance: {other:?}"),
        }
    }
}

/// The C1 shapes: the host bypasses are refused, the numeric hosts are
/// canonical (or refused, for the IPv4-in-IPv6 one).
#[test]
fn the_finding_shapes_are_refused_or_canonical() {
    for s in &C1[..5] {
        assert!(urls::host(s).is_err(), "{s}");
    }
    let canonical: Vec<Result<String, UrlError>> = C1[5..].iter().map(|s| urls::host(s)).collect();
    assert_eq!(
        canonical,
        [
            Ok("169.254.169.254".into()),
            Ok("169.254.169.254".into()),
            Ok("169.254.169.254".into()),
            Ok("127.0.0.1".into()),
            Ok("127.0.0.1".into()),
            Err(UrlError::EmbeddedIpv4),
        ]
    );
}

/// Guards the properties against a generator that proves nothing: many
/// generated strings are accepted, many are refused, and every reason to
/// refuse occurs.
#[test]
fn the_generator_reaches_acceptance_and_every_refusal() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut accepted, mut reasons) = (0, std::collections::BTreeSet::new());
    for _ in 0..4000 {
        let s = url_text().new_tree(&mut runner).map(|t| t.current());
        let s = s.unwrap_or_default();
        match urls::host(&s) {
            Ok(_) => accepted += 1,
            Err(e) => {
                let name = format!("{e:?}");
                reasons.insert(name.split('(').next().unwrap_or_default().to_string());
            }
        }
    }
    assert!(
        (600..3200).contains(&accepted),
        "{accepted} of 4000 accepted"
    );
    assert_eq!(reasons.len(), 8, "refusals seen: {reasons:?}");
}
