//! Compile time: parse + check + compile, for the support-desk policy and
//! synthetic policies of 10 to 10,000 rules.

#![expect(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let (desk, _) = toolgate_benches::support_desk();
    group.bench_function("support-desk", |b| {
        b.iter(|| toolgate_benches::compile(&desk))
    });
    for n in [10, 100, 1_000, 10_000] {
        let s = toolgate_benches::synthetic(n);
        group.sample_size(if n >= 10_000 { 20 } else { 50 });
        group.bench_with_input(BenchmarkId::new("synthetic", n), &s.toolgate, |b, src| {
            b.iter(|| toolgate_benches::compile(src))
        });
    }
    group.finish();
}

criterion_group!(benches, compile);
criterion_main!(benches);
