//! Several `policyc serve` replicas on one real `redis-server` (installed by
//! `scripts/setup-redis.sh`, started by each test on its own port and
//! directory with append-only persistence): a budget, an approval, a token
//! and the kill switch hold across replicas; Redis killed and restarted.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on a broken server"
)]

use crate::serve::harness;

use harness::{add_key, repo, temp_dir, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use toolgate_testkit::redis::RedisServer;

const POLICY: &str = "crates/policyc/tests/replicas/replicas.policy";

struct Keys {
    operator: String,
    service: String,
    lead: String,
}

struct Cluster {
    replicas: Vec<Server>,
    dirs: Vec<std::path::PathBuf>,
    /// Where the shared keys file is.
    shared: std::path::PathBuf,
    keys: Keys,
    redis: RedisServer,
}

/// `n` replicas on one fresh redis-server: one keys file, one digest key
/// (copied from the first replica's data directory), a data directory (and
/// so a journal and a replica id) each.
fn cluster(name: &str, n: usize, extra: &[&str]) -> Cluster {
    cluster_on(RedisServer::start(name), &RedisServer::url, name, n, extra)
}

/// The same on a given redis-server, reached with the URL `url` makes.
fn cluster_on(
    redis: RedisServer,
    url: &dyn Fn(&RedisServer) -> String,
    name: &str,
    n: usize,
    extra: &[&str],
) -> Cluster {
    let shared = temp_dir(&format!("{name}-keys"));
    let keys = Keys {
        operator: add_key(&shared, "ops", "operator", &[]),
        service: add_key(&shared, "svc", "service", &["--tenants", "acme"]),
        lead: add_key(
            &shared,
            "lee",
            "approver",
            &["--tenants", "acme", "--groups", "leads"],
        ),
    };
    let mut replicas: Vec<Server> = Vec::new();
    let mut dirs = Vec::new();
    let mut first: Option<std::path::PathBuf> = None;
    for i in 0..n {
        let data = temp_dir(&format!("{name}-r{i}"));
        match &first {
            Some(dir) => {
                std::fs::copy(dir.join("digest.key"), data.join("digest.key")).unwrap();
            }
            None => first = Some(data.clone()),
        }
        replicas.push(start(&data, &shared, &url(&redis), &format!("r{i}"), extra));
        dirs.push(data);
    }
    Cluster {
        replicas,
        dirs,
        shared,
        keys,
        redis,
    }
}

fn start(
    data: &std::path::Path,
    shared: &std::path::Path,
    url: &str,
    id: &str,
    extra: &[&str],
) -> Server {
    let policy = repo(POLICY);
    let keys = shared.join("keys.toml");
    let mut args = vec![
        "--policy",
        policy.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--store",
        url,
        "--replica-id",
        id,
    ];
    args.extend_from_slice(extra);
    Server::start(data, &args)
}

fn call(id: &str, tool: &str, args: Value) -> Value {
    json!({"id": id, "agent": "bot", "tool": tool, "args": args,
           "context": {"tenant": "acme", "env": "prod"}})
}

fn ticket(id: &str) -> Value {
    call(id, "ticket.create", json!({"title": id}))
}

fn refund(id: &str) -> Value {
    call(id, "refund.issue", json!({"amount": "30"}))
}

/// Posts each body to replica `i % n`, all at once; the outcomes.
fn race(c: &Cluster, path: impl Fn(usize) -> String, bodies: Vec<Value>) -> Vec<Value> {
    std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                let r = &c.replicas[i % c.replicas.len()];
                let path = path(i);
                let key = &c.keys.service;
                s.spawn(move || r.post(&path, key, body))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let reply = h.join().unwrap();
                assert!(reply.status == 200 || reply.status == 409, "{}", reply.text);
                reply.json
            })
            .collect()
    })
}

fn allowed(outcomes: &[Value]) -> usize {
    outcomes
        .iter()
        .filter(|o| o["outcome"] == "allowed")
        .count()
}

