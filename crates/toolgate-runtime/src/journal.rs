//! The audit journal: one JSON object per line,
//! `{"seq":N,"ts_ms":T,"kind":"...","prev":"<hex>","body":{...}}`.
//!
//! `prev` is the SHA-256 of the previous line's bytes (64 zeros for the
//! first), so changing, removing or reordering any record breaks the chain at
//! the next one; the hash of the last line (the **head**) anchors the whole
//! file, so a service that keeps the head elsewhere also detects a truncated
//! tail. Records are written by one thread in batches (group commit): every
//! record waiting when a batch starts is written with one `write` and, when
//! the [`Fsync`] mode and the records' [`Durability`] ask for it, made
//! durable with one `fsync` before any of them is acknowledged. A record is
//! acknowledged only once it is in the file (handed to the operating system).
//!
//! One writer at a time: [`Journal::open`] takes an exclusive lock
//! (`<journal>.lock`, holding the writer's pid) for the writer's lifetime.
//! The writer keeps a [`StateMachine`] that every committed record is applied
//! to, so the state a restart rebuilds is the state the records describe.

mod audit;
mod fsutil;
mod lock;
mod open;
mod seal;
mod segments;
mod snapshot;
mod verify;
mod writer;

pub use audit::{audit, AuditFinding, AuditOptions, AuditReport};
/// An Ed25519 public key (verifies checkpoints).
pub use ed25519_dalek::VerifyingKey as PublicKey;
pub use seal::{
    generate_key_file, key_id, public_key, public_key_from_hex, public_key_hex,
    read_checkpoint_lines, Checkpoint, SealConfig, SigningKeySource,
};
/// Every file of the journal at `path`, in order: its sealed segments, then
/// the live file (which may not exist yet).
pub fn journal_files(path: &Path) -> Result<Vec<std::path::PathBuf>, JournalError> {
    segments::all_files(path)
}

pub use verify::{
    recover_torn_tail, sha256_hex, verify_bytes, verify_file, verify_text, Problem, Repaired,
    Verified, GENESIS,
};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::oneshot;

/// When the journal makes written records durable. Every mode writes a
/// record into the file (hands it to the operating system) before it is
/// acknowledged, so a crash of the process loses no acknowledged record; the
/// modes differ in what survives a crash of the machine (a power loss).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// `fsync` every batch before acknowledging it: every acknowledged record
    /// survives a crash of the machine.
    Always,
    /// `fsync` a batch before acknowledging it when one of its records asks
    /// for [`Durability::Durable`] or [`Durability::Sealed`] (the gateway asks
    /// for every record that precedes a state change or a write's execution);
    /// a record appended with [`Durability::Written`] (a read's decision, a
    /// result report) is acknowledged once written, and made durable by the
    /// next `fsync`, at the latest [`JournalConfig::lazy_sync`] ([`LAZY_SYNC`],
    /// 10 ms) after it was written. A crash of the machine loses at most the
    /// `Written` records of that last window, never one that a `Durable` or
    /// `Sealed` record followed.
    Writes,
    /// Leave flushing to the operating system: an acknowledged record survives
    /// a crash of the process, not of the machine (except records covered by
    /// a signed checkpoint: sealing syncs first). Faster.
    Never,
}

impl Fsync {
    /// `always`, `writes` or `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Writes => "writes",
            Fsync::Never => "never",
        }
    }

    /// The mode named `always`, `writes` or `never`.
    pub fn from_name(name: &str) -> Option<Fsync> {
        match name {
            "always" => Some(Fsync::Always),
            "writes" => Some(Fsync::Writes),
            "never" => Some(Fsync::Never),
            _ => None,
        }
    }
}

/// How long a record appended with [`Durability::Written`] may stay written
/// but not durable under [`Fsync::Writes`] (the default of
/// [`JournalConfig::lazy_sync`]).
pub const LAZY_SYNC: Duration = Duration::from_millis(10);

/// What one append waits for before it is acknowledged. The [`Fsync`] mode
/// decides what "durable" costs: under `Always` every record is durable,
/// under `Never` only sealed ones are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durability {
    /// In the file; made durable within [`LAZY_SYNC`] under [`Fsync::Writes`].
    Written,
    /// In the file and synced to disk (under `Always` and `Writes`).
    Durable,
    /// Synced and covered by a signed checkpoint (for a sealed journal; for
    /// an unsealed one, the same as `Durable`).
    Sealed,
}

