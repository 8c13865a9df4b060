//! Verification of a journal's bytes: every record whole, numbered without
//! gaps, chained to the one before; and the recovery of a torn tail.
//!
//! Everything works on bytes: a line is split at `\n` before it is decoded,
//! so a write cut inside a multi-byte character is a torn last line like any
//! other, and the byte offset of every line is known (recovery cuts there).

use super::{fsutil, lock, segments, Ack, JournalError};
use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The first thing wrong with a journal, by line: the record's position in
/// the whole journal (1-based; its expected `seq`).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Problem {
    /// The last line has no newline: a write was cut off.
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

/// What [`recover_torn_tail`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repaired {
    /// The torn record's line.
    pub line: u64,
    /// Where the journal file now ends (bytes).
    pub kept: u64,
    /// How many bytes were cut.
    pub cut: u64,
    /// The file holding the bytes that were cut.
    pub backup: PathBuf,
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

/// Where a chain stands: the last record's seq (0 before the first) and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub seq: u64,
    pub hash: String,
}

impl Cursor {
    /// Before the first record.
    pub(crate) fn genesis() -> Cursor {
        Cursor {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }

    /// The head this cursor stands at (`None` before the first record).
    pub(crate) fn head(&self) -> Option<Ack> {
        (self.seq > 0).then(|| Ack {
            seq: self.seq,
            hash: self.hash.clone(),
        })
    }
}

/// One verified record of a scan.
pub(crate) struct Record<'a> {
    /// Its seq.
    pub seq: u64,
    /// Its line, without the newline.
    pub line: &'a str,
    /// SHA-256 of the line.
    pub hash: &'a str,
    /// Byte offset of the line in the scanned bytes.
    pub start: usize,
}

/// A scan's first problem and the byte offset of the line it is in.
#[derive(Debug)]
pub(crate) struct Failure {
    pub problem: Problem,
    pub offset: usize,
}

/// Checks that the records in `bytes` continue the chain at `cursor`
/// (advancing it), calling `each` with every verified record.
pub(crate) fn scan(
    bytes: &[u8],
    cursor: &mut Cursor,
    each: &mut dyn FnMut(&Record<'_>) -> Result<(), Problem>,
) -> Result<(), Failure> {
    let mut start = 0;
    while start < bytes.len() {
        let line_no = cursor.seq.saturating_add(1);
        let fail = |problem| Failure {
            problem,
            offset: start,
        };
        let rest = bytes.get(start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|b| *b == b'\n') else {
            return Err(fail(Problem::Torn { line: line_no }));
        };
        let raw = rest.get(..len).unwrap_or_default();
        let line = check_line(raw, cursor).map_err(fail)?;
        let hash = sha256_hex(raw);
        let record = Record {
            seq: line_no,
            line,
            hash: &hash,
            start,
        };
        each(&record).map_err(fail)?;
        cursor.seq = line_no;
        cursor.hash = hash;
        start += len + 1;
    }
    Ok(())
}

/// The fields of a record that verification reads.
#[derive(serde::Deserialize)]
struct RecordHead<'a> {
    seq: Option<u64>,
    #[serde(borrow)]
    prev: Option<&'a str>,
}

/// One whole line: a record numbered and chained right after `cursor`.
fn check_line<'a>(raw: &'a [u8], cursor: &Cursor) -> Result<&'a str, Problem> {
    let line_no = cursor.seq.saturating_add(1);
    let malformed = |why: String| Problem::Malformed { line: line_no, why };
    let line = std::str::from_utf8(raw).map_err(|_| malformed("not UTF-8".into()))?;
    if line.is_empty() {
        return Err(malformed("empty line".into()));
    }
    if !line.starts_with('{') {
        return Err(malformed("not a JSON object".into()));
    }
    // Only `seq` and `prev` are read (the body is skipped, not built): this
    // is the cost of every restart and every audit.
    let record: RecordHead<'_> =
        serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
    let seq = record.seq.ok_or_else(|| malformed("no `seq`".into()))?;
    if seq != line_no {
        return Err(Problem::Sequence {
            line: line_no,
            found: seq,
            expected: line_no,
        });
    }
    if record.prev != Some(cursor.hash.as_str()) {
        return Err(Problem::Chain { line: line_no });
    }
    Ok(line)
}

