//! Decides one request many times (for profiling the hot path with callgrind:
//! `valgrind --tool=callgrind target/release/examples/hot 100000 [KIND]`, KIND one of the
//! synthetic scenario's request kinds, default `schema-checked condition`).

use std::hint::black_box;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let kind = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "schema-checked condition".into());
    let s = toolgate_benches::synthetic(1_000);
    let engine = toolgate_benches::compile(&s.toolgate);
    let Some(r) = s.requests.iter().find(|r| r.kind == kind) else {
        eprintln!("no request kind `{kind}`");
        return;
    };
    let Ok(owned) = toolgate_engine::OwnedRequest::from_json(&r.json) else {
        return;
    };
    let req = owned.as_request();
    let mut allowed = 0;
    for _ in 0..n {
        if black_box(engine.decide(black_box(&req))).outcome() == toolgate_engine::Outcome::Allow {
            allowed += 1;
        }
    }
    println!("{allowed} of {n} allowed");
}
