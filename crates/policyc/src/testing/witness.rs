//! A bounded search for a concrete request in one (agent, tool) cell: the
//! candidate values come from the policy's constants for that tool (and URL
//! forms of its strings), the tool's schema, comparison boundaries (`n - 1`,
//! `n`, `n + 1`), the context's values and every declared env.

use serde_json::{json, Map, Value as Json};
use toolgate_check::ir;
use toolgate_engine::OwnedRequest;

/// The most candidate requests tried per cell.
pub(crate) const MAX_CANDIDATES: usize = 4096;

/// The first candidate request for `agent` calling `tool` that `wanted` accepts.
pub(crate) fn search(
    policy: &ir::Policy,
    agent: &str,
    tool: ir::ToolId,
    context: &Map<String, Json>,
    mut wanted: impl FnMut(&OwnedRequest) -> bool,
) -> Option<OwnedRequest> {
    let decl = policy.tools.get(tool.0 as usize)?;
    let pool = Pool::of(policy, tool, context);
    let fields = decl.schema.clone().unwrap_or_default();
    let choices: Vec<Vec<Json>> = fields
        .iter()
        .map(|f| pool.values(&f.ty, f.optional))
        .collect();
    let envs = if policy.envs.is_empty() {
        vec![context.get("env").cloned().unwrap_or_else(|| json!("prod"))]
    } else {
        policy.envs.iter().map(|e| json!(e)).collect()
    };
    let mut odometer = vec![0usize; choices.len()];
    for tried in 0..MAX_CANDIDATES {
        let mut args = Map::new();
        for ((f, c), i) in fields.iter().zip(&choices).zip(&odometer) {
            match c.get(*i) {
                Some(Json::Null) | None => {}
                Some(v) => {
                    args.insert(f.name.clone(), v.clone());
                }
            }
        }
        let mut ctx = context.clone();
        ctx.insert("env".into(), envs[tried % envs.len()].clone());
        ctx.entry("tenant").or_insert_with(|| json!("t1"));
        let text = json!({ "agent": agent, "tool": decl.name, "args": args, "context": ctx });
        if let Ok(req) = OwnedRequest::from_json(&text.to_string()) {
            if wanted(&req) {
                return Some(req);
            }
        }
        if tried % envs.len() == envs.len() - 1 && !advance(&mut odometer, &choices) {
            return None;
        }
    }
    None
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
}

impl Pool {
    fn of(policy: &ir::Policy, tool: ir::ToolId, context: &Map<String, Json>) -> Pool {
        let mut pool = Pool::default();
        for rule in policy.rules.iter().filter(|r| r.tools.contains(&tool)) {
            if let Some(c) = &rule.condition {
                pool.collect(c);
            }
        }
        for v in context.values() {
            match v {
                Json::String(s) => pool.string(s),
                Json::Number(n) => pool.ints.extend(n.as_i64()),
                _ => {}
            }
        }
        pool.string("x");
        pool.ints.push(0);
        pool.ints.sort_unstable();
        pool.ints.dedup();
        pool
    }

    fn string(&mut self, s: &str) {
        for v in [
            s.to_string(),
            format!("https://{s}/"),
            format!("https://x.{s}/x"),
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
            ir::Value::Bool(_) => {}
            ir::Value::List(items) => items.iter().for_each(|i| self.literal(i)),
        }
    }

    fn collect(&mut self, e: &ir::Expr) {
        use ir::ExprKind as K;
        match &e.kind {
            K::Lit(v) => self.literal(v),
            K::Path(_) | K::Elem | K::Has(_) => {}
            K::Len(a) | K::Lower(a) | K::Url(_, a) | K::Not(a) => self.collect(a),
            K::And(xs) | K::Or(xs) => xs.iter().for_each(|x| self.collect(x)),
            K::Binary(_, a, b) | K::Quant(_, a, b) => {
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
            ir::Type::Bool => vec![json!(true), json!(false)],
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
            ir::Type::Record(fields) => {
                let mut rec = Map::new();
                for f in fields {
                    if let Some(v) = self.values(&f.ty, false).into_iter().next() {
                        rec.insert(f.name.clone(), v);
                    }
                }
                vec![Json::Object(rec)]
            }
        };
        if optional {
            out.push(Json::Null);
        }
        out
    }
}
