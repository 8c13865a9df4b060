//! Integration tests of `policyc serve` and `policyc keys`: the real binary
//! on an ephemeral loopback port, a temporary data directory, HTTP.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on a broken server"
)]

pub mod harness;
mod security;
mod sessions;

use harness::{add_key, call, repo, temp_dir, Server, BIN, POLICY};
use serde_json::{json, Value};
use std::process::Command;

struct Keys {
    operator: String,
    service: String,
    lead: String,
}

/// A data directory with an operator, a service key for `acme`, and an
/// approver `lee` of group `support-leads` for `acme`.
fn setup(name: &str) -> (std::path::PathBuf, Keys) {
    let data = temp_dir(name);
    let keys = Keys {
        operator: add_key(&data, "ops", "operator", &[]),
        service: add_key(
            &data,
            "acme-svc",
            "service",
            &["--tenants", "acme", "--agents", "support-bot,browser"],
        ),
        lead: add_key(
            &data,
            "lee",
            "approver",
            &["--tenants", "acme", "--groups", "support-leads"],
        ),
    };
    (data, keys)
}

fn serve(data: &std::path::Path, extra: &[&str]) -> Server {
    let policy = repo(POLICY);
    let mut args = vec!["--policy", policy.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(data, &args)
}

#[test]
fn calls_decide_and_results() {
    let (data, k) = setup("calls");
    let s = serve(&data, &[]);
    let read = call("r1", "support-bot", "kb.read", json!({}), "acme", "prod");
    let r = s.post("/v1/calls", &k.service, read);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["outcome"], "allowed");
    assert_eq!(r.json["call"], "r1");
    assert!(r.json["expires_at"].as_u64().is_some());
    assert_eq!(s.get("/v1/calls/r1", &k.service).json["state"], "allowed");
    let done = s.post("/v1/calls/r1/result", &k.service, json!({"ok": true}));
    assert_eq!(done.json["recorded"], true, "{}", done.text);
    assert_eq!(s.get("/v1/calls/r1", &k.service).json["state"], "executed");
    // A second result for the same call has no lease.
    s.post("/v1/calls/r1/result", &k.service, json!({"ok": true}))
        .problem(404, "toolgate::gateway::no_such_lease", None);

    // Denied, with the rule; no id given: one is generated.
    let mut deny = call("x", "support-bot", "db.write", json!({}), "acme", "prod");
    deny.as_object_mut().unwrap().remove("id");
    let r = s.post("/v1/calls", &k.service, deny);
    assert_eq!(r.json["outcome"], "denied");
    assert_eq!(r.json["reason"], "support agents never touch the database");
    assert!(r.json["rule"]
        .as_str()
        .unwrap()
        .contains("support-desk.policy:"));
    let id = r.json["call"].as_str().unwrap().to_string();
    assert!(id.starts_with("c_"));
    assert_eq!(
        s.get(&format!("/v1/calls/{id}"), &k.service).json["state"],
        "denied"
    );
    s.get("/v1/calls/nope", &k.service)
        .problem(404, "not_found", None);

    // /v1/decide: the same JSON as `policyc eval`, one or a list; nothing journaled.
    let before = s.audit(&k.operator, "kind=decision").len();
    let one = s.post(
        "/v1/decide",
        &k.service,
        call("d", "support-bot", "db.write", json!({}), "acme", "prod"),
    );
    assert_eq!(one.json["decision"], "deny", "{}", one.text);
    assert_eq!(
        one.json["reason"],
        "support agents never touch the database"
    );
    let two = s.post(
        "/v1/decide",
        &k.service,
        json!([
            call("a", "support-bot", "kb.read", json!({}), "acme", "prod"),
            call(
                "b",
                "browser",
                "http.get",
                json!({"url": "https://evil.example/"}),
                "acme",
                "prod"
            )
        ]),
    );
    assert_eq!(two.json[0]["decision"], "allow", "{}", two.text);
    assert_eq!(two.json[1]["decision"], "deny");
    assert_eq!(s.audit(&k.operator, "kind=decision").len(), before);
    let bad = s.post(
        "/v1/decide",
        &k.service,
        json!([call("a", "support-bot", "kb.read", json!({}), "acme", "prod"), {"agent": 1}]),
    );
    bad.problem(400, "invalid_body", Some("[1].agent"));
}

