//! A bounded search for concrete requests in one (agent, tool) cell, over
//! one or more policies (`policyc test`'s `never`, `policyc diff`'s
//! witnesses). Candidate values come from the policies' constants for that
//! tool (and URL forms of their strings), the tool's schema, comparison
//! boundaries (`n - 1`, `n`, `n + 1`), the given context's values, every
//! declared env, and, for context fields the given context lacks, the same
//! pool. At most [`MAX_CANDIDATES`] requests are tried.

use crate::request::OwnedRequest;
use serde_json::{json, Map, Value as Json};
use toolgate_check::ir;

/// The most candidate requests tried per cell.
pub const MAX_CANDIDATES: usize = 4096;

/// One varying part of a candidate: a place and its candidate values.
enum Slot {
    Env,
    Ctx(String),
    Arg(String),
}

/// The first candidate request for `agent` calling `tool` that `wanted`
/// accepts. The tool's schema is the first policy's that declares it.
pub fn search(
    policies: &[&ir::Policy],
    agent: &str,
    tool: &str,
    context: &Map<String, Json>,
    mut wanted: impl FnMut(&OwnedRequest) -> bool,
) -> Option<OwnedRequest> {
    let slots = slots(policies, tool, context)?;
    let choices: Vec<Vec<Json>> = slots.iter().map(|(_, c)| c.clone()).collect();
    let mut odometer = vec![0usize; slots.len()];
    for _ in 0..MAX_CANDIDATES {
        let mut args = Map::new();
        let mut ctx = context.clone();
        ctx.entry("tenant").or_insert_with(|| json!("t1"));
        for ((slot, c), i) in slots.iter().zip(&odometer) {
            let Some(v) = c.get(*i).filter(|v| !v.is_null()).cloned() else {
                continue;
            };
            match slot {
                Slot::Env => ctx.insert("env".into(), v),
                Slot::Ctx(name) => ctx.insert(name.clone(), v),
                Slot::Arg(name) => args.insert(name.clone(), v),
            };
        }
        let text = json!({ "agent": agent, "tool": tool, "args": args, "context": ctx });
        if let Ok(req) = OwnedRequest::from_json(&text.to_string()) {
            if wanted(&req) {
                return Some(req);
            }
        }
        if !advance(&mut odometer, &choices) {
            return None;
        }
    }
    None
}

/// The varying parts of a candidate and their values: the env, the context
/// fields `context` lacks, the tool's arguments (`None`: no policy has the tool).
fn slots(
    policies: &[&ir::Policy],
    tool: &str,
    context: &Map<String, Json>,
) -> Option<Vec<(Slot, Vec<Json>)>> {
    let pool = Pool::of(policies, tool, context);
    let mut envs: Vec<Json> = Vec::new();
    let declared = policies
        .iter()
        .flat_map(|p| p.envs.iter().map(|e| json!(e)));
    for e in declared.chain(context.get("env").cloned()) {
        if !envs.contains(&e) {
            envs.push(e);
        }
    }
    if envs.is_empty() {
        envs.push(json!("prod"));
    }
    let mut slots = vec![(Slot::Env, envs)];
    for f in policies.iter().flat_map(|p| p.context.iter()) {
        let known = context.contains_key(&f.name)
            || slots
                .iter()
                .any(|(s, _)| matches!(s, Slot::Ctx(n) if *n == f.name));
        if !known {
            slots.push((Slot::Ctx(f.name.clone()), pool.values(&f.ty, f.optional)));
        }
    }
    let decl = policies
        .iter()
        .find_map(|p| p.tools.iter().find(|t| t.name == tool))?;
    for f in decl.schema.iter().flatten() {
        slots.push((Slot::Arg(f.name.clone()), pool.values(&f.ty, f.optional)));
    }
    Some(slots)
}

/// The next combination; `false` when every one was tried.
fn advance(odometer: &mut [usize], choices: &[Vec<Json>]) -> bool {
    for (i, c) in odometer.iter_mut().zip(choices) {
        *i += 1;
        if *i < c.len() {
            return true;
        }
        *i = 0;
    }
    false
}

/// Candidate values by type.
#[derive(Default)]
struct Pool {
    strings: Vec<String>,
    ints: Vec<i64>,
    /// Decimal boundaries (`x - 0.01`, `x`, `x + 0.01`); `number`s also take the ints.
    nums: Vec<f64>,
    /// `date` and `datetime` literals (`date("...")`), and a default each.
    dates: Vec<String>,
    datetimes: Vec<String>,
}

impl Pool {
    fn of(policies: &[&ir::Policy], tool: &str, context: &Map<String, Json>) -> Pool {
        let mut pool = Pool::default();
        for p in policies {
            let Some(id) = p.tool_id(tool) else { continue };
            for rule in p.rules.iter().filter(|r| r.tools.contains(&id)) {
                if let Some(c) = &rule.condition {
                    pool.collect(c);
                }
            }
        }
        for v in context.values() {
            match v {
                Json::String(s) => pool.string(s),
                Json::Number(n) => match n.as_i64() {
                    Some(i) => pool.ints.push(i),
                    None => pool.nums.extend(n.as_f64()),
                },
                _ => {}
            }
        }
        pool.string("x");
        pool.dates.push("2026-01-01".into());
        pool.datetimes.push("2026-01-01T00:00:00Z".into());
        pool.ints.push(0);
        pool.ints.sort_unstable();
        pool.ints.dedup();
        pool
    }

