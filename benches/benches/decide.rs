//! Decision latency: the support-desk policy and synthetic policies of 10 to
//! 10,000 rules, for each request kind; from a parsed request and from its
//! JSON text. With `--features peers`, Cedar and Rego decide the same
//! requests against the same rules, after all three are shown to agree.

#![expect(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]
#![expect(
    clippy::panic,
    reason = "a broken benchmark input must stop the benchmark"
)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::time::Duration;
use toolgate_engine::OwnedRequest;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn requests(
    mix: &[toolgate_benches::BenchRequest],
) -> Vec<(&'static str, OwnedRequest, &'static str)> {
    mix.iter()
        .map(|r| {
            let owned =
                OwnedRequest::from_json(&r.json).unwrap_or_else(|e| panic!("bench request: {e}"));
            (r.kind, owned, r.expect)
        })
        .collect()
}

fn toolgate(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let (desk, mix) = toolgate_benches::support_desk();
    let mut cases = vec![("support-desk".to_string(), desk, mix)];
    for n in SIZES {
        let s = toolgate_benches::synthetic(n);
        cases.push((format!("synthetic-{n}"), s.toolgate, s.requests));
    }
    for (name, src, mix) in &cases {
        let engine = toolgate_benches::compile(src);
        let cached = toolgate_benches::compile_cached(src, 1024);
        for (kind, owned, expect) in requests(mix) {
            let req = owned.as_request();
            assert_eq!(
                engine.decide(&req).outcome().as_str(),
                expect,
                "{name} {kind}"
            );
            assert_eq!(
                cached.decide(&req).outcome().as_str(),
                expect,
                "{name} {kind} cached"
            );
            group.bench_function(BenchmarkId::new(format!("{name}/{kind}"), "request"), |b| {
                b.iter(|| black_box(engine.decide(black_box(&req))).outcome())
            });
            group.bench_function(
                BenchmarkId::new(format!("{name}/{kind}"), "request, cache hit"),
                |b| b.iter(|| black_box(cached.decide(black_box(&req))).outcome()),
            );
        }
        let json = &mix
            .iter()
            .find(|r| r.kind == "schema-checked condition")
            .map(|r| r.json.clone());
        if let Some(json) = json {
            group.bench_function(
                BenchmarkId::new(format!("{name}/schema-checked condition"), "json"),
                |b| {
                    b.iter(|| {
                        let owned = OwnedRequest::from_json(black_box(json))
                            .unwrap_or_else(|e| panic!("{e}"));
                        engine.decide(&owned.as_request()).outcome()
                    })
                },
            );
        }
    }
    cache_misses(&mut group);
    group.finish();
}

/// A workload where the cache cannot help: 4,096 distinct argument values
/// cycling through a cache of 1,024 entries (every lookup misses).
fn cache_misses(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let s = toolgate_benches::synthetic(1_000);
    let engine = toolgate_benches::compile(&s.toolgate);
    let cached = toolgate_benches::compile_cached(&s.toolgate, 1024);
    let owned: Vec<OwnedRequest> = (0..4096)
        .map(|i| {
            let json = format!(
                r#"{{"agent": "a0", "tool": "r1", "args": {{"q": "x{i}", "n": 2}}, "context": {{"tenant": "acme", "env": "prod", "account_id": "A1"}}}}"#
            );
            OwnedRequest::from_json(&json).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for (label, e) in [
        ("request, distinct args", &engine),
        ("request, distinct args, cache misses", &cached),
    ] {
        let mut i = 0;
        group.bench_function(
            BenchmarkId::new("synthetic-1000/schema-checked condition", label),
            |b| {
                b.iter(|| {
                    i = (i + 1) % owned.len();
                    black_box(e.decide(&owned[i].as_request())).outcome()
                })
            },
        );
    }
}

#[cfg(feature = "peers")]
fn peers(c: &mut Criterion) {
    use toolgate_benches::peers;
    let mut group = c.benchmark_group("peers");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    for n in SIZES {
        let s = toolgate_benches::synthetic(n);
        let engine = toolgate_benches::compile(&s.toolgate);
        let cedar = peers::Cedar::new(&s.cedar);
        let mut rego = peers::Rego::new(&s.rego);
        for (kind, owned, expect) in requests(&s.requests) {
            let req = owned.as_request();
            let (cedar_req, rego_req) =
                (peers::Cedar::request(&owned), peers::Rego::request(&owned));
            // Peers have no approvals: Toolgate's allow and approval_required are their permit.
            let permit = expect != "deny";
            assert_eq!(
                engine.decide(&req).outcome().as_str(),
                expect,
                "toolgate {n} {kind}"
            );
            assert_eq!(cedar.permits(&cedar_req), permit, "cedar {n} {kind}");
            assert_eq!(rego.permits(&rego_req), permit, "rego {n} {kind}");
            group.bench_function(BenchmarkId::new(format!("{n}/{kind}"), "toolgate"), |b| {
                b.iter(|| black_box(engine.decide(black_box(&req))).outcome())
            });
            group.bench_function(BenchmarkId::new(format!("{n}/{kind}"), "cedar"), |b| {
                b.iter(|| cedar.permits(black_box(&cedar_req)))
            });
            group.bench_function(BenchmarkId::new(format!("{n}/{kind}"), "regorus"), |b| {
                b.iter(|| rego.permits(black_box(&rego_req)))
            });
        }
    }
    group.finish();
}

#[cfg(not(feature = "peers"))]
fn peers(_: &mut Criterion) {}

criterion_group!(benches, toolgate, peers);
criterion_main!(benches);
