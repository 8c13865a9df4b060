//! The audit journal: one JSON object per line,
//! `{"seq":N,"ts_ms":T,"kind":"...","prev":"<hex>","body":{...}}`.
//!
//! `prev` is the SHA-256 of the previous line's bytes (64 zeros for the
//! first), so changing, removing or reordering any record breaks the chain at
//! the next one; the hash of the last line (the **head**) anchors the whole
//! file, so a service that keeps the head elsewhere also detects a truncated
//! tail. Records are written by one thread in batches (group commit): every
//! record waiting when a batch starts is written with one `write` and made
//! durable with one `fsync` (under [`Fsync::Always`]) before any of them is
//! acknowledged. A record is acknowledged only once it is in the file.

use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::mpsc;
use thiserror::Error;
use tokio::sync::oneshot;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// When the journal makes written records durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// `fsync` every batch before acknowledging it: an acknowledged record
    /// survives a crash of the process or of the machine.
    Always,
    /// Leave flushing to the operating system: an acknowledged record survives
    /// a crash of the process, not of the machine. Faster.
    Never,
}

/// What a committed record came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Its sequence number (1 for the first record of a journal).
    pub seq: u64,
    /// SHA-256 of its line: the journal's head after it.
    pub hash: String,
}

/// A service's own sink, told about every committed line (after it is durable).
pub trait AuditSink: Send + 'static {
    /// Called once per committed record, in order.
    fn committed(&mut self, line: &str);
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
    /// The writer thread has stopped (after an I/O error).
    #[error("audit journal writer has stopped; nothing more can be recorded")]
    #[diagnostic(code(toolgate::journal::stopped))]
    Stopped,
}

/// The first thing wrong with a journal, by line (1-based).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Problem {
    /// The last line has no newline or is not a whole record: a write was cut off.
    #[error("line {line}: torn last record (the file ends inside it)")]
    Torn {
        /// The line.
        line: u64,
    },
    /// A line is not a journal record.
    #[error("line {line}: not a journal record ({why})")]
    Malformed {
        /// The line.
        line: u64,
        /// Why.
        why: String,
    },
    /// A sequence number out of order.
    #[error("line {line}: sequence number {found}, expected {expected}")]
    Sequence {
        /// The line.
        line: u64,
        /// What it says.
        found: u64,
        /// What it should say.
        expected: u64,
    },
    /// `prev` is not the hash of the line before: something before it changed.
    #[error("line {line}: hash chain broken (`prev` does not match the previous record)")]
    Chain {
        /// The line.
        line: u64,
    },
}

/// A verified journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Every record's line, in order.
    pub lines: Vec<String>,
    /// The last record's seq and hash (`None` for an empty journal).
    pub head: Option<Ack>,
}

/// SHA-256 of `bytes` in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Verifies a journal's text: every record whole, numbered from 1 without
/// gaps, chained to the one before. Reports the first problem.
pub fn verify_text(text: &str) -> Result<Verified, Problem> {
    let mut lines = Vec::new();
    let mut prev = GENESIS.to_string();
    let mut head = None;
    let mut rest = text;
    let mut n = 0u64;
    while !rest.is_empty() {
        n += 1;
        let Some(end) = rest.find('\n') else {
            return Err(Problem::Torn { line: n });
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        let record: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if rest.is_empty() && !line.ends_with('}') => {
                return Err(Problem::Torn { line: n })
            }
            Err(e) => {
                return Err(Problem::Malformed {
                    line: n,
                    why: e.to_string(),
                })
            }
        };
        let seq = record["seq"].as_u64().ok_or_else(|| Problem::Malformed {
            line: n,
            why: "no `seq`".into(),
        })?;
        if seq != n {
            return Err(Problem::Sequence {
                line: n,
                found: seq,
                expected: n,
            });
        }
        if record["prev"].as_str() != Some(prev.as_str()) {
            return Err(Problem::Chain { line: n });
        }
        prev = sha256_hex(line.as_bytes());
        head = Some(Ack {
            seq,
            hash: prev.clone(),
        });
        lines.push(line.to_string());
    }
    Ok(Verified { lines, head })
}

/// Verifies a journal file.
pub fn verify_file(path: &Path) -> Result<Result<Verified, Problem>, JournalError> {
    let bytes = std::fs::read(path).map_err(|source| io(path, source))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(verify_text(text)),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            Ok(Err(Problem::Malformed {
                line,
                why: "not UTF-8".into(),
            }))
        }
    }
}

fn io(path: &Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        path: path.display().to_string(),
        source,
    }
}

struct Entry {
    kind: String,
    body: serde_json::Value,
    ts_ms: u64,
    ack: oneshot::Sender<Result<Ack, ()>>,
}

/// An open journal. Cheap to clone; every clone appends to the same file.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Entry>,
}

