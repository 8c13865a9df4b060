//! Arguments against a tool's declared schema: unknown, missing and
//! mistyped fields are errors that name the field.

use crate::request::Context;
use serde_json::Value as Json;
use toolgate_check::{ir, time};

/// Checks the trusted context: a tenant, a declared env (when `envs` are
/// declared), and every declared field present (unless optional) and typed.
pub fn context(envs: &[String], fields: &[ir::Field], ctx: &Context) -> Result<(), String> {
    if ctx.tenant.is_empty() {
        return Err("the request context has no tenant".into());
    }
    if !envs.is_empty() && !envs.contains(&ctx.env) {
        return Err(format!("unknown env `{}`", ctx.env));
    }
    for f in fields {
        let null_is_a_value = matches!(f.ty, ir::Type::Nullable(_) | ir::Type::Any);
        let given = ctx.fields.get(&f.name);
        match given.filter(|v| null_is_a_value || !v.is_null()) {
            None if f.optional => {}
            None => return Err(format!("the request context has no `{}`", f.name)),
            Some(v) => value(v, &f.ty, &f.name)
                .map_err(|e| format!("context {}", e.replace("argument", "field")))?,
        }
    }
    Ok(())
}

/// Checks `args` against a tool's schema, `fields` (and, when `open`, any
/// other argument); the error says which field and why. The common case
/// (arguments that conform) allocates nothing: the message is only built, by
/// a second walk, when the arguments do not conform.
pub fn check(args: &Json, fields: &[ir::Field], open: bool) -> Result<(), String> {
    if conforms(args, fields, open) {
        return Ok(());
    }
    explain(args, fields, open)?;
    Err("the arguments do not match the tool's schema".into())
}

/// The same rules as [`check`], walked once with a message for the first
/// field that does not conform: what the reference interpreter runs, so the
/// engine's fast walk is compared with it.
pub fn explain(args: &Json, fields: &[ir::Field], open: bool) -> Result<(), String> {
    record(args, fields, open, "")
}

/// Whether `value` conforms to `fields` (the same rules as `record`, without
/// messages). One pass over the given fields, each found by a linear search of
/// the (short) schema; no map lookups.
fn conforms(value: &Json, fields: &[ir::Field], open: bool) -> bool {
    let Json::Object(map) = value else {
        return false;
    };
    let mut required_seen = 0;
    for (key, v) in map {
        let Some(f) = fields.iter().find(|f| f.name == *key) else {
            if open {
                continue;
            }
            return false;
        };
        if !conforms_type(v, &f.ty) {
            return false;
        }
        required_seen += usize::from(!f.optional);
    }
    required_seen == fields.iter().filter(|f| !f.optional).count()
}

fn conforms_type(v: &Json, ty: &ir::Type) -> bool {
    match (ty, v) {
        (ir::Type::String, Json::String(_)) | (ir::Type::Bool, Json::Bool(_)) => true,
        (ir::Type::Int, Json::Number(n)) => is_int(n),
        (ir::Type::Number, Json::Number(_)) => true,
        (ir::Type::Date, Json::String(s)) => time::parse_date(s).is_some(),
        (ir::Type::Datetime, Json::String(s)) => time::parse_datetime(s).is_some(),
        (ir::Type::List(inner), Json::Array(items)) => {
            items.iter().all(|i| conforms_type(i, inner))
        }
        (ir::Type::Record(fields), v) => conforms(v, fields, false),
        (ir::Type::OpenRecord(fields), v) => conforms(v, fields, true),
        (ir::Type::Nullable(_), Json::Null) | (ir::Type::Any, _) => true,
        (ir::Type::Nullable(inner), v) => conforms_type(v, inner),
        (ir::Type::OneOf(values), v) => one_of(v, values),
        _ => false,
    }
}

/// Whether `v` is one of an enum's values: an equal string, or a number
/// equal to an integer value (`2.0` is `2`, as JSON Schema's `enum` says).
fn one_of(v: &Json, values: &[ir::Value]) -> bool {
    values.iter().any(|x| match (x, v) {
        (ir::Value::Str(a), Json::String(b)) => a == b,
        (ir::Value::Int(a), Json::Number(_)) => {
            let (a, b) = (crate::value::Val::Int(*a), crate::value::Val::from_json(v));
            b.is_ok_and(|b| crate::value::equal(&a, &b) == Ok(true))
        }
        _ => false,
    })
}

