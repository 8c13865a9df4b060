//! Security review 2's findings on `policyc serve` (issue 17: M1-M5, L4, L5),
//! each kept as a regression test over the real binary.

use super::harness::{add_key, call, temp_dir, Server, BIN};
use super::{serve, setup};
use serde_json::{json, Value};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// Service keys of tenant `acme` for one agent each, and one limited to env `dev`.
fn agent_keys(data: &std::path::Path) -> (String, String, String) {
    let tenant = ["--tenants", "acme"];
    let bot = add_key(
        data,
        "svc-bot",
        "service",
        &[&tenant[..], &["--agents", "support-bot"]].concat(),
    );
    let browser = add_key(
        data,
        "svc-browser",
        "service",
        &[&tenant[..], &["--agents", "browser"]].concat(),
    );
    let dev = add_key(
        data,
        "svc-dev",
        "service",
        &[&tenant[..], &["--agents", "support-bot", "--envs", "dev"]].concat(),
    );
    (bot, browser, dev)
}

fn close_ticket(id: &str, ticket: &str) -> Value {
    let args = json!({"account_id": "A1", "ticket_id": ticket});
    call(id, "support-bot", "ticket.close", args, "acme", "prod")
}

/// Holds `id` as `service` and has `lee` approve it.
fn approved(s: &Server, service: &str, lead: &str, id: &str) {
    let r = s.post("/v1/calls", service, close_ticket(id, "T1"));
    assert_eq!(r.json["outcome"], "pending", "{}", r.text);
    let digest = r.json["approval"]["args_digest"].clone();
    let path = format!("/v1/approvals/{id}/approve");
    let a = s.post(&path, lead, json!({"args_digest": digest, "reason": "ok"}));
    assert_eq!(a.json["state"], "approved", "{}", a.text);
}

/// M1: a call's state and its token are read only by keys that may act for its agent and env.
#[test]
fn a_calls_state_is_read_only_by_keys_of_its_agent_and_env() {
    let (data, k) = setup("m1");
    let (bot, browser, dev) = agent_keys(&data);
    let s = serve(&data, &[]);
    approved(&s, &bot, &k.lead, "h1");
    let own = s.get("/v1/calls/h1", &bot);
    assert!(own.json["token"].as_str().is_some(), "{}", own.text);
    s.get("/v1/calls/h1", &browser)
        .problem(403, "forbidden", Some("agent"));
    let r = s.get("/v1/calls/h1", &dev);
    r.problem(403, "forbidden", Some("context.env"));
    assert!(!r.text.contains("token"), "{}", r.text);
    // Calls that were not held too.
    let read = call("r1", "support-bot", "kb.read", json!({}), "acme", "prod");
    assert_eq!(s.post("/v1/calls", &bot, read).json["outcome"], "allowed");
    s.get("/v1/calls/r1", &browser)
        .problem(403, "forbidden", Some("agent"));
    s.get("/v1/calls/r1?wait=1s", &dev)
        .problem(403, "forbidden", Some("context.env"));
    assert_eq!(s.get("/v1/calls/r1", &bot).json["state"], "allowed");
    let denied = s.audit(&k.operator, "kind=access_denied");
    assert!(
        denied
            .iter()
            .any(|r| r["body"]["caller"] == "svc-browser (service)"),
        "{denied:?}"
    );
}

/// M2: a result comes only from a key of the lease's agent and env, and an
/// id in use within the tenant is refused for a new call.
#[test]
fn results_come_from_the_calls_agent_and_call_ids_do_not_repeat() {
    let (data, k) = setup("m2");
    let (bot, browser, _) = agent_keys(&data);
    let s = serve(&data, &[]);
    let read = |id: &str| call(id, "support-bot", "kb.read", json!({}), "acme", "prod");
    assert_eq!(
        s.post("/v1/calls", &bot, read("x")).json["outcome"],
        "allowed"
    );
    // Another agent's key neither closes the lease nor makes the journal say `failed`.
    let forged = json!({"ok": false, "error": "forged"});
    s.post("/v1/calls/x/result", &browser, forged)
        .problem(403, "forbidden", Some("agent"));
    // The id is in use while its lease is open: refused, and the lease stays the first call's.
    s.post("/v1/calls", &bot, read("x"))
        .problem(409, "toolgate::gateway::id_in_use", Some("id"));
    let done = s.post("/v1/calls/x/result", &bot, json!({"ok": true}));
    assert_eq!(done.json["recorded"], true, "{}", done.text);
    let executions = s.audit(&k.operator, "kind=execution&call=x");
    assert_eq!(executions.len(), 1, "{executions:?}");
    assert_eq!(executions[0]["body"]["ok"], true);
    // A recent outcome the server knows keeps its id too.
    s.post("/v1/calls", &k.service, read("x")).problem(
        409,
        "toolgate::gateway::id_in_use",
        Some("id"),
    );
    // A held call's id is not reused by an allowed one.
    let r = s.post("/v1/calls", &bot, close_ticket("h", "T2"));
    assert_eq!(r.json["outcome"], "pending", "{}", r.text);
    s.post("/v1/calls", &bot, read("h"))
        .problem(409, "toolgate::gateway::id_in_use", Some("id"));
    assert_eq!(s.get("/v1/calls/h", &bot).json["state"], "pending");
    assert_eq!(s.audit(&k.operator, "kind=decision&call=h").len(), 1);
}

