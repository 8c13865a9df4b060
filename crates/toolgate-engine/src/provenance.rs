//! Provenance: the one fixed normalisation of values, the tokens of a text,
//! the keys under which a session indexes what it saw, and `urls(x)` /
//! `emails(x)`. Both sides of every comparison go through [`Key`]: the value
//! an argument holds, and every whole value, word run and numeric token of a
//! user turn, a tool output or the trusted context (`docs/semantics.md`,
//! "Provenance").
//!
//! The session itself is behind [`SessionView`] (`session.rs`): the engine
//! asks it about keys and never sees where or how they are stored, so a
//! store may keep keyed digests of [`Key::as_str`] only.

pub(crate) mod decide;
mod session;

pub use crate::table::SessionAsks;
pub use session::{all_trusted, has_value, label_at, leaf_keys};
pub use session::{MemorySession, SessionError, SessionView, Sources, Witness};

use serde_json::Value as Json;
use unicode_normalization::UnicodeNormalization as _;

/// Runs of up to this many consecutive pieces of a text are indexed.
pub const MAX_RUN: usize = 8;

/// Normalised strings shorter than this (in characters) never occur.
pub const MIN_CHARS: usize = 3;

/// What a value is looked up by: its normalised text, or a number's value.
/// Texts and numbers never share a key (`"250"` is a string, `250` a number).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// The key of a string value, if it can occur at all (its normalised
    /// form has at least [`MIN_CHARS`] characters).
    pub fn text(value: &str) -> Option<Key> {
        let folded = fold(value);
        let mut key = String::with_capacity(folded.len() + 2);
        key.push_str("t:");
        match iban(&folded).or_else(|| phone(&folded)) {
            Some(shaped) => key.push_str(&shaped),
            None => push_generic(&folded, &mut key),
        }
        (key[2..].chars().count() >= MIN_CHARS).then_some(Key(key))
    }

    /// The key of a number value (by value: `250`, `250.0` and `2.5e2` are one key).
    pub fn number(value: f64) -> Key {
        Key(format!("n:{}", number_text(value)))
    }

    /// The key as text: what a store digests (keyed) and indexes.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A number written canonically: an integral value below 2^53 without a
/// fraction, anything else in Rust's shortest round-trip form.
fn number_text(value: f64) -> String {
    let v = value + 0.0; // -0.0 is 0
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The fixed normalisation (precise point 8): NFKC, lower case, trim; then by
/// shape: an IBAN written in groups and a phone number lose their separators;
/// otherwise each whitespace-separated piece is stripped of surrounding
/// punctuation, a URL piece loses its scheme, leading `www.` and trailing
/// `/`, and the pieces are joined by single spaces. `None` when the result
/// has fewer than [`MIN_CHARS`] characters (such strings never occur).
pub fn normalize(value: &str) -> Option<String> {
    let folded = fold(value);
    let out = iban(&folded)
        .or_else(|| phone(&folded))
        .unwrap_or_else(|| generic(&folded));
    long_enough(out)
}

fn long_enough(text: String) -> Option<String> {
    (text.chars().count() >= MIN_CHARS).then_some(text)
}

/// A folded text that is no IBAN or phone number: its pieces shaped, joined by spaces.
fn generic(folded: &str) -> String {
    let mut out = String::with_capacity(folded.len());
    push_generic(folded, &mut out);
    out
}

/// [`generic`], appended to `out` (one buffer, no piece allocated).
fn push_generic(folded: &str, out: &mut String) {
    let start = out.len();
    for piece in pieces(folded).map(piece_shape).filter(|p| !p.is_empty()) {
        if out.len() > start {
            out.push(' ');
        }
        out.push_str(piece);
    }
}

/// NFKC, lower case, NFKC again (lower-casing may leave a non-NFKC string),
/// trimmed. ASCII is its own NFKC form: lower-cased and trimmed only.
fn fold(value: &str) -> String {
    if value.is_ascii() {
        return value.trim().to_ascii_lowercase();
    }
    let lowered = value.nfkc().collect::<String>().to_lowercase();
    lowered.nfkc().collect::<String>().trim().to_string()
}

/// An IBAN-like identifier (two letters, two digits, then 8 to 30 letters
/// and digits), whole or in groups separated by single spaces, the first
/// group holding the letters and digits (`de89 3704 ...`): without spaces.
fn iban(folded: &str) -> Option<String> {
    if !starts_like_iban(folded) {
        return None;
    }
    let compact: String = folded.chars().filter(|c| *c != ' ').collect();
    let shaped = (12..=34).contains(&compact.len())
        && compact.bytes().all(|b| b.is_ascii_alphanumeric())
        && folded.split(' ').all(|g| !g.is_empty());
    shaped.then_some(compact)
}

/// A phone number (`+`, digits, spaces, dashes, dots, parentheses; 7 to 15
/// digits; `+` only first): `+` and its digits.
fn phone(folded: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')');
    let body = folded.strip_prefix('+').unwrap_or(folded);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    let shaped = body.chars().all(allowed)
        && (7..=15).contains(&digits)
        && body.starts_with(|c: char| c.is_ascii_digit() || c == '(');
    shaped.then(|| {
        let plus = if folded.starts_with('+') { "+" } else { "" };
        format!(
            "{plus}{}",
            body.chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        )
    })
}

