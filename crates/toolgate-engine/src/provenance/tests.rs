//! Normalisation, tokens and occurrence: examples and properties.

use super::*;
use proptest::prelude::*;

fn norm(s: &str) -> Option<String> {
    normalize(s)
}

#[test]
fn normalisation_by_shape() {
    assert_eq!(norm("  Riverside View "), Some("riverside view".into()));
    assert_eq!(
        norm("DE89 3704 0044 0532 0130 00"),
        Some("de89370400440532013000".into())
    );
    assert_eq!(norm("+49 (30) 1234-5678"), Some("+493012345678".into()));
    assert_eq!(
        norm("https://www.Example.com/a/?q=1#f"),
        Some("example.com/a/?q=1#f".into())
    );
    assert_eq!(norm("HTTPS://www.example.com/"), Some("example.com".into()));
    assert_eq!(
        norm("Mark.Black@Example.COM"),
        Some("mark.black@example.com".into())
    );
    assert_eq!(norm("ﬁle Ｏｎｅ"), Some("file one".into()));
    assert_eq!(norm("ab"), None);
    assert_eq!(norm(" (a) "), None);
}

#[test]
fn values_occur_as_whole_word_runs_never_as_parts() {
    let turn =
        "Book the Riverside View for 2 nights, and send €1,250.00 to DE89 3704 0044 0532 0130 00.";
    let key = |s: &str| Key::text(s).expect("long enough");
    assert!(occurs_in_text(&key("Riverside View"), turn));
    assert!(occurs_in_text(&key("riverside  view"), turn));
    assert!(!occurs_in_text(&key("Riverside View Hotel"), turn));
    assert!(!occurs_in_text(&key("Riverside Vie"), turn));
    assert!(occurs_in_text(&key("DE89370400440532013000"), turn));
    assert!(occurs_in_text(&Key::number(1250.0), turn));
    assert!(!occurs_in_text(&Key::number(1.0), turn));
    assert!(!occurs_in_text(&key("250"), turn));
}

#[test]
fn numeric_tokens_read_separators_and_currencies() {
    for (text, value) in [
        ("250", 250.0),
        ("250.00", 250.0),
        ("1,000", 1000.0),
        ("€250", 250.0),
        ("$1,234.5", 1234.5),
        ("250EUR", 250.0),
        ("usd12", 12.0),
        ("-3", -3.0),
    ] {
        assert_eq!(numeric_token(text), Some(value), "{text}");
    }
    assert_eq!(numeric_token("EUR1,250.00"), Some(1250.0));
    for text in [
        "1,00", "abc", "12.", "1,0000", "EUR", "", "abc1", "ABC123", "room42",
    ] {
        assert_eq!(numeric_token(text), None, "{text}");
    }
}

#[test]
fn urls_and_emails_are_picked_out_as_written() {
    let text = "See https://evil.example/x, www.Docs.org or files.acme.io/a; mail (bob@acme.com).";
    assert_eq!(
        urls(text),
        ["https://evil.example/x", "www.Docs.org", "files.acme.io/a"]
    );
    assert_eq!(emails(text), ["bob@acme.com"]);
}

#[test]
fn endorsed_keys_follow_lists() {
    let args = serde_json::json!({"to": ["a@b.com", "c@d.com"], "rec": [{"iban": "DE89 3704 0044 0532 0130 00"}], "n": 5});
    let keys = endorsed_keys(
        &args,
        &[
            vec!["to".into()],
            vec!["rec".into(), "iban".into()],
            vec!["n".into()],
        ],
    );
    assert_eq!(
        keys,
        [
            Key::text("a@b.com").expect("key"),
            Key::text("c@d.com").expect("key"),
            Key::text("de89370400440532013000").expect("key"),
            Key::number(5.0)
        ]
    );
}

/// Text as agents and users write it: words, identifiers, punctuation, some Unicode.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9@.:/_+ ,;!?()'\"é€ﬁＡ-]{0,40}"
}

fn word() -> impl Strategy<Value = String> {
    "[a-z]{1,8}"
}

proptest! {
    #[test]
    fn text_keys_are_each_run_normalised_whole(t in "[a-zA-Z0-9@.:/_+ ,;!?()'\"é€ﬁＡ１２３¨Σ-]{0,60}") {
        let (mut fast, mut plain) = (Vec::new(), Vec::new());
        text_keys(&t, &mut |k| fast.push(k.clone()));
        text_keys_plainly(&t, &mut |k| plain.push(k.clone()));
        prop_assert_eq!(fast, plain);
    }

    #[test]
    fn text_keys_agree_on_identifier_heavy_texts(words in prop::collection::vec(prop::sample::select(vec![
        "DE89", "3704", "0044", "0532", "0130", "00", "+49", "(30)", "123-4567", "555.1234",
        "pay", "to", "ΟΔΟΣ", "¨x", "www.A.com/", "a@b.co", "EUR250", "1,000.00", "ＤＥ８９",
    ]), 0..12)) {
        let t = words.join(" ");
        let (mut fast, mut plain) = (Vec::new(), Vec::new());
        text_keys(&t, &mut |k| fast.push(k.clone()));
        text_keys_plainly(&t, &mut |k| plain.push(k.clone()));
        prop_assert_eq!(fast, plain);
    }

    #[test]
    fn normalize_is_idempotent(s in text()) {
        if let Some(n) = normalize(&s) {
            prop_assert_eq!(normalize(&n), Some(n.clone()));
        }
    }

    #[test]
    fn a_value_occurs_in_a_text_made_of_it(v in text(), before in word(), after in word()) {
        if let Some(key) = Key::text(&v) {
            prop_assert!(occurs_in_text(&key, &v));
            let leaf = serde_json::json!({"a": [v.clone()]});
            prop_assert!(occurs_in_json(&key, &leaf));
            if pieces(&v).count() <= MAX_RUN {
                let text = format!("{before} {v} {after}");
                prop_assert!(occurs_in_text(&key, &text), "{:?} in {:?}", key, text);
            }
        }
    }

    #[test]
    fn a_number_occurs_in_a_text_and_a_leaf_holding_it(n in -1_000_000i64..1_000_000, cents in 0u32..100) {
        let value = n as f64 + f64::from(cents) / 100.0;
        let written = format!("{value:.2}");
        let text = format!("pay {written} now");
        let leaf = serde_json::json!({"x": value});
        prop_assert!(occurs_in_text(&Key::number(value), &text), "{}", text);
        prop_assert!(occurs_in_json(&Key::number(value), &leaf));
    }
}
