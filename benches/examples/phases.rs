//! Where compile time goes: parse, check and compile timed separately for a
//! synthetic policy (`cargo run --release -p toolgate-benches --example phases -- 10000`).

use std::time::Instant;

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let s = toolgate_benches::synthetic(n);
    for _ in 0..3 {
        let t = Instant::now();
        let parsed = toolgate_syntax::parse(&s.toolgate);
        let parse = t.elapsed();
        let t = Instant::now();
        let checked = toolgate_check::check(&parsed.file, &s.toolgate);
        let check = t.elapsed();
        let t = Instant::now();
        let compiled = checked
            .policy
            .as_ref()
            .map(|p| toolgate_engine::Engine::new(p, "p").is_ok());
        let compile = t.elapsed();
        println!("{n} rules: parse {parse:?}, check {check:?}, compile {compile:?} ({compiled:?})");
    }
}