/// M3: approver envs and agents, operator tenants are enforced; scopes that
/// mean nothing for a role are refused when the key is made.
#[test]
fn every_scope_a_key_carries_is_enforced_or_refused() {
    let (data, k) = setup("m3");
    for (role, flags) in [
        ("operator", &["--envs", "dev"][..]),
        ("operator", &["--agents", "support-bot"][..]),
        ("operator", &["--groups", "support-leads"][..]),
        ("service", &["--groups", "support-leads"][..]),
    ] {
        let out = Command::new(BIN)
            .args(["keys", "add", "nope", "--role", role])
            .args(flags)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{role} {flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("`{role}` key")) && err.contains(flags[0]),
            "{err}"
        );
    }
    let lead_dev = add_key(
        &data,
        "lee-dev",
        "approver",
        &[
            "--tenants",
            "acme",
            "--envs",
            "dev",
            "--groups",
            "support-leads",
        ],
    );
    let lead_browser = add_key(
        &data,
        "lee-browser",
        "approver",
        &["--agents", "browser", "--groups", "support-leads"],
    );
    let ops_acme = add_key(&data, "ops-acme", "operator", &["--tenants", "acme"]);
    let globex = add_key(&data, "svc-globex", "service", &["--tenants", "globex"]);
    let s = serve(&data, &[]);
    let r = s.post("/v1/calls", &k.service, close_ticket("p1", "T1"));
    let digest = r.json["approval"]["args_digest"].clone();
    let g = close_ticket("g1", "T1");
    let mut g = g;
    g["context"]["tenant"] = json!("globex");
    assert_eq!(s.post("/v1/calls", &globex, g).json["outcome"], "pending");
    // An approver for env dev, or for agent browser, neither sees nor approves a prod call of support-bot.
    for approver in [&lead_dev, &lead_browser] {
        let listed = s.get("/v1/approvals", approver).json;
        assert_eq!(listed["approvals"], json!([]), "{listed}");
        s.get("/v1/approvals/p1?tenant=acme", approver)
            .problem(403, "forbidden", None);
        let body = json!({"args_digest": digest, "reason": "ok"});
        s.post("/v1/approvals/p1/approve?tenant=acme", approver, body)
            .problem(403, "forbidden", None);
        s.post(
            "/v1/approvals/p1/reject?tenant=acme",
            approver,
            json!({"reason": "no"}),
        )
        .problem(403, "forbidden", None);
    }
    assert_eq!(s.get("/v1/calls/p1", &k.service).json["state"], "pending");
    // An operator for acme: acme's audit only, acme's kill switch only, acme's approvals only.
    let records = s.audit(&ops_acme, "");
    assert!(!records.is_empty());
    assert!(
        !records.iter().any(|r| r.to_string().contains("globex")),
        "{records:?}"
    );
    assert!(s.audit(&ops_acme, "tenant=globex").is_empty());
    for body in [
        json!({"engaged": true, "tenant": "globex", "reason": "r"}),
        json!({"engaged": true, "reason": "r"}),
    ] {
        s.post("/v1/kill-switch", &ops_acme, body)
            .problem(403, "forbidden", Some("tenant"));
    }
    let kill = s.post(
        "/v1/kill-switch",
        &ops_acme,
        json!({"engaged": true, "tenant": "acme", "reason": "r"}),
    );
    assert_eq!(kill.status, 200, "{}", kill.text);
    let waiting = s.get("/v1/approvals", &ops_acme).json;
    assert!(!waiting.to_string().contains("globex"), "{waiting}");
    let status = s.get("/v1/status", &ops_acme).json;
    assert_eq!(status["pending"], 0, "{status}");
    assert_eq!(s.get("/v1/status", &k.operator).json["pending"], 1);
    // What acts for every tenant needs an operator of every tenant.
    s.get("/v1/keys", &ops_acme).problem(403, "forbidden", None);
    s.post("/v1/policy/reload", &ops_acme, json!({}))
        .problem(403, "forbidden", None);
    assert!(
        s.get("/v1/kill-switch", &k.operator).json["engaged"]
            .as_array()
            .unwrap()
            .len()
            == 1
    );
}