/// One piece: an email as it is, a URL without scheme, `www.` and trailing `/`.
fn piece_shape(piece: &str) -> &str {
    if is_email(piece) || !is_url(piece) {
        return piece;
    }
    let mut s = piece;
    loop {
        let before = s;
        for prefix in ["https://", "http://", "www."] {
            s = strip_prefix_ignore_case(s, prefix);
        }
        s = s.trim_end_matches('/');
        if s == before {
            return s;
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> &'a str {
    match s.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &s[prefix.len()..],
        _ => s,
    }
}

/// The pieces of a text (precise point 7): split on whitespace, each
/// stripped of leading `( [ { < " '` and trailing `. , ; : ! ? ) ] } > " '`;
/// empty pieces dropped.
pub fn pieces(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .map(|p| {
            p.trim_start_matches(['(', '[', '{', '<', '"', '\''])
                .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}', '>', '"', '\''])
        })
        .filter(|p| !p.is_empty())
}

/// `local@domain.tld`: one `@`, a dot in the domain, a last label of two or more letters.
pub fn is_email(piece: &str) -> bool {
    let Some((local, domain)) = piece.split_once('@') else {
        return false;
    };
    !local.is_empty() && !domain.contains('@') && host_like(domain)
}

/// `http(s)://...`, `www....` or `host.tld/...`.
pub fn is_url(piece: &str) -> bool {
    let has = |prefix: &str| {
        piece.len() > prefix.len()
            && piece
                .get(..prefix.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
    };
    if has("http://") || has("https://") || has("www.") {
        return true;
    }
    match piece.split_once('/') {
        Some((host, _)) => host_like(host),
        None => false,
    }
}

/// `a.b.tld`: labels of letters, digits and `-`, a last label of 2+ letters.
fn host_like(host: &str) -> bool {
    let label_ok = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-');
    let Some((_, tld)) = host.rsplit_once('.') else {
        return false;
    };
    tld.chars().count() >= 2
        && tld.chars().all(char::is_alphabetic)
        && host.split('.').all(label_ok)
}

/// `urls(x)`: the pieces of `text` that are URLs, as written.
pub fn urls(text: &str) -> Vec<String> {
    pieces(text)
        .filter(|p| is_url(p) && !is_email(p))
        .map(str::to_string)
        .collect()
}

/// `emails(x)`: the pieces of `text` shaped `local@domain.tld`, as written.
pub fn emails(text: &str) -> Vec<String> {
    pieces(text)
        .filter(|p| is_email(p))
        .map(str::to_string)
        .collect()
}

/// Currency codes a numeric token may carry (`EUR250`, `250usd`).
const CURRENCIES: [&str; 24] = [
    "EUR", "USD", "GBP", "CHF", "JPY", "CNY", "CAD", "AUD", "SEK", "NOK", "DKK", "PLN", "CZK",
    "HUF", "INR", "BRL", "MXN", "ZAR", "HKD", "SGD", "NZD", "TRY", "KRW", "ILS",
];

/// The value of a numeric token (precise point 9): digits with an optional
/// fraction, thousands separators (`1,000`), a currency sign (`€ $ £ ¥`) or a
/// currency code (`EUR`, any case; from a fixed list) attached on either side; a
/// leading `-`. An identifier such as `ABC123` is not the number 123.
pub fn numeric_token(piece: &str) -> Option<f64> {
    let mut s = piece.trim_matches(['€', '$', '£', '¥']);
    let is_code =
        |c: Option<&str>| c.is_some_and(|c| CURRENCIES.iter().any(|k| k.eq_ignore_ascii_case(c)));
    if s.len() > 3 && is_code(s.get(..3)) {
        s = &s[3..];
    } else if s.len() > 3 && is_code(s.get(s.len() - 3..)) {
        s = &s[..s.len() - 3];
    }
    s = s.trim_matches(['€', '$', '£', '¥']);
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let groups: Vec<&str> = int.split(',').collect();
    let grouped = groups.len() == 1
        || (!groups[0].is_empty()
            && groups[0].len() <= 3
            && groups[1..].iter().all(|g| g.len() == 3));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !grouped || int.is_empty() || !groups.iter().all(|g| digits(g)) || !digits(frac) {
        return None;
    }
    if body.contains('.') && frac.is_empty() {
        return None;
    }
    let text = format!("{}{}.{}", if neg { "-" } else { "" }, groups.concat(), frac);
    text.trim_end_matches('.')
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// Every key a text makes (a user turn, a text output, a string leaf): its
/// whole normalised form, each run of 1 to [`MAX_RUN`] consecutive pieces,
/// and each numeric token. `f` may see a key more than once.
///
/// A run's key is [`normalize`] of its pieces joined by spaces; it is built
/// from the pieces' folded forms (folding and shaping work piece by piece),
/// and normalised whole only where the run could be an IBAN or a phone
/// number (`tests.rs` holds this equal to normalising each run).
pub fn text_keys(text: &str, f: &mut dyn FnMut(&Key)) {
    if let Some(k) = Key::text(text) {
        f(&k);
    }
    let parts: Vec<&str> = pieces(text).collect();
    let folded: Vec<String> = parts.iter().map(|p| fold(p)).collect();
    let forms: Vec<String> = folded.iter().map(|p| generic(p)).collect();
    let phone_like: Vec<bool> = folded
        .iter()
        .map(|p| {
            p.chars()
                .all(|c| c.is_ascii_digit() || " +-.()".contains(c))
        })
        .collect();
    let alnum: Vec<bool> = folded
        .iter()
        .map(|p| p.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '))
        .collect();
    let mut run = String::with_capacity(64);
    for i in 0..parts.len() {
        if let Some(v) = numeric_token(parts[i]) {
            f(&Key::number(v));
        }
        // The run's key as it grows: `t:` and the pieces' forms (one
        // buffer, lent to `f` as a key and taken back).
        run.clear();
        run.push_str("t:");
        for j in i..parts.len().min(i + MAX_RUN) {
            if run.len() > 2 && !forms[j].is_empty() {
                run.push(' ');
            }
            run.push_str(&forms[j]);
            let iban_like = starts_like_iban(&folded[i]) && alnum[i..=j].iter().all(|c| *c);
            if iban_like || phone_like[i..=j].iter().all(|c| *c) {
                if let Some(k) = Key::text(&parts[i..=j].join(" ")) {
                    f(&k);
                }
            } else if run[2..].chars().count() >= MIN_CHARS {
                let key = Key(std::mem::take(&mut run));
                f(&key);
                run = key.0;
            }
        }
    }
}

/// Whether a folded piece could start an IBAN (two letters, two digits).
fn starts_like_iban(piece: &str) -> bool {
    let b = piece.as_bytes();
    b.len() >= 4
        && b[..2].iter().all(u8::is_ascii_lowercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
}

/// [`text_keys`] as the semantics say it, each run normalised whole (tests).
#[cfg(test)]
pub(crate) fn text_keys_plainly(text: &str, f: &mut dyn FnMut(&Key)) {
    if let Some(k) = Key::text(text) {
        f(&k);
    }
    let parts: Vec<&str> = pieces(text).collect();
    for i in 0..parts.len() {
        if let Some(v) = numeric_token(parts[i]) {
            f(&Key::number(v));
        }
        for j in i..parts.len().min(i + MAX_RUN) {
            if let Some(k) = Key::text(&parts[i..=j].join(" ")) {
                f(&k);
            }
        }
    }
}

/// Every key of a JSON value's leaves: strings as texts ([`text_keys`]),
/// numbers by value; `f` gets each with the leaf's path.
pub fn json_keys(value: &Json, f: &mut dyn FnMut(&[PathStep<'_>], &Key)) {
    let mut path = Vec::new();
    walk(value, &mut path, &mut |path, leaf| match leaf {
        Json::String(s) => text_keys(s, &mut |k| f(path, k)),
        Json::Number(n) => {
            if let Some(v) = n.as_f64().filter(|v| v.is_finite()) {
                f(path, &Key::number(v));
            }
        }
        _ => {}
    });
}

/// One step into a JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathStep<'a> {
    /// A field of an object.
    Field(&'a str),
    /// An element of a list.
    Each,
}

/// Calls `f` on every leaf (strings, numbers, booleans, `null`s) with its path.
pub fn walk<'a>(
    value: &'a Json,
    path: &mut Vec<PathStep<'a>>,
    f: &mut dyn FnMut(&[PathStep<'a>], &'a Json),
) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                path.push(PathStep::Field(k));
                walk(v, path, f);
                path.pop();
            }
        }
        Json::Array(items) => {
            for v in items {
                path.push(PathStep::Each);
                walk(v, path, f);
                path.pop();
            }
        }
        leaf => f(path, leaf),
    }
}

/// Whether `key` occurs in `text`.
pub fn occurs_in_text(key: &Key, text: &str) -> bool {
    let mut found = false;
    text_keys(text, &mut |k| found |= k == key);
    found
}

/// Whether `key` occurs in a JSON value (a leaf equal to it, or in a string leaf's text).
pub fn occurs_in_json(key: &Key, value: &Json) -> bool {
    let mut found = false;
    json_keys(value, &mut |_, k| found |= k == key);
    found
}

/// The keys of the values at `args.<path>` (every element of a list on the
/// way): what an `endorse` clause endorses when its approval is granted.
pub fn endorsed_keys(args: &Json, paths: &[Vec<String>]) -> Vec<Key> {
    let mut out = Vec::new();
    for path in paths {
        collect_at(args, path, &mut out);
    }
    out
}

fn collect_at(value: &Json, path: &[String], out: &mut Vec<Key>) {
    match (value, path.split_first()) {
        (Json::Array(items), _) => items.iter().for_each(|v| collect_at(v, path, out)),
        (Json::Object(map), Some((head, rest))) => {
            if let Some(v) = map.get(head) {
                collect_at(v, rest, out);
            }
        }
        (Json::String(s), None) => out.extend(Key::text(s)),
        (Json::Number(n), None) => {
            out.extend(n.as_f64().filter(|v| v.is_finite()).map(Key::number))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
