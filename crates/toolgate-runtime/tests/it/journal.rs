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

/// Where `scratch(name)` puts its journal (without clearing it).
fn scratch_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("journal")
        .join(name)
        .join("audit.jsonl")
}

fn scratch(name: &str) -> PathBuf {
    toolgate_testkit::scratch!("journal", name).join("audit.jsonl")
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
    use toolgate_runtime::store::{replay, MemoryStore, Store as _};
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
            .filter(|r| r["kind"] == "decision" && r["body"]["budget"]["key"].is_string())
            .collect();
        let key = budgeted[0]["body"]["budget"]["key"].as_str().expect("key");
        let last = budgeted
            .iter()
            .filter_map(|r| r["body"]["at"].as_u64())
            .max()
            .expect("times");
        let units = budgeted.len() as u64;
        let store = MemoryStore::default();
        replay(&store, &verified.lines).expect("replays");
        let day = 86_400_000;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let consume = |limit| {
            rt.block_on(store.consume("acme", key, limit, day, last))
                .unwrap()
        };
        // Full at `units` (so at least that many were rebuilt) but not at `units + 1` (so no more).
        assert!(
            !consume(units),
            "round {round}: fewer than {units} budget units were rebuilt"
        );
        assert!(
            consume(units + 1),
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

// ---- H1: signed checkpoints (every test below failed before the fix: no
// checkpoints existed and `Journal::open` accepted every tampered journal) ----

use toolgate_runtime::journal::{JournalError, RecordLines, SealConfig, SigningKeySource};

/// A sealed configuration with the key and checkpoint file next to `path`.
fn sealed(path: &Path) -> JournalConfig {
    let dir = path.parent().expect("dir");
    JournalConfig {
        seal: Some(SealConfig::new(
            SigningKeySource::File(dir.join("audit.key")),
            dir.join("audit.checkpoints"),
        )),
        ..JournalConfig::default()
    }
}

fn checkpoints(path: &Path) -> Vec<journal::Checkpoint> {
    let file = path.parent().expect("dir").join("audit.checkpoints");
    journal::read_checkpoint_lines(&file)
        .expect("checkpoints")
        .iter()
        .map(|l| journal::Checkpoint::parse(l).expect("a checkpoint"))
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// Appends `n` records (the first a `policy_load`) to a journal opened with
/// `config`, then drops it (a clean shutdown).
fn write_sealed(path: &Path, config: JournalConfig, n: u64) -> journal::Opened {
    let (journal, opened) =
        Journal::open(path, config, Box::new(RecordLines::default())).expect("opens");
    runtime().block_on(async {
        journal
            .append("policy_load", 1, serde_json::json!({ "policy": "p1" }))
            .await
            .expect("appends");
        for i in 1..n {
            journal
                .append("test", 1 + i, serde_json::json!({ "i": i }))
                .await
                .expect("appends");
        }
    });
    opened
}

fn reopen(path: &Path) -> Result<journal::Opened, JournalError> {
    Journal::open(path, sealed(path), Box::new(RecordLines::default())).map(|(_, o)| o)
}

fn lines_of(opened: &journal::Opened) -> Vec<String> {
    RecordLines::from_state(&opened.state)
}

#[test]
fn a_clean_shutdown_seals_everything_and_the_checkpoint_verifies() {
    let path = scratch("sealed-clean");
    write_sealed(&path, sealed(&path), 6);
    let cps = checkpoints(&path);
    let last = cps.last().expect("a checkpoint at shutdown");
    let verified = journal::verify_file(&path).expect("readable").expect("ok");
    assert_eq!(Some(last.seq), verified.head.as_ref().map(|h| h.seq));
    assert_eq!(
        Some(&last.head_hash),
        verified.head.as_ref().map(|h| &h.hash)
    );
    assert_eq!(last.policy_hash.as_deref(), Some("p1"));
    let key = std::fs::read_to_string(path.with_file_name("audit.key")).expect("key file");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(path.with_file_name("audit.key"))
            .expect("meta")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key file is private");
    assert_eq!(key.trim().len(), 64);
    let opened = reopen(&path).expect("an untouched journal opens");
    assert_eq!(lines_of(&opened).len(), 6);
    assert_eq!(opened.set_aside, None);
}

/// Seals 6 records, applies `edit` to the journal's lines, reopens.
fn tamper_sealed(
    name: &str,
    edit: impl FnOnce(&mut Vec<String>),
) -> (PathBuf, Result<journal::Opened, JournalError>) {
    let path = scratch(name);
    write_sealed(&path, sealed(&path), 6);
    let text = std::fs::read_to_string(&path).expect("read");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    edit(&mut lines);
    let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    std::fs::write(&path, text).expect("write");
    let opened = reopen(&path);
    (path, opened)
}

/// Re-chains `lines` from the first: what an attacker who edits a record and
/// recomputes every hash after it writes.
fn rechain(lines: &mut [String]) {
    let mut prev = journal::GENESIS.to_string();
    for l in lines.iter_mut() {
        let mut v: serde_json::Value = serde_json::from_str(l).expect("JSON");
        v["prev"] = serde_json::json!(prev);
        *l = v.to_string();
        prev = journal::sha256_hex(l.as_bytes());
    }
}

fn code(r: &Result<journal::Opened, JournalError>) -> String {
    match r {
        Ok(_) => "opened".into(),
        Err(e) => miette::Diagnostic::code(e)
            .map(|c| c.to_string())
            .unwrap_or_default(),
    }
}

#[test]
fn open_refuses_every_tampering_a_checkpoint_reveals() {
    let (_, cut) = tamper_sealed("t-cut", |l| l.truncate(4));
    assert_eq!(code(&cut), "toolgate::journal::truncated");
    let err = cut.expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "audit journal `{}` ends at record 4, but it was sealed up to record 6: records were removed",
            scratch_path("t-cut").display()
        )
    );
    let help = miette::Diagnostic::help(&err)
        .map(|h| h.to_string())
        .unwrap_or_default();
    assert!(help.contains("override reason"), "{help}");
    let (_, edited) = tamper_sealed("t-edit-last", |l| {
        l[5] = l[5].replace("\"i\":5", "\"i\":500");
    });
    assert_eq!(code(&edited), "toolgate::journal::rewritten");
    let (_, rechained) = tamper_sealed("t-rechain", |l| {
        l[2] = l[2].replace("\"i\":2", "\"i\":9");
        rechain(l);
    });
    assert_eq!(code(&rechained), "toolgate::journal::rewritten");
    let (_, emptied) = tamper_sealed("t-empty", Vec::clear);
    assert_eq!(code(&emptied), "toolgate::journal::missing");
    let path = scratch("t-delete");
    write_sealed(&path, sealed(&path), 6);
    std::fs::remove_file(&path).expect("delete");
    assert_eq!(code(&reopen(&path)), "toolgate::journal::missing");
}

#[test]
fn forged_records_after_the_last_checkpoint_are_set_aside() {
    let (path, opened) = tamper_sealed("t-forge", |l| {
        let mut last: serde_json::Value = serde_json::from_str(&l[5]).expect("JSON");
        for seq in 7..=8 {
            let prev = journal::sha256_hex(last.to_string().as_bytes());
            last = serde_json::json!({"seq": seq, "ts_ms": 9, "kind": "kill_switch", "prev": prev,
                "body": {"engaged": false}});
            l.push(last.to_string());
        }
    });
    let opened = opened.expect("opens, setting the forged records aside");
    let aside = opened.set_aside.clone().expect("set aside");
    assert_eq!((aside.count, aside.first_seq, aside.last_seq), (2, 7, 8));
    let backup = std::fs::read_to_string(&aside.backup).expect("backup");
    assert_eq!(backup.lines().count(), 2);
    assert_eq!(journal::sha256_hex(backup.as_bytes()), aside.sha256);
    assert_eq!(
        lines_of(&opened).len(),
        6,
        "the forged records are not applied"
    );
    let verified = journal::verify_file(&path).expect("readable").expect("ok");
    let first_new: serde_json::Value = serde_json::from_str(&verified.lines[6]).expect("JSON");
    assert_eq!(first_new["kind"], "unsealed_set_aside");
    assert_eq!(first_new["body"]["count"], 2);
    assert_eq!(opened.head.map(|h| h.seq), Some(7));
    assert_eq!(
        checkpoints(&path).last().map(|c| c.seq),
        Some(7),
        "the record is sealed"
    );
}

#[test]
fn an_override_opens_a_refused_journal_and_is_journaled() {
    let (path, cut) = tamper_sealed("t-override", |l| l.truncate(4));
    assert!(cut.is_err());
    let config = JournalConfig {
        override_reason: Some("restored from backup, ticket 42".into()),
        ..sealed(&path)
    };
    let (journal, opened) =
        Journal::open(&path, config, Box::new(RecordLines::default())).expect("overridden");
    drop(journal);
    assert_eq!(lines_of(&opened).len(), 4);
    let verified = journal::verify_file(&path).expect("readable").expect("ok");
    let first: serde_json::Value = serde_json::from_str(&verified.lines[4]).expect("JSON");
    assert_eq!(first["kind"], "journal_override");
    assert_eq!(first["body"]["reason"], "restored from backup, ticket 42");
    assert_eq!(first["body"]["code"], "toolgate::journal::truncated");
    assert!(reopen(&path).is_ok(), "sealed again after the override");
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let path = scratch("t-key");
    write_sealed(&path, sealed(&path), 3);
    let key = path.with_file_name("audit.key");
    std::fs::remove_file(&key).expect("rm key");
    assert_eq!(
        code(&reopen(&path)),
        "toolgate::journal::key",
        "a missing key is not recreated"
    );
    journal::generate_key_file(&key).expect("another key");
    assert_eq!(code(&reopen(&path)), "toolgate::journal::bad_checkpoint");
}

#[test]
fn checkpoints_come_every_n_records_after_sealed_appends_and_after_idle_time() {
    struct Shipped(Arc<Mutex<Vec<String>>>);
    impl AuditSink for Shipped {
        fn committed(&mut self, _: &str) {}
        fn checkpoint(&mut self, line: &str) {
            self.0.lock().expect("lock").push(line.to_string());
        }
    }
    let path = scratch("seal-cadence");
    let shipped = Arc::new(Mutex::new(Vec::new()));
    let mut config = sealed(&path);
    if let Some(s) = config.seal.as_mut() {
        s.every_records = 5;
        s.every = std::time::Duration::from_millis(200);
    }
    config.sinks = vec![Box::new(Shipped(shipped.clone()))];
    let (journal, _) = Journal::open(&path, config, Box::new(NoState)).expect("opens");
    let seqs = |p: &Path| checkpoints(p).iter().map(|c| c.seq).collect::<Vec<_>>();
    runtime().block_on(async {
        for i in 0..12 {
            journal
                .append("t", i, serde_json::json!({}))
                .await
                .expect("appends");
        }
        // Record 0 (the genesis hash): a new journal is sealed when it is created (R1).
        assert_eq!(seqs(&path), vec![0, 5, 10], "one every 5 records");
        let ack = journal
            .append_sealed("t", 13, serde_json::json!({}))
            .await
            .expect("appends");
        assert_eq!(
            seqs(&path).last(),
            Some(&ack.seq),
            "sealed before it was acknowledged"
        );
        journal
            .append("t", 14, serde_json::json!({}))
            .await
            .expect("appends");
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert_eq!(
            seqs(&path).last(),
            Some(&14),
            "an idle writer seals after `every`"
        );
    });
    drop(journal);
    let shipped: Vec<u64> = shipped
        .lock()
        .expect("lock")
        .iter()
        .map(|l| journal::Checkpoint::parse(l).expect("checkpoint").seq)
        .collect();
    assert_eq!(
        shipped,
        seqs(&path),
        "every checkpoint is shipped to the sinks"
    );
}

/// M2 (failed before the fix: the writer stopped for good after the first
/// error, so nothing was acknowledged after the limit was lifted): a write error (here a real one: the writer runs under a file-size
/// limit) refuses the records it could not write, leaves no partial record,
/// and the writer resumes once writing works again (the limit is lifted while
/// it runs).
#[test]
fn the_writer_resumes_after_a_transient_write_error() {
    let path = scratch("write-error");
    let script = format!(
        "trap '' XFSZ; ulimit -S -f 16; exec '{}' '{}' retry",
        env!("CARGO_BIN_EXE_journal-crash-writer"),
        path.display()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("writer starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |what: &str| -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(line) => {
                    let hit = line.starts_with(what);
                    seen.push(line);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => continue,
            }
        }
        panic!("no `{what}` within 20 s; saw {} lines", seen.len());
    };
    let mut seen = wait_for("refused");
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--fsize=unlimited"])
        .status()
        .expect("prlimit runs");
    assert!(status.success(), "prlimit lifts the limit");
    seen.extend(wait_for("acked"));
    let _ = child.kill();
    let _ = child.wait();
    seen.extend(rx.try_iter());
    let _ = reader.join();
    let max_acked = seen
        .iter()
        .filter_map(|l| l.strip_prefix("acked ")?.parse::<u64>().ok())
        .max()
        .expect("acknowledged records");
    let verified = journal::verify_file(&path)
        .expect("readable")
        .expect("no partial record was left in the file");
    assert!(max_acked <= verified.head.map_or(0, |h| h.seq));
}

