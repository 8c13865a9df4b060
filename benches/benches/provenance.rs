//! Provenance costs (issue #19's targets): a decision with five `from`
//! conditions against a session of 10,000 observed values, in the engine
//! (`MemorySession`) and through the runtime's `Gateway` (memory store,
//! keyed digests, the decision journaled); observing a 10 KB JSON output
//! (the engine's keys only, a `MemorySession`, and the gateway's `complete`,
//! which digests, stores and journals it); and the same decision without
//! session conditions, beside it, to show those are unchanged.
//!
//! `cargo bench -p toolgate-benches --bench provenance`

#![expect(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]
#![expect(
    clippy::panic,
    clippy::expect_used,
    reason = "a broken benchmark input must stop the benchmark"
)]

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value as Json};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use toolgate_engine::provenance::{leaf_keys, MemorySession};
use toolgate_engine::{Context, Request};
use toolgate_runtime::gateway::{
    self, Call, CompiledPolicy, DigestKey, Gateway, Limits, ManualClock, Services, Verdict,
};
use toolgate_runtime::journal::{Fsync, JournalConfig};

const POLICY: &str = r#"policy provenance_bench;
envs prod;
writes enabled;
tool contacts.find read trusted { name: string } output { [].note: untrusted };
tool web.fetch read { url: string };
tool mail.draft read { to: string, cc: string, subject: string, iban: string, amount: int };
tool kb.read read { q: string };

agent assistant {
  allow contacts.find, web.fetch, kb.read;
  allow mail.draft when args.to from trusted
    and args.cc from user
    and args.subject from user
    and args.iban from tool contacts.find
    and args.amount from trusted;
}
"#;

/// The 10,000 observed values: 100 outputs of `contacts.find`, 50 records each,
/// two string fields (one trusted, one untrusted) per record.
fn outputs() -> Vec<Json> {
    (0..100)
        .map(|o| {
            Json::Array(
                (0..50)
                    .map(|r| {
                        let n = o * 50 + r;
                        json!({
                            "email": format!("person{n}@example{}.com", n % 37),
                            "iban": format!("DE89 3704 0044 0532 {:04} {:02}", n % 10_000, n % 100),
                            "note": format!("met at conference {n}"),
                        })
                    })
                    .collect(),
            )
        })
        .collect()
}

/// A user turn naming the values the write uses.
const TURN: &str =
    "Please mail person4242@example22.com, cc person17@example17.com, with the subject \
                    quarterly invoice and pay 250 EUR";

fn write_args() -> Json {
    json!({
        "to": "person4242@example22.com",
        "cc": "person17@example17.com",
        "subject": "quarterly invoice",
        "iban": "DE89 3704 0044 0532 4242 42",
        "amount": 250,
    })
}

/// A 10 KB JSON tool output: records of mixed fields and free text, as many
/// as make 10,000 bytes.
fn ten_kb() -> Json {
    let mut records = Vec::new();
    let mut i = 0;
    while Json::Array(records.clone()).to_string().len() < 10_000 {
        records.push(json!({
            "email": format!("someone{i}@corp.example.org"),
            "name": format!("Someone Number {i}"),
            "note": format!(
                "Called on 2026-11-{:02} about invoice INV-{i:05}; asked to review https://docs.example.com/page/{i} before Friday.",
                i % 28 + 1
            ),
            "amount": i * 125,
        }));
        i += 1;
    }
    Json::Array(records)
}

fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("provenance/engine");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let parsed = toolgate_syntax::parse(POLICY);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let checked = toolgate_check::check(&parsed.file, POLICY);
    let policy = checked.policy.expect("the bench policy checks");
    let engine = toolgate_engine::Engine::new(&policy, "bench.policy").expect("compiles");
    let contacts = policy
        .tool_id("contacts.find")
        .map(|id| &policy.tools[id.0 as usize])
        .expect("declared");

    let mut session = MemorySession::new();
    session.user_turn(TURN);
    for (i, out) in outputs().iter().enumerate() {
        session.observe(&format!("c_{i}"), contacts, out);
    }
    session.endorse("c_a", [toolgate_engine::provenance::Key::number(250.0)]);
    let ctx = Context {
        tenant: "acme".into(),
        env: "prod".into(),
        ..Default::default()
    };
    let args = write_args();
    let req = Request {
        agent: "assistant",
        tool: "mail.draft",
        args: &args,
        context: &ctx,
        now: None,
        session: Some(&session),
    };
    let d = engine.decide(&req);
    assert_eq!(d.outcome().as_str(), "allow", "{}", d.reason());
    group.bench_function("decide, 5 from conditions, 10k values", |b| {
        b.iter(|| black_box(engine.decide(black_box(&req))))
    });
    let read_args = json!({"q": "refund policy"});
    let read = Request {
        args: &read_args,
        tool: "kb.read",
        session: None,
        ..req
    };
    assert_eq!(engine.decide(&read).outcome().as_str(), "allow");
    group.bench_function("decide, no session conditions", |b| {
        b.iter(|| black_box(engine.decide(black_box(&read))))
    });

    let big = ten_kb();
    let mut keys = 0usize;
    toolgate_engine::provenance::walk(&big, &mut Vec::new(), &mut |_, leaf| {
        leaf_keys(leaf, &mut |_| keys += 1)
    });
    eprintln!(
        "the 10 KB output: {} bytes, {keys} keys",
        big.to_string().len()
    );
    group.bench_function("keys of a 10 KB output", |b| {
        b.iter(|| {
            let mut n = 0usize;
            toolgate_engine::provenance::walk(black_box(&big), &mut Vec::new(), &mut |_, leaf| {
                leaf_keys(leaf, &mut |_| n += 1)
            });
            n
        })
    });
    group.bench_function("MemorySession observes a 10 KB output", |b| {
        b.iter(|| {
            let mut s = MemorySession::new();
            s.observe("c_1", contacts, black_box(&big));
            s
        })
    });
    group.finish();
}

