//! An MCP tool's `inputSchema` (JSON Schema) → the argument schema of a
//! Toolgate `tool` declaration, plus what the language cannot say about it.
//!
//! Every choice fails closed (docs/mcp.md, "Importing tools"): a value the
//! declaration does not express is denied, never let through. What the
//! language says exactly is declared exactly: `number`, `T | null` for a
//! nullable type, a literal union (`"asc" | "desc"`, `1 | 2`) for a string or
//! integer `enum`/`const`, `{ a: T, .. }` for `additionalProperties: true`,
//! `{ .. }` for an object of any keys, `any` for a schema of any value, lists
//! of records. A boolean `enum` becomes a deny rule; a field whose type cannot
//! be written (a union of several types, a map with typed values, `$ref`, an
//! array of anything) is left out of the record, so the gateway's schema check
//! denies every call that carries it.
//! Validation keywords (`minLength`, `pattern`, …) are not checked by the
//! policy and are reported, since the upstream is what validates them.

use serde_json::{Map, Value};

/// Keywords that restrict values without changing their type.
const UNCHECKED: &[&str] = &[
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "contains",
    "minProperties",
    "maxProperties",
];

/// Keywords whose meaning the language has no way to write.
const UNEXPRESSIBLE: &[&str] = &[
    "$ref",
    "allOf",
    "not",
    "if",
    "patternProperties",
    "dependentSchemas",
    "prefixItems",
];

/// How a field's schema was handled when the language could not say it exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Declared with a narrower type: the values in between are denied.
    Narrowed,
    /// Left out of the declaration: a call carrying it is denied.
    Omitted,
    /// Declared, but a validation keyword is left to the upstream.
    Unchecked,
}

impl Kind {
    /// The warning's stable code.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Kind::Narrowed => "policyc::mcp_import::narrowed",
            Kind::Omitted => "policyc::mcp_import::omitted",
            Kind::Unchecked => "policyc::mcp_import::unchecked",
        }
    }
}

/// One field the language could not express exactly.
#[derive(Debug)]
pub(crate) struct Note {
    /// `a.b[].c`, or `(arguments)` for the whole input schema.
    pub field: String,
    /// What the declaration got.
    pub kind: Kind,
    /// Why, in words.
    pub message: String,
}

/// A boolean `enum`/`const` the policy enforces with a deny rule.
#[derive(Debug)]
pub(crate) struct Allowed {
    /// The field's path below `args`.
    pub path: Vec<String>,
    /// Optional fields on the way (each prefix needs a `has` guard).
    pub guards: Vec<Vec<String>>,
    /// The path is a list and each element must be one of the values.
    pub each: bool,
    /// The values as policy literals.
    pub values: Vec<String>,
}

/// The converted input schema.
#[derive(Debug)]
pub(crate) struct Converted {
    /// The record type, e.g. `{ path: string, head?: int }`.
    pub schema: String,
    /// What could not be said exactly, per field.
    pub notes: Vec<Note>,
    /// The deny rules that enforce enums.
    pub allowed: Vec<Allowed>,
}

/// One step from `args` down to a field.
#[derive(Clone, Debug)]
enum Step {
    Field { name: String, optional: bool },
    Items,
}

/// Converts a tool's `inputSchema`.
pub(crate) fn convert(input: &Value) -> Converted {
    let mut walk = Walk::default();
    let schema = match input.as_object() {
        Some(obj) => top_level(obj).and_then(|()| walk.record(obj, &mut Vec::new())),
        None => Err("the input schema is not an object".to_string()),
    };
    let schema = schema.unwrap_or_else(|why| {
        walk.notes.push(Note {
            field: "(arguments)".into(),
            kind: Kind::Omitted,
            message: format!("{why}; declared with no arguments, so a call with any is denied"),
        });
        walk.allowed.clear();
        "{}".into()
    });
    Converted {
        schema,
        notes: walk.notes,
        allowed: walk.allowed,
    }
}

/// The input schema must be one object schema: no union, no reference.
fn top_level(obj: &Map<String, Value>) -> Result<(), String> {
    let keys = UNEXPRESSIBLE
        .iter()
        .chain(&["anyOf", "oneOf", "enum", "const"]);
    if let Some(k) = keys.into_iter().find(|k| obj.contains_key(**k)) {
        return Err(format!("`{k}` on the input schema is not expressible"));
    }
    match obj.get("type") {
        None => Ok(()),
        Some(t) if t == "object" => Ok(()),
        Some(t) => Err(format!("the input schema has type `{t}`, not `object`")),
    }
}

#[derive(Default)]
struct Walk {
    notes: Vec<Note>,
    allowed: Vec<Allowed>,
}

impl Walk {
    fn note(&mut self, at: &[Step], kind: Kind, message: String) {
        self.notes.push(Note {
            field: display(at),
            kind,
            message,
        });
    }

