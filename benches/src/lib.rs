//! Benchmark inputs: the shipped support-desk policy and synthetic policies of
//! any size, each with the same request mix, written for Toolgate and (for the
//! peer comparison) faithfully for Cedar and Rego.

use std::fmt::Write as _;

/// One request of the mix, as Toolgate request JSON, with the expected outcome.
#[derive(Clone, Debug)]
pub struct BenchRequest {
    /// Short name of the request kind.
    pub kind: &'static str,
    /// `{"agent", "tool", "args", "context"}`.
    pub json: String,
    /// Toolgate's expected outcome (`allow`, `deny`, `approval_required`).
    pub expect: &'static str,
}

/// A policy in three languages and the request mix it is measured with.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Number of rules.
    pub rules: usize,
    /// Toolgate source.
    pub toolgate: String,
    /// The same rules for Cedar.
    pub cedar: String,
    /// The same rules for Rego (package `toolgate`, rule `decision`).
    pub rego: String,
    /// The request mix.
    pub requests: Vec<BenchRequest>,
}

/// The shipped support-desk policy (Toolgate only).
pub fn support_desk() -> (String, Vec<BenchRequest>) {
    let src = include_str!("../../policies/support-desk.policy").to_string();
    let ctx = r#""context": {"tenant": "acme", "env": "prod", "account_id": "A1"}"#;
    let req = |kind, body: &str, expect| BenchRequest {
        kind,
        json: format!("{{{body}, {ctx}}}"),
        expect,
    };
    let requests = vec![
        req(
            "unconditional allow",
            r#""agent": "support-bot", "tool": "kb.read", "args": {}"#,
            "allow",
        ),
        req(
            "unknown tool deny",
            r#""agent": "support-bot", "tool": "shell.exec", "args": {}"#,
            "deny",
        ),
        req(
            "write with condition",
            r#""agent": "support-bot", "tool": "ticket.close", "args": {"account_id": "A1", "ticket_id": "T-1"}"#,
            "approval_required",
        ),
        req(
            "schema-checked condition",
            r#""agent": "browser", "tool": "http.get", "args": {"url": "https://docs.example.com/a"}"#,
            "allow",
        ),
    ];
    (src, requests)
}