fn call(id: &str, tool: &str, args: Json) -> Call {
    Call {
        id: id.into(),
        agent: "assistant".into(),
        tool: tool.into(),
        args,
        context: Context {
            tenant: "acme".into(),
            env: "prod".into(),
            ..Default::default()
        },
        session: Some("s_bench".into()),
    }
}

fn gateway(c: &mut Criterion) {
    let mut group = c.benchmark_group("provenance/gateway");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("tg-provenance-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let g: Gateway = rt.block_on(async {
        let config = JournalConfig {
            fsync: Fsync::Never,
            ..JournalConfig::default()
        };
        let (journal, memory, _) = gateway::open_journal(&dir.join("audit.jsonl"), config)
            .await
            .expect("journal");
        let clock = Arc::new(ManualClock::default());
        clock.set(1_800_000_000_000);
        let services = Services {
            journal,
            store: memory,
            clock,
            digest_key: DigestKey::from_bytes([3; 32]),
            replica: None,
            limits: Limits::default(),
        };
        let policy = CompiledPolicy::compile(POLICY, "bench.policy").expect("compiles");
        Gateway::open(policy, services).await.expect("gateway")
    });
    let g = Arc::new(g);
    let mut seq = 0u64;
    let mut next_id = move || {
        seq += 1;
        format!("c_{seq}")
    };
    // The session: a user turn, 100 outputs of 50 records (10,000 values, each field observed).
    rt.block_on(async {
        g.user_turn("acme", "s_bench", TURN).await.expect("turn");
        for out in outputs() {
            let c = call(&next_id(), "contacts.find", json!({"name": "x"}));
            let Verdict::Allowed(lease) = g.authorize(&c).await.expect("decided") else {
                panic!("contacts.find is allowed")
            };
            g.complete(&lease.key, Ok(()), Some(&out))
                .await
                .expect("observed");
        }
    });

    let args = write_args();
    // `amount from trusted` needs 250 trusted: the user's turn says "250 EUR".
    let verdict = rt.block_on(g.authorize(&call(&next_id(), "mail.draft", args.clone())));
    assert!(
        matches!(verdict, Ok(Verdict::Allowed(_))),
        "the bench write is allowed: {verdict:?}"
    );
    group.bench_function("authorize, 5 from conditions, 10k values", |b| {
        b.iter(|| {
            let c = call(&next_id(), "mail.draft", args.clone());
            rt.block_on(g.authorize(&c)).expect("decided")
        })
    });
    group.bench_function("authorize, no session conditions", |b| {
        b.iter(|| {
            let mut c = call(&next_id(), "kb.read", json!({"q": "refund policy"}));
            c.session = None;
            rt.block_on(g.authorize(&c)).expect("decided")
        })
    });
    let big = ten_kb();
    let fetch = json!({"url": "https://docs.example.com"});
    let read = json!({"q": "x"});
    for (name, tool, args, output) in [
        (
            "complete with a 10 KB output (observed)",
            "web.fetch",
            &fetch,
            Some(&big),
        ),
        ("complete without output", "kb.read", &read, None),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let c = call(&next_id(), tool, args.clone());
                    match rt.block_on(g.authorize(&c)) {
                        Ok(Verdict::Allowed(lease)) => lease.key,
                        other => panic!("{tool} is allowed: {other:?}"),
                    }
                },
                |key| {
                    rt.block_on(g.complete(&key, Ok(()), output))
                        .expect("reported")
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, engine, gateway);
criterion_main!(benches);
