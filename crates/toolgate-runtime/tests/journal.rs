//! The audit journal: the chain verifies, every kind of tampering is found at
//! the right line, a torn tail is reported (and only it may be recovered), and
//! records acknowledged before a SIGKILL are always in the file.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use toolgate_runtime::journal::{self, AuditSink, Journal, JournalConfig, NoState, Problem};

/// Opens a journal with default settings, these sinks and no state.
fn open(
    path: &Path,
    sinks: Vec<Box<dyn AuditSink>>,
) -> Result<(Journal, journal::Opened), journal::JournalError> {
    let config = JournalConfig {
        sinks,
        ..JournalConfig::default()
    };
    Journal::open(path, config, Box::new(NoState))
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("journal")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join("audit.jsonl")
}

/// Writes `n` records from `tasks` concurrent tasks; returns the acks.
fn write_records(
    path: &Path,
    n: u64,
    tasks: u64,
    sinks: Vec<Box<dyn AuditSink>>,
) -> Vec<journal::Ack> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (journal, _) = open(path, sinks).expect("opens");
        let mut handles = Vec::new();
        for t in 0..tasks {
            let journal = journal.clone();
            handles.push(tokio::spawn(async move {
                let mut acks = Vec::new();
                for i in 0..n / tasks {
                    let body = serde_json::json!({ "task": t, "i": i });
                    acks.push(
                        journal
                            .append("test", 1_700_000_000_000 + i, body)
                            .await
                            .expect("appends"),
                    );
                }
                acks
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.expect("task"));
        }
        all
    })
}

#[test]
fn concurrent_appends_form_one_verified_chain() {
    let path = scratch("concurrent");
    let acks = write_records(&path, 400, 8, Vec::new());
    let verified = journal::verify_file(&path)
        .expect("readable")
        .expect("verifies");
    assert_eq!(verified.lines.len(), 400);
    let mut seqs: Vec<u64> = acks.iter().map(|a| a.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=400).collect::<Vec<_>>(),
        "every record acknowledged once, numbered without gaps"
    );
    let head = verified.head.expect("non-empty");
    assert_eq!(Some(&head), acks.iter().max_by_key(|a| a.seq));
    // Reopening continues the chain.
    let more = write_records(&path, 10, 1, Vec::new());
    assert_eq!(more.first().map(|a| a.seq), Some(401));
    let verified = journal::verify_file(&path)
        .expect("readable")
        .expect("still verifies");
    assert_eq!(verified.head.map(|h| h.seq), Some(410));
}

#[test]
fn sinks_see_every_committed_line_in_order() {
    struct Collect(Arc<Mutex<Vec<String>>>);
    impl AuditSink for Collect {
        fn committed(&mut self, line: &str) {
            self.0.lock().expect("lock").push(line.to_string());
        }
    }
    let path = scratch("sinks");
    let seen = Arc::new(Mutex::new(Vec::new()));
    write_records(&path, 50, 5, vec![Box::new(Collect(seen.clone()))]);
    let verified = journal::verify_file(&path)
        .expect("readable")
        .expect("verifies");
    assert_eq!(*seen.lock().expect("lock"), verified.lines);
}

fn tampered(edit: impl FnOnce(&mut Vec<String>)) -> Result<journal::Verified, Problem> {
    let path = scratch(&format!("tamper-{}", std::process::id()));
    write_records(&path, 6, 1, Vec::new());
    let text = std::fs::read_to_string(&path).expect("read");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    edit(&mut lines);
    journal::verify_text(&(lines.join("\n") + "\n"))
}

#[test]
fn tampering_is_found_at_the_first_record_it_breaks() {
    assert_eq!(tampered(|_| {}).map(|v| v.lines.len()), Ok(6));
    let changed = tampered(|l| l[2] = l[2].replace("\"i\":2", "\"i\":9"));
    assert_eq!(
        changed.map(|_| ()),
        Err(Problem::Chain { line: 4 }),
        "a changed record breaks the next link"
    );
    let removed = tampered(|l| {
        l.remove(3);
    });
    assert_eq!(
        removed.map(|_| ()),
        Err(Problem::Sequence {
            line: 4,
            found: 5,
            expected: 4
        })
    );
    let swapped = tampered(|l| l.swap(1, 2));
    assert_eq!(
        swapped.map(|_| ()),
        Err(Problem::Sequence {
            line: 2,
            found: 3,
            expected: 2
        })
    );
    let garbage = tampered(|l| l[0] = "hello".into());
    assert!(matches!(garbage, Err(Problem::Malformed { line: 1, .. })));
}

