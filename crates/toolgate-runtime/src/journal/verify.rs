//! Verification of a journal's bytes: every record whole, numbered without
//! gaps, chained to the one before; and the recovery of a torn tail.

use super::{fsutil::io, Ack, JournalError};
use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::Path;
use thiserror::Error;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
