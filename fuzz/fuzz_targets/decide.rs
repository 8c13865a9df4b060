//! Fuzz target for the engine: random requests against the shipped policies.
//!
//! The first bytes pick a policy, an agent, a tool, a context and the time
//! `now` reads (0: none, else days and hours around 2026-11-22); the rest is
//! the arguments (as JSON when it parses, else as the value of every schema
//! field). One more byte gives the call a session or not, and which of the
//! rest's text it saw as a user turn, as outputs of the policy's first two
//! tools (their labels apply), as endorsed values and as allowed calls; the
//! last policy reads them (`from`, `session.*`, `urls`/`emails`). Invariant:
//! the compiled engine, with and without its cache, decides exactly as the
//! reference interpreter, and never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use toolgate_check::ir;
use toolgate_engine::provenance::{endorsed_keys, MemorySession, SessionView};
use toolgate_engine::{reference, Context, Engine, Request};

/// Provenance and session conditions over labelled tools.
const PROVENANCE: &str = r#"
writes enabled;
let payees = ["DE02", "Riverside View"];
tool contacts.find read { name: string } output { [].email: trusted, [].note: untrusted };
tool inbox.read read trusted output { [].body: untrusted };
tool mail.send write { to: list<string>, body: string };
tool pay write { iban: string, amount: number };
agent assistant {
  allow contacts.find, inbox.read;
  write mail.send auto-approve limit 5 per day
    when all r in args.to: r from trusted and all u in urls(args.body): u from user;
  write mail.send require approval endorse args.to;
  write pay auto-approve limit 5 per day when args.iban from user and args.amount from ctx;
  write pay require approval when args.iban from tool inbox.read endorse args.iban;
  deny mail.send when session.tainted and session.calls(mail.send) > 1
    or any e in emails(args.body): not (e from trusted);
}
"#;

const POLICIES: [&str; 5] = [
    include_str!("../../policies/support-desk.policy"),
    include_str!("../../policies/safe-default.policy"),
    include_str!("../../policies/multi-tenant.policy"),
    include_str!("../../policies/personal-banking.policy"),
    PROVENANCE,
];

/// A session from the bits of `s`, fed from `text` (halves as turns and outputs).
fn session(pol: &ir::Policy, s: u8, text: &str, args: &serde_json::Value) -> MemorySession {
    let mut session = MemorySession::new();
    let half = text.char_indices().nth(text.chars().count() / 2).map_or(text.len(), |(i, _)| i);
    let (a, b) = text.split_at(half);
    if s & 2 != 0 {
        session.user_turn(a);
    }
    let output = serde_json::from_str(b).unwrap_or_else(|_| serde_json::json!([{ "email": b, "note": a, "body": b }]));
    for (bit, tool) in [(4, pol.tools.first()), (8, pol.tools.get(1))] {
        if let (true, Some(tool)) = (s & bit != 0, tool) {
            session.observe("c1", tool, &output);
        }
    }
    if s & 16 != 0 {
        let paths: Vec<Vec<String>> = pol.rules.iter().flat_map(|r| r.endorse.clone()).collect();
        session.endorse("c2", endorsed_keys(args, &paths));
    }
    for _ in 0..(s >> 5) {
        session.allowed_call("mail.send");
    }
    session
}

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
    let [p, a, t, c, n, s, rest @ ..] = data else { return };
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
    let memory = session(&pol.ir, *s, &text, &args);
    let view = (s & 1 != 0).then_some(&memory as &dyn SessionView);
    let req = Request { agent, tool, args: &args, context: &context, now, session: view };
    let want = reference::decide(&pol.ir, &req);
    let got = pol.engine.decide(&req);
    assert!(reference::agrees(&got, &want), "engine {got:?}\nreference {want:?}\n{req:?}");
    let cached = pol.cached.decide(&req);
    assert!(reference::agrees(&cached, &want), "cached {cached:?}\nreference {want:?}\n{req:?}");
});