fn record(value: &Json, fields: &[ir::Field], open: bool, at: &str) -> Result<(), String> {
    let Json::Object(map) = value else {
        let what = if at.is_empty() {
            "the arguments".to_string()
        } else {
            format!("argument `{at}`")
        };
        return Err(format!("{what} must be an object, got {}", kind(value)));
    };
    for key in map.keys() {
        if !open && !fields.iter().any(|f| f.name == *key) {
            return Err(format!("unknown argument `{}`", join(at, key)));
        }
    }
    for f in fields {
        let path = join(at, &f.name);
        match map.get(&f.name) {
            None if f.optional => {}
            None => return Err(format!("missing argument `{path}`")),
            Some(v) => of_type(v, &f.ty, &path)?,
        }
    }
    Ok(())
}

/// Checks one value against a type; `at` names it in the error.
pub fn value(v: &Json, ty: &ir::Type, at: &str) -> Result<(), String> {
    if conforms_type(v, ty) {
        return Ok(());
    }
    of_type(v, ty, at)?;
    Err(format!("`{at}` does not match its declared type"))
}

fn of_type(v: &Json, ty: &ir::Type, at: &str) -> Result<(), String> {
    let ok = match (ty, v) {
        (ir::Type::String, Json::String(_)) | (ir::Type::Bool, Json::Bool(_)) => true,
        (ir::Type::Int, Json::Number(n)) => is_int(n),
        (ir::Type::Number, Json::Number(_)) => true,
        (ir::Type::Date, Json::String(s)) => time::parse_date(s).is_some(),
        (ir::Type::Datetime, Json::String(s)) => time::parse_datetime(s).is_some(),
        (ir::Type::List(inner), Json::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                of_type(item, inner, &format!("{at}[{i}]"))?;
            }
            true
        }
        (ir::Type::Record(fields), Json::Object(_)) => return record(v, fields, false, at),
        (ir::Type::OpenRecord(fields), Json::Object(_)) => return record(v, fields, true, at),
        (ir::Type::Nullable(_), Json::Null) | (ir::Type::Any, _) => true,
        (ir::Type::Nullable(inner), Json::Object(_) | Json::Array(_)) => {
            return of_type(v, inner, at)
        }
        (ir::Type::Nullable(inner), v) => conforms_type(v, inner),
        (ir::Type::OneOf(values), v) => one_of(v, values),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "argument `{at}` must be {}, got {}",
            type_name(ty),
            kind(v)
        ))
    }
}

/// An `int`: an `i64`, written `4` or `4.0` (JSON Schema's `integer`).
fn is_int(n: &serde_json::Number) -> bool {
    // 2^63, exactly representable: integral f64s in [-2^63, 2^63) are i64s.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    n.is_i64()
        || n.as_f64()
            .is_some_and(|f| f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f))
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn type_name(ty: &ir::Type) -> String {
    match ty {
        ir::Type::String => "a string".into(),
        ir::Type::Int => "an integer".into(),
        ir::Type::Number => "a number".into(),
        ir::Type::Bool => "a boolean".into(),
        ir::Type::Date => "an RFC 3339 date (`2026-11-22`)".into(),
        ir::Type::Datetime => "an RFC 3339 datetime with an offset (`2026-11-22T10:00:00Z`)".into(),
        ir::Type::List(inner) => format!("a list of {}", plural(inner)),
        ir::Type::Record(_) | ir::Type::OpenRecord(_) => "an object".into(),
        ir::Type::Nullable(inner) => format!("{} or null", type_name(inner)),
        ir::Type::OneOf(values) => format!("one of {}", values_text(values)),
        ir::Type::Any => "any value".into(),
    }
}

fn values_text(values: &[ir::Value]) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            ir::Value::Str(s) => format!("{s:?}"),
            ir::Value::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    parts.join(", ")
}