#[test]
fn a_torn_tail_is_reported_refused_and_only_then_recoverable() {
    let path = scratch("torn");
    write_records(&path, 5, 1, Vec::new());
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, &text[..text.len() - 7]).expect("truncate mid-record");
    assert_eq!(
        journal::verify_file(&path).expect("readable").map(|_| ()),
        Err(Problem::Torn { line: 5 })
    );
    assert!(
        open(&path, Vec::new()).is_err(),
        "a torn journal is never appended to silently"
    );
    let repaired = journal::recover_torn_tail(&path)
        .expect("recovers")
        .expect("repairs");
    assert_eq!(repaired.line, 5);
    assert_eq!(repaired.kept + repaired.cut, (text.len() - 7) as u64);
    assert_eq!(
        std::fs::read(&repaired.backup).expect("backup").len() as u64,
        repaired.cut,
        "what was cut is kept in the backup"
    );
    assert_eq!(
        journal::verify_file(&path)
            .expect("readable")
            .map(|v| v.lines.len()),
        Ok(4)
    );
    // A broken chain is never "recovered".
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replacen("\"i\":1", "\"i\":7", 1)).expect("tamper");
    assert!(journal::recover_torn_tail(&path).is_err());
}

/// Kills a writer at pseudo-random moments, many times over the same file,
/// and checks after each kill that every acknowledged record is in the file,
/// that the complete prefix verifies, and that the next writer continues it.
#[test]
fn records_acknowledged_before_sigkill_survive() {
    let path = scratch("sigkill");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut torn_tails = 0;
    let mut total_acked = 0;
    for round in 0..12 {
        let acked = run_and_kill(&path, &[], &mut seed);
        let max_acked = acked
            .iter()
            .filter_map(|a| a.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let verified = match journal::verify_file(&path).expect("readable") {
            Ok(v) => v,
            Err(Problem::Torn { .. }) => {
                torn_tails += 1;
                journal::recover_torn_tail(&path).expect("only the torn tail is removed");
                journal::verify_file(&path)
                    .expect("readable")
                    .expect("the complete prefix verifies")
            }
            Err(other) => panic!("round {round}: journal broken after SIGKILL: {other}"),
        };
        let head = verified.head.map_or(0, |h| h.seq);
        assert!(
            max_acked <= head,
            "round {round}: seq {max_acked} was acknowledged but the file ends at {head}"
        );
        assert!(
            max_acked > total_acked,
            "round {round}: the writer made progress"
        );
        total_acked = max_acked;
    }
    eprintln!("12 kills, {total_acked} records acknowledged, {torn_tails} torn tails recovered");
}

/// The same with a gateway writing (a budget unit per call): after every
/// kill, every acknowledged call's decision is in the journal, the journal
/// verifies, and the state rebuilt from it holds exactly the budget units the
/// journal records (no unit forgotten, none invented).
#[test]
fn a_gateway_killed_at_random_restarts_with_the_same_state() {
    use toolgate_runtime::store::{rebuild, MemoryStore, Store as _};
    let path = scratch("sigkill-gateway");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..8 {
        let acked = run_and_kill(&path, &["gateway"], &mut seed);
        if let Err(Problem::Torn { .. }) = journal::verify_file(&path).expect("readable") {
            journal::recover_torn_tail(&path).expect("only the torn tail is removed");
        }
        let verified = journal::verify_file(&path)
            .expect("readable")
            .expect("round {round}: the journal verifies");
        let records: Vec<serde_json::Value> = verified
            .lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        let decided: std::collections::HashSet<&str> = records
            .iter()
            .filter(|r| r["kind"] == "decision")
            .filter_map(|r| r["body"]["call"].as_str())
            .collect();
        assert!(
            !acked.is_empty(),
            "round {round}: the gateway made progress"
        );
        let lost: Vec<&String> = acked
            .iter()
            .filter(|id| !decided.contains(id.as_str()))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged calls missing from the journal: {lost:?}"
        );
        let budgeted: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| r["kind"] == "decision" && r["body"]["budget_key"].is_string())
            .collect();
        let key = budgeted[0]["body"]["budget_key"].as_str().expect("key");
        let last = budgeted
            .iter()
            .filter_map(|r| r["body"]["at"].as_u64())
            .max()
            .expect("times");
        let units = budgeted.len() as u64;
        let store = MemoryStore::default();
        rebuild(&store, &verified.lines);
        let day = 86_400_000;
        // Full at `units` (so at least that many were rebuilt) but not at `units + 1` (so no more).
        assert!(
            !store.consume(key, units, day, last),
            "round {round}: fewer than {units} budget units were rebuilt"
        );
        assert!(
            store.consume(key, units + 1, day, last),
            "round {round}: more than {units} budget units were rebuilt"
        );
    }
}

