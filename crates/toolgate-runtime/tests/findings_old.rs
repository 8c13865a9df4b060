//! Reproductions of the security review's gateway findings against the old API.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use toolgate_engine::{Context, Engine};
use toolgate_runtime::gateway::{
    Approver, Call, CallOutcome, Clock, CredentialProvider, Gateway, GatewayError, ManualClock,
    ToolExecutor,
};
use toolgate_runtime::journal::{Fsync, Journal};
use toolgate_runtime::store::{MemoryStore, Store};

struct Creds;
impl CredentialProvider for Creds {
    fn load(&self, _: &str, _: &[(String, Json)]) -> Result<Json, String> {
        Ok(json!({}))
    }
}
#[derive(Clone, Default)]
struct Exec(Arc<std::sync::Mutex<Vec<Json>>>);
impl ToolExecutor for Exec {
    async fn execute(&self, _t: &str, args: &Json, _c: &Json) -> Result<Json, String> {
        self.0.lock().expect("l").push(args.clone());
        Ok(json!({}))
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("findings_old")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir.join("audit.jsonl")
}

async fn open(
    path: &Path,
    text: &str,
    clock: Arc<ManualClock>,
) -> (Gateway<Creds, Exec>, Exec, Arc<MemoryStore>) {
    let parsed = toolgate_syntax::parse(text);
    let policy = toolgate_check::check(&parsed.file, text)
        .policy
        .expect("checks");
    let engine = Arc::new(Engine::new(&policy, "t.policy").expect("compiles"));
    let (journal, opened) = Journal::open(path, Fsync::Never, Vec::new()).expect("journal");
    let store = Arc::new(MemoryStore::default());
    toolgate_runtime::store::rebuild(store.as_ref(), &opened.lines);
    let exec = Exec::default();
    let c: Arc<dyn Clock> = clock;
    let g = Gateway::new(
        engine,
        &policy,
        text,
        journal,
        store.clone(),
        c,
        Creds,
        exec.clone(),
    )
    .await
    .expect("gw");
    (g, exec, store)
}

fn call(id: &str, agent: &str, tool: &str, args: Json, tenant: &str) -> Call {
    Call {
        id: id.into(),
        agent: agent.into(),
        tool: tool.into(),
        args,
        context: Context {
            tenant: tenant.into(),
            env: "prod".into(),
            ..Default::default()
        },
    }
}

const PAY: &str = "tool pay.send write { to: string, amount: int };\nwrites enabled;\nagent bot {\n  write pay.send require approval from \"fin\";\n}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_race_then_restart_runs_unreviewed_arguments() {
    let path = scratch("c2");
    let clock = Arc::new(ManualClock::default());
    clock.set(1_800_000_000_000);
    let (g, _, store) = open(&path, PAY, clock.clone()).await;
    let g = Arc::new(g);
    let mut reviewed = Vec::new();
    for i in 0..300 {
        let id = format!("c{i}");
        let a = call(
            &id,
            "bot",
            "pay.send",
            json!({"to": "alice", "amount": 10}),
            "acme",
        );
        let b = call(
            &id,
            "bot",
            "pay.send",
            json!({"to": "mallory", "amount": 99999}),
            "acme",
        );
        let (g1, g2) = (g.clone(), g.clone());
        let t1 = tokio::spawn(async move { g1.call(&a).await });
        let t2 = tokio::spawn(async move { g2.call(&b).await });
        let _ = t1.await;
        let _ = t2.await;
        let seen = store.with_pending(&id, &mut |_| {}).expect("pending");
        reviewed.push((id, seen.binding.args_digest));
    }
    drop(g);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (_g2, _, store2) = open(&path, PAY, clock).await;
    let mismatched = reviewed
        .iter()
        .filter(|(id, d)| {
            store2
                .with_pending(id, &mut |_| {})
                .expect("p")
                .binding
                .args_digest
                != *d
        })
        .count();
    assert_eq!(
        mismatched, 0,
        "approvals after restart bound to arguments nobody reviewed"
    );
}