// ---- M4: segments and snapshots (failed before the fix: there were no
// segments or snapshots, and a restart applied every record of the history) ----

/// Counts records; `applied` counts `apply` calls across restarts.
struct Counter {
    n: u64,
    applied: Arc<std::sync::atomic::AtomicU64>,
}

impl journal::StateMachine for Counter {
    fn apply(&mut self, _line: &str) -> Result<(), String> {
        self.n += 1;
        self.applied
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
    fn export(&self) -> serde_json::Value {
        serde_json::json!({ "n": self.n })
    }
    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.n = state["n"].as_u64().ok_or("no `n`")?;
        Ok(())
    }
}

fn segmented(path: &Path) -> JournalConfig {
    JournalConfig {
        segment_bytes: 8 << 10,
        ..sealed(path)
    }
}

fn counter() -> (Box<Counter>, Arc<std::sync::atomic::AtomicU64>) {
    let applied = Arc::new(std::sync::atomic::AtomicU64::new(0));
    (
        Box::new(Counter {
            n: 0,
            applied: applied.clone(),
        }),
        applied,
    )
}

fn files_named(path: &Path, infix: &str) -> usize {
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    std::fs::read_dir(path.parent().expect("dir"))
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}{infix}"))
        })
        .count()
}

#[test]
fn a_restart_reads_the_latest_snapshot_and_only_the_records_after_it() {
    let path = scratch("segments");
    let (state, _) = counter();
    let (journal, _) = Journal::open(&path, segmented(&path), state).expect("opens");
    runtime().block_on(async {
        for i in 0..600 {
            let body = serde_json::json!({ "i": i, "pad": "x".repeat(40) });
            journal.append("t", i, body).await.expect("appends");
        }
    });
    drop(journal);
    assert!(files_named(&path, ".seg-") >= 5, "rotated by size");
    assert_eq!(
        files_named(&path, ".snap-"),
        2,
        "the newest two snapshots are kept"
    );
    let (state, applied) = counter();
    let (_journal, opened) = Journal::open(&path, segmented(&path), state).expect("reopens");
    assert_eq!(opened.state["n"], 600, "snapshot + the records after it");
    let applied = applied.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        applied < 100,
        "a restart applies only the records after the snapshot, not {applied}"
    );
    let verified = journal::verify_file(&path)
        .expect("readable")
        .expect("verifies");
    assert_eq!(
        verified.lines.len(),
        600,
        "verification covers every segment"
    );
}