/// Holds `id` on replica `on`, approves it through replica `via`; the token
/// (handed out by the replica that completed the approval).
fn approved(c: &Cluster, id: &str, on: usize, via: usize) -> String {
    let held = c.replicas[on].post("/v1/calls", &c.keys.service, refund(id));
    assert_eq!(held.json["outcome"], "pending", "{}", held.text);
    let digest = held.json["approval"]["args_digest"].as_str().unwrap();
    let approve = json!({"args_digest": digest, "reason": "checked the order"});
    let path = format!("/v1/approvals/{id}/approve?tenant=acme");
    let r = c.replicas[via].post(&path, &c.keys.lead, approve);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["state"], "approved", "{}", r.text);
    let state = c.replicas[via].get(&format!("/v1/calls/{id}?tenant=acme"), &c.keys.service);
    assert_eq!(state.json["state"], "approved", "{}", state.text);
    state.json["token"].as_str().unwrap().to_string()
}

fn execute_body(token: &str) -> Value {
    json!({"token": token, "args": {"amount": "30"},
           "context": {"tenant": "acme", "env": "prod"}})
}

#[test]
fn a_budget_is_one_budget_across_three_replicas() {
    let c = cluster("budget", 3, &[]);
    let bodies = (0..64).map(|i| ticket(&format!("t{i}"))).collect();
    let outcomes = race(&c, |_| "/v1/calls".into(), bodies);
    assert_eq!(allowed(&outcomes), 5, "{outcomes:#?}");
    let denied = outcomes.iter().find(|o| o["outcome"] == "denied").unwrap();
    assert!(
        denied["reason"].as_str().unwrap().contains("budget"),
        "{denied}"
    );
    // Each replica journals its own records, with its id, in its signed checkpoints too.
    let records = c.replicas[1].audit(&c.keys.operator, "kind=decision");
    assert!(records.iter().all(|r| r["body"]["replica"] == "r1"));
    // A replica that granted a unit sealed it with a checkpoint naming it.
    let mut sealed = 0;
    for (i, dir) in c.dirs.iter().enumerate() {
        let checkpoints =
            std::fs::read_to_string(dir.join("journal.checkpoints")).unwrap_or_default();
        for line in checkpoints.lines() {
            let checkpoint: Value = serde_json::from_str(line).unwrap();
            assert_eq!(checkpoint["replica"], format!("r{i}"));
            sealed += 1;
        }
    }
    assert!(sealed > 0);
    // `audit verify` takes the three journals and reports each.
    let journals: Vec<_> = c.dirs.iter().map(|d| d.join("journal.jsonl")).collect();
    let out = std::process::Command::new(harness::BIN)
        .args(["audit", "verify"])
        .args(&journals)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("chain valid up to record").count(),
        3,
        "{stdout}"
    );
}

#[test]
fn an_approved_token_runs_once_across_replicas_and_travels_between_them() {
    let c = cluster("token", 3, &[]);
    // Raced on all three replicas: exactly one runs.
    let token = approved(&c, "refund-1", 0, 1);
    let bodies = (0..3).map(|_| execute_body(&token)).collect();
    let outcomes = race(&c, |_| "/v1/calls/refund-1/execute".into(), bodies);
    assert_eq!(allowed(&outcomes), 1, "{outcomes:#?}");
    // Held on replica 2, approved through replica 3, executed through replica 1
    // (the service asks replica 1 for the token, which replica 3 sealed in Redis).
    let _ = approved(&c, "refund-2", 1, 2);
    let state = c.replicas[0].get("/v1/calls/refund-2?tenant=acme", &c.keys.service);
    assert_eq!(state.json["state"], "approved", "{}", state.text);
    let token = state.json["token"].as_str().unwrap().to_string();
    let path = "/v1/calls/refund-2/execute";
    let r = c.replicas[0].post(path, &c.keys.service, execute_body(&token));
    assert_eq!(r.json["outcome"], "allowed", "{}", r.text);
}

