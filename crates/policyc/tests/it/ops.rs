//! The operator CLI (`policyc approvals`, `kill-switch`, `status`, `audit
//! tail`) against the real `policyc serve`, including the support incident:
//! 41 `ticket.close` calls over HTTP, stopped from the shell.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly when the server or the CLI misbehaves"
)]

pub mod harness;

use harness::{repo, Server};
use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

fn close(id: &str, env: &str) -> Value {
    json!({"id": id, "agent": "support-bot", "tool": "ticket.close",
        "args": {"account_id": "A1", "ticket_id": format!("T-{id}")},
        "context": {"tenant": "acme", "env": env, "account_id": "A1"}})
}

fn read(agent: &str, tool: &str) -> Value {
    json!({"agent": agent, "tool": tool, "args": {}, "context": {"tenant": "acme", "env": "prod", "account_id": "A1"}})
}

#[test]
fn approvals_are_listed_shown_approved_and_rejected() {
    let s = Server::start("approvals");
    for id in ["h1", "h2"] {
        let (status, answer) = s.post("/v1/calls", &close(id, "prod"));
        assert_eq!(
            (status, answer["outcome"].as_str()),
            (200, Some("pending")),
            "{answer}"
        );
    }
    let (code, out, _) = s.run(Some(&s.approver), &["approvals", "list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ID  "), "{out}");
    assert!(
        out.contains("h1") && out.contains("h2") && out.contains("support-leads"),
        "{out}"
    );
    let (_, out, _) = s.run(
        Some(&s.approver),
        &["approvals", "list", "--tenant", "acme", "--json"],
    );
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["approvals"].as_array().unwrap().len(), 2);
    let digest = listed["approvals"][0]["args_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let h1 = listed["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "h1")
        .unwrap();
    let hold = h1["hold_digest"].as_str().unwrap().to_string();

    let (code, out, _) = s.run(Some(&s.approver), &["approvals", "show", "h1"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&digest) && out.contains("\"ticket_id\": \"T-h1\""),
        "{out}"
    );

    let (code, out, err) = s.run(
        Some(&s.approver),
        &[
            "approvals",
            "approve",
            "h1",
            "--digest",
            &hold[..12],
            "--reason",
            "dup",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("approved `h1` (tenant `acme`): approved, 1 of 1"),
        "{out}"
    );
    let state = s.get("/v1/calls/h1?tenant=acme");
    assert_eq!(state["state"], "approved");
    assert!(state["token"].is_string());

    let (code, out, _) = s.run(
        Some(&s.approver),
        &["approvals", "reject", "h2", "--reason", "no", "--json"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["state"],
        "rejected"
    );
    assert_eq!(s.get("/v1/calls/h2?tenant=acme")["state"], "rejected");
}

#[test]
fn refusals_exit_1_and_usage_or_connection_errors_exit_2() {
    let s = Server::start("refusals");
    s.post("/v1/calls", &close("h1", "prod"));
    // An operator key cannot approve: the server's 403 is shown, exit 1.
    let (code, _, err) = s.run(
        Some(&s.operator),
        &[
            "approvals",
            "approve",
            "h1",
            "--digest",
            &shown_digest(&s, "h1"),
            "--reason",
            "x",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("403 Forbidden") && err.contains("approver"),
        "{err}"
    );
    // No key: 401, with a hint.
    let (code, _, err) = s.run(None, &["status"]);
    assert_eq!(code, 1);
    assert!(err.contains("401") && err.contains("TOOLGATE_KEY"), "{err}");
    // An unknown approval: 404.
    let (code, _, err) = s.run(
        Some(&s.approver),
        &["approvals", "show", "nope", "--tenant", "acme"],
    );
    assert_eq!(code, 1, "{err}");
    // A bad request (an empty reason) names the field: exit 2.
    let (code, _, err) = s.run(
        Some(&s.operator),
        &["kill-switch", "engage", "--reason", " "],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("400 Bad Request") && err.contains("field `reason`"),
        "{err}"
    );
    // No reason at all: a usage error before any request.
    let (code, _, _) = s.run(Some(&s.approver), &["approvals", "reject", "h1"]);
    assert_eq!(code, 2);
    // Nothing listening.
    let (code, _, err) = s.run(
        Some(&s.operator),
        &["status", "--url", "http://127.0.0.1:1"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach the server"), "{err}");
}

#[test]
fn kill_switch_per_agent_with_all_tools_stops_its_reads_only() {
    let s = Server::start("kill");
    let op = Some(s.operator.as_str());
    let (code, out, _) = s.run(op, &["kill-switch", "status"]);
    assert_eq!((code, out.trim()), (0, "no kill switch is engaged"));
    let engage = [
        "kill-switch",
        "engage",
        "--agent",
        "browser",
        "--all-tools",
        "--reason",
        "looping",
    ];
    let (code, out, err) = s.run(op, &engage);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("engaged for tenant *, agent browser, all tools"),
        "{out}"
    );
    assert_eq!(
        s.post("/v1/calls", &read("browser", "search.read")).1["outcome"],
        "denied"
    );
    assert_eq!(
        s.post("/v1/calls", &read("support-bot", "kb.read")).1["outcome"],
        "allowed"
    );
    let (_, out, _) = s.run(op, &["kill-switch", "status", "--json"]);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        status["engaged"],
        json!([{"tenant": null, "agent": "browser", "tools": "all"}])
    );
    let (code, out, _) = s.run(op, &["kill-switch", "status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("TENANT") && out.contains("browser") && out.contains("all"),
        "{out}"
    );

    let release = [
        "kill-switch",
        "release",
        "--agent",
        "browser",
        "--all-tools",
        "--reason",
        "fixed",
    ];
    let (code, out, _) = s.run(op, &release);
    assert_eq!(code, 0);
    assert!(out.contains("no kill switch is engaged"), "{out}");
    assert_eq!(
        s.post("/v1/calls", &read("browser", "search.read")).1["outcome"],
        "allowed"
    );
}

#[test]
fn status_shows_policy_pending_kill_switch_and_journal_head() {
    let s = Server::start("status");
    s.post("/v1/calls", &close("h1", "prod"));
    s.run(
        Some(&s.operator),
        &[
            "kill-switch",
            "engage",
            "--tenant",
            "globex",
            "--reason",
            "t",
        ],
    );
    let (code, out, _) = s.run(Some(&s.operator), &["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("policy        support-desk (sha256 "), "{out}");
    assert!(out.contains("pending       1 call(s)"), "{out}");
    assert!(
        out.contains("engaged: tenant globex, agent *, stops writes"),
        "{out}"
    );
    assert!(out.contains("journal head  seq "), "{out}");
    let (_, out, _) = s.run(Some(&s.operator), &["status", "--json"]);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["pending"], 1);
    assert_eq!(status["policy"], "support-desk");
    assert!(status["journal_head"]["seq"].as_u64().unwrap() >= 3);
}

#[test]
fn audit_tail_filters_and_follows() {
    let s = Server::start("tail");
    s.post("/v1/calls", &close("h1", "prod"));
    s.post("/v1/calls", &read("support-bot", "kb.read"));
    let op = Some(s.operator.as_str());
    let (code, out, _) = s.run(
        op,
        &[
            "audit", "tail", "--since", "30m", "--kind", "decision", "--call", "h1",
        ],
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].contains("decision") && lines[1].contains("h1"),
        "{out}"
    );
    let (_, out, _) = s.run(op, &["audit", "tail", "--json", "-n", "0"]);
    let kinds: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        kinds.contains(&"policy_load".to_string())
            && kinds.contains(&"approval_requested".to_string()),
        "{kinds:?}"
    );

    let mut follow = s
        .cli(op)
        .args([
            "audit",
            "tail",
            "--follow",
            "--kind",
            "kill_switch",
            "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    s.run(op, &["kill-switch", "engage", "--reason", "followed"]);
    let line = BufReader::new(follow.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    follow.kill().unwrap();
    follow.wait().unwrap();
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["kind"], "kill_switch");
    assert_eq!(record["body"]["reason"], "followed");
}

/// The support incident of policies/traces/support-incident.jsonl over
/// HTTP: the bot closes ticket after ticket; the on-call engineer engages the
/// kill switch from a shell; every later close is refused and the pending ones are cancelled.
#[test]
fn the_incident_is_stopped_from_the_shell() {
    let s = Server::start("incident");
    let trace = std::fs::read_to_string(repo("policies/traces/support-incident.jsonl")).unwrap();
    let calls: Vec<Value> = trace
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["tool"] == "ticket.close")
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("at");
            v
        })
        .collect();
    assert_eq!(calls.len(), 41);
    let mut outcomes = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        if i == 15 {
            let (code, _, err) = s.run(
                Some(&s.operator),
                &[
                    "kill-switch",
                    "engage",
                    "--tenant",
                    "acme",
                    "--agent",
                    "support-bot",
                    "--reason",
                    "bot is closing every ticket",
                ],
            );
            assert_eq!(code, 0, "{err}");
        }
        let (status, answer) = s.post("/v1/calls", call);
        assert_eq!(status, 200, "{answer}");
        if answer["outcome"] == "allowed" {
            let id = answer["call"].as_str().unwrap();
            let (status, r) = s.post(
                &format!("/v1/calls/{id}/result?tenant=acme"),
                &json!({"ok": true}),
            );
            assert_eq!(status, 200, "{r}");
        }
        outcomes.push(answer);
    }
    // Before: 10 auto-approved closes (the hourly limit), then approvals wait.
    let allowed = outcomes[..15]
        .iter()
        .filter(|a| a["outcome"] == "allowed")
        .count();
    assert_eq!(allowed, 10, "{outcomes:?}");
    assert!(
        outcomes[10..15].iter().all(|a| a["outcome"] == "pending"),
        "{outcomes:?}"
    );
    // After: every close refused by the kill switch.
    for a in &outcomes[15..] {
        assert_eq!(a["outcome"], "denied", "{a}");
        assert!(a["reason"].as_str().unwrap().contains("kill switch"), "{a}");
    }
    // The held ones were cancelled, so nobody can approve them any more.
    let (_, out, _) = s.run(Some(&s.approver), &["approvals", "list", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["approvals"],
        json!([]),
        "{out}"
    );
    let (code, out, _) = s.run(
        Some(&s.operator),
        &["audit", "tail", "--kind", "kill_switch"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("bot is closing every ticket"), "{out}");
}

/// L2 of security review 2: a tool name or argument chosen by the model,
/// with ESC/CR (which redraw earlier lines) or bidi overrides (which reorder
/// them), reached the operator's terminal raw through `audit tail`,
/// `approvals list` and `approvals show`.
#[test]
fn operator_views_escape_control_and_bidi_characters() {
    let s = Server::start("escapes");
    let forged = "x\u{1b}[1A\u{1b}[2K\r9  decision  h1  denied\nforged\tline";
    let mut unknown = read("support-bot", forged);
    unknown["id"] = json!("c2");
    s.post("/v1/calls", &unknown);
    let mut held = close("h\u{202e}1", "prod");
    held["args"]["ticket_id"] = json!("T-1\u{1b}[2K\r\u{202e}to bob");
    let (status, answer) = s.post("/v1/calls", &held);
    assert_eq!(answer["outcome"], "pending", "{status} {answer}");
    let views = [
        (&s.operator, vec!["audit", "tail"]),
        (&s.approver, vec!["approvals", "list"]),
        (&s.approver, vec!["approvals", "show", "h\u{202e}1"]),
    ];
    for (key, args) in views {
        let (code, out, err) = s.run(Some(key), &args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            !out.contains(['\u{1b}', '\r', '\u{202e}', '\t']) && out.contains("[2K"),
            "{args:?}: {out:?}"
        );
    }
    let (_, out, _) = s.run(Some(&s.operator), &["audit", "tail"]);
    assert!(
        out.lines().all(|l| !l.starts_with("forged")) && out.contains("\\u{a}forged"),
        "{out:?}"
    );
}

/// The digest `approvals show` prints for `id`, and the answer of `GET /v1/calls/{id}`.
fn shown_digest(s: &Server, id: &str) -> String {
    let (code, out, err) = s.run(Some(&s.approver), &["approvals", "show", id]);
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.starts_with("digest ")).unwrap();
    line.split_whitespace().nth(1).unwrap().to_string()
}

/// H1 of security review 2: `approvals approve ID` approved whatever was held
/// as ID when it ran, so a service that re-held the id with other arguments
/// between the approver's `show` and `approve` had those approved. `approve`
/// now takes the digest `show` printed (which binds the hold, not only the
/// arguments), refuses without it outside a terminal, and the server is told
/// which hold was reviewed.
#[test]
fn approve_applies_only_to_the_hold_the_approver_reviewed() {
    let s = Server::start("approve_reviewed");
    let approver = Some(s.approver.as_str());
    s.post("/v1/calls", &close("h1", "prod"));
    // No digest, no terminal: refused before anything is sent.
    let (code, _, err) = s.run(approver, &["approvals", "approve", "h1", "--reason", "ok"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`--digest`"), "{err}");
    assert_eq!(s.get("/v1/calls/h1?tenant=acme")["state"], "pending");
    let reviewed = shown_digest(&s, "h1");
    let (code, _, err) = s.run(
        approver,
        &[
            "approvals",
            "approve",
            "h1",
            "--digest",
            "abc",
            "--reason",
            "ok",
        ],
    );
    assert_eq!(code, 2, "{err}");
    // The hold ends (rejected here; expired or cancelled alike) and the
    // service holds the id again, with other arguments, then with the same.
    for ticket in ["T-999", "T-h1"] {
        let (code, _, err) = s.run(approver, &["approvals", "reject", "h1", "--reason", "no"]);
        assert_eq!(code, 0, "{err}");
        let mut again = close("h1", "prod");
        again["args"]["ticket_id"] = json!(ticket);
        let (_, answer) = s.post("/v1/calls", &again);
        assert_eq!(answer["outcome"], "pending", "{answer}");
        assert_ne!(shown_digest(&s, "h1"), reviewed, "{ticket}");
        let (code, _, err) = s.run(
            approver,
            &[
                "approvals",
                "approve",
                "h1",
                "--digest",
                &reviewed[..12],
                "--reason",
                "ok",
            ],
        );
        assert_eq!(code, 1, "{ticket}: {err}");
        assert!(err.contains("not the call you reviewed"), "{err}");
        assert_eq!(s.get("/v1/calls/h1?tenant=acme")["state"], "pending");
    }
    // The server refuses an approval of an earlier hold too (the CLI's check
    // and the server's are apart by a round trip).
    let (_, out, _) = s.run(approver, &["approvals", "show", "h1", "--json"]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let mut stale = json!({"args_digest": listed["args_digest"], "reason": "ok"});
    stale["requested_at"] = json!(listed["requested_at"].as_u64().unwrap() - 1);
    let (status, answer) = s.post_as(&s.approver, "/v1/approvals/h1/approve", &stale);
    assert_eq!(status, 409, "{answer}");
    // The hold reviewed now is approved with its digest.
    let now = shown_digest(&s, "h1");
    let (code, out, err) = s.run(
        approver,
        &[
            "approvals",
            "approve",
            "h1",
            "--digest",
            &now,
            "--reason",
            "ok",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("approved `h1`"), "{out}");
    assert_eq!(s.get("/v1/calls/h1?tenant=acme")["state"], "approved");
}