#[test]
fn a_record_changed_in_an_old_segment_is_found_by_a_full_audit() {
    let path = scratch("segments-audit");
    write_sealed(&path, segmented(&path), 300);
    let first = path.with_file_name("audit.jsonl.seg-00000000000000000001");
    let text = std::fs::read_to_string(&first).expect("first segment");
    std::fs::write(&first, text.replacen("\"i\":3", "\"i\":4", 1)).expect("tamper");
    // A restart reads only what follows the latest snapshot, so it does not
    // see this (docs/runtime.md says so); the full audit does.
    assert!(reopen(&path).is_ok());
    let options = journal::AuditOptions::default();
    let report = journal::audit(&path, &options).expect("audits");
    assert!(
        matches!(
            report.findings.first(),
            Some(journal::AuditFinding::Broken {
                problem: Problem::Chain { line: 5 },
                ..
            })
        ),
        "{:?}",
        report.findings
    );
}

#[test]
fn a_forged_snapshot_is_refused() {
    let path = scratch("segments-forged-snapshot");
    write_sealed(&path, segmented(&path), 300);
    let dir = path.parent().expect("dir");
    let newest = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".snap-"))
        .max()
        .expect("a snapshot");
    let text = std::fs::read_to_string(&newest).expect("snapshot");
    let mut lines: Vec<&str> = text.lines().collect();
    let forged = r#"["forged"]"#;
    lines[1] = forged;
    std::fs::write(&newest, lines.join("\n") + "\n").expect("forge");
    let opened = Journal::open(&path, segmented(&path), Box::new(RecordLines::default()));
    assert_eq!(
        code(&opened.map(|(_, o)| o)),
        "toolgate::journal::bad_snapshot"
    );
}

