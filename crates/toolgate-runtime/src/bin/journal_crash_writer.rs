//! Test helper for the journal's crash test: appends records from several
//! tasks until it is killed, printing `acked SEQ` after each acknowledgement.
//! Usage: `journal-crash-writer PATH`.

use std::io::Write as _;
use toolgate_runtime::journal::{Fsync, Journal};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        return std::process::ExitCode::from(2);
    };
    let journal = match Journal::open(std::path::Path::new(&path), Fsync::Always, Vec::new()) {
        Ok((j, _)) => j,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(1);
        }
    };
    let mut tasks = Vec::new();
    for task in 0..4u64 {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0u64.. {
                let body = serde_json::json!({ "task": task, "i": i, "pad": "x".repeat((i % 7 * 40) as usize) });
                let Ok(ack) = journal.append("test", i, body).await else { return };
                let mut out = std::io::stdout().lock();
                if writeln!(out, "acked {}", ack.seq).and_then(|()| out.flush()).is_err() {
                    return;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    std::process::ExitCode::SUCCESS
}