    /// An object schema as a closed record.
    fn record(&mut self, obj: &Map<String, Value>, at: &mut Vec<Step>) -> Result<String, String> {
        let props = match obj.get("properties") {
            None => None,
            Some(Value::Object(p)) => Some(p),
            Some(_) => return Err("`properties` is not an object".into()),
        };
        let has_props = props.is_some_and(|p| !p.is_empty());
        let open = match obj.get("additionalProperties") {
            Some(Value::Bool(false)) => false,
            // Absent: JSON Schema allows other keys; declared closed (fail closed).
            None if has_props || at.is_empty() => false,
            // An object of any keys and values: exactly `{ .. }`.
            None | Some(Value::Bool(true)) => true,
            Some(Value::Object(any)) if any.is_empty() => true,
            Some(_) if !has_props => {
                return Err("a map whose values have a type: its keys are not known".into())
            }
            Some(_) => {
                self.note(
                    at,
                    Kind::Narrowed,
                    "other properties with a type (`additionalProperties`): only the declared properties are accepted".into(),
                );
                false
            }
        };
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = Vec::new();
        for (name, schema) in props.into_iter().flatten() {
            let optional = !required.contains(&name.as_str());
            if let Some(field) = self.property(name, schema, optional, at) {
                fields.push(field);
            }
        }
        if open {
            fields.push("..".into());
        }
        Ok(if fields.is_empty() {
            "{}".into()
        } else {
            format!("{{ {} }}", fields.join(", "))
        })
    }

    /// One property as `name: T` / `name?: T`, or `None` when it is left out.
    fn property(
        &mut self,
        name: &str,
        schema: &Value,
        optional: bool,
        at: &mut Vec<Step>,
    ) -> Option<String> {
        at.push(Step::Field {
            name: name.to_string(),
            optional,
        });
        let (notes, allowed) = (self.notes.len(), self.allowed.len());
        let typed = if is_ident(name) {
            self.field_type(schema, at)
        } else {
            Err("the name is not an identifier (letters, digits, `_`)".into())
        };
        let out = match typed {
            Ok(t) => Some(format!("{name}{}: {t}", if optional { "?" } else { "" })),
            Err(why) => {
                self.notes.truncate(notes);
                self.allowed.truncate(allowed);
                let then = if optional {
                    "left out, so a call that passes it is denied"
                } else {
                    "left out; it is required, so every call to the tool is denied until the declaration is written by hand"
                };
                self.note(at, Kind::Omitted, format!("{why}; {then}"));
                None
            }
        };
        at.pop();
        out
    }

    /// The Toolgate type of one field's schema.
    fn field_type(&mut self, schema: &Value, at: &mut Vec<Step>) -> Result<String, String> {
        let Some(obj) = schema.as_object() else {
            return match schema {
                Value::Bool(true) => Ok("any".into()),
                _ => Err("a schema that accepts no value".into()),
            };
        };
        if let Some(k) = UNEXPRESSIBLE.iter().find(|k| obj.contains_key(**k)) {
            return Err(format!("`{k}` is not expressible"));
        }
        if let Some((inner, nullable)) = nullable_union(obj)? {
            return Ok(or_null(self.field_type(inner, at)?, nullable));
        }
        let (ty, nullable) = base_type(obj)?;
        for k in UNCHECKED.iter().filter(|k| obj.contains_key(**k)) {
            self.note(
                at,
                Kind::Unchecked,
                format!("`{k}` is not checked by the policy (the upstream validates it)"),
            );
        }
        let text = match ty.as_str() {
            "string" => "string".to_string(),
            "integer" => "int".to_string(),
            "boolean" => "bool".to_string(),
            "number" => "number".to_string(),
            "array" => {
                let Some(items) = obj.get("items") else {
                    return Ok(or_null("list<any>".into(), nullable));
                };
                at.push(Step::Items);
                let t = self.field_type(items, at);
                at.pop();
                format!("list<{}>", t?)
            }
            "object" => self.record(obj, at)?,
            "any" => "any".to_string(),
            other => return Err(format!("type `{other}` is not expressible")),
        };
        let values = match (obj.get("enum"), obj.get("const")) {
            (Some(Value::Array(v)), _) => Some(v.clone()),
            (None, Some(c)) => Some(vec![c.clone()]),
            (Some(_), _) => return Err("`enum` is not a list".into()),
            (None, None) => None,
        };
        let Some(values) = values else {
            return Ok(or_null(text, nullable));
        };
        // `null` passes an `enum` only if listed, and the `type` only if it allows it.
        let with_null = nullable && values.iter().any(Value::is_null);
        match literal_union(&values, &ty) {
            Some(union) => Ok(or_null(union, with_null)),
            None => {
                self.enum_rule(&values, &ty, at)?;
                Ok(or_null(text, with_null))
            }
        }
    }