/// What a committed record came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Its sequence number (1 for the first record of a journal).
    pub seq: u64,
    /// SHA-256 of its line: the journal's head after it.
    pub hash: String,
}

/// A service's own sink, told about every committed line (once it is as
/// durable as its append asked).
pub trait AuditSink: Send + 'static {
    /// Called once per committed record, in order.
    fn committed(&mut self, line: &str);
    /// Called with every signed checkpoint (a JSON line) once it is durable,
    /// so that checkpoints can be shipped to another machine.
    fn checkpoint(&mut self, _line: &str) {}
}

/// State derived from the journal's records. The writer keeps one and applies
/// every committed record to it, so that what a restart rebuilds is exact.
pub trait StateMachine: Send + 'static {
    /// Applies one record's line. Deterministic; an error makes
    /// [`Journal::open`] fail (fail closed).
    fn apply(&mut self, line: &str) -> Result<(), String>;
    /// The whole state as JSON.
    fn export(&self) -> serde_json::Value;
    /// Replaces the state with an exported one.
    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String>;
}

/// A [`StateMachine`] for callers that derive no state from the journal.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoState;

impl StateMachine for NoState {
    fn apply(&mut self, _line: &str) -> Result<(), String> {
        Ok(())
    }
    fn export(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn restore(&mut self, _state: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// A [`StateMachine`] whose state is every record's line (exported as a JSON
/// array of strings), for callers that rebuild their own state from raw
/// records (`store::rebuild`, tests). It holds the whole history in memory.
#[derive(Clone, Debug, Default)]
pub struct RecordLines(pub Vec<String>);

impl RecordLines {
    /// The lines of a state this machine exported.
    pub fn from_state(state: &serde_json::Value) -> Vec<String> {
        state
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl StateMachine for RecordLines {
    fn apply(&mut self, line: &str) -> Result<(), String> {
        self.0.push(line.to_string());
        Ok(())
    }
    fn export(&self) -> serde_json::Value {
        serde_json::json!(self.0)
    }
    fn restore(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.0 = RecordLines::from_state(state);
        Ok(())
    }
}

/// How a journal is written.
pub struct JournalConfig {
    /// When written records are made durable.
    pub fsync: Fsync,
    /// Sinks told about every committed record and checkpoint.
    pub sinks: Vec<Box<dyn AuditSink>>,
    /// Signed checkpoints; `None`: an unsealed journal (the hash chain only:
    /// tamper-evident against partial edits, not against someone who can
    /// rewrite the whole file).
    pub seal: Option<SealConfig>,
    /// Rotate the live file into a sealed segment (with a snapshot, for a
    /// sealed journal) when it grows past this many bytes (default 64 MiB).
    pub segment_bytes: u64,
    /// The operator's reason to open a journal that is inconsistent with its
    /// checkpoints; journaled as the session's first record (`journal_override`).
    pub override_reason: Option<String>,
    /// Under [`Fsync::Writes`], how long a record appended with
    /// [`Durability::Written`] may stay written but not synced (default
    /// [`LAZY_SYNC`], 10 ms; tests lengthen it to see the window).
    pub lazy_sync: Duration,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            fsync: Fsync::Always,
            sinks: Vec::new(),
            seal: None,
            segment_bytes: 64 << 20,
            override_reason: None,
            lazy_sync: LAZY_SYNC,
        }
    }
}

/// Records found after the last checkpoint at open, moved out of the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// How many records.
    pub count: u64,
    /// The first one's seq.
    pub first_seq: u64,
    /// The last one's seq.
    pub last_seq: u64,
    /// The file now holding them (next to the journal).
    pub backup: std::path::PathBuf,
    /// SHA-256 of the bytes cut.
    pub sha256: String,
}

/// Journal errors.
#[derive(Debug, Error, miette::Diagnostic)]
pub enum JournalError {
    /// The file could not be opened, read or written.
    #[error("audit journal `{path}`: {source}")]
    #[diagnostic(code(toolgate::journal::io))]
    Io {
        /// The journal file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another writer holds the journal.
    #[error("audit journal `{path}` is in use by another writer ({holder})")]
    #[diagnostic(
        code(toolgate::journal::locked),
        help("one writer at a time: stop the other process first (its lock is `<journal>.lock`)")
    )]
    Locked {
        /// The journal file.
        path: String,
        /// Who holds the lock (`pid N` when known).
        holder: String,
    },
    /// The existing journal does not verify; it is not appended to.
    #[error("audit journal `{path}` is broken: {problem}")]
    #[diagnostic(
        code(toolgate::journal::broken),
        help("run `policyc audit verify` on it; a journal is never repaired silently")
    )]
    Broken {
        /// The journal file.
        path: String,
        /// The first problem.
        problem: Problem,
    },
    /// The state machine refused a record while the journal was opened.
    #[error("audit journal `{path}`: record {seq} cannot be applied to the state: {reason}")]
    #[diagnostic(
        code(toolgate::journal::state),
        help("the state is never rebuilt past a record it cannot apply")
    )]
    State {
        /// The journal file.
        path: String,
        /// The record.
        seq: u64,
        /// What the state machine said.
        reason: String,
    },
    /// The signing key is missing or unusable.
    #[error("audit journal signing key: {what}")]
    #[diagnostic(
        code(toolgate::journal::key),
        help("the key is 64 hex digits (`policyc audit keygen`); keep it where an attacker cannot read it")
    )]
    Key {
        /// What is wrong.
        what: String,
    },
    /// The last checkpoint is not one the signing key made.
    #[error("checkpoint file `{path}`: the last checkpoint does not verify: {why}")]
    #[diagnostic(code(toolgate::journal::bad_checkpoint), help("{OVERRIDE_HELP}"))]
    BadCheckpoint {
        /// The checkpoint file.
        path: String,
        /// Why.
        why: String,
    },
    /// The journal is missing or empty although checkpoints exist.
    #[error("audit journal `{path}` is missing or empty, but it was sealed up to record {seq}")]
    #[diagnostic(code(toolgate::journal::missing), help("{OVERRIDE_HELP}"))]
    Missing {
        /// The journal.
        path: String,
        /// The last checkpoint's seq.
        seq: u64,
    },
    /// The journal ends before its last checkpoint: records were removed.
    #[error("audit journal `{path}` ends at record {head}, but it was sealed up to record {seq}: records were removed")]
    #[diagnostic(code(toolgate::journal::truncated), help("{OVERRIDE_HELP}"))]
    Truncated {
        /// The journal.
        path: String,
        /// Its last record.
        head: u64,
        /// The last checkpoint's seq.
        seq: u64,
    },
    /// The record at the last checkpoint is not the one that was sealed.
    #[error("audit journal `{path}`: record {seq} is not the record its checkpoint sealed: the journal was rewritten")]
    #[diagnostic(code(toolgate::journal::rewritten), help("{OVERRIDE_HELP}"))]
    Rewritten {
        /// The journal.
        path: String,
        /// The checkpoint's seq.
        seq: u64,
    },
    /// A sealed journal with records but no checkpoint at all.
    #[error("audit journal `{path}` has {records} records but no checkpoint seals them")]
    #[diagnostic(code(toolgate::journal::unanchored), help("{OVERRIDE_HELP}"))]
    Unanchored {
        /// The journal.
        path: String,
        /// How many records.
        records: u64,
    },
    /// A snapshot that does not verify.
    #[error("snapshot `{path}` does not verify: {why}")]
    #[diagnostic(code(toolgate::journal::bad_snapshot), help("{OVERRIDE_HELP}"))]
    BadSnapshot {
        /// The snapshot file.
        path: String,
        /// Why.
        why: String,
    },
    /// A sealed segment holds records after the last checkpoint.
    #[error("sealed segment `{path}` holds records after the last checkpoint (record {seq}): checkpoints were lost")]
    #[diagnostic(code(toolgate::journal::behind), help("{OVERRIDE_HELP}"))]
    Behind {
        /// The segment.
        path: String,
        /// The last checkpoint's seq.
        seq: u64,
    },
    /// A write failed; the record was not recorded (the writer goes on).
    #[error("audit journal could not record: {reason}")]
    #[diagnostic(
        code(toolgate::journal::refused),
        help("nothing was recorded, so nothing may happen; check the disk (space, permissions)")
    )]
    Refused {
        /// What failed.
        reason: String,
    },
    /// The writer thread has stopped (after an I/O error).
    #[error("audit journal writer has stopped; nothing more can be recorded")]
    #[diagnostic(code(toolgate::journal::stopped))]
    Stopped,
}

