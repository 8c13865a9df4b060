//! The memory store and the Redis store are one store: the same random
//! sequence of budget consumes and clock steps (and of holds, approvals,
//! token uses and kill switches) gets the same answers from both, against a real redis-server
//! (installed by `scripts/setup-redis.sh`, started on its own port).

use proptest::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use toolgate_runtime::record::{ApprovalGranted, ApprovalRequested, KillSwitch, TokenUsed};
use toolgate_runtime::refusal::Refusal;
use toolgate_runtime::store::redis::{RedisConfig, RedisDown, RedisStore};
use toolgate_runtime::store::{
    Approver, Binding, CallKey, KillScope, LeaseHolder, MemoryStore, Store, Subject, TenantScope,
};
use toolgate_testkit::redis::RedisServer;

#[derive(Clone, Debug)]
enum Op {
    /// Consume from budget `key` with this limit and window.
    Consume { key: u8, limit: u64, window: u64 },
    /// The clock moves on.
    Step(u64),
    /// Hold call `id` for approval by two approvers, expiring after `expires`.
    Hold { id: u8, expires: u64 },
    /// Approver `who` approves call `id`.
    Approve { id: u8, who: u8 },
    /// Use the token of call `id`'s latest approval.
    Use { id: u8 },
    /// Engage or release the tenant's kill switch (writes).
    Kill { engaged: bool },
    /// Reserve call `id`'s id while it is decided.
    Reserve { id: u8 },
    /// Open call `id`'s lease for `ttl` ms.
    Open { id: u8, ttl: u64 },
    /// Free call `id`'s reservation.
    Release { id: u8 },
    /// Read, then take, call `id`'s open lease.
    Take { id: u8 },
    /// Take the leases expired now.
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 1u64..5, prop::sample::select(vec![10u64, 50, 100]))
            .prop_map(|(key, limit, window)| Op::Consume { key, limit, window }),
        3 => (0u64..60).prop_map(Op::Step),
        1 => (0u8..3, prop::sample::select(vec![30u64, 200])).prop_map(|(id, expires)| Op::Hold { id, expires }),
        2 => (0u8..3, 0u8..3).prop_map(|(id, who)| Op::Approve { id, who }),
        1 => (0u8..3).prop_map(|id| Op::Use { id }),
        1 => any::<bool>().prop_map(|engaged| Op::Kill { engaged }),
        2 => (0u8..3).prop_map(|id| Op::Reserve { id }),
        2 => (0u8..3, prop::sample::select(vec![20u64, 100])).prop_map(|(id, ttl)| Op::Open { id, ttl }),
        1 => (0u8..3).prop_map(|id| Op::Release { id }),
        2 => (0u8..3).prop_map(|id| Op::Take { id }),
        1 => Just(Op::Expire),
    ]
}

fn binding(tenant: &str, id: u8) -> Binding {
    Binding {
        agent: "bot".into(),
        tool: "refund.issue".into(),
        args_digest: format!("d{id}"),
        tenant: tenant.into(),
        env: "prod".into(),
        context_digest: "c".into(),
    }
}

fn approver(who: u8) -> Approver {
    Approver {
        name: format!("lead-{who}"),
        groups: vec!["leads".into()],
        tenants: TenantScope::Any,
    }
}