    /// A deny rule for the values an `enum`/`const` lists.
    fn enum_rule(&mut self, values: &[Value], ty: &str, at: &[Step]) -> Result<(), String> {
        let literal = |v: &Value| -> Option<String> {
            match (ty, v) {
                ("string", Value::String(s)) => Some(toolgate_syntax::string_text(s)),
                ("integer" | "number", Value::Number(n)) => n.as_i64().map(|i| i.to_string()),
                ("boolean", Value::Bool(b)) => Some(b.to_string()),
                _ => None,
            }
        };
        let values: Option<Vec<String>> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(literal)
            .collect();
        let values =
            values.ok_or_else(|| format!("an `enum` whose values are not all `{ty}` literals"))?;
        let mut path = Vec::new();
        let mut guards = Vec::new();
        let mut each = false;
        for step in at {
            match step {
                Step::Items if each => return Err("an `enum` inside a list of lists".into()),
                Step::Items => each = true,
                Step::Field { .. } if each => {
                    return Err("an `enum` inside a list of records".into())
                }
                Step::Field { name, optional } => {
                    path.push(name.clone());
                    if *optional {
                        guards.push(path.clone());
                    }
                }
            }
        }
        self.allowed.push(Allowed {
            path,
            guards,
            each,
            values,
        });
        Ok(())
    }
}

/// `anyOf`/`oneOf` of one type, with or without `null`: that type, and
/// whether `null` is one of the members.
fn nullable_union(obj: &Map<String, Value>) -> Result<Option<(&Value, bool)>, String> {
    let Some(members) = obj.get("anyOf").or_else(|| obj.get("oneOf")) else {
        return Ok(None);
    };
    let members = members.as_array().ok_or("`anyOf`/`oneOf` is not a list")?;
    let is_null = |m: &Value| m.get("type").and_then(Value::as_str) == Some("null");
    let rest: Vec<&Value> = members.iter().filter(|m| !is_null(m)).collect();
    match rest.as_slice() {
        [one] => Ok(Some((one, rest.len() < members.len()))),
        _ => Err("a union (`anyOf`/`oneOf`) of several types".into()),
    }
}

/// The JSON Schema type name (`type`, or inferred from `enum`/`const`,
/// `properties` or `items`; `any` when nothing says), and whether `null` is
/// allowed too (a `type` list with `"null"`, or no `type` at all).
fn base_type(obj: &Map<String, Value>) -> Result<(String, bool), String> {
    match obj.get("type") {
        Some(Value::String(t)) => Ok((t.clone(), false)),
        Some(Value::Array(ts)) => {
            let names: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
            let rest: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
            match rest.as_slice() {
                [one] => Ok(((*one).to_string(), rest.len() < names.len())),
                _ => Err(format!("a union of types `{}`", names.join("`, `"))),
            }
        }
        Some(_) => Err("`type` is neither a string nor a list".into()),
        None => infer_type(obj).map(|t| (t, true)),
    }
}

/// `T | null` when `nullable` (an `any` already includes `null`).
fn or_null(ty: String, nullable: bool) -> String {
    if nullable && ty != "any" {
        format!("{ty} | null")
    } else {
        ty
    }
}

/// A string or integer `enum` as a literal union (`"a" | "b"`, `1 | 2`),
/// `null` left out; `None` for values the language has no literal type for.
fn literal_union(values: &[Value], ty: &str) -> Option<String> {
    let literal = |v: &Value| match (ty, v) {
        ("string", Value::String(s)) => Some(toolgate_syntax::string_text(s)),
        ("integer" | "number", Value::Number(n)) => n.as_i64().map(|i| i.to_string()),
        _ => None,
    };
    let parts: Option<Vec<String>> = values
        .iter()
        .filter(|v| !v.is_null())
        .map(literal)
        .collect();
    parts.filter(|p| !p.is_empty()).map(|p| p.join(" | "))
}

/// The type of a schema with no `type`.
fn infer_type(obj: &Map<String, Value>) -> Result<String, String> {
    let values: Vec<&Value> = match (obj.get("enum"), obj.get("const")) {
        (Some(Value::Array(v)), _) => v.iter().filter(|v| !v.is_null()).collect(),
        (None, Some(c)) => vec![c],
        _ if obj.contains_key("properties") => return Ok("object".into()),
        _ if obj.contains_key("items") => return Ok("array".into()),
        _ => return Ok("any".into()),
    };
    let all = |f: fn(&Value) -> bool| !values.is_empty() && values.iter().all(|v| f(v));
    if all(Value::is_string) {
        Ok("string".into())
    } else if all(Value::is_i64) {
        Ok("integer".into())
    } else if all(Value::is_boolean) {
        Ok("boolean".into())
    } else {
        Err("an `enum` of mixed or non-scalar values".into())
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a field name the language can write.
pub(crate) fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `a.b[].c`.
fn display(at: &[Step]) -> String {
    let mut out = String::new();
    for step in at {
        match step {
            Step::Field { name, .. } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Step::Items => out.push_str("[]"),
        }
    }
    if out.is_empty() {
        "(arguments)".into()
    } else {
        out
    }
}
