//! Regression tests for the security review's gateway findings (issue #7):
//! each failed on the code before its fix (see the commit that added
//! `findings_old.rs`), and each asserts the guarantee that closed it.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use crate::support::{CredentialProvider, Gw, ToolExecutor, Tools};
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use toolgate_engine::Context;
use toolgate_runtime::gateway::{
    Call, CallOutcome, CompiledPolicy, Denial, DigestKey, GatewayError, Limits, ManualClock,
    Services,
};
use toolgate_runtime::journal::{Fsync, Journal, JournalConfig};
use toolgate_runtime::refusal::Refusal;
use toolgate_runtime::store::{Approver, CallKey, KillScope, MemoryStore, StoreState, TenantScope};

struct Creds;
impl CredentialProvider for Creds {
    fn load(&self, _: &str, _: &[(String, Json)]) -> Result<Json, String> {
        Ok(json!({}))
    }
}

/// Records the arguments of every execution.
#[derive(Clone, Default)]
struct Exec(Arc<Mutex<Vec<Json>>>);
impl ToolExecutor for Exec {
    async fn execute(&self, _t: &str, args: &Json, _c: &Json) -> Result<Json, String> {
        self.0.lock().expect("lock").push(args.clone());
        Ok(json!({}))
    }
}

impl Exec {
    fn ran(&self) -> Vec<Json> {
        self.0.lock().expect("lock").clone()
    }
}

/// The journal of an earlier `scratch(name)`, kept.
fn scratch_keep(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("findings")
        .join(name)
        .join("audit.jsonl")
}

fn scratch(name: &str) -> PathBuf {
    toolgate_testkit::scratch!("findings", name).join("audit.jsonl")
}

/// A gateway over the journal at `path`, its state replayed from it.
async fn open(path: &Path, text: &str, clock: Arc<ManualClock>) -> (Gw, Exec, Arc<MemoryStore>) {
    let config = JournalConfig {
        fsync: Fsync::Never,
        ..JournalConfig::default()
    };
    let (journal, opened) =
        Journal::open(path, config, Box::new(StoreState::default())).expect("journal");
    let store = Arc::new(MemoryStore::restore(&opened.state).expect("state"));
    let exec = Exec::default();
    let services = Services {
        journal,
        store: store.clone(),
        clock,
        digest_key: DigestKey::from_bytes([3; 32]),
        replica: None,
        limits: Limits::default(),
    };
    let policy = CompiledPolicy::compile(text, "t.policy").expect("compiles");
    let g = Gw::open(policy, services, Tools(Creds, exec.clone())).await;
    (g, exec, store)
}

fn clock() -> Arc<ManualClock> {
    let c = Arc::new(ManualClock::default());
    c.set(1_800_000_000_000);
    c
}

fn call(id: &str, agent: &str, tool: &str, args: Json, tenant: &str) -> Call {
    let context = Context {
        tenant: tenant.into(),
        env: "prod".into(),
        ..Default::default()
    };
    Call {
        session: None,
        id: id.into(),
        agent: agent.into(),
        tool: tool.into(),
        args,
        context,
    }
}

fn approver(name: &str, group: &str, tenants: &[&str]) -> Approver {
    Approver {
        name: name.into(),
        groups: vec![group.into()],
        tenants: TenantScope::Only(tenants.iter().map(|t| t.to_string()).collect()),
    }
}