/// Verifies a journal's text: every record whole, numbered from 1 without
/// gaps, chained to the one before. Reports the first problem.
pub fn verify_text(text: &str) -> Result<Verified, Problem> {
    verify_bytes(text.as_bytes())
}

/// [`verify_text`] on bytes.
pub fn verify_bytes(bytes: &[u8]) -> Result<Verified, Problem> {
    let mut lines = Vec::new();
    let mut cursor = Cursor::genesis();
    scan(bytes, &mut cursor, &mut |r| {
        lines.push(r.line.to_string());
        Ok(())
    })
    .map_err(|f| f.problem)?;
    Ok(Verified {
        lines,
        head: cursor.head(),
    })
}

/// Verifies a journal: every sealed segment and the live file `path`, as
/// one chain. The live file must exist.
pub fn verify_file(path: &Path) -> Result<Result<Verified, Problem>, JournalError> {
    std::fs::metadata(path).map_err(|e| fsutil::io(path, e))?;
    let mut lines = Vec::new();
    let mut cursor = Cursor::genesis();
    for file in segments::all_files(path)? {
        let bytes = segments::read(&file)?;
        let scanned = scan(&bytes, &mut cursor, &mut |r| {
            lines.push(r.line.to_string());
            Ok(())
        });
        if let Err(f) = scanned {
            return Ok(Err(f.problem));
        }
    }
    Ok(Ok(Verified {
        lines,
        head: cursor.head(),
    }))
}

/// The cursor before the live file's first record: from that record, else
/// from the end of the last sealed segment, else the genesis.
fn live_start(path: &Path, live: &[u8]) -> Result<Cursor, JournalError> {
    if let Some(c) = segments::start_of(live) {
        return Ok(c);
    }
    let Some((_, last)) = segments::sealed_segments(path)?.pop() else {
        return Ok(Cursor::genesis());
    };
    let bytes = segments::read(&last)?;
    let mut cursor = segments::start_of(&bytes).unwrap_or_else(Cursor::genesis);
    scan(&bytes, &mut cursor, &mut |_| Ok(())).map_err(|f| JournalError::Broken {
        path: last.display().to_string(),
        problem: f.problem,
    })?;
    Ok(cursor)
}

/// Removes a torn last record of the live file (one a crash cut off before
/// it was written whole, so never acknowledged), after saving the bytes it cuts to a backup
/// file next to the journal; says what it did. `None`: the journal verifies
/// and nothing was changed. Any other problem is returned as an error and
/// nothing is changed. Takes the writer lock, so never runs under a writer.
pub fn recover_torn_tail(path: &Path) -> Result<Option<Repaired>, JournalError> {
    let _lock = lock::acquire(path)?;
    let bytes = std::fs::read(path).map_err(|e| fsutil::io(path, e))?;
    let mut cursor = live_start(path, &bytes)?;
    let failure = match scan(&bytes, &mut cursor, &mut |_| Ok(())) {
        Ok(()) => return Ok(None),
        Err(f) => f,
    };
    let Problem::Torn { line } = failure.problem else {
        return Err(JournalError::Broken {
            path: path.display().to_string(),
            problem: failure.problem,
        });
    };
    let cut = bytes.get(failure.offset..).unwrap_or_default();
    let backup = fsutil::write_backup(path, ".torn", cut)?;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| fsutil::io(path, e))?;
    let kept = failure.offset as u64;
    file.set_len(kept)
        .and_then(|()| file.sync_all())
        .map_err(|e| fsutil::io(path, e))?;
    Ok(Some(Repaired {
        line,
        kept,
        cut: cut.len() as u64,
        backup,
    }))
}