const OVERRIDE_HELP: &str = "the journal is not what its signed checkpoints say: compare it with \
`policyc audit verify LOG --checkpoints FILE --public-key KEY`; to open it anyway, give an \
override reason (`JournalConfig::override_reason`), which is journaled";

/// What opening a journal found in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Opened {
    /// [`StateMachine::export`] after every record already in the journal.
    pub state: serde_json::Value,
    /// The head when this session's appends start (after any record the
    /// opening itself wrote: `journal_override`, `unsealed_set_aside`).
    pub head: Option<Ack>,
    /// Records after the last checkpoint that were set aside (not applied).
    pub set_aside: Option<SetAside>,
}

/// An open journal. Cheap to clone; every clone appends to the same file.
/// When the last clone is dropped the writer finishes and releases the lock.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<writer::Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The last seq the writer synced to disk (see [`Journal::durable_seq`]).
    durable: Arc<AtomicU64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.tx.send(writer::Msg::Close);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Journal {
    /// Opens (or creates) a journal. The existing records must verify (a
    /// torn last record included: see [`recover_torn_tail`]); for a sealed
    /// journal, the journal must also match its last signed checkpoint (it is
    /// refused if missing, empty, shorter or rewritten, unless
    /// `override_reason` is given), and records after that checkpoint are set
    /// aside. Every other record is applied to `state`; [`Opened::state`] is
    /// its export. Fails with [`JournalError::Locked`] while another writer lives.
    pub fn open(
        path: &Path,
        config: JournalConfig,
        mut state: Box<dyn StateMachine>,
    ) -> Result<(Journal, Opened), JournalError> {
        let lock = lock::acquire(path)?;
        let mut prepared = open::prepare(path, &config, state.as_mut())?;
        let set_aside = prepared.set_aside.take();
        let exported = state.export();
        let durable = Arc::new(AtomicU64::new(0));
        let writer = writer::Writer::create(path, config, prepared, state, lock, durable.clone())?;
        let opened = Opened {
            state: exported,
            head: writer.head(),
            set_aside,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("toolgate-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| fsutil::io(path, e))?;
        let inner = Inner {
            tx,
            thread: Some(thread),
            durable,
        };
        Ok((
            Journal {
                inner: Arc::new(inner),
            },
            opened,
        ))
    }

    /// Appends a record; resolves once it is in the file and durable
    /// (synced, under [`Fsync::Always`] and [`Fsync::Writes`]): the same as
    /// [`Journal::append_with`] with [`Durability::Durable`]. `ts_ms` is the
    /// record's time in milliseconds since the epoch.
    pub async fn append(
        &self,
        kind: &str,
        ts_ms: u64,
        body: serde_json::Value,
    ) -> Result<Ack, JournalError> {
        self.append_with(kind, ts_ms, body, Durability::Durable)
            .await
    }

    /// Appends and writes a signed checkpoint covering this record (durably)
    /// before acknowledging. For an unsealed journal, the same as
    /// [`Journal::append`].
    pub async fn append_sealed(
        &self,
        kind: &str,
        ts_ms: u64,
        body: serde_json::Value,
    ) -> Result<Ack, JournalError> {
        self.append_with(kind, ts_ms, body, Durability::Sealed)
            .await
    }

    /// The seq of the last record synced to disk (0 before the first sync of
    /// this session): every record up to it survives a crash of the machine.
    pub fn durable_seq(&self) -> u64 {
        self.inner.durable.load(Ordering::Acquire)
    }

    /// Appends a record; resolves once it is as durable as `durability`
    /// asks under this journal's [`Fsync`] mode.
    pub async fn append_with(
        &self,
        kind: &str,
        ts_ms: u64,
        body: serde_json::Value,
        durability: Durability,
    ) -> Result<Ack, JournalError> {
        let (ack, rx) = oneshot::channel();
        let entry = writer::Entry {
            kind: kind.to_string(),
            body,
            ts_ms,
            durability,
            ack,
        };
        self.inner
            .tx
            .send(writer::Msg::Append(entry))
            .map_err(|_| JournalError::Stopped)?;
        rx.await
            .map_err(|_| JournalError::Stopped)?
            .map_err(|reason| JournalError::Refused { reason })
    }
}