/// Runs `journal-crash-writer PATH ARGS...`, waits for its first
/// acknowledgement (opening verifies the whole file, which grows every
/// round), kills it with SIGKILL at a pseudo-random moment after that, and
/// returns everything it acknowledged (the text after `acked `).
fn run_and_kill(path: &Path, args: &[&str], seed: &mut u64) -> Vec<String> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_journal-crash-writer"))
        .arg(path)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("writer starts");
    let stdout = child.stdout.take().expect("piped");
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(what) = line.strip_prefix("acked ") {
                    acked.lock().expect("lock").push(what.to_string());
                }
            }
        })
    };
    let started = std::time::Instant::now();
    while acked.lock().expect("lock").is_empty() && started.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    std::thread::sleep(std::time::Duration::from_millis(*seed % 100));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    reader.join().expect("reader");
    let acked = acked.lock().expect("lock").clone();
    acked
}

/// H4 (failed before the fix: both opens succeeded): a second writer on the same file is refused while the first one lives,
/// and the error names the holder's pid.
#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
    let path = scratch("lock");
    let (first, _) = open(&path, Vec::new()).expect("opens");
    let second = open(&path, Vec::new());
    let err = second.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains(&std::process::id().to_string()),
        "a second open must fail naming the holder's pid, got `{err}`"
    );
    drop(first);
    assert!(
        open(&path, Vec::new()).is_ok(),
        "the lock is released when the journal is dropped"
    );
}

/// H3 (failed before the fix: "not UTF-8"): a write cut inside a multi-byte character is a torn tail (not "not
/// UTF-8"), and it is recoverable.
#[test]
fn a_torn_tail_splitting_a_utf8_character_is_torn_and_recoverable() {
    let path = scratch("torn-utf8");
    write_records(&path, 3, 1, Vec::new());
    let mut bytes = std::fs::read(&path).expect("read");
    let whole = bytes.len();
    // A fourth record with non-ASCII text, cut inside its `€` (3 bytes).
    bytes.extend_from_slice("{\"seq\":4,\"body\":{\"name\":\"caf\u{e9} \u{20ac}".as_bytes());
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&path, &bytes).expect("write torn");
    assert_eq!(
        journal::verify_file(&path).expect("readable").map(|_| ()),
        Err(Problem::Torn { line: 4 })
    );
    journal::recover_torn_tail(&path).expect("recovers");
    assert_eq!(std::fs::read(&path).expect("read").len(), whole);
}

/// M10 (failed before the fix: a repair was reported): a journal ending in a stray blank line is not torn; "recovery" must
/// not claim a repair it does not make.
#[test]
fn a_stray_blank_line_is_not_reported_as_repaired() {
    let path = scratch("blank-line");
    write_records(&path, 3, 1, Vec::new());
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push('\n');
    std::fs::write(&path, &text).expect("write");
    assert!(
        journal::recover_torn_tail(&path).is_err(),
        "a blank last line is a real problem, not a torn record"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        text,
        "left alone"
    );
}

/// I2 (failed before the fix: no directory fsync): creating the journal file is made durable by an `fsync` of its
/// directory (without it, a machine crash can lose the file's directory entry
/// and with it every acknowledged record). Watched with `strace` on the real
/// writer process.
#[test]
fn creating_the_journal_fsyncs_its_directory() {
    let path = scratch("dir-fsync");
    let dir = path.parent().expect("dir").to_path_buf();
    let trace = dir.join("strace.out");
    let mut child = std::process::Command::new("strace")
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_journal-crash-writer"))
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("strace runs (the test needs it: apt-get install strace)");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = std::io::BufReader::new(stdout).lines();
    assert!(lines.next().is_some(), "the writer acknowledged a record");
    drop(lines); // the writer stops at its next acknowledgement (broken pipe)
    let _ = child.wait();
    let trace = std::fs::read_to_string(&trace).expect("strace output");
    let dir_sync = "fsync(";
    let synced = trace
        .lines()
        .filter(|l| l.contains(dir_sync))
        .any(|l| l.contains(&format!("<{}>)", dir.display())));
    assert!(synced, "no fsync of `{}` in:\n{trace}", dir.display());
}
