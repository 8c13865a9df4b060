//! The gateway as a sidecar's core: `authorize` hands out leases the caller
//! executes itself and reports with `complete`; unreported results become
//! `result_missing`; a held call's state can be polled; the policy reloads
//! whole; a shadow policy's differences are journaled and counted.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use toolgate_engine::Context;
use toolgate_runtime::gateway::{
    Call, CallState, CompiledPolicy, DigestKey, Gateway, GatewayError, Hold, Limits, ManualClock,
    Services, Verdict,
};
use toolgate_runtime::journal::{self, Fsync, Journal, JournalConfig};
use toolgate_runtime::refusal::Refusal;
use toolgate_runtime::store::{Approver, MemoryStore, StoreState, TenantScope};

const DESK: &str = include_str!("../../../../policies/support-desk.policy");

async fn gateway(name: &str, text: &str) -> (Gateway, Arc<ManualClock>, PathBuf) {
    let path = toolgate_testkit::scratch!("sidecar", name).join("audit.jsonl");
    let config = JournalConfig {
        fsync: Fsync::Never,
        ..JournalConfig::default()
    };
    let (journal, _) =
        Journal::open(&path, config, Box::new(StoreState::default())).expect("journal");
    let clock = Arc::new(ManualClock::default());
    clock.set(1_800_000_000_000);
    let services = Services {
        journal,
        store: Arc::new(MemoryStore::default()),
        clock: clock.clone(),
        digest_key: DigestKey::from_bytes([1; 32]),
        replica: None,
        limits: Limits {
            lease_ms: 1_000,
            ..Limits::default()
        },
    };
    let policy = CompiledPolicy::compile(text, "support-desk.policy").expect("compiles");
    (
        Gateway::open(policy, services).await.expect("gateway"),
        clock,
        path,
    )
}

fn call(id: &str, agent: &str, tool: &str, args: Json, env: &str) -> Call {
    let mut context = Context {
        tenant: "acme".into(),
        env: env.into(),
        ..Default::default()
    };
    context.fields.insert("account_id".into(), json!("A1"));
    Call {
        session: None,
        id: id.into(),
        agent: agent.into(),
        tool: tool.into(),
        args,
        context,
    }
}

fn kinds(path: &Path) -> Vec<String> {
    let v = journal::verify_file(path)
        .expect("readable")
        .expect("verifies");
    v.lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Json>(l).expect("json")["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_lease_carries_the_trusted_scope_and_its_result_is_journaled_once() {
    let (g, _, path) = gateway("lease", DESK).await;
    let c = call(
        "c1",
        "support-bot",
        "ticket.close",
        json!({"account_id": "A1", "ticket_id": "T1"}),
        "dev",
    );
    let Verdict::Allowed(lease) = g.authorize(&c).await.expect("allowed") else {
        panic!("ticket.close in dev is within its budget");
    };
    assert_eq!(
        lease.scope,
        vec![
            ("tenant".to_string(), json!("acme")),
            ("env".to_string(), json!("dev"))
        ]
    );
    g.complete(&lease.key, Ok(()), None)
        .await
        .expect("reported");
    let again = g.complete(&lease.key, Ok(()), None).await;
    assert!(
        matches!(
            again,
            Err(GatewayError::Refused(Refusal::NoSuchLease { .. }))
        ),
        "{again:?}"
    );
    let k = kinds(&path);
    assert_eq!(k.iter().filter(|k| *k == "execution").count(), 1);
    assert_eq!(k.iter().filter(|k| *k == "result_refused").count(), 1);
}

#[tokio::test]
async fn a_result_that_never_comes_is_journaled_as_missing() {
    let (g, clock, path) = gateway("missing", DESK).await;
    let c = call("c1", "support-bot", "kb.read", json!({}), "prod");
    assert!(matches!(g.authorize(&c).await, Ok(Verdict::Allowed(_))));
    assert_eq!(g.expire_leases().await.expect("ok"), 0, "not yet");
    clock.set(1_800_000_000_000 + 1_000);
    assert_eq!(g.expire_leases().await.expect("ok"), 1);
    assert_eq!(g.metrics().results_missing.load(Ordering::Relaxed), 1);
    assert!(kinds(&path).contains(&"result_missing".to_string()));
    assert!(
        g.complete(&c.key(), Ok(()), None).await.is_err(),
        "a late result is refused"
    );
}

#[tokio::test]
async fn a_held_call_can_be_polled_until_it_runs() {
    let (g, _, _) = gateway("poll", DESK).await;
    let c = call(
        "c1",
        "support-bot",
        "ticket.close",
        json!({"account_id": "A1", "ticket_id": "T1"}),
        "prod",
    );
    let Verdict::Pending(Hold { args_digest, .. }) = g.authorize(&c).await.expect("held") else {
        panic!("ticket.close in prod needs approval");
    };
    assert_eq!(
        g.call_state(&c.key()).await.unwrap(),
        Some(CallState::Pending)
    );
    // What approvers are shown travels with the pending call (and its snapshots).
    let shown = g.pending(&c.key()).await.unwrap().expect("pending");
    assert_eq!(shown.args, json!({"account_id": "A1", "ticket_id": "T1"}));
    assert_eq!(shown.rule.as_deref(), Some("support-desk.policy:25:3"));
    assert_eq!(shown.requested_at, 1_800_000_000_000);
    let lead = Approver {
        name: "lee".into(),
        groups: vec!["support-leads".into()],
        tenants: TenantScope::Any,
    };
    let token = g
        .approve(&c.key(), &lead, &args_digest, "dup")
        .await
        .expect("ok")
        .expect("token");
    assert_eq!(
        g.call_state(&c.key()).await.unwrap(),
        Some(CallState::Approved {
            token: Some(token.clone())
        })
    );
    let Verdict::Allowed(lease) = g.authorize_approved(&c, &token).await.expect("go ahead") else {
        panic!("the approved call is denied")
    };
    g.complete(&lease.key, Ok(()), None)
        .await
        .expect("reported");
    assert_eq!(
        g.call_state(&c.key()).await.unwrap(),
        Some(CallState::Executed)
    );
}

#[tokio::test]
async fn a_reload_swaps_the_policy_and_a_shadow_counts_differences() {
    let (g, _, path) = gateway("reload", DESK).await;
    let read = call("r1", "support-bot", "kb.read", json!({}), "prod");
    assert!(matches!(g.authorize(&read).await, Ok(Verdict::Allowed(_))));
    let stricter = DESK.replace("allow kb.read, search.read;", "allow search.read;");
    g.set_shadow(Some(
        CompiledPolicy::compile(&stricter, "next.policy").expect("compiles"),
    ));
    assert!(
        matches!(
            g.authorize(&call("r2", "support-bot", "kb.read", json!({}), "prod"))
                .await,
            Ok(Verdict::Allowed(_))
        ),
        "the live policy still enforces"
    );
    assert_eq!(g.metrics().shadow_differs.load(Ordering::Relaxed), 1);
    g.reload(CompiledPolicy::compile(&stricter, "next.policy").expect("compiles"))
        .await
        .expect("reloaded");
    let r = g
        .authorize(&call("r3", "support-bot", "kb.read", json!({}), "prod"))
        .await;
    assert!(matches!(r, Ok(Verdict::Denied(_))), "{r:?}");
    let k = kinds(&path);
    assert_eq!(k.iter().filter(|k| *k == "policy_load").count(), 2);
    assert_eq!(k.iter().filter(|k| *k == "shadow_differs").count(), 1);
}
