//! Test helper for the crash tests: writes to a journal from several tasks
//! until it is killed, printing each acknowledgement.
//!
//! - `journal-crash-writer PATH`: appends records; prints `acked SEQ`.
//! - `journal-crash-writer PATH gateway`: runs a gateway whose every call is
//!   auto-approved within a budget (state rebuilt from the journal first);
//!   prints `acked CALL-ID` after each call returns.

use serde_json::{json, Value};
use std::io::Write as _;
use std::sync::Arc;
use toolgate_runtime::gateway::{
    Call, CompiledPolicy, CredentialProvider, DigestKey, Gateway, Limits, Services, SystemClock,
    ToolExecutor,
};
use toolgate_runtime::journal::{Fsync, Journal};
use toolgate_runtime::store::{replay, MemoryStore};

const POLICY: &str = "tool t.close write;\nwrites enabled;\nagent bot {\n  \
                      write t.close auto-approve limit 1000000 per day;\n}\n";

struct NoCredentials;
impl CredentialProvider for NoCredentials {
    fn load(&self, _: &str, _: &[(String, Value)]) -> Result<Value, String> {
        Ok(json!({}))
    }
}

struct NoTool;
impl ToolExecutor for NoTool {
    async fn execute(&self, _: &str, _: &Value, _: &Value) -> Result<Value, String> {
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
    let gateway_mode = args.next().as_deref() == Some("gateway");
    let (journal, opened) =
        match Journal::open(std::path::Path::new(&path), Fsync::Always, Vec::new()) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::from(1);
            }
        };
    let mut tasks = Vec::new();
    if gateway_mode {
        let Ok(policy) = CompiledPolicy::compile(POLICY, "crash.policy") else {
            return 3.into();
        };
        let store = Arc::new(MemoryStore::default());
        if replay(store.as_ref(), &opened.lines).is_err() {
            return 3.into();
        }
        let Ok(digest_key) =
            DigestKey::load_or_create(&std::path::PathBuf::from(format!("{path}.digest-key")))
        else {
            return 3.into();
        };
        let services = Services {
            journal,
            store,
            clock: Arc::new(SystemClock),
            credentials: NoCredentials,
            executor: NoTool,
            digest_key,
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
                        id: id.clone(),
                        agent: "bot".into(),
                        tool: "t.close".into(),
                        args: json!({}),
                        context,
                    };
                    if gateway.call(&call).await.is_err() || !say(&format!("acked {id}")) {
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