#[test]
fn bad_input_is_a_problem_naming_the_field() {
    let (data, k) = setup("bad-input");
    let s = serve(&data, &["--max-body", "4096"]);
    let body = call("a", "support-bot", "kb.read", json!({}), "acme", "prod").to_string();
    // No key, an unknown key: 401.
    s.raw("POST", "/v1/calls", None, Some(&body), "application/json")
        .problem(401, "unauthorized", Some("authorization"));
    s.raw(
        "POST",
        "/v1/calls",
        Some("tg_nope"),
        Some(&body),
        "application/json",
    )
    .problem(401, "unauthorized", None);
    // Wrong content type: 415.
    s.raw(
        "POST",
        "/v1/calls",
        Some(&k.service),
        Some(&body),
        "text/plain",
    )
    .problem(415, "unsupported_media_type", Some("content-type"));
    // Over the body limit: 413.
    let big = json!({"agent": "support-bot", "tool": "kb.read", "args": {"q": "x".repeat(8000)}, "context": {"tenant": "acme", "env": "prod"}});
    s.post("/v1/calls", &k.service, big)
        .problem(413, "body_too_large", Some("body"));
    // Malformed JSON: 400 naming where.
    s.raw(
        "POST",
        "/v1/calls",
        Some(&k.service),
        Some("{\"agent\": "),
        "application/json",
    )
    .problem(400, "invalid_body", Some("body"));
    let wrong =
        json!({"agent": "support-bot", "tool": "kb.read", "context": {"tenant": "acme", "env": 5}});
    s.post("/v1/calls", &k.service, wrong)
        .problem(400, "invalid_body", Some("context.env"));
    let missing = json!({"agent": "support-bot", "context": {"tenant": "acme", "env": "prod"}});
    let r = s.post("/v1/calls", &k.service, missing);
    r.problem(400, "invalid_body", None);
    assert!(
        r.json["detail"].as_str().unwrap().contains("tool"),
        "{}",
        r.text
    );
    let unknown = json!({"agent": "support-bot", "tool": "kb.read", "tenant": "globex", "context": {"tenant": "acme", "env": "prod"}});
    s.post("/v1/calls", &k.service, unknown)
        .problem(400, "invalid_body", None);
    let empty =
        json!({"agent": "", "tool": "kb.read", "context": {"tenant": "acme", "env": "prod"}});
    s.post("/v1/calls", &k.service, empty)
        .problem(400, "invalid_request", Some("agent"));
    s.get("/v1/calls/x?wait=forever", &k.service)
        .problem(400, "invalid_request", Some("wait"));
    s.get("/v1/audit?since=yesterday", &k.operator)
        .problem(400, "invalid_request", Some("since"));
    let r = s.get("/v1/audit?after=abc", &k.operator);
    r.problem(400, "invalid_request", None);
    assert!(
        r.json["detail"].as_str().unwrap().contains("after"),
        "{}",
        r.text
    );
    // `tools` is a closed set in the contract (toolgate-api's KillTools): the body does not parse.
    let kill = json!({"engaged": true, "tools": "some", "reason": "r"});
    s.post("/v1/kill-switch", &k.operator, kill)
        .problem(400, "invalid_body", Some("tools"));
    // Unknown route and wrong method: problems too.
    s.get("/v1/nothing", &k.operator)
        .problem(404, "not_found", None);
    s.get("/v1/calls", &k.service)
        .problem(405, "method_not_allowed", None);
}

