//! Test helper for the crash tests: writes to a journal from several tasks
//! until it is killed, printing each acknowledgement.
//!
//! - `journal-crash-writer PATH`: appends records; prints `acked SEQ`.
//! - `journal-crash-writer PATH gateway`: runs a gateway whose every call is
//!   auto-approved within a budget (state rebuilt from the journal first);
//!   prints `acked CALL-ID` after each call returns.
//! - `journal-crash-writer PATH sealed`: appends like the first, to a sealed
//!   journal (key and checkpoints next to it, a checkpoint every 50 records
//!   or 50 ms).
//! - `journal-crash-writer PATH sealed-late`: the same with the default
//!   checkpoint interval (1000 records or 10 s), so a kill in its first
//!   seconds comes before any timed checkpoint.
//! - `journal-crash-writer PATH retry`: appends records one at a time and
//!   never gives up: prints `acked SEQ`, or `refused` when an append fails
//!   (the write-error test runs it under a file-size limit it later lifts).

use serde_json::{json, Value};
use std::io::Write as _;
use std::sync::Arc;
use toolgate_runtime::gateway::{
    Call, CompiledPolicy, DigestKey, Executor, Gateway, Limits, Services, SystemClock, ToolError,
};
use toolgate_runtime::journal::{
    Journal, JournalConfig, NoState, SealConfig, SigningKeySource, StateMachine,
};
use toolgate_runtime::store::{MemoryStore, StoreState};

const POLICY: &str = "tool t.close write;\nwrites enabled;\nagent bot {\n  \
                      write t.close auto-approve limit 1000000 per day;\n}\n";

struct NoTool;
#[async_trait::async_trait]
impl Executor for NoTool {
    fn credentials(&self, _: &str, _: &[(String, Value)]) -> Result<Value, ToolError> {
        Ok(json!({}))
    }
    async fn execute(&self, _: &str, _: &Value, _: &Value) -> Result<Value, ToolError> {
        Ok(json!({}))
    }
}

fn say(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        return std::process::ExitCode::from(2);
    };
    let mode = args.next();
    let gateway_mode = mode.as_deref() == Some("gateway");
    let path = std::path::Path::new(&path);
    let config = if let Some(sealed @ ("sealed" | "sealed-late")) = mode.as_deref() {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let mut seal = SealConfig::new(
            SigningKeySource::File(dir.join("audit.key")),
            dir.join("audit.checkpoints"),
        );
        if sealed == "sealed" {
            seal.every_records = 50;
            seal.every = std::time::Duration::from_millis(50);
        }
        JournalConfig {
            seal: Some(seal),
            ..JournalConfig::default()
        }
    } else {
        JournalConfig::default()
    };
    // Only the gateway's records are gateway state; the plain modes append test records.
    let state: Box<dyn StateMachine> = if gateway_mode {
        Box::new(StoreState::default())
    } else {
        Box::new(NoState)
    };
    let (journal, opened) = match Journal::open(path, config, state) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(1);
        }
    };
    let mut tasks = Vec::new();
    if mode.as_deref() == Some("retry") {
        for i in 0u64.. {
            let said = match journal.append("test", i, json!({ "i": i })).await {
                Ok(ack) => say(&format!("acked {}", ack.seq)),
                Err(_) => say("refused"),
            };
            if !said {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    } else if gateway_mode {
        let Ok(policy) = CompiledPolicy::compile(POLICY, "crash.policy") else {
            return 3.into();
        };
        let Ok(store) = MemoryStore::restore(&opened.state) else {
            return 3.into();
        };
        let key_path = path.with_extension("digest-key");
        let Ok(digest_key) = DigestKey::load_or_create(&key_path) else {
            return 3.into();
        };
        let services = Services {
            journal,
            store: Arc::new(store),
            clock: Arc::new(SystemClock),
            digest_key,
            replica: None,
            limits: Limits::default(),
        };
        let Ok(gateway) = Gateway::open(policy, services).await else {
            return 3.into();
        };
        let gateway = Arc::new(gateway);
        let run = std::process::id();
        for task in 0..4u64 {
            let gateway = gateway.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let id = format!("{run}-{task}-{i}");
                    let context = toolgate_engine::Context {
                        tenant: "acme".into(),
                        env: "prod".into(),
                        ..Default::default()
                    };
                    let call = Call {
                        session: None,
                        id: id.clone(),
                        agent: "bot".into(),
                        tool: "t.close".into(),
                        args: json!({}),
                        context,
                    };
                    if gateway.call(&call, &NoTool).await.is_err() || !say(&format!("acked {id}")) {
                        return;
                    }
                }
            }));
        }
    } else {
        for task in 0..4u64 {
            let journal = journal.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let body =
                        json!({ "task": task, "i": i, "pad": "x".repeat((i % 7 * 40) as usize) });
                    let Ok(ack) = journal.append("test", i, body).await else {
                        return;
                    };
                    if !say(&format!("acked {}", ack.seq)) {
                        return;
                    }
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    std::process::ExitCode::SUCCESS
}