#[test]
fn a_kill_switch_through_one_replica_stops_writes_on_the_others_at_once() {
    let c = cluster("kill", 3, &[]);
    let pending = c.replicas[2].post("/v1/calls", &c.keys.service, refund("before"));
    assert_eq!(pending.json["outcome"], "pending");
    let kill = json!({"engaged": true, "reason": "incident 42", "tenant": "acme"});
    let r = c.replicas[0].post("/v1/kill-switch", &c.keys.operator, kill);
    assert_eq!(r.status, 200, "{}", r.text);
    let engaged = Instant::now();
    // On each of the other replicas, no write sent 100 ms or more after the
    // switch is allowed (in practice the first one is denied: the message is
    // applied as it arrives). Measured when each request starts, so a slow
    // machine's request latency does not count.
    for (n, replica) in c.replicas.iter().enumerate().skip(1) {
        for tries in 0.. {
            let sent = engaged.elapsed();
            let r = replica.post(
                "/v1/calls",
                &c.keys.service,
                ticket(&format!("k{n}-{tries}")),
            );
            if r.json["outcome"] == "denied" {
                let reason = r.json["reason"].as_str().unwrap();
                assert!(reason.contains("kill switch"), "{}", r.text);
                break;
            }
            assert!(
                sent < Duration::from_millis(100),
                "replica {n} allowed a write {sent:?} after the switch"
            );
        }
    }
    // The approval held before the switch was cancelled, whichever replica holds it.
    let state = c.replicas[1].get("/v1/calls/before?tenant=acme", &c.keys.service);
    assert_eq!(state.json["state"], "cancelled", "{}", state.text);
    // Reads go on (the switch stops writes).
    let r = c.replicas[1].post(
        "/v1/calls",
        &c.keys.service,
        call("r", "kb.read", json!({})),
    );
    assert_eq!(r.json["outcome"], "allowed", "{}", r.text);
}

/// A session's turn or summary while Redis does not answer: 503 with the
/// store's code, never a 5xx panic or a made-up empty session.
#[test]
fn sessions_while_redis_is_down_are_a_store_unavailable_problem() {
    let mut c = cluster("sessions-down", 1, &[]);
    c.redis.kill();
    let r = &c.replicas[0];
    let turn = json!({"text": "mail bob@example.com"});
    r.post("/v1/sessions/s1/turns", &c.keys.service, turn)
        .problem(503, "toolgate::gateway::store_unavailable", None);
    r.get("/v1/sessions/s1", &c.keys.service).problem(
        503,
        "toolgate::gateway::store_unavailable",
        None,
    );
}