#[tokio::test]
async fn h2_adding_a_rule_above_refills_a_budget() {
    let path = scratch("h2");
    let clock = Arc::new(ManualClock::default());
    clock.set(1_800_000_000_000);
    let p1 = "tool t.close write;\ntool t.open write;\nwrites enabled;\nagent bot {\n  write t.close auto-approve limit 3 per hour;\n}\n";
    let p2 = "tool t.close write;\ntool t.open write;\nwrites enabled;\nagent bot {\n  write t.open auto-approve limit 1 per hour;\n  write t.close auto-approve limit 3 per hour;\n}\n";
    let (g, exec, _) = open(&path, p1, clock.clone()).await;
    for i in 0..3 {
        g.call(&call(&format!("a{i}"), "bot", "t.close", json!({}), "acme"))
            .await
            .expect("in budget");
    }
    drop(g);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (g, exec2, _) = open(&path, p2, clock).await;
    for i in 0..3 {
        let _ = g
            .call(&call(&format!("b{i}"), "bot", "t.close", json!({}), "acme"))
            .await;
    }
    let total = exec.0.lock().expect("l").len() + exec2.0.lock().expect("l").len();
    assert_eq!(
        total, 3,
        "limit 3 per hour executed {total} times in one hour"
    );
}

#[tokio::test]
async fn m1_redact_inside_lists_and_plain_digest() {
    let path = scratch("m1");
    let clock = Arc::new(ManualClock::default());
    let p = "tool v.send write { items: list<{ code: string redact }>, pin: string redact };\nwrites enabled;\nagent bot {\n  write v.send auto-approve limit 5 per hour;\n}\n";
    let (g, _, _) = open(&path, p, clock).await;
    g.call(&call(
        "c1",
        "bot",
        "v.send",
        json!({"items": [{"code": "493817"}], "pin": "123456"}),
        "acme",
    ))
    .await
    .expect("ok");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        !text.contains("493817"),
        "a redacted field inside a list reached the journal"
    );
    let plain = toolgate_runtime::journal::sha256_hex(
        toolgate_runtime::gateway::canonical(
            &json!({"items": [{"code": "493817"}], "pin": "123456"}),
        )
        .as_bytes(),
    );
    assert!(
        !text.contains(&plain),
        "the unkeyed digest of redacted arguments is in the journal"
    );
}

#[tokio::test]
async fn m2_huge_arguments_are_journaled_whole() {
    let path = scratch("m2");
    let clock = Arc::new(ManualClock::default());
    let p = "tool kb.read read { q: string };\nagent bot {\n  allow kb.read;\n}\n";
    let (g, _, _) = open(&path, p, clock).await;
    let big = "x".repeat(1 << 20);
    let r = g
        .call(&call("c1", "bot", "kb.read", json!({"q": big}), "acme"))
        .await;
    assert!(
        matches!(r, Err(GatewayError::Denied { .. })),
        "1 MiB of arguments was allowed: {r:?}"
    );
}

const DESK: &str = "tool t.close write { id: string };\nwrites enabled;\nagent bot {\n  write t.close require approval from \"leads\";\n}\n";

#[tokio::test]
async fn m8_l1_cross_tenant_and_case_insensitive_self_approval() {
    let path = scratch("m8");
    let clock = Arc::new(ManualClock::default());
    let (g, _, _) = open(&path, DESK, clock).await;
    g.call(&call("c1", "bot", "t.close", json!({"id": "1"}), "acme"))
        .await
        .expect("held");
    // The same id for another tenant collides.
    let other = g
        .call(&call("c1", "bot", "t.close", json!({"id": "2"}), "globex"))
        .await;
    assert!(
        matches!(other, Ok(CallOutcome::Pending { .. })),
        "globex's call c1 collided with acme's: {other:?}"
    );
    let globex_lead = Approver {
        name: "gina".into(),
        groups: vec!["leads".into()],
    };
    let r = g.approve("c1", &globex_lead, "ok").await;
    assert!(r.is_err(), "a lead of another tenant approved acme's call");
    let me = Approver {
        name: "BOT".into(),
        groups: vec!["leads".into()],
    };
    let r = g.approve("c1", &me, "ok").await;
    assert!(r.is_err(), "the agent approved itself under another case");
}