#[test]
fn trusted_context_and_roles_are_the_keys() {
    let (data, k) = setup("roles");
    let s = serve(&data, &[]);
    // A service key for acme asking for globex: 403, journaled.
    let globex = call("g1", "support-bot", "kb.read", json!({}), "globex", "prod");
    s.post("/v1/calls", &k.service, globex.clone()).problem(
        403,
        "forbidden",
        Some("context.tenant"),
    );
    s.post("/v1/decide", &k.service, globex)
        .problem(403, "forbidden", Some("context.tenant"));
    let other_agent = call("g2", "billing-bot", "kb.read", json!({}), "acme", "prod");
    s.post("/v1/calls", &k.service, other_agent)
        .problem(403, "forbidden", Some("agent"));
    s.get("/v1/calls/g1?tenant=globex", &k.service)
        .problem(403, "forbidden", Some("tenant"));
    let denied = s.audit(&k.operator, "kind=access_denied");
    assert!(denied.len() >= 4, "{denied:?}");
    assert!(denied[0]["body"]["why"]
        .as_str()
        .unwrap()
        .contains("globex"));
    assert_eq!(denied[0]["body"]["caller"], "acme-svc (service)");
    // Roles: a service key cannot use the kill switch or read the audit; an approver cannot call.
    let kill = json!({"engaged": true, "reason": "r"});
    s.post("/v1/kill-switch", &k.service, kill)
        .problem(403, "forbidden", None);
    s.get("/v1/audit", &k.service)
        .problem(403, "forbidden", None);
    s.get("/metrics", &k.lead).problem(403, "forbidden", None);
    s.post(
        "/v1/calls",
        &k.lead,
        call("l", "support-bot", "kb.read", json!({}), "acme", "prod"),
    )
    .problem(403, "forbidden", None);
    // Health and the API document need no key.
    assert_eq!(s.req("GET", "/healthz", None, None).status, 200);
    assert_eq!(s.req("GET", "/readyz", None, None).json["status"], "ready");
    let served = s.req("GET", "/v1/openapi.json", None, None).json;
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(
            repo("docs/openapi.json"),
            toolgate_server::openapi::document(),
        )
        .unwrap();
    }
    let checked_in: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("docs/openapi.json")).unwrap()).unwrap();
    assert!(
        served == checked_in,
        "GET /v1/openapi.json differs from docs/openapi.json"
    );
    // Operator reads: keys (no hashes), status, head, policy.
    let keys = s.get("/v1/keys", &k.operator).json;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 3);
    assert!(!keys.to_string().contains("sha256"));
    let status = s.get("/v1/status", &k.operator).json;
    assert_eq!(status["policy"], "support-desk");
    let head = s.get("/v1/audit/head", &k.operator).json;
    assert!(head["seq"].as_u64().unwrap() >= 1 && head["hash"].as_str().unwrap().len() == 64);
    let policy = s.get("/v1/policy", &k.operator).json;
    assert_eq!(policy["name"], "support-desk");
    assert!(policy["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "ticket.close" && t["class"] == "write"));
    assert_eq!(policy["agents"], json!(["support-bot", "browser"]));
}

fn held(s: &Server, k: &Keys, id: &str, ticket: &str) -> Value {
    let c = call(
        id,
        "support-bot",
        "ticket.close",
        json!({"account_id": "A1", "ticket_id": ticket}),
        "acme",
        "prod",
    );
    let r = s.post("/v1/calls", &k.service, c);
    assert_eq!(r.json["outcome"], "pending", "{}", r.text);
    r.json
}

#[test]
fn approvals_are_the_gateways_and_the_approver_is_the_key() {
    let (data, k) = setup("approvals");
    let billing = add_key(
        &data,
        "bo",
        "approver",
        &["--tenants", "acme", "--groups", "billing"],
    );
    let bot = add_key(
        &data,
        "Support-Bot ",
        "approver",
        &["--groups", "support-leads"],
    );
    let globex_lead = add_key(
        &data,
        "gil",
        "approver",
        &["--tenants", "globex", "--groups", "support-leads"],
    );
    let s = serve(&data, &[]);
    let pending = held(&s, &k, "t1", "T-1");
    assert_eq!(pending["approval"]["group"], "support-leads");
    assert_eq!(pending["approval"]["count"], 1);
    let digest = pending["approval"]["args_digest"]
        .as_str()
        .unwrap()
        .to_string();

    let list = s
        .get(
            "/v1/approvals?state=pending&agent=support-bot&tool=ticket.close",
            &k.lead,
        )
        .json;
    let item = &list["approvals"][0];
    assert_eq!(item["id"], "t1");
    assert_eq!(
        item["args"],
        json!({"account_id": "A1", "ticket_id": "T-1"})
    );
    assert_eq!(item["args_digest"], digest);
    assert_eq!(item["reason"], "needs human approval");
    assert!(item["rule"]
        .as_str()
        .unwrap()
        .contains("support-desk.policy:"));
    assert!(item["requested_at"].as_u64().is_some() && item["expires_at"].as_u64().is_some());
    assert_eq!(
        s.get("/v1/approvals?tool=kb.read", &k.lead).json["approvals"],
        json!([])
    );
    assert_eq!(
        s.get("/v1/approvals", &globex_lead).json["approvals"],
        json!([])
    );
    assert_eq!(s.get("/v1/approvals/t1", &k.lead).json["state"], "pending");

    let approve = |key: &str, d: &str| {
        s.post(
            "/v1/approvals/t1/approve",
            key,
            json!({"args_digest": d, "reason": "dup"}),
        )
    };
    // A service key approving: 403, journaled.
    approve(&k.service, &digest).problem(403, "forbidden", None);
    // Group X approving group Y's call.
    approve(&billing, &digest).problem(403, "toolgate::gateway::wrong_group", None);
    // The agent approving itself (another spelling of its name).
    approve(&bot, &digest).problem(403, "toolgate::gateway::self_approval", None);
    // Another tenant's approver.
    s.post(
        "/v1/approvals/t1/approve?tenant=acme",
        &globex_lead,
        json!({"args_digest": digest, "reason": "x"}),
    )
    .problem(403, "forbidden", Some("tenant"));
    // A stale digest (the approver reviewed other arguments).
    approve(&k.lead, &"0".repeat(64)).problem(
        409,
        "toolgate::gateway::digest_mismatch",
        Some("args_digest"),
    );
    // No reason.
    s.post(
        "/v1/approvals/t1/approve",
        &k.lead,
        json!({"args_digest": digest, "reason": " "}),
    )
    .problem(400, "toolgate::gateway::reason_required", Some("reason"));
    let refused = s.audit(&k.operator, "kind=approval_refused&call=t1");
    assert_eq!(refused.len(), 4, "{refused:?}");

    // The service long-polls while a lead approves.
    let waiter = {
        let url = format!("{}/v1/calls/t1?wait=20s", s.url);
        let key = k.service.clone();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut r = agent
                .get(&url)
                .header("authorization", format!("Bearer {key}"))
                .call()
                .unwrap();
            serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap()).unwrap()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ok = approve(&k.lead, &digest);
    assert_eq!(ok.json["state"], "approved", "{}", ok.text);
    let polled = waiter.join().unwrap();
    assert_eq!(polled["state"], "approved");
    let token = polled["token"].as_str().unwrap().to_string();
    // The approver's answer never carries the token.
    assert!(!ok.text.contains(&token));

    // Other arguments with the token: refused. The approved ones: allowed once.
    let ctx = json!({"tenant": "acme", "env": "prod", "account_id": "A1"});
    let other =
        json!({"token": token, "args": {"account_id": "A1", "ticket_id": "T-999"}, "context": ctx});
    s.post("/v1/calls/t1/execute", &k.service, other).problem(
        409,
        "toolgate::gateway::token_binding",
        Some("token"),
    );
    let exact =
        json!({"token": token, "args": {"account_id": "A1", "ticket_id": "T-1"}, "context": ctx});
    let go = s.post("/v1/calls/t1/execute", &k.service, exact.clone());
    assert_eq!(go.json["outcome"], "allowed", "{}", go.text);
    assert_eq!(go.json["scope"], json!({"tenant": "acme", "env": "prod"}));
    s.post("/v1/calls/t1/execute", &k.service, exact).problem(
        409,
        "toolgate::gateway::token_used",
        Some("token"),
    );
    assert_eq!(
        s.post("/v1/calls/t1/result", &k.service, json!({"ok": true}))
            .json["recorded"],
        true
    );
    assert_eq!(s.get("/v1/calls/t1", &k.service).json["state"], "executed");

    // Reject.
    held(&s, &k, "t2", "T-2");
    let r = s.post(
        "/v1/approvals/t2/reject",
        &k.lead,
        json!({"reason": "not a duplicate"}),
    );
    assert_eq!(r.json["state"], "rejected", "{}", r.text);
    assert_eq!(s.get("/v1/calls/t2", &k.service).json["state"], "rejected");
    s.post(
        "/v1/approvals/t2/approve",
        &k.lead,
        json!({"args_digest": digest, "reason": "x"}),
    )
    .problem(409, "toolgate::gateway::rejected", None);
    s.post(
        "/v1/approvals/zz/approve",
        &k.lead,
        json!({"args_digest": digest, "reason": "x"}),
    )
    .problem(404, "toolgate::gateway::no_such_request", None);
}

#[test]
fn kill_switch_for_one_agent_with_all_tools_stops_its_reads_only() {
    let (data, k) = setup("kill");
    let s = serve(&data, &[]);
    let read = |id: &str, agent: &str, tool: &str| {
        s.post(
            "/v1/calls",
            &k.service,
            call(id, agent, tool, json!({}), "acme", "prod"),
        )
        .json
    };
    assert_eq!(read("k1", "support-bot", "kb.read")["outcome"], "allowed");
    let engage = json!({"engaged": true, "agent": "support-bot", "tools": "all", "reason": "reading too much"});
    let r = s.post("/v1/kill-switch", &k.operator, engage);
    assert_eq!(
        r.json["engaged"],
        json!([{"tenant": null, "agent": "support-bot", "tools": "all"}]),
        "{}",
        r.text
    );
    let stopped = read("k2", "support-bot", "kb.read");
    assert_eq!(stopped["outcome"], "denied");
    assert!(stopped["reason"].as_str().unwrap().contains("kill switch"));
    assert_eq!(read("k3", "browser", "search.read")["outcome"], "allowed");
    assert_eq!(
        s.get("/v1/kill-switch", &k.operator).json["engaged"][0]["agent"],
        "support-bot"
    );
    let release =
        json!({"engaged": false, "agent": "support-bot", "tools": "all", "reason": "fixed"});
    assert_eq!(
        s.post("/v1/kill-switch", &k.operator, release).json["engaged"],
        json!([])
    );
    assert_eq!(read("k4", "support-bot", "kb.read")["outcome"], "allowed");
    let records = s.audit(&k.operator, "kind=kill_switch");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["body"]["by"], "ops");
    let first = records[0]["seq"].as_u64().unwrap();
    assert_eq!(
        s.audit(&k.operator, &format!("kind=kill_switch&after={first}"))
            .len(),
        1
    );
    assert_eq!(s.audit(&k.operator, "kind=kill_switch&since=1h").len(), 2);
    assert_eq!(s.audit(&k.operator, "until=0").len(), 0);
    let k2 = s.audit(&k.operator, "call=k2&tenant=acme");
    assert_eq!(k2.len(), 1);
    assert_eq!(k2[0]["body"]["decision"], "deny");
}

