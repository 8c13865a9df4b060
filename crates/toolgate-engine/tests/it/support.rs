//! The one decision helper of the engine's language tests (language_v2.rs,
//! argument_types.rs, dates.rs, provenance.rs): the compiled engine, the
//! cached engine and the reference interpreter must agree on every request a
//! test makes.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use serde_json::{json, Value as Json};
use std::num::NonZeroUsize;
use toolgate_check::ir;
use toolgate_engine::provenance::SessionView;
use toolgate_engine::{reference, Engine, Outcome, OwnedRequest, Timestamp};

/// The policy's IR and its compiled engine; the policy must parse and check.
pub fn compiled(src: &str) -> (ir::Policy, Engine) {
    let parsed = toolgate_syntax::parse(src);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let checked = toolgate_check::check(&parsed.file, src);
    assert!(
        checked.policy.is_some(),
        "does not check: {:?}",
        checked.diagnostics
    );
    let ir = checked.policy.expect("checked above");
    let engine = Engine::new(&ir, "p.policy").expect("compiles");
    (ir, engine)
}

/// Agent `bot` calling `tool` with `args` for tenant `acme` in env `prod`.
pub fn request(tool: &str, args: Json) -> OwnedRequest {
    let context = json!({ "tenant": "acme", "env": "prod" });
    request_in(tool, args, context)
}

/// Agent `bot` calling `tool` with `args` in `context`.
pub fn request_in(tool: &str, args: Json, context: Json) -> OwnedRequest {
    let text = json!({ "agent": "bot", "tool": tool, "args": args, "context": context });
    OwnedRequest::from_json(&text.to_string()).expect("a request")
}

/// The outcome and reason for agent `bot` calling `tool` with `args` in
/// `context` at `now` (`None`: no clock), after asserting that the engine,
/// the cached engine (twice: miss, then hit) and the reference agree.
pub fn decide_in(
    src: &str,
    tool: &str,
    args: Json,
    context: Json,
    now: Option<&str>,
) -> (Outcome, String) {
    decide_full(src, tool, args, context, now, None)
}

/// [`decide_in`] for tenant `acme` in env `prod`, no clock, in `session`
/// (`None`: a call without a session).
pub fn decide_in_session(
    src: &str,
    tool: &str,
    args: Json,
    session: Option<&dyn SessionView>,
) -> (Outcome, String) {
    let context = json!({ "tenant": "acme", "env": "prod" });
    decide_full(src, tool, args, context, None, session)
}

fn decide_full(
    src: &str,
    tool: &str,
    args: Json,
    context: Json,
    now: Option<&str>,
    session: Option<&dyn SessionView>,
) -> (Outcome, String) {
    let (ir, engine) = compiled(src);
    let cap = NonZeroUsize::new(4).expect("non-zero");
    let cached = Engine::with_cache(&ir, "p.policy", cap).expect("compiles");
    let owned = request_in(tool, args, context);
    let mut req = owned.as_request();
    req.now = now.map(|t| t.parse::<Timestamp>().expect("a time"));
    req.session = session;
    let want = reference::decide(&ir, &req);
    let d = engine.decide(&req);
    assert!(reference::agrees(&d, &want), "{d:?} vs {want:?}");
    for _ in 0..2 {
        let c = cached.decide(&req);
        assert!(reference::agrees(&c, &want), "cached {c:?} vs {want:?}");
    }
    (d.outcome(), d.reason().to_string())
}

/// [`decide_in`] for tenant `acme` in env `prod`, with no clock.
pub fn decide(src: &str, tool: &str, args: Json) -> (Outcome, String) {
    let context = json!({ "tenant": "acme", "env": "prod" });
    decide_in(src, tool, args, context, None)
}