/// H1 with crashes: a sealed writer killed at random moments restarts from
/// its last checkpoint: every record up to it is applied, every record after
/// it (written but not sealed when the writer died) is set aside, never
/// applied, and reported.
#[test]
fn a_sealed_writer_killed_at_random_restarts_from_its_last_checkpoint() {
    let path = scratch("sigkill-sealed");
    let mut seed: u64 = 0x1234_5678_9abc_def1;
    let mut set_aside = 0;
    for round in 0..6 {
        let acked = run_and_kill(&path, &["sealed"], &mut seed);
        assert!(!acked.is_empty(), "round {round}: progress");
        if let Err(Problem::Torn { .. }) = journal::verify_file(&path).expect("readable") {
            journal::recover_torn_tail(&path).expect("only the torn tail is removed");
        }
        let head = journal::verify_file(&path)
            .expect("readable")
            .expect("verifies")
            .head
            .map_or(0, |h| h.seq);
        let sealed_seq = checkpoints(&path).last().map_or(0, |c| c.seq);
        let opened = reopen(&path).expect("a crashed sealed journal opens");
        assert_eq!(
            lines_of(&opened).len() as u64,
            sealed_seq,
            "round {round}: exactly the sealed records are applied"
        );
        match &opened.set_aside {
            Some(a) => {
                set_aside += 1;
                assert_eq!((a.first_seq, a.last_seq), (sealed_seq + 1, head));
            }
            None => assert_eq!(head, sealed_seq, "round {round}: nothing unsealed"),
        }
    }
    eprintln!("6 kills of a sealed writer, {set_aside} with unsealed records set aside");
}

