//! Run-time values and the operations on them shared by the compiled
//! evaluator and the reference interpreter, so both mean the same thing.
//!
//! Every operation is total: a wrong type is an [`EvalError`], never a panic,
//! and never silently `false` (the caller decides what an error means: a deny
//! rule applies, a grant does not).

use serde_json::Value as Json;
use std::borrow::Cow;
use std::cmp::Ordering;
use toolgate_check::{ir, time};

/// Why a condition could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// A path the request does not have.
    Missing,
    /// A value of the wrong type for the operation.
    Type,
    /// A provenance or session condition on a call without a session, or
    /// a session that cannot answer (gone, or its store down).
    Session,
}

/// A value during evaluation: borrowed from the request or the policy where possible.
#[derive(Clone, Debug)]
pub enum Val<'a> {
    /// A string.
    Str(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// A number that is not an `i64` (finite: JSON has no NaN or infinity).
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// A list from the request's JSON.
    JsonList(&'a [Json]),
    /// A list from the policy.
    ConstList(&'a [ir::Value]),
    /// A list of strings made at run time (`urls(x)`, `emails(x)`).
    StrList(Vec<String>),
    /// A `date`.
    Date(time::Date),
    /// A `datetime` (an instant).
    Time(time::Timestamp),
    /// A duration.
    Dur(time::SignedDuration),
    /// A JSON object (an element of a list of records): only its fields,
    /// read by `x.f` inside a quantifier, are values; as a whole it compares
    /// with nothing (a type error).
    Obj(&'a serde_json::Map<String, Json>),
    /// A `null` element of a list (`list<T | null>`): `x == null` holds for
    /// it; every other operation on it is a type error.
    Null,
}

impl<'a> Val<'a> {
    /// A JSON value from the request. `null` has no value; an object is an
    /// [`Val::Obj`], whose fields a quantifier's body may read. A number
    /// is an `Int` when it is an `i64` as written (`4`), else a `Num` (`4.0`,
    /// `98.7`, `1e300`): the two compare by value.
    pub fn from_json(v: &'a Json) -> Result<Val<'a>, EvalError> {
        match v {
            Json::String(s) => Ok(Val::Str(Cow::Borrowed(s))),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Ok(Val::Int(i)),
                None => n
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .map(Val::Num)
                    .ok_or(EvalError::Type),
            },
            Json::Bool(b) => Ok(Val::Bool(*b)),
            Json::Array(items) => Ok(Val::JsonList(items)),
            Json::Object(map) => Ok(Val::Obj(map)),
            Json::Null => Err(EvalError::Type),
        }
    }

    /// An element of a request list: as [`Val::from_json`], but a `null`
    /// is [`Val::Null`], so that a quantifier's body can test it.
    fn from_element(v: &'a Json) -> Result<Val<'a>, EvalError> {
        match v {
            Json::Null => Ok(Val::Null),
            v => Val::from_json(v),
        }
    }

    /// A literal from the policy.
    pub fn from_const(v: &'a ir::Value) -> Val<'a> {
        match v {
            ir::Value::Str(s) => Val::Str(Cow::Borrowed(s)),
            ir::Value::Int(i) => Val::Int(*i),
            ir::Value::Num(n) => Val::Num(n.get()),
            ir::Value::Bool(b) => Val::Bool(*b),
            ir::Value::List(items) => Val::ConstList(items),
        }
    }

    /// The elements of a list, each converted on its own: an element without
    /// a value is an error only for the operation that reaches it.
    pub fn elements(&self) -> Result<Vec<Result<Val<'a>, EvalError>>, EvalError> {
        match self {
            Val::JsonList(items) => Ok(items.iter().map(Val::from_element).collect()),
            Val::ConstList(items) => Ok(items.iter().map(|v| Ok(Val::from_const(v))).collect()),
            Val::StrList(items) => Ok(items
                .iter()
                .map(|s| Ok(Val::Str(Cow::Owned(s.clone()))))
                .collect()),
            _ => Err(EvalError::Type),
        }
    }

    /// The field at `path` under this object (`x.a.b`): missing (or `null`)
    /// is [`EvalError::Missing`], a non-object on the way a type error.
    pub fn field(&self, path: &[String]) -> Result<Val<'a>, EvalError> {
        let map = match self {
            Val::Obj(map) => map,
            // A `null` element has no fields: each is missing.
            Val::Null => return Err(EvalError::Missing),
            _ => return Err(EvalError::Type),
        };
        let (first, rest) = path.split_first().ok_or(EvalError::Type)?;
        let mut v = map.get(first).ok_or(EvalError::Missing)?;
        for key in rest {
            v = v
                .as_object()
                .ok_or(EvalError::Type)?
                .get(key)
                .ok_or(EvalError::Missing)?;
        }
        if v.is_null() {
            return Err(EvalError::Missing);
        }
        Val::from_json(v)
    }

    /// The string, or a type error.
    pub fn as_str(&self) -> Result<&str, EvalError> {
        match self {
            Val::Str(s) => Ok(s),
            _ => Err(EvalError::Type),
        }
    }
}

/// `x == null`, given `x`'s evaluation: holds when it has no value (absent,
/// `null`, or below an absent or `null` field); a type error stays an error.
pub fn is_null(x: Result<Val<'_>, EvalError>) -> Result<bool, EvalError> {
    match x {
        Ok(Val::Null) | Err(EvalError::Missing) => Ok(true),
        Ok(_) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `a == b`. Values of different types are an error, not `false`.
pub fn equal(a: &Val<'_>, b: &Val<'_>) -> Result<bool, EvalError> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Ok(x == y),
        (Val::Int(_) | Val::Num(_), Val::Int(_) | Val::Num(_)) => {
            Ok(compare_numbers(a, b)? == Ordering::Equal)
        }
        (Val::Bool(x), Val::Bool(y)) => Ok(x == y),
        (Val::Date(_) | Val::Time(_) | Val::Dur(_), _) => {
            Ok(crate::dates::compare(a, b)? == Ordering::Equal)
        }
        (x, y) if is_list(x) && is_list(y) => {
            let (xs, ys) = (x.elements()?, y.elements()?);
            if xs.len() != ys.len() {
                return Ok(false);
            }
            for (x, y) in xs.into_iter().zip(ys) {
                if !equal(&x?, &y?)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        _ => Err(EvalError::Type),
    }
}

fn is_list(v: &Val<'_>) -> bool {
    matches!(v, Val::JsonList(_) | Val::ConstList(_) | Val::StrList(_))
}

/// `needle in list`.
pub fn member(needle: &Val<'_>, list: &Val<'_>) -> Result<bool, EvalError> {
    for item in list.elements()? {
        if equal(needle, &item?)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Orders two numbers by their exact values: an `i64` against an `f64` is
/// compared without converting either (so `9007199254740993 > 9007199254740992.0`).
pub fn compare_numbers(a: &Val<'_>, b: &Val<'_>) -> Result<Ordering, EvalError> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Ok(x.cmp(y)),
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y).ok_or(EvalError::Type),
        (Val::Int(x), Val::Num(y)) => int_cmp_float(*x, *y),
        (Val::Num(x), Val::Int(y)) => int_cmp_float(*y, *x).map(Ordering::reverse),
        _ => Err(EvalError::Type),
    }
}

/// `i` against `f`, exactly.
fn int_cmp_float(i: i64, f: f64) -> Result<Ordering, EvalError> {
    // 2^63, exactly representable: every f64 in [-2^63, 2^63) truncates to an i64.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return Err(EvalError::Type);
    }
    if f >= TWO_63 {
        return Ok(Ordering::Less);
    }
    if f < -TWO_63 {
        return Ok(Ordering::Greater);
    }
    let whole = f.trunc();
    // In range and integral, so the conversion is exact.
    let whole_int = whole as i64;
    Ok(i.cmp(&whole_int).then_with(|| {
        // `i` equals the whole part: `f`'s fraction decides.
        0.0_f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal)
    }))
}

/// Applies a binary operator.
pub fn binary(op: ir::BinOp, a: &Val<'_>, b: &Val<'_>) -> Result<bool, EvalError> {
    use ir::BinOp as B;
    match op {
        B::Eq => equal(a, b),
        B::Ne => equal(a, b).map(|e| !e),
        B::Lt => order(a, b).map(Ordering::is_lt),
        B::Le => order(a, b).map(Ordering::is_le),
        B::Gt => order(a, b).map(Ordering::is_gt),
        B::Ge => order(a, b).map(Ordering::is_ge),
        B::In => member(a, b),
        B::NotIn => member(a, b).map(|m| !m),
        B::StartsWith => Ok(a.as_str()?.starts_with(b.as_str()?)),
        B::EndsWith => Ok(a.as_str()?.ends_with(b.as_str()?)),
        B::Contains => match a {
            Val::Str(s) => Ok(s.contains(b.as_str()?)),
            list => member(b, list),
        },
    }
}

/// Two numbers, or two dates, datetimes or durations.
fn order(a: &Val<'_>, b: &Val<'_>) -> Result<Ordering, EvalError> {
    match a {
        Val::Date(_) | Val::Time(_) | Val::Dur(_) => crate::dates::compare(a, b),
        _ => compare_numbers(a, b),
    }
}

/// `len(x)`: characters of a string, elements of a list.
pub fn len(v: &Val<'_>) -> Result<i64, EvalError> {
    let n = match v {
        Val::Str(s) => s.chars().count(),
        Val::JsonList(items) => items.len(),
        Val::ConstList(items) => items.len(),
        Val::StrList(items) => items.len(),
        _ => return Err(EvalError::Type),
    };
    i64::try_from(n).map_err(|_| EvalError::Type)
}

/// `trim(x)`, `compact(x)` or `email_domain(x)`.
pub fn text_fn(f: ir::TextFn, text: &str) -> Result<Val<'static>, EvalError> {
    let out = match f {
        ir::TextFn::Trim => text.trim().to_string(),
        ir::TextFn::Compact => text.chars().filter(|c| !c.is_whitespace()).collect(),
        ir::TextFn::EmailDomain => email_domain(text).ok_or(EvalError::Type)?,
    };
    Ok(Val::Str(Cow::Owned(out)))
}

/// The lower-cased domain of `local@domain`: exactly one `@`, a non-empty
/// local part without whitespace or control characters, and a domain of
/// dot-separated non-empty labels of ASCII letters, digits and `-` (no
/// leading or trailing dot). Anything else is not an e-mail address.
fn email_domain(text: &str) -> Option<String> {
    let (local, domain) = text.split_once('@')?;
    let bad_local = |c: char| c.is_whitespace() || c.is_control() || c == '@';
    if local.is_empty() || local.chars().any(bad_local) {
        return None;
    }
    let label_ok =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !domain.split('.').all(label_ok) {
        return None;
    }
    Some(domain.to_ascii_lowercase())
}

/// `within(path, root)`: both absolute (`/...`), normalised (`.`, `..`,
/// repeated slashes); true when `path`'s segments begin with `root`'s. A
/// relative path, or one whose `..` climbs above `/`, is an error.
pub fn within(path: &str, root: &str) -> Result<bool, EvalError> {
    let (path, root) = (segments(path)?, segments(root)?);
    Ok(path.len() >= root.len() && path.iter().zip(&root).all(|(a, b)| a == b))
}

fn segments(path: &str) -> Result<Vec<&str>, EvalError> {
    let rest = path.strip_prefix('/').ok_or(EvalError::Type)?;
    let mut out = Vec::new();
    for seg in rest.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop().ok_or(EvalError::Type)?;
            }
            s => out.push(s),
        }
    }
    Ok(out)
}