    /// A string constant, its URL forms (a subdomain), and its upper case
    /// (which URL functions normalise and plain comparisons do not).
    fn string(&mut self, s: &str) {
        for v in [
            s.to_string(),
            format!("https://{s}/"),
            format!("https://x.{s}/x"),
            format!("{}/", s.to_uppercase()),
        ] {
            if !self.strings.contains(&v) {
                self.strings.push(v);
            }
        }
    }

    fn literal(&mut self, v: &ir::Value) {
        match v {
            ir::Value::Str(s) => self.string(s),
            ir::Value::Int(n) => self
                .ints
                .extend([n.saturating_sub(1), *n, n.saturating_add(1)]),
            ir::Value::Num(n) => {
                let n = n.get();
                self.nums.extend([n - 0.01, n, n + 0.01]);
            }
            ir::Value::Bool(_) => {}
            ir::Value::List(items) => items.iter().for_each(|i| self.literal(i)),
        }
    }

    fn collect(&mut self, e: &ir::Expr) {
        use ir::ExprKind as K;
        match &e.kind {
            K::Lit(v) => self.literal(v),
            K::Path(_)
            | K::Elem
            | K::Has(_)
            | K::Now
            | K::Duration(_)
            | K::SessionTainted
            | K::SessionCalls(_) => {}
            K::From(a, _) | K::Extract(_, a) => self.collect(a),
            K::Time(f, a) => match (&a.kind, f) {
                (K::Lit(ir::Value::Str(s)), ir::TimeFn::Date) => self.dates.push(s.clone()),
                (K::Lit(ir::Value::Str(s)), ir::TimeFn::Datetime) => self.datetimes.push(s.clone()),
                _ => self.collect(a),
            },
            K::Len(a) | K::Lower(a) | K::Text(_, a) | K::Url(_, a) | K::Not(a) | K::IsNull(a) => {
                self.collect(a)
            }
            K::And(xs) | K::Or(xs) => xs.iter().for_each(|x| self.collect(x)),
            K::Binary(_, a, b) | K::Quant(_, a, b) | K::Within(a, b) | K::Arith(_, a, b) => {
                self.collect(a);
                self.collect(b);
            }
            K::Glob(a, g) => {
                self.collect(a);
                self.string(&g.replace(['*', '?'], "x"));
            }
            K::Regex(a, _) => self.collect(a),
        }
    }

    /// The candidates for a value of type `ty` (`null`: absent, for an optional field).
    fn values(&self, ty: &ir::Type, optional: bool) -> Vec<Json> {
        let mut out: Vec<Json> = match ty {
            ir::Type::String => self.strings.iter().map(|s| json!(s)).collect(),
            ir::Type::Int => self.ints.iter().map(|n| json!(n)).collect(),
            ir::Type::Number => {
                let whole = self.ints.iter().map(|n| json!(n));
                whole.chain(self.nums.iter().map(|n| json!(n))).collect()
            }
            ir::Type::Bool => vec![json!(true), json!(false)],
            ir::Type::Date => self.dates.iter().map(|s| json!(s)).collect(),
            ir::Type::Datetime => self.datetimes.iter().map(|s| json!(s)).collect(),
            ir::Type::List(inner) => {
                let mut lists = vec![json!([])];
                lists.extend(
                    self.values(inner, false)
                        .into_iter()
                        .take(8)
                        .map(|v| json!([v])),
                );
                lists
            }
            ir::Type::Record(fields) | ir::Type::OpenRecord(fields) => {
                let mut rec = Map::new();
                for f in fields {
                    if let Some(v) = self.values(&f.ty, false).into_iter().next() {
                        rec.insert(f.name.clone(), v);
                    }
                }
                vec![Json::Object(rec)]
            }
            // `null` stands for absent, so a nullable field is tried with its
            // values and without one.
            ir::Type::Nullable(inner) => {
                let mut v = self.values(inner, false);
                v.push(Json::Null);
                v
            }
            ir::Type::OneOf(values) => values.iter().map(const_json).collect(),
            ir::Type::Any => {
                let strings = self.strings.iter().map(|s| json!(s));
                strings.chain(self.ints.iter().map(|n| json!(n))).collect()
            }
        };
        if optional {
            out.push(Json::Null);
        }
        out
    }
}

/// A policy literal as JSON.
fn const_json(v: &ir::Value) -> Json {
    match v {
        ir::Value::Str(s) => json!(s),
        ir::Value::Int(i) => json!(i),
        ir::Value::Num(n) => json!(n.get()),
        ir::Value::Bool(b) => json!(b),
        ir::Value::List(items) => Json::Array(items.iter().map(const_json).collect()),
    }
}