/// A live file whose only line is torn (a crash during the first write after
/// a rotation) is refused, even under an override, and is repairable: never
/// appended to.
#[test]
fn a_torn_first_line_of_the_live_file_is_refused_and_repairable() {
    let path = scratch("segments-torn-first");
    write_sealed(&path, segmented(&path), 300);
    std::fs::write(&path, "{\"seq\":3").expect("torn live file");
    let config = JournalConfig {
        override_reason: Some("test".into()),
        ..segmented(&path)
    };
    let opened = Journal::open(&path, config, Box::new(NoState)).map(|(_, o)| o);
    assert_eq!(code(&opened), "toolgate::journal::broken");
    let repaired = journal::recover_torn_tail(&path)
        .expect("repairs")
        .expect("a repair");
    assert_eq!((repaired.kept, repaired.cut), (0, 8));
}

/// R1 of security review 2: a sealed writer killed on its first start, before
/// its first timed checkpoint, left records no checkpoint anchored, and every
/// later open refused the journal until an operator overrode it. A new
/// journal is now sealed when it is created, so its records are set aside
/// like any crash's and the journal opens.
#[test]
fn a_sealed_writer_killed_before_its_first_checkpoint_restarts() {
    let mut seed: u64 = 0x0bad_cafe_f00d_0001;
    for round in 0..6 {
        let path = scratch(&format!("sigkill-fresh-{round}"));
        let acked = run_and_kill(&path, &["sealed-late"], &mut seed);
        assert!(!acked.is_empty(), "round {round}: progress");
        if let Err(Problem::Torn { .. }) = journal::verify_file(&path).expect("readable") {
            journal::recover_torn_tail(&path).expect("only the torn tail is removed");
        }
        let opened = reopen(&path).expect("a journal killed on its first start opens");
        assert_eq!(checkpoints(&path).first().map(|c| c.seq), Some(0));
        let aside = opened
            .set_aside
            .as_ref()
            .expect("the unsealed records are set aside");
        assert_eq!(aside.first_seq, 1, "round {round}");
        assert!(aside.last_seq >= acked.len() as u64, "round {round}");
        assert!(lines_of(&opened).is_empty(), "round {round}");
        let again = reopen(&path).expect("and opens again");
        assert_eq!(again.set_aside, None, "round {round}");
    }
}

/// The modes of every file in `dir` that are not 0600.
fn not_private(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry"))
        .filter_map(|e| {
            let mode = e.metadata().expect("meta").permissions().mode() & 0o777;
            (mode != 0o600).then(|| format!("{:?} {mode:o}", e.file_name()))
        })
        .collect()
}

/// L3 of security review 2: the journal and its checkpoints were created
/// 0644, readable by every user of the machine. Every file a journal creates
/// (live file, segments, snapshots, checkpoints, key, lock, the backup of
/// what a crash left unsealed) is now 0600.
#[test]
fn every_file_of_a_journal_is_private() {
    let path = scratch("private-files");
    let dir = path.parent().expect("dir").to_path_buf();
    write_sealed(&path, segmented(&path), 300);
    let mut seed: u64 = 0x0600_0600_0600_0600;
    run_and_kill(&path, &["sealed-late"], &mut seed);
    if let Err(Problem::Torn { .. }) = journal::verify_file(&path).expect("readable") {
        journal::recover_torn_tail(&path).expect("only the torn tail is removed");
    }
    let opened = reopen(&path).expect("opens");
    assert!(
        opened.set_aside.is_some(),
        "a backup of the unsealed records"
    );
    assert!(files_named(&path, ".seg-") > 0 && files_named(&path, ".snap-") > 0);
    assert_eq!(not_private(&dir), Vec::<String>::new());
}