fn refusal<T: std::fmt::Debug>(r: Result<T, GatewayError>) -> Refusal {
    match r {
        Err(GatewayError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Gives a restarted gateway's journal writer time to finish (drop closes it).
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

const PAY: &str = "tool pay.send write { to: string, amount: int };\nwrites enabled;\n\
                   agent bot {\n  write pay.send require approval from \"fin\";\n}\n";

/// C2: two calls racing on one id, a thousand times, then a restart: the
/// approval an approver gives for the arguments they reviewed never runs others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_a_raced_approval_never_runs_arguments_nobody_reviewed() {
    let path = scratch("c2");
    let clock = clock();
    let (g, _, _) = open(&path, PAY, clock.clone()).await;
    let g = Arc::new(g);
    let mut reviewed = Vec::new();
    for i in 0..1000 {
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
        let (ra, rb) = (a.clone(), b.clone());
        let t1 = tokio::spawn(async move { g1.call(&ra).await });
        let t2 = tokio::spawn(async move { g2.call(&rb).await });
        let (r1, r2) = (t1.await.expect("task"), t2.await.expect("task"));
        let held = [&r1, &r2]
            .iter()
            .filter(|r| matches!(r, Ok(CallOutcome::Pending(_))))
            .count();
        assert_eq!(
            held, 1,
            "exactly one of two racing calls is held: {r1:?} {r2:?}"
        );
        let p = g
            .pending(&CallKey::new("acme", &id))
            .await
            .unwrap()
            .expect("pending");
        let winner = if p.binding == g.binding(&a) { a } else { b };
        reviewed.push((winner, p.binding.args_digest));
    }
    drop(g);
    settle().await;
    let (g, exec, _) = open(&path, PAY, clock).await;
    let fin = approver("fay", "fin", &["acme"]);
    for (winner, digest) in &reviewed {
        let token = g
            .approve(&winner.key(), &fin, digest, "reviewed")
            .await
            .expect("approved")
            .expect("token");
        let mut other = winner.clone();
        other.args = if winner.args["to"] == "alice" {
            json!({"to": "mallory", "amount": 99999})
        } else {
            json!({"to": "alice", "amount": 10})
        };
        assert_eq!(
            refusal(g.execute_approved(&other, &token).await),
            Refusal::TokenBinding
        );
        g.execute_approved(winner, &token)
            .await
            .expect("the reviewed call runs");
    }
    let ran = exec.ran();
    let expected: Vec<Json> = reviewed.iter().map(|(w, _)| w.args.clone()).collect();
    assert_eq!(ran, expected, "only reviewed arguments ran, each once");
}

/// C2: an approver must name the digest they reviewed.
#[tokio::test]
async fn c2_an_approval_for_other_arguments_is_refused() {
    let (g, _, _) = open(&scratch("c2_digest"), PAY, clock()).await;
    let c = call(
        "c1",
        "bot",
        "pay.send",
        json!({"to": "alice", "amount": 10}),
        "acme",
    );
    g.call(&c).await.expect("held");
    let stale = call(
        "c1",
        "bot",
        "pay.send",
        json!({"to": "alice", "amount": 11}),
        "acme",
    );
    let stale_digest = g.binding(&stale).args_digest;
    let fin = approver("fay", "fin", &["acme"]);
    let r = g.approve(&c.key(), &fin, &stale_digest, "ok").await;
    assert_eq!(refusal(r), Refusal::DigestMismatch);
}

/// H2: budgets are keyed by the rule's identity, not its position.
#[tokio::test]
async fn h2_an_unrelated_edit_and_a_restart_keep_the_budget_window() {
    let path = scratch("h2");
    let clock = clock();
    let p1 = "tool t.close write;\ntool t.open write;\nwrites enabled;\nagent bot {\n  \
              write t.close auto-approve limit 3 per hour;\n}\n";
    // A rule added above it, and a reason added to the budgeted rule.
    let p2 = "tool t.close write;\ntool t.open write;\nwrites enabled;\nagent bot {\n  \
              write t.open auto-approve limit 1 per hour;\n  write t.close auto-approve limit 3 per hour\n    reason \"tidy\";\n}\n";
    let p3 = "tool t.close write;\ntool t.open write;\nwrites enabled;\nagent bot {\n  \
              write t.close auto-approve limit 4 per hour;\n}\n";
    let (g, exec1, _) = open(&path, p1, clock.clone()).await;
    for i in 0..3 {
        g.call(&call(&format!("a{i}"), "bot", "t.close", json!({}), "acme"))
            .await
            .expect("in budget");
    }
    drop(g);
    settle().await;
    let (g, exec2, _) = open(&path, p2, clock.clone()).await;
    for i in 0..3 {
        let r = g
            .call(&call(&format!("b{i}"), "bot", "t.close", json!({}), "acme"))
            .await;
        assert!(matches!(r, Ok(CallOutcome::Denied(_))), "{r:?}");
    }
    assert_eq!(exec1.ran().len() + exec2.ran().len(), 3);
    drop(g);
    settle().await;
    // Raising the limit keeps the units spent: one more fits in 4.
    let (g, exec3, _) = open(&path, p3, clock).await;
    let mut ran = 0;
    for i in 0..3 {
        let c = call(&format!("c{i}"), "bot", "t.close", json!({}), "acme");
        if matches!(g.call(&c).await, Ok(CallOutcome::Executed { .. })) {
            ran += 1;
        }
    }
    assert_eq!(
        (ran, exec3.ran().len()),
        (1, 1),
        "limit 4 with 3 spent allows one"
    );
}

/// M1: redaction reaches into lists; the journal's digest is keyed.
#[tokio::test]
async fn m1_redacted_values_never_reach_the_journal_in_any_form() {
    let path = scratch("m1");
    let p = "tool v.send write { items: list<{ code: string redact }>, pin: string redact, \
             card?: { num: string redact, .. } | null };\n\
             writes enabled;\nagent bot {\n  write v.send auto-approve limit 5 per hour;\n}\n";
    let (g, _, _) = open(&path, p, clock()).await;
    let args = json!({"items": [{"code": "493817"}, {"code": "000111"}], "pin": "123456",
        "card": {"num": "777999", "brand": "x"}});
    g.call(&call("c1", "bot", "v.send", args.clone(), "acme"))
        .await
        .expect("ok");
    let text = std::fs::read_to_string(&path).expect("read");
    for secret in ["493817", "000111", "123456", "777999"] {
        assert!(
            !text.contains(secret),
            "{secret} reached the journal: {text}"
        );
    }
    assert!(
        text.contains(r#""items":[{"code":"[redacted]"},{"code":"[redacted]"}]"#),
        "{text}"
    );
    let plain = toolgate_runtime::journal::sha256_hex(
        toolgate_runtime::gateway::canonical(&args).as_bytes(),
    );
    assert!(
        !text.contains(&plain),
        "the unkeyed digest is in the journal"
    );
}

/// M2: arguments over the limit are denied and journaled without them.
#[tokio::test]
async fn m2_oversized_arguments_are_denied_and_not_journaled() {
    let path = scratch("m2");
    let p = "tool kb.read read { q: string };\nagent bot {\n  allow kb.read;\n}\n";
    let (g, exec, _) = open(&path, p, clock()).await;
    let big = "x".repeat(64 * 1024 + 1);
    let r = g
        .call(&call("c1", "bot", "kb.read", json!({"q": big}), "acme"))
        .await;
    assert!(
        matches!(&r, Ok(CallOutcome::Denied(Denial { reason, .. })) if reason.contains("over the limit of 65536 bytes")),
        "{r:?}"
    );
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        !text.contains("xxxxxxxx") && text.len() < 4096,
        "{} bytes journaled",
        text.len()
    );
    assert!(exec.ran().is_empty());
    g.call(&call("c2", "bot", "kb.read", json!({"q": "small"}), "acme"))
        .await
        .expect("a small call runs");
}

/// M3: a long run of expiring approvals, tokens and per-tenant budgets keeps
/// the state bounded by what is live, not by history.
#[tokio::test]
async fn m3_state_stays_bounded_over_a_long_simulated_run() {
    let p = "tool t.close write { id: string };\ntool t.fix write;\nwrites enabled;\nagent bot {\n  \
             write t.close require approval from \"leads\" expires 1m;\n  write t.fix auto-approve limit 2 per minute per tenant;\n}\n";
    let clock = clock();
    let (g, _, store) = open(&scratch("m3"), p, clock.clone()).await;
    let lead = approver("lee", "leads", &["acme"]);
    let mut peak = 0;
    for i in 0..5_000u64 {
        clock.set(1_800_000_000_000 + i * 1_000);
        let c = call(
            &format!("c{i}"),
            "bot",
            "t.close",
            json!({"id": "x"}),
            "acme",
        );
        g.call(&c).await.expect("held");
        if i % 3 == 0 {
            let digest = g.binding(&c).args_digest;
            g.approve(&c.key(), &lead, &digest, "ok")
                .await
                .expect("approved");
        }
        let tenant = format!("tenant-{i}");
        g.call(&call(&format!("f{i}"), "bot", "t.fix", json!({}), &tenant))
            .await
            .expect("in budget");
        if i % 50 == 0 {
            let s = store.sizes();
            peak = peak.max(s.pending + s.tokens + s.windows);
        }
    }
    // Live at any time: about 60 s of calls (60 pending, 900 s / 3 = 300
    // tokens of 15 min, 60 windows), plus what accumulates between prunes
    // (at most 1,024 operations or the live count). Without pruning: 11,553.
    assert!(
        peak < 2_500,
        "state grew with history: peak {peak} entries after 10,000 calls"
    );
    g.prune().await.unwrap();
    // The state rebuilt from the journal is bounded too (the journal's
    // StateMachine prunes by the records' own times).
    let rebuilt = {
        drop(g);
        settle().await;
        let (_g, _, rebuilt) = open(&scratch_keep("m3"), p, clock.clone()).await;
        rebuilt.sizes()
    };
    let live = rebuilt.pending + rebuilt.tokens + rebuilt.windows;
    assert!(live < 2_500, "rebuilt state grew with history: {rebuilt:?}");
    let s = store.sizes();
    assert!(
        s.pending <= 61 && s.windows <= 61 && s.tokens <= 301,
        "{s:?}"
    );
}

const DESK: &str = "tool t.close write { id: string };\nwrites enabled;\nagent bot {\n  \
                    write t.close require approval from \"leads\";\n}\n";

/// M8 and L1: call ids are per tenant; approvers are scoped to tenants; the
/// agent cannot approve itself under another spelling.
#[tokio::test]
async fn m8_l1_approvals_are_scoped_to_tenants_and_identities_are_normalised() {
    let (g, exec, _) = open(&scratch("m8"), DESK, clock()).await;
    let acme = call("c1", "bot", "t.close", json!({"id": "1"}), "acme");
    let globex = call("c1", "bot", "t.close", json!({"id": "2"}), "globex");
    assert!(matches!(g.call(&acme).await, Ok(CallOutcome::Pending(_))));
    assert!(
        matches!(g.call(&globex).await, Ok(CallOutcome::Pending(_))),
        "ids collide across tenants"
    );
    let digest = g.binding(&acme).args_digest;
    let gina = approver("gina", "leads", &["globex"]);
    assert_eq!(
        refusal(g.approve(&acme.key(), &gina, &digest, "ok").await),
        Refusal::WrongTenant
    );
    for spelling in ["BOT", " Bot ", "bot"] {
        let me = approver(spelling, "leads", &["acme"]);
        assert_eq!(
            refusal(g.approve(&acme.key(), &me, &digest, "ok").await),
            Refusal::SelfApproval
        );
    }
    let lee = approver("lee", "leads", &["acme"]);
    let token = g
        .approve(&acme.key(), &lee, &digest, "ok")
        .await
        .expect("ok")
        .expect("token");
    g.execute_approved(&acme, &token).await.expect("runs");
    assert_eq!(exec.ran(), vec![json!({"id": "1"})]);
    assert!(g
        .pending(&globex.key())
        .await
        .unwrap()
        .is_some_and(|p| p.approvals.is_empty()));
}

/// L1: the same approver under two spellings is one approver.
#[tokio::test]
async fn l1_two_spellings_of_one_approver_count_once() {
    let p = "tool t.fix write;\nwrites enabled;\nagent bot {\n  write t.fix require 2 approvals from \"dba\";\n}\n";
    let (g, _, _) = open(&scratch("l1"), p, clock()).await;
    let c = call("c1", "bot", "t.fix", json!({}), "acme");
    g.call(&c).await.expect("held");
    let digest = g.binding(&c).args_digest;
    g.approve(&c.key(), &approver("Ana", "dba", &["acme"]), &digest, "ok")
        .await
        .expect("first");
    let r = g
        .approve(&c.key(), &approver("ana ", "dba", &["acme"]), &digest, "ok")
        .await;
    assert_eq!(refusal(r), Refusal::ApprovedTwice);
}

const BUDGETED: &str = "tool t.close write { id: string };\nwrites enabled;\nagent bot {\n  \
                        write t.close auto-approve limit 2 per hour;\n  write t.close require approval from \"leads\";\n}\n";

fn acme_scope() -> KillScope {
    KillScope {
        tenant: Some("acme".into()),
        agent: None,
        all_tools: false,
    }
}

/// L2: a call refused by the kill switch spends no budget.
#[tokio::test]
async fn l2_calls_refused_by_the_kill_switch_spend_nothing() {
    let (g, exec, _) = open(&scratch("l2"), BUDGETED, clock()).await;
    g.kill_switch(acme_scope(), true, "op", "incident")
        .await
        .expect("engaged");
    for i in 0..2 {
        let r = g
            .call(&call(
                &format!("k{i}"),
                "bot",
                "t.close",
                json!({"id": "1"}),
                "acme",
            ))
            .await;
        assert!(
            matches!(&r, Ok(CallOutcome::Denied(Denial { reason, .. })) if reason.contains("kill switch")),
            "{r:?}"
        );
    }
    g.kill_switch(acme_scope(), false, "op", "over")
        .await
        .expect("released");
    for i in 0..2 {
        let r = g
            .call(&call(
                &format!("n{i}"),
                "bot",
                "t.close",
                json!({"id": "1"}),
                "acme",
            ))
            .await;
        assert!(matches!(r, Ok(CallOutcome::Executed { .. })), "{r:?}");
    }
    assert_eq!(exec.ran().len(), 2);
}

/// L3: approvals and tokens given before a kill switch do not outlive it,
/// across a restart too.
#[tokio::test]
async fn l3_a_kill_switch_cancels_approvals_and_revokes_tokens_of_its_scope() {
    let path = scratch("l3");
    let clock = clock();
    let (g, exec, _) = open(&path, DESK, clock.clone()).await;
    let lee = approver("lee", "leads", &["acme", "globex"]);
    let approved = call("p1", "bot", "t.close", json!({"id": "9"}), "acme");
    let waiting = call("p2", "bot", "t.close", json!({"id": "8"}), "acme");
    let elsewhere = call("p3", "bot", "t.close", json!({"id": "7"}), "globex");
    for c in [&approved, &waiting, &elsewhere] {
        g.call(c).await.expect("held");
    }
    let digest = g.binding(&approved).args_digest;
    let token = g
        .approve(&approved.key(), &lee, &digest, "ok")
        .await
        .expect("ok")
        .expect("token");
    g.kill_switch(acme_scope(), true, "op", "incident")
        .await
        .expect("engaged");
    g.kill_switch(acme_scope(), false, "op", "over")
        .await
        .expect("released");
    drop(g);
    settle().await;
    let (g, _, _) = open(&path, DESK, clock).await;
    assert_eq!(
        refusal(g.execute_approved(&approved, &token).await),
        Refusal::TokenRevoked
    );
    let digest = g.binding(&waiting).args_digest;
    let r = g.approve(&waiting.key(), &lee, &digest, "ok").await;
    assert!(matches!(refusal(r), Refusal::Cancelled { .. }));
    let digest = g.binding(&elsewhere).args_digest;
    g.approve(&elsewhere.key(), &lee, &digest, "ok")
        .await
        .expect("other tenants go on");
    assert!(exec.ran().is_empty());
}

/// L4: a finished id is free again, with an accurate message while it is not.
#[tokio::test]
async fn l4_finished_ids_are_free_and_busy_ones_say_why() {
    let (g, _, _) = open(&scratch("l4"), DESK, clock()).await;
    let c = call("c1", "bot", "t.close", json!({"id": "1"}), "acme");
    g.call(&c).await.expect("held");
    let again = refusal(g.call(&c).await);
    assert_eq!(
        again.to_string(),
        "call `c1` is already waiting for approval for this tenant"
    );
    let lee = approver("lee", "leads", &["acme"]);
    g.reject(&c.key(), &lee, "no").await.expect("rejected");
    assert!(
        matches!(g.call(&c).await, Ok(CallOutcome::Pending(_))),
        "a rejected id is free again"
    );
    let digest = g.binding(&c).args_digest;
    let token = g
        .approve(&c.key(), &lee, &digest, "ok")
        .await
        .expect("ok")
        .expect("token");
    let busy = refusal(g.call(&c).await);
    assert!(
        busy.to_string()
            .contains("approved and its token not yet used"),
        "{busy}"
    );
    g.execute_approved(&c, &token).await.expect("runs");
    assert!(
        matches!(g.call(&c).await, Ok(CallOutcome::Pending(_))),
        "an executed id is free again"
    );
}

/// L5: a wrong token does not drop the token waiting for the caller.
#[tokio::test]
async fn l5_a_wrong_token_leaves_the_waiting_token() {
    let (g, _, _) = open(&scratch("l5"), DESK, clock()).await;
    let c = call("c2", "bot", "t.close", json!({"id": "2"}), "acme");
    g.call(&c).await.expect("held");
    let digest = g.binding(&c).args_digest;
    let lee = approver("lee", "leads", &["acme"]);
    let token = g
        .approve(&c.key(), &lee, &digest, "ok")
        .await
        .expect("ok")
        .expect("token");
    assert_eq!(
        refusal(g.execute_approved(&c, "wrong").await),
        Refusal::TokenUnknown
    );
    let waiting = g
        .wait_for_approval(&c.key(), std::time::Duration::from_millis(50))
        .await;
    assert_eq!(waiting.as_deref(), Some(token.as_str()));
}

/// I1: tokens are 256 random bits (CSPRNG), never repeated.
#[tokio::test]
async fn i1_tokens_are_long_and_distinct() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let t = toolgate_runtime::gateway::random_token().expect("randomness");
        assert!(t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(seen.insert(t), "a token repeated");
    }
}

/// L1 (review): identities are compared after NFKC, so a full-width spelling
/// of the agent cannot approve its own call.
#[tokio::test]
async fn l1_a_full_width_spelling_of_the_agent_cannot_approve_itself() {
    let (g, _, _) = open(&scratch("l1_nfkc"), DESK, clock()).await;
    let c = call("c1", "bot", "t.close", json!({"id": "1"}), "acme");
    g.call(&c).await.expect("held");
    let digest = g.binding(&c).args_digest;
    let me = approver("ＢＯＴ", "leads", &["acme"]);
    assert_eq!(
        refusal(g.approve(&c.key(), &me, &digest, "ok").await),
        Refusal::SelfApproval
    );
}

/// M2 (review): an id, agent or tool name over 256 bytes is denied and not
/// journaled whole.
#[tokio::test]
async fn m2_oversized_names_are_denied_and_not_journaled_whole() {
    let path = scratch("m2_names");
    let (g, _, _) = open(&path, DESK, clock()).await;
    let long = "a".repeat(300);
    let r = g
        .call(&call(&long, "bot", "t.close", json!({"id": "1"}), "acme"))
        .await;
    assert!(
        matches!(&r, Ok(CallOutcome::Denied(Denial { reason, .. })) if reason == "the call id is 300 bytes, over the limit of 256 bytes"),
        "{r:?}"
    );
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(!text.contains(&long), "the long id was journaled whole");
}
