//! The engine's guarantees, proven on random (policy, request) pairs:
//!
//! 1. the compiled engine, with and without its cache, decides exactly as the reference interpreter;
//! 2. default deny: no grant for the (agent, tool), an undeclared tool or agent -> deny;
//!    removing a grant never turns a deny into anything else (monotonicity);
//! 3. deny overrides: an added unconditional `deny` always yields deny;
//! 4. without `writes enabled`, no write tool is ever allowed or approval_required;
//! 5. the credential scope's tenant and env are the context's, whatever the arguments say.
//!
//! Requests come with or without a random session (user turns, labelled
//! tool outputs, endorsements, allowed calls), so the provenance and
//! session conditions (`from`, `session.*`, `urls`/`emails`) are compared too.
//!
//! `PROPTEST_CASES` raises the default of 256 cases per property.

use proptest::prelude::*;
use serde_json::{json, Value as Json};
use toolgate_engine::provenance::{Key, MemorySession, SessionView};
use toolgate_engine::reference;
use toolgate_engine::{Context, Engine, Outcome, Request, Timestamp};

const TOOLS: &str = "\
tool t.r1 read trusted { s: string, n: int, l: list<string>, u?: string | null, .. } output { [].e: untrusted };
tool t.r2 read output { a: trusted, b[]: trusted };
tool t.w1 write { s: string, n: int, m?: number, u?: string | null, c?: \"a\" | \"b\" | null, k?: any, o2?: { x: int, .. }, d?: date, t?: datetime };
tool t.w2 write irreversible;
tool t.w3 write { l: list<string>, o?: { x: int }, p?: list<{ e: string, n?: int } | null>, u?: string | null };
";
const READ_TOOLS: [&str; 2] = ["t.r1", "t.r2"];
const WRITE_TOOLS: [&str; 3] = ["t.w1", "t.w2", "t.w3"];

const CONDITIONS: [&str; 51] = [
    "has args.s and args.s from user",
    "has args.s and args.s from trusted",
    "has args.n and args.n from tool t.r1",
    "has args.l and all x in args.l: x from ctx",
    "has args.p and any x in args.p: x.e from tool t.r2 or x.e from user",
    "has args.s and not (args.s from tool t.r2)",
    "session.tainted",
    "session.calls(t.r1) > 1",
    "has args.s and all u in urls(args.s): u from trusted",
    "has args.s and any e in emails(args.s): e from user or args.s in [\"see xyz now\"]",
    "args.u == null",
    "args.u != null and args.u starts_with \"x\"",
    "has args.c and args.c == \"a\"",
    "has args.k and args.k == 5",
    "has args.o2 and args.o2.x > 1 and has args.o2.z and args.o2.z == \"q\"",
    "has args.p and any x in args.p: x == null or x.e == \"b\"",
    "has args.s and args.s == \"x\"",
    "has args.n and args.n > 3",
    "env == \"dev\"",
    "tenant == \"acme\"",
    "ctx.region == \"eu\"",
    "has ctx.opt",
    "agent == \"a1\"",
    "has args.l and any args.l == \"b\"",
    "has args.l and len(args.l) > 1",
    "args.q == 1",
    "args.s starts_with \"x\"",
    "has args.s and lower(args.s) matches \"x*\"",
    "has args.o and args.o.x >= 2",
    "has args.l and all args.l in [\"a\", \"b\"]",
    "has args.s and host(args.s) == \"x.test\"",
    "has args.s and port(args.s) > 100",
    "scheme(args.s) == \"https\"",
    "has args.s and path(args.s) starts_with \"/a\"",
    "has args.m and args.m <= 100.00",
    "has args.n and args.n > 2.5",
    "args.m == 4 or args.m in [-0.5, 7]",
    "has args.p and any x in args.p: x.e ends_with \"@a.test\" or x.e in [\"b\"]",
    "has args.p and all x in args.p: has x.n and x.n > 1",
    "has args.l and any x in args.l: x == \"b\" or (all y in args.l: y != \"a\")",
    "has args.s and email_domain(args.s) == \"a.test\"",
    "has args.s and within(args.s, \"/a\")",
    "compact(trim(args.s)) == \"xyz\"",
    "has args.d and args.d >= date(now)",
    "has args.d and args.d <= date(now) + 30d",
    "has args.t and args.t > now - 12h",
    "has args.t and args.t - now <= 2w",
    "datetime(args.s) < now + 90s",
    "has args.d and args.d - date(\"2026-11-22\") < 3d",
    "now >= datetime(\"2026-11-22T10:00:00+01:00\")",
    "has args.t and date(args.t) == args.d",
];

#[derive(Clone, Debug)]
struct GenRule {
    kind: &'static str,
    agent: Option<&'static str>,
    tools: Vec<&'static str>,
    approval: &'static str,
    scope: &'static str,
    when: Option<String>,
    /// Written with `@id("r<index>")`.
    named: bool,
}

impl GenRule {
    fn text(&self, index: usize) -> String {
        let id = if self.named {
            format!("@id(\"r{index}\") ")
        } else {
            String::new()
        };
        let mut s = if self.kind == "floor" {
            format!("{id}{} on {}", self.approval, self.tools.join(", "))
        } else {
            format!("{id}{} {}", self.kind, self.tools.join(", "))
        };
        let approval = if self.kind == "floor" {
            ""
        } else {
            self.approval
        };
        for part in [approval, self.scope] {
            if !part.is_empty() {
                s.push(' ');
                s.push_str(part);
            }
        }
        if let Some(w) = &self.when {
            s.push_str(" when ");
            s.push_str(w);
        }
        s.push(';');
        s
    }
}

#[derive(Clone, Debug)]
struct GenPolicy {
    envs: bool,
    /// A `scope default ...;` line, or empty.
    default_scope: &'static str,
    writes: &'static str,
    rules: Vec<GenRule>,
}

impl GenPolicy {
    fn text(&self) -> String {
        let mut s = String::from("context {\n  region: string;\n  opt?: string;\n}\n");
        if self.envs {
            s.push_str("envs dev, prod;\n");
        }
        s.push_str(self.default_scope);
        s.push_str(TOOLS);
        s.push_str(self.writes);
        s.push('\n');
        let rules = self.rules.iter().enumerate();
        for (i, r) in rules.clone().filter(|(_, r)| r.agent.is_none()) {
            s.push_str(&r.text(i));
            s.push('\n');
        }
        for agent in ["a1", "a2"] {
            s.push_str(&format!("agent {agent} {{\n"));
            for (i, r) in rules.clone().filter(|(_, r)| r.agent == Some(agent)) {
                s.push_str(&format!("  {}\n", r.text(i)));
            }
            s.push_str("}\n");
        }
        s
    }
}

fn condition() -> impl Strategy<Value = String> {
    let atom = prop::sample::select(CONDITIONS.to_vec()).prop_map(String::from);
    prop_oneof![
        3 => atom.clone(),
        1 => (atom.clone(), atom.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
        1 => (atom.clone(), atom.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
        1 => atom.prop_map(|a| format!("not ({a})")),
    ]
}

fn rule() -> impl Strategy<Value = GenRule> {
    let kind = prop::sample::select(vec!["allow", "write", "deny", "write", "floor"]);
    let agent = prop::sample::select(vec![None, Some("a1"), Some("a2")]);
    let scope = prop::sample::select(vec!["", "scope tenant", "scope tenant, env, ctx.region"]);
    let approval = prop::sample::select(vec![
        "",
        "require 2 approvals",
        "auto-approve limit 3 per hour",
        "auto-approve limit 3 per hour",
        "require approval from \"ops\" expires 1h",
    ]);
    let floor = prop::sample::select(vec![
        "require 2 approvals",
        "require approval from \"fin\"",
        "require approval from \"ops\" expires 30m",
        "require 3 approvals from \"fin\" expires 2h",
    ]);
    (
        kind,
        agent,
        any::<prop::sample::Index>(),
        any::<bool>(),
        scope,
        approval,
        prop::option::of(condition()),
        (any::<bool>(), floor),
    )
        .prop_map(
            |(kind, agent, pick, pattern, scope, approval, when, (named, floor))| {
                let pool: Vec<&str> = match kind {
                    "allow" => READ_TOOLS.to_vec(),
                    "write" => WRITE_TOOLS.to_vec(),
                    _ => READ_TOOLS
                        .iter()
                        .chain(WRITE_TOOLS.iter())
                        .copied()
                        .collect(),
                };
                let tools = if pattern && (kind == "deny" || kind == "floor") {
                    // A whole-segment `*`, or one inside a segment.
                    vec![if pick.index(2) == 0 { "t.*" } else { "t.w*" }]
                } else {
                    vec![*pick.get(&pool)]
                };
                GenRule {
                    kind,
                    agent,
                    tools,
                    approval: match kind {
                        // Reads take budgets and approvals like writes.
                        "write" | "allow" => approval,
                        "floor" => floor,
                        _ => "",
                    },
                    scope: if kind == "deny" || kind == "floor" {
                        ""
                    } else {
                        scope
                    },
                    when,
                    named,
                }
            },
        )
}

fn policy() -> impl Strategy<Value = GenPolicy> {
    let writes = prop::sample::select(vec![
        "writes enabled;",
        "writes enabled;",
        "writes disabled;",
        "",
    ]);
    let default_scope = prop::sample::select(vec![
        "",
        "",
        "scope default tenant, ctx.region;\n",
        "scope default env;\n",
    ]);
    (
        any::<bool>(),
        default_scope,
        writes,
        prop::collection::vec(rule(), 0..8),
    )
        .prop_map(|(envs, default_scope, writes, rules)| GenPolicy {
            envs,
            default_scope,
            writes,
            rules,
        })
}

fn json_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(json!("x")),
        Just(json!("xyz")),
        Just(json!("b")),
        Just(json!(5)),
        Just(json!(1)),
        Just(json!(2.5)),
        Just(json!(4.0)),
        Just(json!(true)),
        Just(json!(null)),
        Just(json!(["a", "b"])),
        Just(json!(["b", 3])),
        Just(json!({ "x": 3 })),
        Just(json!({ "x": "3" })),
        Just(json!("2026-11-22")),
        Just(json!("2026-11-22T10:00:00Z")),
        Just(json!("see https://x.test/a or bob@a.test")),
        Just(json!("bob@a.test")),
        Just(json!("eu")),
        Just(json!(2026)),
    ]
}

/// What happened in a session before the request.
#[derive(Clone, Debug)]
enum Event {
    Turn(&'static str),
    /// An output of `t.r1` or `t.r2`.
    Output(&'static str, Json),
    Endorse(&'static str),
    Call(&'static str),
}

const WORDS: [&str; 8] = [
    "xyz",
    "see xyz now",
    "bob@a.test",
    "https://x.test/a",
    "pay 5 or 2.5 EUR",
    "acme",
    "in 2026",
    "",
];

fn event() -> impl Strategy<Value = Event> {
    let word = prop::sample::select(WORDS.to_vec());
    let tool = prop::sample::select(vec!["t.r1", "t.r2"]);
    let output = (word.clone(), word.clone()).prop_map(|(a, b)| prop_oneof_outputs(a, b));
    prop_oneof![
        2 => word.clone().prop_map(Event::Turn),
        3 => (tool.clone(), output).prop_map(|(t, o)| Event::Output(t, o)),
        1 => word.prop_map(Event::Endorse),
        1 => tool.prop_map(Event::Call),
    ]
}

/// A few output shapes around the tools' labelled paths.
fn prop_oneof_outputs(a: &str, b: &str) -> Json {
    match (a.len() + b.len()) % 4 {
        0 => json!(a),
        1 => json!([{ "e": a, "f": b }]),
        2 => json!({ "a": a, "b": [b, 5], "c": null }),
        _ => json!({ "a": "", "z": b }),
    }
}

/// The tools of [`TOOLS`], checked (for their labels).
fn tools_ir() -> Vec<toolgate_check::ir::Tool> {
    compile(&format!("{TOOLS}agent a1 {{}}"))
        .map(|p| p.tools)
        .unwrap_or_default()
}

fn session_of(events: &[Event]) -> MemorySession {
    let tools = tools_ir();
    let mut s = MemorySession::new();
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Turn(text) => s.user_turn(text),
            Event::Output(tool, out) => {
                if let Some(t) = tools.iter().find(|t| t.name == *tool) {
                    s.observe(&format!("c{i}"), t, out);
                }
            }
            Event::Endorse(v) => s.endorse(&format!("c{i}"), Key::text(v)),
            Event::Call(tool) => s.allowed_call(tool),
        }
    }
    s
}

/// Numbers around the generated conditions' boundaries, integral ones written
/// both ways (`4`, `4.0`).
fn number() -> impl Strategy<Value = Json> {
    prop::sample::select(vec![
        json!(98.7),
        json!(100.0),
        json!(100.01),
        json!(4),
        json!(4.0),
        json!(-0.5),
        json!(7),
        json!(1e300),
    ])
}

/// The optional fields of JSON-Schema-level types (`t.w1`'s `u`, `c`, `k`,
/// `o2`), each absent, `null`, allowed or not.
fn typed_fields() -> impl Strategy<Value = Json> {
    let pick = |values: Vec<Json>| prop::option::of(prop::sample::select(values));
    (
        pick(vec![json!("x1"), json!("y"), Json::Null, json!(3)]),
        pick(vec![json!("a"), json!("b"), json!("c"), Json::Null]),
        pick(vec![
            json!(5),
            json!(5.0),
            json!("5"),
            Json::Null,
            json!([5]),
        ]),
        pick(vec![
            json!({ "x": 2, "z": "q" }),
            json!({ "x": 1 }),
            json!({ "z": "q" }),
            json!({ "x": 3, "z": 4 }),
            Json::Null,
        ]),
    )
        .prop_map(|(u, c, k, o2)| {
            let mut v = json!({});
            for (key, value) in [("u", u), ("c", c), ("k", k), ("o2", o2)] {
                if let Some(value) = value {
                    v[key] = value;
                }
            }
            v
        })
}

/// A list of records for the element-wise quantifiers.
fn people() -> impl Strategy<Value = Json> {
    let person = prop::sample::select(vec![
        json!({ "e": "a@a.test" }),
        json!({ "e": "b", "n": 2 }),
        json!({ "e": "c@x.test", "n": 0 }),
        json!({ "e": "b", "n": null }),
        json!({ "e": 3 }),
        Json::Null,
    ]);
    prop::collection::vec(person, 0..3).prop_map(Json::Array)
}

/// `date` and `datetime` arguments around the generated conditions' boundaries
/// (and a few malformed ones, which the schema refuses).
fn dates() -> impl Strategy<Value = (Option<&'static str>, Option<&'static str>)> {
    let d = prop::sample::select(vec![
        "2026-11-22",
        "2026-11-21",
        "2026-11-24",
        "2026-12-22",
        "2026-12-23",
        "2026-02-30",
        "22.11.2026",
    ]);
    let t = prop::sample::select(vec![
        "2026-11-22T10:00:00Z",
        "2026-11-22T11:00:00+01:00",
        "2026-11-21T22:00:00Z",
        "2026-12-06T10:00:00.5Z",
        "2026-12-31T23:59:60Z",
        "2026-11-22T10:00:00",
    ]);
    (prop::option::of(d), prop::option::of(t))
}

/// The time a request is decided at (`None`: no clock, `now` fails closed).
fn now() -> impl Strategy<Value = Option<Timestamp>> {
    prop::sample::select(vec![
        Some("2026-11-22T10:00:00Z"),
        Some("2026-11-22T09:00:00Z"),
        Some("2026-11-22T23:59:59.999Z"),
        Some("2026-12-22T00:00:00Z"),
        None,
    ])
    .prop_map(|t| t.and_then(|t| t.parse::<Timestamp>().ok()))
}

fn args() -> impl Strategy<Value = Json> {
    let key = prop::sample::select(vec![
        "s",
        "n",
        "m",
        "l",
        "o",
        "q",
        "tenant_id",
        "tenant",
        "u",
        "c",
        "k",
        "o2",
    ]);
    let s = prop::sample::select(vec![
        "x",
        "xyz",
        "b",
        "X1",
        "https://X.test/a",
        "http://x.test:8080/b/../a",
        r"https:\\x.test/a",
        " x y z ",
        "Bo@A.test",
        "b@a.test.",
        "/a/b/../c",
        "/a-b/x",
        "/a/../../x",
    ]);
    let n = -2i64..8;
    let l = prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..3);
    prop_oneof![
        // Conforming to t.r1, t.w1 and t.w3 (and anything for the schema-less tools).
        2 => (s.clone(), n.clone(), l.clone()).prop_map(|(s, n, l)| json!({ "s": s, "n": n, "l": l })),
        2 => (s.clone(), n.clone(), prop::option::of(number())).prop_map(|(s, n, m)| match m {
            Some(m) => json!({ "s": s, "n": n, "m": m }),
            None => json!({ "s": s, "n": n }),
        }),
        2 => (s, n, typed_fields(), dates()).prop_map(|(s, n, mut v, (d, t))| {
            v["s"] = json!(s);
            v["n"] = json!(n);
            if let Some(d) = d {
                v["d"] = json!(d);
            }
            if let Some(t) = t {
                v["t"] = json!(t);
            }
            v
        }),
        2 => (l, prop::option::of(-1i64..4), prop::option::of(people())).prop_map(|(l, x, p)| {
            let mut v = json!({ "l": l });
            if let Some(x) = x {
                v["o"] = json!({ "x": x });
            }
            if let Some(p) = p {
                v["p"] = p;
            }
            v
        }),
        3 => prop::collection::btree_map(key, json_value(), 0..5)
            .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        1 => json_value(),
    ]
}

#[derive(Clone, Debug)]
struct GenRequest {
    agent: &'static str,
    tool: &'static str,
    args: Json,
    context: Context,
    now: Option<Timestamp>,
    session: Option<MemorySession>,
}

fn request() -> impl Strategy<Value = GenRequest> {
    let agent = prop::sample::select(vec!["a1", "a1", "a2", "a2", "a3"]);
    let tool = prop::sample::select(vec!["t.r1", "t.r2", "t.w1", "t.w2", "t.w3", "t.nope"]);
    let tenant = prop::sample::select(vec!["acme", "acme", "globex", "globex", ""]);
    let env = prop::sample::select(vec!["dev", "dev", "prod", "prod", "qa"]);
    let region = prop::sample::select(vec![
        Some(json!("eu")),
        Some(json!("eu")),
        Some(json!("us")),
        Some(json!("us")),
        Some(json!(7)),
        None,
    ]);
    let opt = prop::sample::select(vec![Some(json!("o")), None]);
    let session = prop::option::of(prop::collection::vec(event(), 0..6));
    (
        agent,
        tool,
        args(),
        tenant,
        env,
        (region, opt, now(), session),
    )
        .prop_map(
            |(agent, tool, args, tenant, env, (region, opt, now, session))| {
                let mut fields = serde_json::Map::new();
                if let Some(r) = region {
                    fields.insert("region".into(), r);
                }
                if let Some(o) = opt {
                    fields.insert("opt".into(), o);
                }
                GenRequest {
                    agent,
                    tool,
                    args,
                    context: Context {
                        tenant: tenant.into(),
                        env: env.into(),
                        fields,
                    },
                    now,
                    session: session.map(|events| session_of(&events)),
                }
            },
        )
}

impl GenRequest {
    fn as_request(&self) -> Request<'_> {
        Request {
            agent: self.agent,
            tool: self.tool,
            args: &self.args,
            context: &self.context,
            now: self.now,
            session: self.session.as_ref().map(|s| s as &dyn SessionView),
        }
    }
}

/// Parses and checks; `None` when the generated text does not check clean.
fn compile(text: &str) -> Option<toolgate_check::ir::Policy> {
    let parsed = toolgate_syntax::parse(text);
    assert!(
        parsed.errors.is_empty(),
        "generated policy does not parse: {:?}\n{text}",
        parsed.errors
    );
    toolgate_check::check(&parsed.file, text).policy
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        max_global_rejects: cases * 20,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn compiled_engine_equals_reference(p in policy(), reqs in prop::collection::vec(request(), 1..8)) {
        let text = p.text();
        let ir = compile(&text);
        prop_assume!(ir.is_some());
        let ir = ir.expect("checked above");
        let engine = Engine::new(&ir, "p.policy").expect("a checked policy compiles");
        let capacity = std::num::NonZeroUsize::new(3).expect("non-zero");
        let cached = Engine::with_cache(&ir, "p.policy", capacity).expect("a checked policy compiles");
        // Each request twice, so the cached engine answers some from its cache.
        for r in reqs.iter().chain(&reqs) {
            let req = r.as_request();
            let (d, want) = (engine.decide(&req), reference::decide(&ir, &req));
            prop_assert!(reference::agrees(&d, &want), "engine {d:?}\nreference {want:?}\nrequest {r:?}\n{text}");
            if let Some(info) = d.rule() {
                let named = ir.rules.get(info.id.0 as usize).and_then(|r| r.name.as_deref());
                prop_assert_eq!(info.name.as_deref(), named, "the decision names its rule's @id");
            }
            let c = cached.decide(&req);
            prop_assert!(reference::agrees(&c, &want), "cached engine {c:?}\nreference {want:?}\nrequest {r:?}\n{text}");
        }
    }

    /// What a store is asked before deciding covers every lookup the
    /// decision makes (a store that answers only the asks answers it all).
    #[test]
    fn session_asks_cover_every_lookup(p in policy(), reqs in prop::collection::vec(request(), 1..8)) {
        let Some(ir) = compile(&p.text()) else { return Ok(()) };
        let engine = Engine::new(&ir, "p.policy").expect("compiles");
        // Every agent and tool, so that the cells with session conditions are reached.
        let every = reqs.iter().flat_map(|r| {
            ["a1", "a2"].into_iter().flat_map(move |agent| {
                READ_TOOLS.into_iter().chain(WRITE_TOOLS).map(move |tool| (r, agent, tool))
            })
        });
        for (r, agent, tool) in every {
            let Some(session) = &r.session else { continue };
            let mut req = r.as_request();
            (req.agent, req.tool) = (agent, tool);
            let asks = engine.session_asks(&req);
            let recorder = Recorder { inner: session, seen: Default::default() };
            req.session = Some(&recorder);
            engine.decide(&req);
            let seen = recorder.seen.into_inner().unwrap_or_else(|p| p.into_inner());
            for (key, tool) in &seen.keys {
                prop_assert!(asks.keys.contains(key), "{key:?} not asked: {asks:?}\n{}", p.text());
                if let Some(t) = tool {
                    prop_assert!(asks.tools.contains(t), "tool {t} not asked: {asks:?}");
                }
            }
            for t in &seen.calls {
                prop_assert!(asks.calls.contains(t), "calls of {t} not asked: {asks:?}");
            }
            prop_assert!(!seen.tainted || asks.tainted, "taint not asked: {asks:?}");
        }
    }

    #[test]
    fn default_deny_and_monotonic(p in policy(), r in request(), drop in any::<prop::sample::Index>()) {
        let text = p.text();
        let Some(ir) = compile(&text) else { return Ok(()) };
        let engine = Engine::new(&ir, "p.policy").expect("compiles");
        let req = r.as_request();
        let d = engine.decide(&req);
        let granted = p.rules.iter().any(|g| g.kind != "deny" && g.kind != "floor"
            && g.agent.is_none_or(|a| a == r.agent)
            && g.tools.contains(&r.tool));
        if !granted || r.agent == "a3" || r.tool == "t.nope" {
            prop_assert_eq!(d.outcome(), Outcome::Deny);
        }
        let grants: Vec<usize> = (0..p.rules.len()).filter(|i| !["deny", "floor"].contains(&p.rules[*i].kind)).collect();
        if d.outcome() == Outcome::Deny && !grants.is_empty() {
            let mut smaller = p.clone();
            smaller.rules.remove(grants[drop.index(grants.len())]);
            if let Some(ir2) = compile(&smaller.text()) {
                let engine2 = Engine::new(&ir2, "p.policy").expect("compiles");
                prop_assert_eq!(engine2.decide(&req).outcome(), Outcome::Deny);
            }
        }
    }

    #[test]
    fn an_unconditional_deny_overrides_everything(p in policy(), r in request()) {
        let mut p = p;
        let tool = if r.tool == "t.nope" { "t.r1" } else { r.tool };
        p.rules.push(GenRule { kind: "deny", agent: None, tools: vec![tool], approval: "", scope: "", when: None, named: false });
        let Some(ir) = compile(&p.text()) else { return Ok(()) };
        let engine = Engine::new(&ir, "p.policy").expect("compiles");
        let mut r = r;
        r.tool = tool;
        prop_assert_eq!(engine.decide(&r.as_request()).outcome(), Outcome::Deny);
    }

    #[test]
    fn no_write_without_writes_enabled(p in policy(), r in request()) {
        let mut p = p;
        p.writes = if p.writes == "writes enabled;" { "writes disabled;" } else { p.writes };
        let Some(ir) = compile(&p.text()) else { return Ok(()) };
        let engine = Engine::new(&ir, "p.policy").expect("compiles");
        if WRITE_TOOLS.contains(&r.tool) {
            prop_assert_eq!(engine.decide(&r.as_request()).outcome(), Outcome::Deny);
        }
    }

    #[test]
    fn scope_comes_from_the_context_never_the_arguments(p in policy(), r in request(), tenant in "[a-z]{1,8}", evil in args()) {
        let Some(ir) = compile(&p.text()) else { return Ok(()) };
        let engine = Engine::new(&ir, "p.policy").expect("compiles");
        let mut r = r;
        if let Json::Object(map) = &mut r.args {
            map.insert("tenant".into(), json!(tenant));
            map.insert("tenant_id".into(), json!(tenant));
            map.insert("env".into(), evil);
        }
        let req = r.as_request();
        let decided = engine.decide(&req);
        let mut d = Some(&decided);
        while let Some(decision) = d {
            for (name, value) in decision.scope_values(&req) {
                match name.as_str() {
                    "tenant" => prop_assert_eq!(value, json!(r.context.tenant)),
                    "env" => prop_assert_eq!(value, json!(r.context.env)),
                    other => prop_assert_eq!(Some(&value), r.context.fields.get(other.trim_start_matches("ctx.")).or(Some(&Json::Null))),
                }
            }
            d = decision.budgeted().map(|b| &*b.fallback);
        }
    }
}

/// Guards the properties above against a generator that proves nothing: most
/// generated policies check clean, and every kind of decision occurs.
#[test]
fn generators_reach_every_kind_of_decision() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut clean, mut seen) = (0, std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let p = policy().new_tree(&mut runner).expect("policy").current();
        let Some(ir) = compile(&p.text()) else {
            continue;
        };
        clean += 1;
        let engine = Engine::new(&ir, "p.policy").expect("compiles");
        for _ in 0..4 {
            let r = request().new_tree(&mut runner).expect("request").current();
            let d = engine.decide(&r.as_request());
            if READ_TOOLS.contains(&r.tool) && d.outcome() != Outcome::Deny {
                seen.insert(match (d.outcome(), d.budgeted().is_some()) {
                    (Outcome::Allow, true) => "budgeted read",
                    (Outcome::ApprovalRequired, _) => "read needing approval",
                    _ => "plain read",
                });
            }
            seen.insert(
                match (d.outcome(), d.rule().is_some(), d.budgeted().is_some()) {
                    (Outcome::Deny, true, _) => "deny by rule",
                    (Outcome::Deny, false, _) => "deny by default",
                    (Outcome::Allow, _, true) => "budgeted allow",
                    (Outcome::Allow, _, false) => "allow",
                    (Outcome::ApprovalRequired, _, _) if d.reason().contains("floor") => {
                        "raised by a floor"
                    }
                    (Outcome::ApprovalRequired, _, _) => "approval required",
                },
            );
        }
    }
    assert!(
        clean >= 500,
        "only {clean} of 1000 generated policies check clean"
    );
    assert_eq!(seen.len(), 9, "decisions seen: {seen:?}");
}