#[tokio::test]
async fn l2_l3_kill_switch_spends_budget_and_old_tokens_run_after_release() {
    let path = scratch("l2");
    let clock = Arc::new(ManualClock::default());
    clock.set(1_800_000_000_000);
    let p = "tool t.close write { id: string };\nwrites enabled;\nagent bot {\n  write t.close auto-approve limit 2 per hour;\n  write t.close require approval from \"leads\";\n}\n";
    let (g, exec, _) = open(&path, p, clock).await;
    g.kill_switch(Some("acme"), true, "op", "incident")
        .await
        .expect("engaged");
    for i in 0..2 {
        let _ = g
            .call(&call(
                &format!("k{i}"),
                "bot",
                "t.close",
                json!({"id": "1"}),
                "acme",
            ))
            .await;
    }
    g.kill_switch(Some("acme"), false, "op", "over")
        .await
        .expect("released");
    let r = g
        .call(&call("n1", "bot", "t.close", json!({"id": "1"}), "acme"))
        .await;
    assert!(
        matches!(r, Ok(CallOutcome::Executed { .. })),
        "calls refused by the kill switch spent the budget: {r:?}"
    );
    // L3: an approval given before the kill switch executes after its release.
    for i in 0..2 {
        let _ = g
            .call(&call(
                &format!("f{i}"),
                "bot",
                "t.close",
                json!({"id": "1"}),
                "acme",
            ))
            .await;
    }
    let c = call("p1", "bot", "t.close", json!({"id": "9"}), "acme");
    assert!(matches!(g.call(&c).await, Ok(CallOutcome::Pending { .. })));
    let lead = Approver {
        name: "lee".into(),
        groups: vec!["leads".into()],
    };
    let token = g
        .approve("p1", &lead, "ok")
        .await
        .expect("ok")
        .expect("token");
    g.kill_switch(Some("acme"), true, "op", "incident")
        .await
        .expect("engaged");
    g.kill_switch(Some("acme"), false, "op", "over")
        .await
        .expect("released");
    let before = exec.0.lock().expect("l").len();
    let r = g.execute_approved(&c, &token).await;
    assert!(
        r.is_err() && exec.0.lock().expect("l").len() == before,
        "a token issued before the kill switch ran after its release"
    );
}

#[tokio::test]
async fn l4_l5_finished_ids_and_wrong_tokens() {
    let path = scratch("l4");
    let clock = Arc::new(ManualClock::default());
    let (g, _, _) = open(&path, DESK, clock).await;
    let c = call("c1", "bot", "t.close", json!({"id": "1"}), "acme");
    g.call(&c).await.expect("held");
    let lead = Approver {
        name: "lee".into(),
        groups: vec!["leads".into()],
    };
    g.reject("c1", &lead, "no").await.expect("rejected");
    let again = g
        .call(&call("c1", "bot", "t.close", json!({"id": "1"}), "acme"))
        .await;
    assert!(
        !matches!(&again, Err(GatewayError::Denied { reason, .. }) if reason.contains("already waiting")),
        "a rejected call's id is reported as waiting forever: {again:?}"
    );
    // L5: a wrong token drops the token waiting for the caller.
    let c2 = call("c2", "bot", "t.close", json!({"id": "2"}), "acme");
    g.call(&c2).await.expect("held");
    g.approve("c2", &lead, "ok").await.expect("ok");
    let _ = g.execute_approved(&c2, "wrong").await;
    let waiting = g
        .wait_for_approval("c2", std::time::Duration::from_millis(50))
        .await;
    assert!(
        waiting.is_some(),
        "a wrong token dropped the approved call's waiting token"
    );
}

#[allow(dead_code)]
fn _unused(_: AtomicUsize, _: Ordering) {}