#[test]
fn redis_killed_denies_state_and_restarted_with_aof_keeps_every_spent_unit() {
    let mut c = cluster("sigkill", 2, &[]);
    let outcomes = race(
        &c,
        |_| "/v1/calls".into(),
        (0..3).map(|i| ticket(&format!("a{i}"))).collect(),
    );
    assert_eq!(allowed(&outcomes), 3);
    c.redis.kill();
    for (n, replica) in c.replicas.iter().enumerate() {
        let r = replica.post("/v1/calls", &c.keys.service, ticket(&format!("down{n}")));
        assert_eq!(r.json["outcome"], "denied", "{}", r.text);
        let reason = r.json["reason"].as_str().unwrap();
        assert!(reason.contains("state store is unavailable"), "{reason}");
        // Deny-all (the default): a read is denied too.
        let read = replica.post(
            "/v1/calls",
            &c.keys.service,
            call(&format!("rd{n}"), "kb.read", json!({})),
        );
        assert_eq!(read.json["outcome"], "denied", "{}", read.text);
        let ready = replica.req("GET", "/readyz", None, None);
        assert_eq!(ready.status, 503, "{}", ready.text);
    }
    // A kill switch cannot change while Redis is down; a refused release is
    // journaled as the switch still engaged.
    let release = json!({"engaged": false, "reason": "all clear", "tenant": "acme"});
    let r = c.replicas[0].post("/v1/kill-switch", &c.keys.operator, release);
    r.problem(503, "toolgate::gateway::store_unavailable", None);
    let kills = c.replicas[0].audit(&c.keys.operator, "kind=kill_switch");
    assert_eq!(kills.len(), 2, "{kills:?}");
    assert_eq!(kills[1]["body"]["engaged"], true);
    assert!(kills[1]["body"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("not released"));
    let denials = c.replicas[0].audit(&c.keys.operator, "kind=decision");
    assert!(denials
        .iter()
        .any(|r| r["body"]["call"] == "down0" && r["body"]["decision"] == "deny"));
    c.redis.restart();
    // Each replica resumes on its own.
    for replica in &c.replicas {
        let deadline = Instant::now() + Duration::from_secs(10);
        while replica.req("GET", "/readyz", None, None).status != 200 {
            assert!(
                Instant::now() < deadline,
                "the replica did not become ready again"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let after = race(
        &c,
        |_| "/v1/calls".into(),
        (0..6).map(|i| ticket(&format!("b{i}"))).collect(),
    );
    assert_eq!(
        allowed(&after),
        2,
        "3 units were spent before the kill: {after:#?}"
    );
}

#[test]
fn reads_only_keeps_reads_that_need_no_state_while_redis_is_down() {
    let mut c = cluster("readsonly", 1, &["--redis-down", "reads-only"]);
    let r = &c.replicas[0];
    // While Redis answers, a budgeted read runs and a read needing approval is held.
    let budgeted = r.post(
        "/v1/calls",
        &c.keys.service,
        call("r0", "kb.search", json!({})),
    );
    assert_eq!(budgeted.json["outcome"], "allowed", "{}", budgeted.text);
    let held = r.post(
        "/v1/calls",
        &c.keys.service,
        call("h0", "kb.private", json!({})),
    );
    assert_eq!(held.json["outcome"], "pending", "{}", held.text);
    c.redis.kill();
    let r = &c.replicas[0];
    // The store is marked down by the first call that fails or the 100 ms watch.
    std::thread::sleep(Duration::from_millis(700));
    let read = r.post(
        "/v1/calls",
        &c.keys.service,
        call("r1", "kb.read", json!({})),
    );
    assert_eq!(read.json["outcome"], "allowed", "{}", read.text);
    let write = r.post("/v1/calls", &c.keys.service, ticket("w1"));
    assert_eq!(write.json["outcome"], "denied", "{}", write.text);
    // A read with a budget or an approval needs the store: it never runs
    // (fail closed). The budget's unit cannot be taken: denied. The hold cannot
    // be made: refused as the store's outage (503), as an approval would be.
    let budgeted = r.post(
        "/v1/calls",
        &c.keys.service,
        call("r2", "kb.search", json!({})),
    );
    assert_eq!(budgeted.json["outcome"], "denied", "{}", budgeted.text);
    let approved = r.post(
        "/v1/calls",
        &c.keys.service,
        call("r3", "kb.private", json!({})),
    );
    assert_eq!(approved.status, 503, "{}", approved.text);
    assert_eq!(
        approved.json["code"],
        "toolgate::gateway::store_unavailable"
    );
    let held = r.post("/v1/calls", &c.keys.service, refund("h1"));
    assert_eq!(held.json["outcome"], "denied", "{}", held.text);
    let ready = r.req("GET", "/readyz", None, None);
    assert_eq!(ready.status, 503, "{}", ready.text);
}

#[test]
fn a_password_in_the_url_authenticates_and_a_wrong_one_fails_closed() {
    let redis = RedisServer::start_with("auth", Some("s3cret-pw"));
    let with = |r: &RedisServer| format!("redis://:s3cret-pw@127.0.0.1:{}/0", r.port);
    let c = cluster_on(redis, &with, "auth", 1, &[]);
    let r = &c.replicas[0];
    let ok = r.post("/v1/calls", &c.keys.service, ticket("p1"));
    assert_eq!(ok.json["outcome"], "allowed", "{}", ok.text);
    assert_eq!(r.req("GET", "/readyz", None, None).status, 200);
    // The same Redis without the password: not ready, every call denied.
    let without = |r: &RedisServer| format!("redis://127.0.0.1:{}/0", r.port);
    let d = cluster_on(
        RedisServer::start_with("auth-none", Some("s3cret-pw")),
        &without,
        "auth-none",
        1,
        &[],
    );
    let r = &d.replicas[0];
    let denied = r.post("/v1/calls", &d.keys.service, ticket("p2"));
    assert_eq!(denied.json["outcome"], "denied", "{}", denied.text);
    assert_eq!(r.req("GET", "/readyz", None, None).status, 503);
    // The password never reaches a message.
    assert!(!denied.text.contains("s3cret"));
}

/// The records of `kind` across the cluster's journals.
fn records_of(c: &Cluster, kind: &str) -> Vec<Value> {
    c.dirs
        .iter()
        .flat_map(|d| {
            let text = std::fs::read_to_string(d.join("journal.jsonl")).unwrap_or_default();
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|r| r["kind"] == kind)
        .collect()
}

/// Leases are store state: a result reported to a replica other than the one
/// that allowed the call is accepted (before: 404 `no_such_lease`, and the
/// first replica later journaled `result_missing` for a call that ran), and
/// a result that never comes is reported missing by exactly one replica.
#[test]
fn a_result_reported_to_another_replica_closes_the_lease() {
    let c = cluster("leases", 3, &["--result-timeout", "1"]);
    let svc = &c.keys.service;
    let allowed = c.replicas[0].post("/v1/calls", svc, call("l1", "kb.read", json!({})));
    assert_eq!(allowed.json["outcome"], "allowed", "{}", allowed.text);
    let done = json!({"ok": true});
    let reported = c.replicas[1].post("/v1/calls/l1/result?tenant=acme", svc, done.clone());
    assert_eq!(reported.status, 200, "{}", reported.text);
    // Once only, wherever it is reported again.
    for r in &c.replicas {
        let again = r.post("/v1/calls/l1/result?tenant=acme", svc, done.clone());
        assert_eq!(again.status, 404, "{}", again.text);
    }
    // The id is in use on every replica while its lease is open.
    let open = c.replicas[0].post("/v1/calls", svc, call("l2", "kb.read", json!({})));
    assert_eq!(open.json["outcome"], "allowed", "{}", open.text);
    let reused = c.replicas[2].post("/v1/calls", svc, call("l2", "kb.read", json!({})));
    assert_eq!(reused.status, 409, "{}", reused.text);
    // l2's result never comes: one replica, and only one, reports it missing.
    let deadline = Instant::now() + Duration::from_secs(20);
    while records_of(&c, "result_missing").is_empty() {
        assert!(Instant::now() < deadline, "no replica reported l2 missing");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(2500));
    let missing = records_of(&c, "result_missing");
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["body"]["call"], "l2");
    let executions = records_of(&c, "execution");
    assert_eq!(executions.len(), 1, "{executions:?}");
    assert_eq!(executions[0]["body"]["call"], "l1");
}

/// A replica whose digest key is not the one the others on its Redis use
/// refuses to start and says which file to copy (before: it started, and its
/// approvals' digests and sealed tokens matched no other replica's).
#[test]
fn a_replica_with_another_digest_key_refuses_to_start() {
    let c = cluster("digest-key", 1, &[]);
    let data = temp_dir("digest-key-stranger");
    let keys = c.shared.join("keys.toml");
    let mut child = std::process::Command::new(harness::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--policy"])
        .arg(repo(POLICY))
        .arg("--data")
        .arg(&data)
        .arg("--keys")
        .arg(&keys)
        .args(["--store", &c.redis.url(), "--replica-id", "stranger"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a replica with another digest key started");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("copy `digest.key`"), "{stderr}");
    // With the shared key copied in, it starts.
    std::fs::copy(c.dirs[0].join("digest.key"), data.join("digest.key")).unwrap();
    let url = c.redis.url();
    let joined = start(&data, &c.shared, &url, "stranger", &[]);
    let ok = joined.get("/healthz", &c.keys.operator);
    assert_eq!(ok.status, 200, "{}", ok.text);
}