#[test]
fn kill_switch_and_pending_approvals_survive_sigkill() {
    let (data, k) = setup("restart");
    let s = serve(&data, &[]);
    let digest = held(&s, &k, "p1", "T-1")["approval"]["args_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let engage = json!({"engaged": true, "tenant": "globex", "reason": "incident"});
    assert_eq!(s.post("/v1/kill-switch", &k.operator, engage).status, 200);
    s.kill();
    let s = serve(&data, &[]);
    assert_eq!(
        s.get("/v1/kill-switch", &k.operator).json["engaged"],
        json!([{"tenant": "globex", "agent": null, "tools": "writes"}])
    );
    let list = s.get("/v1/approvals", &k.lead).json;
    assert_eq!(list["approvals"][0]["id"], "p1", "{list}");
    assert_eq!(list["approvals"][0]["args"]["ticket_id"], "T-1");
    assert_eq!(list["approvals"][0]["args_digest"], digest);
    let ok = s.post(
        "/v1/approvals/p1/approve",
        &k.lead,
        json!({"args_digest": digest, "reason": "dup"}),
    );
    assert_eq!(ok.json["state"], "approved", "{}", ok.text);
}

#[test]
fn reload_refuses_a_broken_policy_and_shadow_counts_differences() {
    let (data, k) = setup("reload");
    let dir = temp_dir("reload-policies");
    let live = dir.join("live.policy");
    let text = std::fs::read_to_string(repo(POLICY)).unwrap();
    std::fs::write(&live, &text).unwrap();
    let shadow = dir.join("shadow.policy");
    std::fs::write(
        &shadow,
        text.replace("allow kb.read, search.read;", "allow search.read;"),
    )
    .unwrap();
    let s = Server::start(
        &data,
        &[
            "--policy",
            live.to_str().unwrap(),
            "--shadow-policy",
            shadow.to_str().unwrap(),
        ],
    );
    let policy = s.get("/v1/policy", &k.operator).json;
    assert!(policy["shadow"]["sha256"].is_string());
    let read = |id: &str| {
        s.post(
            "/v1/calls",
            &k.service,
            call(id, "support-bot", "kb.read", json!({}), "acme", "prod"),
        )
        .json
    };
    assert_eq!(read("s1")["outcome"], "allowed");
    assert_eq!(
        s.metric(&k.operator, "toolgate_shadow_differs_total"),
        Some(1.0)
    );
    assert_eq!(s.audit(&k.operator, "kind=shadow_differs").len(), 1);

    // A broken policy: refused with diagnostics, journaled, the old one keeps serving.
    std::fs::write(&live, "policy broken;\nagent a { allow nosuch.tool; }\n").unwrap();
    let r = s.req("POST", "/v1/policy/reload", Some(&k.operator), None);
    r.problem(422, "policy_refused", Some("policy"));
    let diags = r.json["diagnostics"].as_array().unwrap();
    assert!(!diags.is_empty() && diags[0]["line"].is_u64(), "{}", r.text);
    assert_eq!(read("s2")["outcome"], "allowed");
    assert_eq!(s.audit(&k.operator, "kind=policy_refused").len(), 1);

    // SIGHUP loads a fixed policy.
    std::fs::write(
        &live,
        text.replace("allow kb.read, search.read;", "allow search.read;"),
    )
    .unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut denied = false;
    for i in 0..100 {
        if read(&format!("h{i}"))["outcome"] == "denied" {
            denied = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(denied, "SIGHUP did not reload the policy");
    assert_eq!(
        s.metric(
            &k.operator,
            "toolgate_policy_reloads_total{result=\"refused\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        s.metric(
            &k.operator,
            "toolgate_policy_reloads_total{result=\"loaded\"}"
        ),
        Some(1.0)
    );
    let m = s.get("/metrics", &k.operator).text;
    for series in [
        "toolgate_decisions_total{outcome=\"allowed\",agent=\"support-bot\",tool=\"kb.read\"}",
        "toolgate_http_request_duration_seconds_count{route=\"/v1/calls\"}",
        "toolgate_decision_duration_seconds_count",
        "toolgate_pending_approvals 0",
        "toolgate_kill_switch_engaged 0",
        "toolgate_calls_allowed_total",
    ] {
        assert!(m.contains(series), "{series} missing from\n{m}");
    }
}

#[test]
fn the_incident_driven_over_http_stops_at_the_kill_switch() {
    let (data, k) = setup("incident");
    let s = serve(&data, &[]);
    let trace = std::fs::read_to_string(repo("policies/traces/support-incident.jsonl")).unwrap();
    let calls: Vec<Value> = trace
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("tool").is_some())
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("at");
            v
        })
        .collect();
    assert_eq!(calls.len(), 41);
    let mut outcomes = Vec::new();
    for c in &calls[..20] {
        outcomes.push(
            s.post("/v1/calls", &k.service, c.clone()).json["outcome"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // The budget grants 10 closes an hour; the rest wait for approval.
    assert_eq!(outcomes.iter().filter(|o| *o == "allowed").count(), 10);
    assert_eq!(outcomes.iter().filter(|o| *o == "pending").count(), 10);
    assert_eq!(
        s.get("/v1/approvals", &k.lead).json["approvals"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let engage = json!({"engaged": true, "tenant": "acme", "reason": "support-bot is closing tickets that are not duplicates"});
    assert_eq!(s.post("/v1/kill-switch", &k.operator, engage).status, 200);
    // Pending approvals are cancelled, and every later close is denied.
    assert_eq!(s.get("/v1/approvals", &k.lead).json["approvals"], json!([]));
    for c in &calls[20..] {
        assert_eq!(
            s.post("/v1/calls", &k.service, c.clone()).json["outcome"],
            "denied"
        );
    }
    let digest = s.get("/v1/approvals/c14?tenant=acme", &k.lead).json["args_digest"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(
        "/v1/approvals/c14/approve",
        &k.lead,
        json!({"args_digest": digest, "reason": "dup"}),
    )
    .problem(409, "toolgate::gateway::kill_switch", None);
    assert_eq!(
        s.get("/v1/calls/c14", &k.service).json["state"],
        "cancelled"
    );
}

#[test]
fn keys_are_hashed_listed_and_revoked_without_a_restart() {
    let (data, k) = setup("keys");
    let text = std::fs::read_to_string(data.join("keys.toml")).unwrap();
    assert!(!text.contains(&k.service) && text.contains(&sha256_hex(&k.service)));
    let out = Command::new(BIN)
        .args(["keys", "list", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        listed.contains("acme-svc")
            && listed.contains("service")
            && !listed.contains(&sha256_hex(&k.service))
    );
    let s = serve(&data, &[]);
    let c = call("a", "support-bot", "kb.read", json!({}), "acme", "prod");
    assert_eq!(s.post("/v1/calls", &k.service, c.clone()).status, 200);
    // A key added while serving works at once; a revoked one stops at once.
    let late = add_key(&data, "late", "service", &[]);
    assert_eq!(
        s.post(
            "/v1/calls",
            &late,
            call("b", "support-bot", "kb.read", json!({}), "acme", "prod")
        )
        .status,
        200
    );
    let out = Command::new(BIN)
        .args(["keys", "revoke", "acme-svc", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    s.post("/v1/calls", &k.service, c)
        .problem(401, "unauthorized", None);
    let dup = Command::new(BIN)
        .args(["keys", "add", "late", "--role", "service", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(dup.status.code(), Some(2));
}

/// SHA-256 (hex) of a secret, as the keys file stores it.
fn sha256_hex(secret: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn first_start_makes_keys_and_prints_a_curl_that_works() {
    let data = temp_dir("first");
    let s = serve(&data, &[]);
    let banner = s.stdout.join("\n");
    assert!(banner.contains("created key `admin`"), "{banner}");
    let service = s
        .stdout
        .iter()
        .find(|l| l.contains("key `local-service`"))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let curl = s.stdout.iter().position(|l| l == "try:").unwrap();
    let body = s.stdout[curl + 1]
        .split(" -d '")
        .nth(1)
        .unwrap()
        .trim_end_matches('\'');
    let r = s.post("/v1/calls", &service, serde_json::from_str(body).unwrap());
    assert_eq!(r.json["outcome"], "allowed", "{}", r.text);
}

#[test]
fn a_non_loopback_listen_needs_tls() {
    let data = temp_dir("listen");
    let out = Command::new(BIN)
        .args(["serve", "--policy"])
        .arg(repo(POLICY))
        .arg("--data")
        .arg(&data)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without TLS"));
}

#[test]
fn a_config_file_holds_the_settings_and_missing_results_are_journaled() {
    let (data, k) = setup("config");
    let config = data.join("toolgate.toml");
    let policy = repo(POLICY);
    let text = format!(
        "policy = {:?}\nlisten = \"127.0.0.1:0\"\nresult_timeout = 1\nmax_body = 2048\nfsync = \"never\"\n",
        policy.to_str().unwrap()
    );
    std::fs::write(&config, text).unwrap();
    let s = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let r = s.post(
        "/v1/calls",
        &k.service,
        call("m1", "support-bot", "kb.read", json!({}), "acme", "prod"),
    );
    assert_eq!(r.json["outcome"], "allowed", "{}", r.text);
    let big = json!({"agent": "support-bot", "tool": "kb.read", "args": {"q": "x".repeat(4000)}, "context": {"tenant": "acme", "env": "prod"}});
    s.post("/v1/calls", &k.service, big)
        .problem(413, "body_too_large", Some("body"));
    // The result never comes: after the timeout it is journaled as result_missing.
    let mut state = Value::Null;
    for _ in 0..100 {
        state = s.get("/v1/calls/m1", &k.service).json["state"].clone();
        if state == "result_missing" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(state, "result_missing");
    assert_eq!(s.audit(&k.operator, "kind=result_missing&call=m1").len(), 1);
    let bad = data.join("bad.toml");
    std::fs::write(&bad, "listen = 5\n").unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

#[test]
fn tls_serves_https_with_the_given_certificate() {
    let (data, k) = setup("tls");
    let cert = repo("crates/policyc/tests/serve/tls/test-only-cert.pem");
    let key = repo("crates/policyc/tests/serve/tls/test-only-key.pem");
    let policy = repo(POLICY);
    let s = Server::start(
        &data,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    // Python's standard library as the client: the certificate verified against itself.
    let fetch = "import ssl, sys, urllib.request\n\
                 ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
                 req = urllib.request.Request(sys.argv[2], headers={'authorization': 'Bearer ' + sys.argv[3]})\n\
                 print(urllib.request.urlopen(req, context=ctx).read().decode())\n";
    let out = Command::new("python3")
        .args(["-c", fetch])
        .arg(&cert)
        .arg(format!("{}/v1/policy", s.url))
        .arg(&k.operator)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["name"], "support-desk");
}

#[test]
fn approvers_see_redacted_arguments_and_approve_the_real_ones() {
    let (data, k) = setup("redact");
    let policy = data.join("mail.policy");
    let text = "tool mail.send write { to: string, body: string redact };\nwrites enabled;\n\
                agent support-bot {\n  write mail.send require approval from \"support-leads\";\n}\n";
    std::fs::write(&policy, text).unwrap();
    let s = Server::start(&data, &["--policy", policy.to_str().unwrap()]);
    let args = json!({"to": "a@example.com", "body": "the secret reset link"});
    let r = s.post("/v1/calls", &k.service, json!({"id": "m1", "agent": "support-bot", "tool": "mail.send", "args": args, "context": {"tenant": "acme", "env": "prod"}}));
    assert_eq!(r.json["outcome"], "pending", "{}", r.text);
    let item = &s.get("/v1/approvals", &k.lead).json["approvals"][0];
    assert_eq!(
        item["args"],
        json!({"to": "a@example.com", "body": "[redacted]"})
    );
    assert!(!s
        .audit(&k.operator, "")
        .iter()
        .any(|r| r.to_string().contains("secret reset link")));
    let digest = item["args_digest"].as_str().unwrap();
    let ok = s.post(
        "/v1/approvals/m1/approve",
        &k.lead,
        json!({"args_digest": digest, "reason": "ok"}),
    );
    assert_eq!(ok.json["state"], "approved", "{}", ok.text);
    let token = s.get("/v1/calls/m1", &k.service).json["token"]
        .as_str()
        .unwrap()
        .to_string();
    let go = s.post(
        "/v1/calls/m1/execute",
        &k.service,
        json!({"token": token, "args": args}),
    );
    assert_eq!(go.json["outcome"], "allowed", "{}", go.text);
}

// ---- R1 of security review 2: a crash in the first seconds of a first start
// (before the first timed checkpoint) left records no checkpoint sealed, and
// every later start refused the journal until an operator overrode it. Both
// doors open the journal through toolgate-server's `open_state`. ----

/// The next pseudo-random number (xorshift) of a fixed seed: the same kill moments every run.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Calls `url` with `key` (allowed reads and held closes) until the server stops answering.
fn traffic(url: String, key: String) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(5)))
            .build()
            .into();
        for n in 0.. {
            let (tool, args) = match n % 2 {
                0 => ("kb.read", json!({})),
                _ => (
                    "ticket.close",
                    json!({"account_id": "A1", "ticket_id": "T-1"}),
                ),
            };
            let body = call(&format!("t{n}"), "support-bot", tool, args, "acme", "prod");
            let sent = agent
                .post(format!("{url}/v1/calls"))
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .send(body.to_string());
            if sent.is_err() {
                return n;
            }
        }
        0
    })
}

#[test]
fn serve_killed_at_random_in_its_first_seconds_restarts_without_an_override() {
    let mut seed: u64 = 0x5eed_2026_1207_0001;
    let policy = repo(POLICY);
    for round in 0..8 {
        let data = temp_dir(&format!("first-crash-{round}"));
        let service = add_key(&data, "svc", "service", &[]);
        if round % 2 == 0 {
            // Killed at any moment of its first start, listening or not.
            let mut child = Command::new(BIN)
                .arg("serve")
                .arg("--data")
                .arg(&data)
                .args(["--listen", "127.0.0.1:0", "--policy"])
                .arg(&policy)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(next(&mut seed) % 1500));
            child.kill().unwrap();
            child.wait().unwrap();
        } else {
            // Killed under traffic.
            let s = serve(&data, &[]);
            let calls = traffic(s.url.clone(), service.clone());
            std::thread::sleep(std::time::Duration::from_millis(next(&mut seed) % 800));
            s.kill();
            calls.join().unwrap();
        }
        // Server::start fails the test if serve exits before listening.
        let s = serve(&data, &[]);
        let read = call("after", "support-bot", "kb.read", json!({}), "acme", "prod");
        let r = s.post("/v1/calls", &service, read);
        assert_eq!(r.json["outcome"], "allowed", "round {round}: {}", r.text);
    }
}

#[test]
fn mcp_proxy_killed_at_random_in_its_first_seconds_restarts_without_an_override() {
    use std::io::BufRead as _;
    let mut seed: u64 = 0x5eed_2026_1207_0002;
    let policy = repo("policies/mcp-filesystem.policy");
    // The journal opens before any traffic: a trivial upstream (`cat`) will do.
    let proxy = |data: &std::path::Path| {
        Command::new(BIN)
            .arg("mcp-proxy")
            .arg("--policy")
            .arg(&policy)
            .args([
                "--agent",
                "fs-assistant",
                "--tenant",
                "local",
                "--env",
                "dev",
            ])
            .args([
                "--ctx",
                "root=/nonexistent",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--data")
            .arg(data)
            .args(["--", "cat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    for round in 0..8 {
        let data = temp_dir(&format!("mcp-first-crash-{round}"));
        let mut child = proxy(&data);
        std::thread::sleep(std::time::Duration::from_millis(next(&mut seed) % 1500));
        child.kill().unwrap();
        child.wait().unwrap();
        // Up again: it opened its journal and serves its admin API (stderr
        // ends, with the reason, if it exits instead).
        let mut child = proxy(&data);
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let said: Vec<String> = stderr
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.starts_with("toolgate: admin API on "))
            .collect();
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(running && said.is_empty(), "round {round}: {said:?}");
    }
}

/// The mode of `path` (permission bits).
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// L3 of security review 2: the journal and its checkpoints were 0644 in a
/// 0755 data directory. The data directory is now 0700 (an existing one is
/// tightened at start) and every file in it 0600.
#[test]
fn the_data_directory_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let (data, k) = setup("private");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for round in 0..2 {
        let s = serve(&data, &[]);
        let read = call(
            &format!("r{round}"),
            "support-bot",
            "kb.read",
            json!({}),
            "acme",
            "prod",
        );
        assert_eq!(s.post("/v1/calls", &k.service, read).status, 200);
        s.kill();
        assert_eq!(mode(&data), 0o700, "round {round}");
        let loose: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| mode(p) != 0o600)
            .map(|p| format!("{} {:o}", p.display(), mode(&p)))
            .collect();
        assert_eq!(loose, Vec::<String>::new(), "round {round}");
        // An existing data directory left open to others is tightened at start.
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