fn plural(ty: &ir::Type) -> &'static str {
    match ty {
        ir::Type::String => "strings",
        ir::Type::Int => "integers",
        ir::Type::Number => "numbers",
        ir::Type::Bool => "booleans",
        ir::Type::Date => "dates",
        ir::Type::Datetime => "datetimes",
        ir::Type::List(_) => "lists",
        ir::Type::Record(_) | ir::Type::OpenRecord(_) => "objects",
        ir::Type::Nullable(_) => "nullable values",
        ir::Type::OneOf(_) => "enum values",
        ir::Type::Any => "values",
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if is_int(n) => "an integer",
        Json::Number(_) => "a number that is not a 64-bit integer",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::{check, conforms, explain};
    use proptest::prelude::*;
    use serde_json::{json, Value as Json};
    use toolgate_check::ir::{Field, Type, Value};

    fn field(name: &str, optional: bool, ty: Type) -> Field {
        Field {
            name: name.into(),
            optional,
            ty,
            redact: false,
        }
    }

    fn schema() -> Vec<Field> {
        vec![
            field("to", false, Type::String),
            field("amount", false, Type::Int),
            field("tags", true, Type::List(Box::new(Type::String))),
            field(
                "meta",
                true,
                Type::Record(vec![field("urgent", false, Type::Bool)]),
            ),
            field(
                "cabin",
                true,
                Type::OneOf(vec![Value::Str("a".into()), Value::Str("b".into())]),
            ),
            field(
                "seats",
                true,
                Type::OneOf(vec![Value::Int(1), Value::Int(2)]),
            ),
            field("note", true, Type::Nullable(Box::new(Type::String))),
            field("any", true, Type::Any),
            field(
                "open",
                true,
                Type::OpenRecord(vec![field("urgent", false, Type::Bool)]),
            ),
        ]
    }

    #[test]
    fn json_schema_level_types_are_checked() {
        let s = schema();
        let ok = |v: Json| check(&v, &s, false);
        let base = |extra: Json| {
            let mut v = json!({"to": "x", "amount": 1});
            if let (Some(v), Json::Object(extra)) = (v.as_object_mut(), extra) {
                v.extend(extra);
            }
            v
        };
        assert_eq!(
            ok(base(json!({"cabin": "b", "seats": 2.0, "note": null}))),
            Ok(())
        );
        assert_eq!(
            ok(base(
                json!({"any": null, "open": {"urgent": true, "x": [1]}})
            )),
            Ok(())
        );
        let err = |v: Json| ok(v).expect_err("does not conform");
        assert_eq!(
            err(base(json!({"cabin": "c"}))),
            "argument `cabin` must be one of \"a\", \"b\", got a string"
        );
        assert_eq!(
            err(base(json!({"seats": 3}))),
            "argument `seats` must be one of 1, 2, got an integer"
        );
        assert_eq!(
            err(base(json!({"note": 3}))),
            "argument `note` must be a string or null, got an integer"
        );
        assert_eq!(
            err(base(json!({"open": {"x": 1}}))),
            "missing argument `open.urgent`"
        );
        assert_eq!(
            err(base(json!({"open": null}))),
            "argument `open` must be an object, got null"
        );
        // A tool schema ending in `..` accepts arguments it does not name.
        assert_eq!(check(&base(json!({"zzz": 1})), &s, true), Ok(()));
        assert_eq!(err(base(json!({"zzz": 1}))), "unknown argument `zzz`");
    }

    #[test]
    fn schema_errors_name_the_field() {
        let s = schema();
        assert_eq!(check(&json!({"to": "x", "amount": 5}), &s, false), Ok(()));
        assert_eq!(
            check(
                &json!({"to": "x", "amount": 5, "tags": ["a"], "meta": {"urgent": true}}),
                &s,
                false
            ),
            Ok(())
        );
        let err = |v: Json| check(&v, &s, false).expect_err("does not conform");
        assert_eq!(err(json!({"to": "x"})), "missing argument `amount`");
        assert_eq!(
            err(json!({"to": "x", "amount": 5, "tenant_id": "t"})),
            "unknown argument `tenant_id`"
        );
        assert_eq!(
            err(json!({"to": "x", "amount": 2.5})),
            "argument `amount` must be an integer, got a number that is not a 64-bit integer"
        );
        assert_eq!(
            err(json!({"to": null, "amount": 1})),
            "argument `to` must be a string, got null"
        );
        assert_eq!(
            err(json!({"to": "x", "amount": 1, "tags": ["a", 3]})),
            "argument `tags[1]` must be a string, got an integer"
        );
        assert_eq!(
            err(json!({"to": "x", "amount": 1, "meta": {"urgent": true, "x": 1}})),
            "unknown argument `meta.x`"
        );
        assert_eq!(
            err(json!({"to": "x", "amount": 1, "tags": null})),
            "argument `tags` must be a list of strings, got null"
        );
        assert_eq!(
            err(json!(["to"])),
            "the arguments must be an object, got a list"
        );
    }

    fn json_value() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            Just(json!(1.5)),
            Just(json!(2)),
            Just(json!(2.0)),
            "[a-z]{0,3}".prop_map(Json::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            let key = prop::sample::select(vec![
                "to", "amount", "tags", "meta", "urgent", "x", "cabin", "seats", "note", "any",
                "open",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Json::Array),
                prop::collection::btree_map(key, inner, 0..5).prop_map(|m| Json::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        /// The fast check and the one that explains agree on every value.
        #[test]
        fn fast_check_agrees_with_the_explaining_check(v in json_value()) {
            let s = schema();
            for open in [false, true] {
                prop_assert_eq!(conforms(&v, &s, open), explain(&v, &s, open).is_ok());
            }
        }
    }
}