/// `host(x)`, `port(x)`, `scheme(x)` or `path(x)` (see [`crate::urls`]).
/// A string the URL functions refuse is an error.
pub fn url_part(part: ir::UrlPart, text: &str) -> Result<Val<'static>, EvalError> {
    use crate::urls;
    let refused = |_| EvalError::Type;
    Ok(match part {
        ir::UrlPart::Host => Val::Str(Cow::Owned(urls::host(text).map_err(refused)?)),
        ir::UrlPart::Port => Val::Int(i64::from(urls::port(text).map_err(refused)?)),
        ir::UrlPart::Scheme => Val::Str(Cow::Owned(urls::scheme(text).map_err(refused)?)),
        ir::UrlPart::Path => Val::Str(Cow::Owned(urls::path(text).map_err(refused)?)),
    })
}

/// Translates a policy glob (`*` any run, `?` one character, `\` escapes) to an anchored regex.
pub fn glob_regex(glob: &str) -> String {
    let mut re = String::from("^");
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("(?s:.*)"),
            '?' => re.push_str("(?s:.)"),
            '\\' => {
                if let Some(next) = chars.next() {
                    re.push_str(&regex::escape(&next.to_string()));
                }
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(url: &str) -> Result<String, EvalError> {
        match url_part(ir::UrlPart::Host, url)? {
            Val::Str(s) => Ok(s.into_owned()),
            _ => Err(EvalError::Type),
        }
    }

    #[test]
    fn url_parts_are_typed_values() {
        let u = "https://Docs.Example.com:8443/a?b";
        assert_eq!(host(u).as_deref(), Ok("docs.example.com"));
        assert!(matches!(url_part(ir::UrlPart::Port, u), Ok(Val::Int(8443))));
        assert!(matches!(url_part(ir::UrlPart::Path, u), Ok(Val::Str(p)) if p == "/a"));
        // No scheme, userinfo, no host: errors, so a deny applies and a grant does not.
        for url in [
            "docs.example.com:8080/x",
            "http://user:pw@evil.com@good.com/",
            "https:///path",
        ] {
            assert_eq!(host(url), Err(EvalError::Type), "{url}");
        }
    }

    /// Finding C1: each string went to `evil.com` in WHATWG clients while
    /// `host()` said `docs.example.com`; now `host()` refuses them.
    #[test]
    fn host_refuses_urls_that_clients_send_elsewhere() {
        for url in [
            r"https://evil.com\@docs.example.com/",
            "https:evil.com/?x=://docs.example.com",
            "https:/evil.com/?x=://docs.example.com",
            r"https:\\evil.com/?x=://docs.example.com",
            "evil.com/?next=https://docs.example.com/",
        ] {
            assert_eq!(host(url), Err(EvalError::Type), "{url}");
        }
    }

    /// Finding C1: numeric spellings of an address give the canonical address.
    #[test]
    fn host_canonicalises_numeric_addresses() {
        for (url, want) in [
            ("http://2852039166/", "169.254.169.254"),
            ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
            ("http://169.254.43518/", "169.254.169.254"),
            ("http://127.1/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
        ] {
            assert_eq!(host(url).as_deref(), Ok(want), "{url}");
        }
        // An IPv4 address inside an IPv6 one reaches the IPv4 host: refused.
        assert_eq!(host("http://[::ffff:a9fe:a9fe]/"), Err(EvalError::Type));
    }

    #[test]
    fn list_elements_are_converted_only_when_reached() {
        let list = serde_json::json!([1, {}]);
        let xs = Val::from_json(&list).expect("a list");
        assert_eq!(
            member(&Val::Int(1), &xs),
            Ok(true),
            "found before the object is reached"
        );
        assert_eq!(
            member(&Val::Int(2), &xs),
            Err(EvalError::Type),
            "the object is reached"
        );
    }

    #[test]
    fn comparing_different_types_is_an_error_not_false() {
        let s = Val::Str("1".into());
        assert_eq!(equal(&s, &Val::Int(1)), Err(EvalError::Type));
        assert_eq!(
            binary(ir::BinOp::Lt, &s, &Val::Int(1)),
            Err(EvalError::Type)
        );
        assert_eq!(len(&Val::Str("é".into())), Ok(1));
    }

    #[test]
    fn within_compares_whole_normalised_segments() {
        assert_eq!(within("/srv/work/a.txt", "/srv/work"), Ok(true));
        assert_eq!(within("/srv/work/a.txt", "/srv/work/"), Ok(true));
        assert_eq!(within("/srv/work", "/srv/work"), Ok(true));
        assert_eq!(within("/srv/work-secrets/x", "/srv/work"), Ok(false));
        assert_eq!(within("/srv/work-secrets/x", "/srv/work/"), Ok(false));
        assert_eq!(within("/srv/work/../etc/passwd", "/srv/work"), Ok(false));
        assert_eq!(within("//srv/./work//b", "/srv/work"), Ok(true));
        assert_eq!(within("/anything", "/"), Ok(true));
        assert_eq!(within("srv/work/a", "/srv/work"), Err(EvalError::Type));
        assert_eq!(within("/srv/../../etc", "/srv"), Err(EvalError::Type));
    }

    #[test]
    fn email_domain_is_the_lower_cased_domain_or_an_error() {
        let d = |s: &str| match text_fn(ir::TextFn::EmailDomain, s) {
            Ok(Val::Str(s)) => Some(s.into_owned()),
            _ => None,
        };
        assert_eq!(d("Ann@ACME.com").as_deref(), Some("acme.com"));
        for bad in [
            "acme.com",
            "a@b@acme.com",
            "@acme.com",
            "a@",
            "a@acme..com",
            "a b@x.com",
            "a@x.com ",
        ] {
            assert_eq!(d(bad), None, "{bad}");
        }
        let t = |f, s: &str| match text_fn(f, s) {
            Ok(Val::Str(s)) => s.into_owned(),
            _ => String::new(),
        };
        assert_eq!(t(ir::TextFn::Trim, "  a b \n"), "a b");
        assert_eq!(t(ir::TextFn::Compact, " DE 01\t2 "), "DE012");
    }

    #[test]
    fn numbers_compare_by_exact_value() {
        use Ordering::*;
        let cmp = |a: Val<'_>, b: Val<'_>| compare_numbers(&a, &b);
        assert_eq!(cmp(Val::Int(4), Val::Num(4.0)), Ok(Equal));
        assert_eq!(cmp(Val::Num(98.7), Val::Int(100)), Ok(Less));
        assert_eq!(cmp(Val::Int(-1), Val::Num(-0.5)), Ok(Less));
        assert_eq!(cmp(Val::Num(-0.5), Val::Int(-1)), Ok(Greater));
        assert_eq!(cmp(Val::Int(5000), Val::Num(5000.01)), Ok(Less));
        // 2^53 + 1 has no f64; converting it would make these equal.
        assert_eq!(
            cmp(
                Val::Int(9_007_199_254_740_993),
                Val::Num(9_007_199_254_740_992.0)
            ),
            Ok(Greater)
        );
        assert_eq!(cmp(Val::Int(i64::MAX), Val::Num(9.3e18)), Ok(Less));
        assert_eq!(cmp(Val::Int(i64::MIN), Val::Num(-9.3e18)), Ok(Greater));
        assert_eq!(equal(&Val::Num(0.0), &Val::Int(0)), Ok(true));
        assert_eq!(
            binary(ir::BinOp::Le, &Val::Num(100.0), &Val::Num(100.00)),
            Ok(true)
        );
        let four = serde_json::json!(4.0);
        assert!(matches!(Val::from_json(&four), Ok(Val::Num(f)) if f == 4.0));
    }

    #[test]
    fn globs_are_anchored_and_escape_regex_syntax() {
        let re = regex::Regex::new(&glob_regex("https://*.example.com/?")).expect("valid");
        assert!(re.is_match("https://a.b.example.com/x"));
        assert!(!re.is_match("https://a.example.com/xy"));
        assert!(!re.is_match("xhttps://a.example.com/x"));
        let star = regex::Regex::new(&glob_regex(r"a\*b")).expect("valid");
        assert!(star.is_match("a*b") && !star.is_match("axb"));
    }
}