/// A session that notes every lookup made of it.
#[derive(Debug)]
struct Recorder<'a> {
    inner: &'a MemorySession,
    seen: std::sync::Mutex<Lookups>,
}

#[derive(Debug, Default)]
struct Lookups {
    keys: Vec<(Key, Option<String>)>,
    calls: Vec<String>,
    tainted: bool,
}

impl Recorder<'_> {
    fn note(&self, f: impl FnOnce(&mut Lookups)) {
        f(&mut self.seen.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

impl SessionView for Recorder<'_> {
    fn sources(
        &self,
        key: &Key,
    ) -> Result<toolgate_engine::provenance::Sources, toolgate_engine::provenance::SessionError>
    {
        self.note(|l| l.keys.push((key.clone(), None)));
        self.inner.sources(key)
    }

    fn in_output_of(
        &self,
        key: &Key,
        tool: &str,
    ) -> Result<bool, toolgate_engine::provenance::SessionError> {
        self.note(|l| l.keys.push((key.clone(), Some(tool.to_string()))));
        self.inner.in_output_of(key, tool)
    }

    fn tainted(&self) -> Result<bool, toolgate_engine::provenance::SessionError> {
        self.note(|l| l.tainted = true);
        self.inner.tainted()
    }

    fn calls(&self, tool: &str) -> Result<u64, toolgate_engine::provenance::SessionError> {
        self.note(|l| l.calls.push(tool.to_string()));
        self.inner.calls(tool)
    }
}