/// What opening a journal found in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The records already there (for rebuilding state).
    pub lines: Vec<String>,
    /// The head before this session's first append.
    pub head: Option<Ack>,
}

/// Removes a torn last record (one a crash cut off before it was written
/// whole, so never acknowledged) and returns the problem it fixed. Any other
/// problem is returned as an error and nothing is changed.
pub fn recover_torn_tail(path: &Path) -> Result<Option<Problem>, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    match verify_text(&text) {
        Ok(_) => Ok(None),
        Err(Problem::Torn { line }) => {
            let keep = text.rfind('\n').map_or(0, |i| i + 1);
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| io(path, e))?;
            file.set_len(keep as u64).map_err(|e| io(path, e))?;
            file.sync_all().map_err(|e| io(path, e))?;
            Ok(Some(Problem::Torn { line }))
        }
        Err(problem) => Err(JournalError::Broken {
            path: path.display().to_string(),
            problem,
        }),
    }
}

impl Journal {
    /// Opens (or creates) a journal. An existing file must verify; a broken
    /// one, including one with a torn last record, is an error and is left alone.
    pub fn open(
        path: &Path,
        fsync: Fsync,
        sinks: Vec<Box<dyn AuditSink>>,
    ) -> Result<(Journal, Opened), JournalError> {
        let existing = match std::fs::metadata(path) {
            Ok(_) => match verify_file(path)? {
                Ok(v) => v,
                Err(problem) => {
                    return Err(JournalError::Broken {
                        path: path.display().to_string(),
                        problem,
                    })
                }
            },
            Err(_) => Verified {
                lines: Vec::new(),
                head: None,
            },
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            file,
            fsync,
            seq: existing.head.as_ref().map_or(0, |h| h.seq),
            prev: existing
                .head
                .as_ref()
                .map_or_else(|| GENESIS.to_string(), |h| h.hash.clone()),
            sinks,
        };
        std::thread::Builder::new()
            .name("toolgate-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| io(path, e))?;
        Ok((
            Journal { tx },
            Opened {
                lines: existing.lines,
                head: existing.head,
            },
        ))
    }

    /// Appends a record; resolves once it is in the file (and durable under
    /// [`Fsync::Always`]). `ts_ms` is the record's time in milliseconds since the epoch.
    pub async fn append(
        &self,
        kind: &str,
        ts_ms: u64,
        body: serde_json::Value,
    ) -> Result<Ack, JournalError> {
        let (ack, rx) = oneshot::channel();
        let entry = Entry {
            kind: kind.to_string(),
            body,
            ts_ms,
            ack,
        };
        self.tx.send(entry).map_err(|_| JournalError::Stopped)?;
        rx.await
            .map_err(|_| JournalError::Stopped)?
            .map_err(|()| JournalError::Stopped)
    }
}

impl Journal {
    /// Appends a record that grants or spends state. Sealing (a signed
    /// checkpoint before the acknowledgement) is not implemented yet in this
    /// version: it is an ordinary append.
    pub async fn append_sealed(
        &self,
        kind: &str,
        ts_ms: u64,
        body: serde_json::Value,
    ) -> Result<Ack, JournalError> {
        self.append(kind, ts_ms, body).await
    }
}

struct Writer {
    file: File,
    fsync: Fsync,
    seq: u64,
    prev: String,
    sinks: Vec<Box<dyn AuditSink>>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Entry>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            if self.commit(batch).is_err() {
                // The file may hold a partial batch; refuse everything from now on.
                return;
            }
        }
    }

    fn commit(&mut self, batch: Vec<Entry>) -> Result<(), ()> {
        let mut text = String::new();
        let mut acks = Vec::with_capacity(batch.len());
        let mut lines = Vec::with_capacity(batch.len());
        for e in batch {
            self.seq += 1;
            let line = serde_json::json!({
                "seq": self.seq, "ts_ms": e.ts_ms, "kind": e.kind, "prev": self.prev, "body": e.body,
            })
            .to_string();
            self.prev = sha256_hex(line.as_bytes());
            text.push_str(&line);
            text.push('\n');
            acks.push((
                e.ack,
                Ack {
                    seq: self.seq,
                    hash: self.prev.clone(),
                },
            ));
            lines.push(line);
        }
        let written = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| match self.fsync {
                Fsync::Always => self.file.sync_data(),
                Fsync::Never => Ok(()),
            });
        if written.is_err() {
            for (ack, _) in acks {
                let _ = ack.send(Err(()));
            }
            return Err(());
        }
        for line in &lines {
            for sink in &mut self.sinks {
                sink.committed(line);
            }
        }
        for (ack, a) in acks {
            let _ = ack.send(Ok(a));
        }
        Ok(())
    }
}
