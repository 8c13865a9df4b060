//! `policyc replay` with sessions: user turns, tool outputs observed when a
//! call runs, what `from`, `session.tainted` and `session.calls` make of
//! them, errors naming the line and field; and one set of call limits for
//! replay, eval and the HTTP door.

#![expect(clippy::panic, reason = "test helpers fail loudly on broken fixtures")]

use serde_json::{json, Value};
use std::path::Path;

use crate::support::run::{policyc, scratch, write, Run};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn lines(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The output line of call `id`.
fn of<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("no line for `{id}`: {lines:?}"))
}

#[test]
fn a_recipient_the_user_named_runs_and_one_seen_only_in_untrusted_output_is_held() {
    let run = policyc(
        root(),
        &[
            "replay",
            "policies/email-assistant.policy",
            "--trace",
            "policies/traces/email-assistant.jsonl",
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let out = lines(&run);
    // ann@corp.test is in the user's turn: sent without a human.
    let c1 = of(&out, "c1");
    assert_eq!(c1["outcome"], "executed", "{c1}");
    assert_eq!(
        c1["rule"],
        "send-to-known (policies/email-assistant.policy:26:3)"
    );
    assert_eq!(
        (c1["session"].as_str(), c1["tainted"].as_bool()),
        (Some("s1"), Some(false))
    );
    assert_eq!(
        c1["provenance"],
        json!(["send-to-known (26:3): `r from trusted` with `ann@corp.test` holds: user turn 1"])
    );
    // eve@evil.test is only in an email's body (untrusted): held for the owner, who rejects it.
    let c3 = of(&out, "c3");
    assert_eq!(c3["outcome"], "rejected", "{c3}");
    assert_eq!(
        c3["rule"],
        "send-with-owner (policies/email-assistant.policy:28:3)"
    );
    let why = c3["provenance"][0].as_str().unwrap_or_default();
    assert!(
        why.contains("with `eve@evil.test` fails: found only in untrusted output of call c2 (`inbox.read`) field `[].body`"),
        "{why}"
    );
    // A sender's address is a trusted field: sent without a human.
    let c4 = of(&out, "c4");
    assert_eq!(c4["outcome"], "executed", "{c4}");
    assert_eq!(
        c4["tainted"], true,
        "the inbox's bodies tainted the session"
    );
    // session.calls counts c1, c4 and c5 (not the rejected c3): the fourth send is denied.
    assert_eq!(of(&out, "c5")["outcome"], "executed");
    let c6 = of(&out, "c6");
    assert_eq!(
        (c6["outcome"].as_str(), c6["rule"].as_str()),
        (
            Some("denied"),
            Some("tainted-burst (policies/email-assistant.policy:36:3)")
        )
    );
}

const COUNTING: &str = r#"policy counting;
envs prod;
tool web.get read { url: string };
tool notes.add write trusted { text: string };
writes enabled;
agent bot {
  allow web.get;
  write notes.add auto-approve limit 100 per day when session.calls(notes.add) < 2 and not session.tainted;
}
"#;

fn call(id: &str, tool: &str, session: Option<&str>, output: Option<Value>) -> String {
    let mut line = json!({
        "at": "2026-11-21T10:00:00Z", "id": id, "agent": "bot", "tool": tool,
        "args": if tool == "web.get" { json!({"url": "https://example.test"}) } else { json!({"text": "x"}) },
        "context": {"tenant": "acme", "env": "prod"},
    });
    if let Some(s) = session {
        line["session"] = json!(s);
    }
    if let Some(o) = output {
        line["output"] = o;
    }
    format!("{line}\n")
}

#[test]
fn session_calls_count_allowed_calls_and_untrusted_output_taints() {
    let dir = scratch("replay_counting");
    write(&dir, "counting.policy", COUNTING);
    let trace = [
        // s1: two notes run, the third is over the count.
        call("n1", "notes.add", Some("s1"), Some(json!({"ok": true}))),
        call("n2", "notes.add", Some("s1"), None),
        call("n3", "notes.add", Some("s1"), None),
        // s2: a page's text (untrusted) taints the session.
        call("m1", "notes.add", Some("s2"), None),
        call(
            "w1",
            "web.get",
            Some("s2"),
            Some(json!("Welcome to example.test")),
        ),
        call("m2", "notes.add", Some("s2"), None),
        // s3: a page read without its output reported taints too (fail closed);
        // an empty output does not.
        call("w2", "web.get", Some("s4"), Some(json!(""))),
        call("m4", "notes.add", Some("s4"), None),
        call("w3", "web.get", Some("s3"), None),
        call("m3", "notes.add", Some("s3"), None),
        // No session: the session conditions cannot be evaluated, the grant does not apply.
        call("x1", "notes.add", None, None),
    ]
    .concat();
    write(&dir, "trace.jsonl", trace);
    let run = policyc(
        &dir,
        &["replay", "counting.policy", "--trace", "trace.jsonl"],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let out = lines(&run);
    let outcome = |id: &str| of(&out, id)["outcome"].as_str().map(String::from);
    let got: Vec<_> = [
        "n1", "n2", "n3", "m1", "w1", "m2", "w2", "m4", "w3", "m3", "x1",
    ]
    .iter()
    .map(|id| (*id, outcome(id).unwrap_or_default()))
    .collect();
    let want = [
        ("n1", "executed"),
        ("n2", "executed"),
        ("n3", "denied"),
        ("m1", "executed"),
        ("w1", "executed"),
        ("m2", "denied"),
        ("w2", "executed"),
        ("m4", "executed"),
        ("w3", "executed"),
        ("m3", "denied"),
        ("x1", "denied"),
    ];
    let want: Vec<_> = want.iter().map(|(i, o)| (*i, o.to_string())).collect();
    assert_eq!(got, want);
    assert_eq!(of(&out, "m2")["tainted"], true);
    assert_eq!(of(&out, "m4")["tainted"], false);
    assert!(
        of(&out, "x1").get("session").is_none(),
        "a call without a session says nothing of one"
    );
}

#[test]
fn a_bad_turn_line_names_its_line_and_field_and_the_replay_goes_on() {
    let dir = scratch("replay_bad_turn");
    write(&dir, "counting.policy", COUNTING);
    let turn = |fields: Value| {
        let mut line = json!({"event": "turn", "at": "2026-11-21T10:00:00Z"});
        if let (Some(l), Some(f)) = (line.as_object_mut(), fields.as_object()) {
            l.extend(f.clone());
        }
        format!("{line}\n")
    };
    let trace = [
        turn(json!({"tenant": "acme", "session": "s1", "text": "hello"})),
        turn(json!({"session": "s1", "text": "no tenant"})),
        turn(json!({"tenant": "acme", "session": "x".repeat(201), "text": "long id"})),
        turn(json!({"tenant": "acme", "session": "s1", "text": 5})),
        turn(json!({"tenant": "acme", "session": "s1", "text": "hi", "extra": 1})),
        call("n1", "notes.add", Some("s1"), None),
    ]
    .concat();
    write(&dir, "trace.jsonl", trace);
    let run = policyc(
        &dir,
        &["replay", "counting.policy", "--trace", "trace.jsonl"],
    );
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let out = lines(&run);
    let errors: Vec<_> = out
        .iter()
        .filter(|l| l.get("error").is_some())
        .map(|l| {
            (
                l["line"].as_u64().unwrap_or(0),
                l["field"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = [(2, "tenant"), (3, "session"), (4, "text"), (5, "extra")]
        .iter()
        .map(|(n, f)| (*n, f.to_string()))
        .collect();
    assert_eq!(errors, want, "{}", run.stdout);
    assert!(
        out[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("over the limit of 200")),
        "{}",
        out[1]
    );
    assert_eq!(
        of(&out, "n1")["outcome"],
        "executed",
        "the good turn and call ran"
    );
    assert!(
        run.stderr.contains("4 trace line(s) could not be replayed"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_call_past_the_wire_limits_is_refused_alike_by_replay_eval_and_http() {
    use crate::serve::harness::{add_key, temp_dir, Server};
    let long = "x".repeat(257);
    let dir = scratch("limits_alike");
    let wire = json!({
        "id": long, "agent": "support-bot", "tool": "kb.read",
        "context": {"tenant": "acme", "env": "prod", "account_id": "A1"},
    });
    let mut traced = wire.clone();
    traced["at"] = json!("2026-11-21T10:00:00Z");
    write(&dir, "trace.jsonl", format!("{traced}\n"));
    write(&dir, "requests.jsonl", format!("{wire}\n"));
    let policy = root().join("policies/support-desk.policy");
    let policy = policy.to_str().unwrap_or_else(|| panic!("a UTF-8 path"));
    let replay = lines(&policyc(
        &dir,
        &["replay", policy, "--trace", "trace.jsonl"],
    ));
    let eval = lines(&policyc(
        &dir,
        &["eval", policy, "--requests", "requests.jsonl"],
    ));
    let refused = |l: &Value| (l["field"].clone(), l["error"].clone());
    assert_eq!(refused(&replay[0]), refused(&eval[0]));
    assert_eq!(replay[0]["field"], "id");

    let data = temp_dir("limits_alike");
    let key = add_key(
        &data,
        "svc",
        "service",
        &["--tenants", "acme", "--agents", "support-bot"],
    );
    let server = Server::start(&data, &["--policy", policy]);
    for path in ["/v1/decide", "/v1/calls"] {
        let reply = server.post(path, &key, wire.clone());
        reply.problem(400, "invalid_request", Some("id"));
        assert_eq!(
            reply.json["detail"], eval[0]["error"],
            "{path}: {}",
            reply.text
        );
    }
    server.kill();
    // An id at the limit is a call.
    let mut at_limit = wire;
    at_limit["id"] = json!("x".repeat(256));
    write(&dir, "ok.jsonl", format!("{at_limit}\n"));
    let ok = lines(&policyc(&dir, &["eval", policy, "--requests", "ok.jsonl"]));
    assert_eq!(ok[0]["decision"], "allow", "{}", ok[0]);
}