/// M4: connections that never finish their headers are closed after
/// `--header-timeout`, and a normal request is answered meanwhile.
#[test]
fn half_sent_requests_are_closed_after_the_header_timeout() {
    let (data, k) = setup("m4");
    let s = serve(&data, &["--header-timeout", "1"]);
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut half: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ")
                .unwrap();
            c
        })
        .collect();
    let t0 = Instant::now();
    let r = s.post(
        "/v1/calls",
        &k.service,
        call("a", "support-bot", "kb.read", json!({}), "acme", "prod"),
    );
    assert_eq!(r.json["outcome"], "allowed", "{}", r.text);
    assert!(t0.elapsed() < Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(15);
    for c in &mut half {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        c.set_read_timeout(Some(left)).unwrap();
        let mut buf = [0u8; 512];
        // Closed: end of file, a reset, or a 408 before the end of file.
        let closed = loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) if Instant::now() < deadline => break true,
                Ok(_) => continue,
                _ => break false,
            }
        };
        assert!(
            closed,
            "a half-sent request is still open after the header timeout"
        );
    }
}

/// M5: long polls that fill their budget do not hold up calls; a long poll over the budget answers at once.
#[test]
fn long_polls_do_not_starve_calls() {
    let (data, k) = setup("m5");
    let s = serve(&data, &["--concurrency", "2"]);
    let r = s.post("/v1/calls", &k.service, close_ticket("hold", "T1"));
    assert_eq!(r.json["outcome"], "pending", "{}", r.text);
    let (tx, rx) = std::sync::mpsc::channel();
    let polls: Vec<_> = (0..3)
        .map(|_| {
            let (url, key, tx) = (s.url.clone(), k.service.clone(), tx.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                let t0 = Instant::now();
                let mut r = agent
                    .get(format!("{url}/v1/calls/hold?wait=40s"))
                    .header("authorization", format!("Bearer {key}"))
                    .call()
                    .unwrap();
                let v: Value =
                    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
                tx.send((t0.elapsed(), v["state"].clone())).unwrap();
            })
        })
        .collect();
    // The polls over the waiting budget answer at once, still pending.
    let quick = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a long poll over the budget answers at once");
    assert_eq!(quick.1, "pending");
    assert!(quick.0 < Duration::from_secs(5), "{quick:?}");
    let t0 = Instant::now();
    let read = call("r", "support-bot", "kb.read", json!({}), "acme", "prod");
    assert_eq!(
        s.post("/v1/calls", &k.service, read).json["outcome"],
        "allowed"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "a call waited {:?} behind long polls",
        t0.elapsed()
    );
    let no = s.post(
        "/v1/approvals/hold/reject",
        &k.lead,
        json!({"reason": "done"}),
    );
    assert_eq!(no.json["state"], "rejected", "{}", no.text);
    for p in polls {
        p.join().unwrap();
    }
    let states: Vec<Value> = rx.try_iter().map(|(_, state)| state).collect();
    assert!(states.contains(&json!("rejected")), "{states:?}");
}

/// L4: only a first start with no keys file makes keys; revoking every key does not mint new ones.
#[test]
fn revoking_every_key_does_not_mint_new_ones() {
    let data = temp_dir("l4");
    let only = add_key(&data, "only", "service", &[]);
    let out = Command::new(BIN)
        .args(["keys", "revoke", "only", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = serve(&data, &[]);
    let banner = s.stdout.join("\n");
    assert!(!banner.contains("created key"), "{banner}");
    s.post(
        "/v1/calls",
        &only,
        call("a", "support-bot", "kb.read", json!({}), "acme", "prod"),
    )
    .problem(401, "unauthorized", None);
}

/// L5: a keys file that became invalid authenticates nobody until it is
/// fixed (503, logged and journaled); a revoke written with it stays.
#[test]
fn an_invalid_keys_file_authenticates_nobody_until_fixed() {
    let (data, k) = setup("l5");
    let s = serve(&data, &[]);
    let path = data.join("keys.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let read = || call("a", "support-bot", "kb.read", json!({}), "acme", "prod");
    assert_eq!(s.post("/v1/calls", &k.service, read()).status, 200);
    // A hand revocation of `acme-svc` with a typo.
    let blocks: Vec<&str> = good.split("[[key]]").collect();
    let kept: String = blocks[1..]
        .iter()
        .filter(|b| !b.contains("name = \"acme-svc\""))
        .map(|b| format!("[[key]]{b}"))
        .collect();
    std::fs::write(&path, format!("{}{kept}\n]\n", blocks[0])).unwrap();
    let r = s.post(
        "/v1/calls",
        &k.service,
        call("b", "support-bot", "kb.read", json!({}), "acme", "prod"),
    );
    r.problem(503, "keys_invalid", None);
    assert!(
        r.json["detail"].as_str().unwrap().contains("keys.toml"),
        "{}",
        r.text
    );
    s.get("/v1/audit", &k.operator)
        .problem(503, "keys_invalid", None);
    // Fixed (the typo removed): the revoke holds, the others work again.
    std::fs::write(&path, format!("{}{kept}", blocks[0])).unwrap();
    s.post("/v1/calls", &k.service, read())
        .problem(401, "unauthorized", None);
    let denied = s.audit(&k.operator, "kind=access_denied");
    assert!(
        denied.iter().any(|r| r["body"]["action"] == "reload keys"
            && r["body"]["why"].as_str().unwrap().contains("not valid")),
        "{denied:?}"
    );
}
