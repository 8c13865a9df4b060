//! The memory store and the Redis store are one store: the same random
//! sequence of budget consumes and clock steps (and of holds, approvals,
//! token uses, kill switches, leases, and session changes and reads: turns,
//! observations with labels, endorsements, counted calls, taint, the cap,
//! eviction and tombstones) gets the same answers from both, against a real
//! redis-server (installed by `scripts/setup-redis.sh`, started on its own port).

use proptest::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use toolgate_runtime::record::{ApprovalGranted, ApprovalRequested, KillSwitch, TokenUsed};
use toolgate_runtime::record::{SessionCall, SessionEndorsed, SessionObserved, SessionTurn};
use toolgate_runtime::refusal::Refusal;
use toolgate_runtime::store::redis::{RedisConfig, RedisDown, RedisStore};
use toolgate_runtime::store::{
    Approver, Binding, CallKey, KillScope, LeaseHolder, MemoryStore, Store, Subject, TenantScope,
};
use toolgate_runtime::store::{
    SessionChange, SessionKey, SessionLimits, SessionQuery, SessionRead,
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
    /// A change to session `s` (turns, outputs, endorsements, calls).
    Session { s: u8, change: Change },
    /// What a decision asks session `s`, and the whole session.
    Read {
        s: u8,
        digests: Vec<u8>,
        tools: Vec<u8>,
    },
}

/// A session change, its digests drawn from a small alphabet so that
/// changes overlap and the cap (8 digests) is reached.
#[derive(Clone, Debug)]
enum Change {
    Turn(Vec<u8>),
    Observed {
        tool: u8,
        trusted: Vec<u8>,
        untrusted: Vec<u8>,
        taints: bool,
    },
    Endorsed(Vec<u8>),
    Call(u8),
    /// A change journaled over the cap (its digests dropped).
    Capped,
}

/// The sessions' TTL (ms) and cap in this test: clock steps reach both.
const SESSION_LIMITS: SessionLimits = SessionLimits {
    ttl_ms: 100,
    max_digests: 8,
};

fn digests() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..12, 0..5)
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        2 => digests().prop_map(Change::Turn),
        3 => (0u8..3, digests(), digests(), any::<bool>()).prop_map(|(tool, trusted, untrusted, taints)| {
            Change::Observed { tool, trusted, untrusted, taints }
        }),
        1 => digests().prop_map(Change::Endorsed),
        2 => (0u8..3).prop_map(Change::Call),
        1 => Just(Change::Capped),
    ]
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
        6 => (0u8..2, change()).prop_map(|(s, change)| Op::Session { s, change }),
        3 => (0u8..2, digests(), prop::collection::vec(0u8..3, 0..3))
            .prop_map(|(s, digests, tools)| Op::Read { s, digests, tools }),
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
        if let Some(answer) = sessions(store, tenant, op, now).await {
            out.push(answer);
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
            // Answered by `leases` and `sessions` above.
            Op::Reserve { .. }
            | Op::Open { .. }
            | Op::Release { .. }
            | Op::Take { .. }
            | Op::Expire
            | Op::Session { .. }
            | Op::Read { .. } => continue,
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

fn digest(d: u8) -> String {
    format!("{d:02}{}", "ab".repeat(15))
}

fn tool(t: u8) -> String {
    format!("tool.{t}")
}

/// A session operation's answer (`None` for the other operations).
async fn sessions(store: &dyn Store, tenant: &str, op: &Op, now: u64) -> Option<String> {
    let key = |s: &u8| SessionKey::new(tenant, &format!("s{s}"));
    let all = |ds: &[u8]| {
        let set: std::collections::BTreeSet<String> = ds.iter().map(|d| digest(*d)).collect();
        set.into_iter().collect::<Vec<String>>()
    };
    Some(match op {
        Op::Session { s, change } => {
            let (key, call, at) = (key(s), format!("c{now}"), now);
            let change = match change {
                Change::Turn(ds) => SessionChange::Turn(SessionTurn {
                    key,
                    chars: 10,
                    digests: all(ds),
                    capped: false,
                    at,
                }),
                Change::Observed {
                    tool: t,
                    trusted,
                    untrusted,
                    taints,
                } => SessionChange::Observed(SessionObserved {
                    key,
                    call,
                    tool: tool(*t),
                    bytes: 10,
                    trusted: all(trusted),
                    untrusted: all(untrusted),
                    taints: *taints,
                    capped: false,
                    at,
                }),
                Change::Endorsed(ds) => SessionChange::Endorsed(SessionEndorsed {
                    key,
                    call,
                    digests: all(ds),
                    capped: false,
                    at,
                }),
                Change::Call(t) => SessionChange::Call(SessionCall {
                    key,
                    call,
                    tool: tool(*t),
                    at,
                }),
                Change::Capped => SessionChange::Turn(SessionTurn {
                    key,
                    chars: 10,
                    digests: Vec::new(),
                    capped: true,
                    at,
                }),
            };
            format!("{:?}", store.session_change(&change).await)
        }
        Op::Read { s, digests, tools } => {
            let query = SessionQuery {
                digests: all(digests),
                tools: {
                    let set: std::collections::BTreeSet<String> =
                        tools.iter().map(|t| tool(*t)).collect();
                    set.into_iter().collect()
                },
                calls: (0..3).map(tool).collect(),
            };
            let lookup = store.session_lookup(&key(s), &query, now).await;
            let whole = store.session(&key(s), now).await.map(|read| whole(&read));
            format!("{lookup:?} {whole:?}")
        }
        _ => return None,
    })
}

/// Everything a whole session says, in a fixed order.
fn whole(read: &SessionRead) -> String {
    let SessionRead::Live(s) = read else {
        return "gone".into();
    };
    let mut out = format!(
        "tainted {} counts {:?} digests {} gone {}",
        s.tainted(),
        s.counts(),
        s.digests(),
        s.is_gone()
    );
    for d in 0..12 {
        let d = digest(d);
        out.push_str(&format!(" {}", s.sources(&d)));
        for t in 0..3 {
            out.push_str(if s.in_output_of(&d, &tool(t)) {
                "+"
            } else {
                "-"
            });
        }
    }
    for t in 0..3 {
        out.push_str(&format!(" calls {}", s.calls(&tool(t))));
    }
    out
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
    redis.set_session_limits(SESSION_LIMITS);
    static CASE: AtomicU32 = AtomicU32::new(0);
    let cases = ProptestConfig::with_cases(48);
    proptest!(cases, |(ops in prop::collection::vec(op(), 1..60))| {
        // A tenant per case: each case starts from an empty state in both.
        let tenant = format!("case-{}", CASE.fetch_add(1, Ordering::SeqCst));
        let memory = MemoryStore::default();
        memory.set_session_limits(SESSION_LIMITS);
        let (mine, theirs) = rt.block_on(async {
            (run(&memory, &tenant, &ops).await, run(&redis, &tenant, &ops).await)
        });
        prop_assert_eq!(mine, theirs);
    });
}