/// One store's answers to a sequence, as comparable text.
async fn run(store: &dyn Store, tenant: &str, ops: &[Op]) -> Vec<String> {
    let mut now = 1_000u64;
    let mut tokens: std::collections::HashMap<u8, String> = Default::default();
    let mut issued = 0u32;
    let mut out = Vec::new();
    let who = Subject {
        tenant,
        agent: "bot",
        write: true,
    };
    for op in ops {
        if let Some(leased) = leases(store, tenant, op, now).await {
            out.push(leased);
            continue;
        }
        let answer = match op {
            Op::Consume { key, limit, window } => {
                let key = format!("[\"{key}\",\"bot\",\"t\",\"{tenant}\"]");
                format!(
                    "{:?}",
                    store.consume(tenant, &key, *limit, *window, now).await
                )
            }
            Op::Step(ms) => {
                now += ms;
                continue;
            }
            Op::Hold { id, expires } => {
                let request = ApprovalRequested {
                    key: CallKey::new(tenant, &format!("c{id}")),
                    binding: binding(tenant, *id),
                    group: Some("leads".into()),
                    count: 2,
                    expires_at: Some(now + expires),
                    args: serde_json::json!({}),
                    rule: None,
                    reason: "refunds need two leads".into(),
                    requested_at: now,
                    session: None,
                    endorse: Vec::new(),
                };
                format!("{:?}", store.hold(&request, who, now).await)
            }
            Op::Approve { id, who: w } => {
                issued += 1;
                let digest = format!("token-{issued}");
                let grant = ApprovalGranted {
                    key: CallKey::new(tenant, &format!("c{id}")),
                    approver: approver(*w).name,
                    groups: vec!["leads".into()],
                    args_digest: format!("d{id}"),
                    held_at: None,
                    reason: "ok".into(),
                };
                let r = store
                    .approve(&grant, &approver(*w), true, &digest, "sealed", now)
                    .await;
                if let Ok(Ok(Some(_))) = &r {
                    tokens.insert(*id, digest);
                }
                format!("{r:?}")
            }
            Op::Kill { engaged } => {
                let kill = KillSwitch {
                    scope: KillScope {
                        tenant: Some(tenant.to_string()),
                        agent: None,
                        all_tools: false,
                    },
                    engaged: *engaged,
                    by: "ops".into(),
                    reason: "incident".into(),
                };
                let done = store.kill_switch(&kill).await;
                // Other cases' tenants share the Redis store: count this one's.
                let mine = |w: Vec<toolgate_runtime::store::Pending>| {
                    w.iter().filter(|p| p.key.tenant == tenant).count()
                };
                let pending = store.waiting(now).await.map(mine);
                format!("{done:?} {:?} {pending:?}", store.killed(who).await)
            }
            Op::Use { id } => {
                let digest = tokens.get(id).cloned().unwrap_or_else(|| "none".into());
                let used = TokenUsed {
                    key: CallKey::new(tenant, &format!("c{id}")),
                    token_digest: digest,
                };
                let r = store
                    .use_token(&used, &binding(tenant, *id), who, now)
                    .await;
                // An unknown digest is unknown to both; only a token of this call is looked up.
                format!(
                    "{:?}",
                    r.map(|r| r.map_err(|e| matches!(e, Refusal::TokenUnknown)))
                )
            }
            // Answered by `leases` above.
            Op::Reserve { .. }
            | Op::Open { .. }
            | Op::Release { .. }
            | Op::Take { .. }
            | Op::Expire => continue,
        };
        out.push(answer);
    }
    out
}

/// A lease operation's answer (`None` for the other operations).
async fn leases(store: &dyn Store, tenant: &str, op: &Op, now: u64) -> Option<String> {
    let key = |id: &u8| CallKey::new(tenant, &format!("l{id}"));
    let holder = |expires_at| LeaseHolder {
        agent: "bot".into(),
        env: "prod".into(),
        expires_at,
        tool: "pay".into(),
        session: None,
    };
    Some(match op {
        Op::Reserve { id } => format!("{:?}", store.reserve_lease(&key(id), &holder(None)).await),
        Op::Open { id, ttl } => {
            let opened = holder(Some(now + ttl));
            format!("{:?}", store.open_lease(&key(id), &opened, now).await)
        }
        Op::Release { id } => format!("{:?}", store.release_lease(&key(id)).await),
        Op::Take { id } => format!(
            "{:?} {:?}",
            store.lease(&key(id)).await,
            store.take_lease(&key(id)).await
        ),
        Op::Expire => {
            // Redis keeps one set of deadlines for every tenant: this case's only.
            let mut taken = store
                .take_expired_leases(now, 1000)
                .await
                .unwrap_or_default();
            taken.retain(|(k, _)| k.tenant == tenant);
            taken.sort();
            format!("{taken:?}")
        }
        _ => return None,
    })
}

#[test]
fn the_memory_and_redis_stores_answer_alike() {
    let server = RedisServer::start("equivalence");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = RedisConfig {
        url: server.url(),
        prefix: "eq".into(),
        down: RedisDown::DenyAll,
        timeout: Duration::from_secs(2),
    };
    let redis = rt.block_on(RedisStore::open(config)).unwrap();
    static CASE: AtomicU32 = AtomicU32::new(0);
    let cases = ProptestConfig::with_cases(48);
    proptest!(cases, |(ops in prop::collection::vec(op(), 1..60))| {
        // A tenant per case: each case starts from an empty state in both.
        let tenant = format!("case-{}", CASE.fetch_add(1, Ordering::SeqCst));
        let memory = MemoryStore::default();
        let (mine, theirs) = rt.block_on(async {
            (run(&memory, &tenant, &ops).await, run(&redis, &tenant, &ops).await)
        });
        prop_assert_eq!(mine, theirs);
    });
}
