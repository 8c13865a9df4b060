//! Arguments against a tool's declared schema: unknown, missing and
//! mistyped fields are errors that name the field.

use crate::request::Context;
use serde_json::Value as Json;
use toolgate_check::ir;

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
        match ctx.fields.get(&f.name).filter(|v| !v.is_null()) {
            None if f.optional => {}
            None => return Err(format!("the request context has no `{}`", f.name)),
            Some(v) => value(v, &f.ty, &f.name)
                .map_err(|e| format!("context {}", e.replace("argument", "field")))?,
        }
    }
    Ok(())
}

/// Checks `args` against `schema`; the error says which field and why.
/// The common case (arguments that conform) allocates nothing: the message
/// is only built, by a second walk, when the arguments do not conform.
pub fn check(args: &Json, schema: &[ir::Field]) -> Result<(), String> {
    if conforms(args, schema) {
        return Ok(());
    }
    record(args, schema, "")?;
    Err("the arguments do not match the tool's schema".into())
}

/// Whether `args` conforms to `fields` (the same rules as `record`, without messages).
fn conforms(value: &Json, fields: &[ir::Field]) -> bool {
    let Json::Object(map) = value else {
        return false;
    };
    map.keys().all(|k| fields.iter().any(|f| f.name == *k))
        && fields.iter().all(|f| match map.get(&f.name) {
            None => f.optional,
            Some(v) => conforms_type(v, &f.ty),
        })
}

fn conforms_type(v: &Json, ty: &ir::Type) -> bool {
    match (ty, v) {
        (ir::Type::String, Json::String(_)) | (ir::Type::Bool, Json::Bool(_)) => true,
        (ir::Type::Int, Json::Number(n)) => n.as_i64().is_some(),
        (ir::Type::List(inner), Json::Array(items)) => {
            items.iter().all(|i| conforms_type(i, inner))
        }
        (ir::Type::Record(fields), v) => conforms(v, fields),
        _ => false,
    }
}

fn record(value: &Json, fields: &[ir::Field], at: &str) -> Result<(), String> {
    let Json::Object(map) = value else {
        let what = if at.is_empty() {
            "the arguments".to_string()
        } else {
            format!("argument `{at}`")
        };
        return Err(format!("{what} must be an object, got {}", kind(value)));
    };
    for key in map.keys() {
        if !fields.iter().any(|f| f.name == *key) {
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
        (ir::Type::Int, Json::Number(n)) => n.as_i64().is_some(),
        (ir::Type::List(inner), Json::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                of_type(item, inner, &format!("{at}[{i}]"))?;
            }
            true
        }
        (ir::Type::Record(fields), Json::Object(_)) => return record(v, fields, at),
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
        ir::Type::Bool => "a boolean".into(),
        ir::Type::List(inner) => format!("a list of {}", type_name(inner)),
        ir::Type::Record(_) => "an object".into(),
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() => "an integer",
        Json::Number(_) => "a number that is not a 64-bit integer",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}