/// A policy of `n` rules (n >= 4): `max(1, n / 100)` agents, each with the
/// same pattern of rules over its own tools: an unconditional allow, an allow
/// with a condition on a string argument, a write with a condition comparing
/// an argument with the trusted context, and a conditional deny, repeated.
pub fn synthetic(n: usize) -> Scenario {
    let agents = (n / 100).max(1);
    let per_agent = n / agents;
    let mut tg = String::from(
        "policy synthetic;\nenvs dev, prod;\ncontext { account_id: string; }\nwrites enabled;\n",
    );
    let mut cedar = String::new();
    let mut rego = String::from(
        "package toolgate\n\nimport rego.v1\n\ndefault allow := false\n\ndefault deny := false\n\n\
         decision := \"deny\" if {\n\tdeny\n} else := \"allow\" if {\n\tallow\n} else := \"deny\"\n\n",
    );
    for i in 0..per_agent {
        let _ = match i % 4 {
            2 => writeln!(tg, "tool w{i} write {{ account_id: string, amount: int }};"),
            _ => writeln!(tg, "tool r{i} read {{ q: string, n: int }};"),
        };
    }
    for a in 0..agents {
        let _ = writeln!(tg, "agent a{a} {{");
        for i in 0..per_agent {
            let (kind, tool) = match i % 4 {
                2 => (2, format!("w{i}")),
                k => (k, format!("r{i}")),
            };
            let scope =
                format!("principal == Agent::\"a{a}\", action == Action::\"call\", resource == Tool::\"{tool}\"");
            // One Rego rule per line: regorus refuses modules of more than 20,000 lines.
            let who = format!("input.agent == \"a{a}\"; input.tool == \"{tool}\"");
            let (tg_rule, cedar_rule, rego_rule) = match kind {
                0 => (format!("allow {tool};"), format!("permit({scope});"), format!("allow if {{ {who} }}")),
                1 => (
                    format!("allow {tool} when args.q == \"v{i}\";"),
                    format!("permit({scope}) when {{ context.args.q == \"v{i}\" }};"),
                    format!("allow if {{ {who}; input.args.q == \"v{i}\" }}"),
                ),
                2 => (
                    format!("write {tool} when args.account_id == ctx.account_id;"),
                    format!("permit({scope}) when {{ context.args.account_id == context.ctx.account_id }};"),
                    format!("allow if {{ {who}; input.args.account_id == input.context.account_id }}"),
                ),
                _ => (
                    format!("deny {tool} when args.q == \"blocked\";"),
                    format!("forbid({scope}) when {{ context.args.q == \"blocked\" }};"),
                    format!("deny if {{ {who}; input.args.q == \"blocked\" }}"),
                ),
            };
            let _ = writeln!(tg, "  {tg_rule}");
            let _ = writeln!(cedar, "{cedar_rule}");
            let _ = writeln!(rego, "{rego_rule}");
        }
        let _ = writeln!(tg, "}}");
    }
    let ctx = r#""context": {"tenant": "acme", "env": "prod", "account_id": "A1"}"#;
    let req = |kind, body: String, expect| BenchRequest {
        kind,
        json: format!("{{{body}, {ctx}}}"),
        expect,
    };
    let requests = vec![
        req(
            "unconditional allow",
            r#""agent": "a0", "tool": "r0", "args": {"q": "x", "n": 1}"#.into(),
            "allow",
        ),
        req(
            "unknown tool deny",
            r#""agent": "a0", "tool": "nope", "args": {"q": "x", "n": 1}"#.into(),
            "deny",
        ),
        req(
            "write with condition",
            r#""agent": "a0", "tool": "w2", "args": {"account_id": "A1", "amount": 5}"#.into(),
            "approval_required",
        ),
        req(
            "schema-checked condition",
            r#""agent": "a0", "tool": "r1", "args": {"q": "v1", "n": 2}"#.into(),
            "allow",
        ),
        req(
            "conditional deny",
            r#""agent": "a0", "tool": "r3", "args": {"q": "blocked", "n": 3}"#.into(),
            "deny",
        ),
    ];
    Scenario {
        rules: agents * per_agent,
        toolgate: tg,
        cedar,
        rego,
        requests,
    }
}

/// Parses, checks and compiles Toolgate source; panics on a broken bench input.
#[expect(
    clippy::panic,
    reason = "a broken benchmark input must stop the benchmark"
)]
pub fn compile(src: &str) -> toolgate_engine::Engine {
    let parsed = toolgate_syntax::parse(src);
    assert!(
        parsed.errors.is_empty(),
        "bench policy does not parse: {:?}",
        parsed.errors
    );
    let checked = toolgate_check::check(&parsed.file, src);
    let Some(policy) = checked.policy else {
        panic!("bench policy does not check: {:?}", checked.diagnostics)
    };
    toolgate_engine::Engine::new(&policy, "bench.policy").unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`compile`], with the LRU decision cache on.
pub fn compile_cached(src: &str, capacity: usize) -> toolgate_engine::Engine {
    let parsed = toolgate_syntax::parse(src);
    let checked = toolgate_check::check(&parsed.file, src);
    let policy = checked
        .policy
        .unwrap_or_else(|| compile_failed(&checked.diagnostics));
    let capacity = std::num::NonZeroUsize::new(capacity).unwrap_or(std::num::NonZeroUsize::MIN);
    toolgate_engine::Engine::with_cache(&policy, "bench.policy", capacity)
        .unwrap_or_else(|e| compile_failed(&e))
}

#[expect(
    clippy::panic,
    reason = "a broken benchmark input must stop the benchmark"
)]
fn compile_failed(what: &dyn std::fmt::Debug) -> ! {
    panic!("bench policy does not compile: {what:?}")
}

#[cfg(feature = "peers")]
pub mod peers;
