//! Fuzz target for the engine: random requests against the shipped policies.
//!
//! The first bytes pick a policy, an agent, a tool, a context and the time
//! `now` reads (0: none, else days and hours around 2026-11-22); the rest is
//! the arguments (as JSON when it parses, else as the value of every schema
//! field). Invariant: the compiled engine, with and without its cache, decides
//! exactly as the reference interpreter, and never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use toolgate_check::ir;
use toolgate_engine::{reference, Context, Engine, Request};

const POLICIES: [&str; 4] = [
    include_str!("../../policies/support-desk.policy"),
    include_str!("../../policies/safe-default.policy"),
    include_str!("../../policies/multi-tenant.policy"),
    include_str!("../../policies/personal-banking.policy"),
];

struct Compiled {
    ir: ir::Policy,
    engine: Engine,
    cached: Engine,
}

fn compiled() -> &'static [Compiled] {
    static ALL: OnceLock<Vec<Compiled>> = OnceLock::new();
    ALL.get_or_init(|| {
        POLICIES
            .iter()
            .map(|src| {
                let parsed = toolgate_syntax::parse(src);
                let ir = toolgate_check::check(&parsed.file, src).policy.expect("shipped policies check");
                let engine = Engine::new(&ir, "p").expect("compiles");
                let cap = std::num::NonZeroUsize::new(8).expect("non-zero");
                let cached = Engine::with_cache(&ir, "p", cap).expect("compiles");
                Compiled { ir, engine, cached }
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let [p, a, t, c, n, rest @ ..] = data else { return };
    let all = compiled();
    let pol = &all[*p as usize % all.len()];
    fn pick<'a>(names: Vec<&'a str>, b: u8) -> &'a str {
        names.get(b as usize % (names.len() + 1)).copied().unwrap_or("unknown")
    }
    let agent = pick(pol.ir.agents.iter().map(|a| a.name.as_str()).collect(), *a);
    let tool = pick(pol.ir.tools.iter().map(|t| t.name.as_str()).collect(), *t);
    let text = String::from_utf8_lossy(rest);
    let args = serde_json::from_str(&text).unwrap_or_else(|_| {
        let fields = pol.ir.tools.iter().find(|x| x.name == tool).and_then(|x| x.schema.clone()).unwrap_or_default();
        serde_json::Value::Object(fields.iter().map(|f| (f.name.clone(), serde_json::json!(text))).collect())
    });
    let mut fields = serde_json::Map::new();
    for (i, name) in ["account_id", "region", "plan"].iter().enumerate() {
        if c & (1 << i) != 0 {
            fields.insert(name.to_string(), serde_json::json!(if c & 8 != 0 { "A1" } else { "trial" }));
        }
    }
    if c & 128 != 0 {
        // personal-banking's context: its own account and saved payees.
        fields.insert("account_iban".into(), serde_json::json!("DE01"));
        fields.insert("payees".into(), serde_json::json!(["DE02", "FR03"]));
    }
    let env = ["dev", "staging", "prod", "qa"][(*c as usize >> 4) % 4];
    let tenant = if c & 64 != 0 { "acme" } else { "" };
    let context = Context { tenant: tenant.into(), env: env.into(), fields };
    // 2026-11-22T00:00:00Z, moved by whole days (high bits) and 6-hour steps (low bits).
    let now = (*n != 0).then(|| {
        let secs = 1_795_305_600 + (i64::from(*n >> 2) - 32) * 86_400 + i64::from(*n & 3) * 21_600;
        toolgate_engine::Timestamp::from_second(secs).expect("in range")
    });
    let req = Request { agent, tool, args: &args, context: &context, now, session: None };
    let want = reference::decide(&pol.ir, &req);
    let got = pol.engine.decide(&req);
    assert!(reference::agrees(&got, &want), "engine {got:?}\nreference {want:?}\n{req:?}");
    let cached = pol.cached.decide(&req);
    assert!(reference::agrees(&cached, &want), "cached {cached:?}\nreference {want:?}\n{req:?}");
});
