//! Restart time with a long journal history (docs/performance.md).
//!
//! - `restart DIR generate GB`: writes a sealed, segmented journal of about
//!   `GB` gigabytes under `DIR` (`Fsync::Never`, 64 MiB segments, a snapshot
//!   at each rotation), with a state of 1,000 budget counters.
//! - `restart DIR open`: times `Journal::open` (what a restart costs) and
//!   prints the peak memory of the process.
//! - `restart DIR open-full`: the same without sealing, so without snapshots:
//!   every record of every segment is verified and applied (a restart before
//!   snapshots existed), for comparison.
//! - `restart DIR audit`: times a full audit of every segment, for comparison.
//!
//! Run in release: `cargo run --release -p toolgate-runtime --example restart -- DIR generate 1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use toolgate_runtime::journal::{
    self, Fsync, Journal, JournalConfig, SealConfig, SigningKeySource, StateMachine,
};

/// Budget units taken per key: the shape of the gateway's state.
#[derive(Default)]
struct Budgets(BTreeMap<String, u64>);

impl StateMachine for Budgets {
    fn apply(&mut self, line: &str) -> Result<(), String> {
        let record: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if let Some(key) = record["body"]["budget_key"].as_str() {
            *self.0.entry(key.to_string()).or_default() += 1;
        }
        Ok(())
    }
    fn export(&self) -> serde_json::Value {
        serde_json::json!(self.0)
    }
    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.0 = serde_json::from_value(state.clone()).map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn config(dir: &Path) -> JournalConfig {
    JournalConfig {
        fsync: Fsync::Never,
        seal: Some(SealConfig::new(
            SigningKeySource::File(dir.join("audit.key")),
            dir.join("audit.checkpoints"),
        )),
        ..JournalConfig::default()
    }
}

fn generate(dir: &Path, gb: f64) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("audit.jsonl");
    let (journal, _) = Journal::open(&path, config(dir), Box::<Budgets>::default())?;
    let target = (gb * f64::from(1u32 << 30)) as u64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    let started = Instant::now();
    let written = rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let journal = journal.clone();
            tasks.push(tokio::spawn(async move {
                let mut bytes = 0u64;
                for i in 0u64.. {
                    let body = serde_json::json!({
                        "call": format!("call-{t}-{i}"), "agent": "support-bot", "tool": "tickets.close",
                        "decision": "allow", "budget_key": format!("rule-7/acme/{}", (t * 7919 + i) % 1000),
                        "args_digest": journal::sha256_hex(&i.to_le_bytes()), "at": 1_795_000_000_000u64 + i,
                        "reason": "auto-approved within the budget",
                    });
                    bytes += 420;
                    if journal.append("decision", i, body).await.is_err() || bytes * 16 >= target {
                        return bytes;
                    }
                }
                bytes
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap_or(0);
        }
        total
    });
    drop(journal);
    println!(
        "generated about {} MiB in {:.1} s",
        written >> 20,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb >> 10)
}

fn history_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("audit.jsonl"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: restart DIR generate GB | open | open-full | audit")?,
    );
    let path = dir.join("audit.jsonl");
    match args.next().as_deref() {
        Some("generate") => generate(&dir, args.next().unwrap_or_else(|| "1".into()).parse()?)?,
        Some(mode @ ("open" | "open-full")) => {
            let mut config = config(&dir);
            if mode == "open-full" {
                config.seal = None;
            }
            let started = Instant::now();
            let (_journal, opened) = Journal::open(&path, config, Box::<Budgets>::default())?;
            let elapsed = started.elapsed();
            let units: u64 = opened
                .state
                .as_object()
                .map_or(0, |o| o.values().filter_map(|v| v.as_u64()).sum());
            println!(
                "{mode}: history {} MiB, head seq {}: Journal::open {:.3} s, peak RSS {} MiB, state {} budget units",
                history_bytes(&dir) >> 20,
                opened.head.map_or(0, |h| h.seq),
                elapsed.as_secs_f64(),
                peak_rss_mib(),
                units
            );
        }
        Some("audit") => {
            let started = Instant::now();
            let report = journal::audit(&path, &journal::AuditOptions::default())?;
            println!(
                "full audit of {} records: {:.3} s, {} findings, peak RSS {} MiB",
                report.valid_up_to,
                started.elapsed().as_secs_f64(),
                report.findings.len(),
                peak_rss_mib()
            );
        }
        _ => return Err("usage: restart DIR generate GB | open | open-full | audit".into()),
    }
    Ok(())
}
