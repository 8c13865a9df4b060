//! A full audit of a journal (every record of every segment) against the
//! checkpoints and heads an auditor holds: what `policyc audit verify` reports.

use super::seal::{self, Checkpoint};
use super::snapshot;
use super::verify::{self, Cursor};
use super::{fsutil, Ack, JournalError, Problem};
use ed25519_dalek::VerifyingKey;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What to check a journal against.
#[derive(Clone, Debug, Default)]
pub struct AuditOptions {
    /// A checkpoint file (needs `public_key`).
    pub checkpoints: Option<PathBuf>,
    /// The key the checkpoints must be signed with.
    pub public_key: Option<VerifyingKey>,
    /// A head the auditor kept (`seq`, `hash`).
    pub head: Option<Ack>,
}

/// What an audit found.
#[derive(Debug, Default)]
pub struct AuditReport {
    /// The chain is valid up to this record (0: no valid record).
    pub valid_up_to: u64,
    /// The last valid record.
    pub head: Option<Ack>,
    /// How many checkpoints (and heads) were checked.
    pub anchors: usize,
    /// The last checkpoint the journal matched.
    pub last_matched: Option<Checkpoint>,
    /// Everything wrong, in the order found.
    pub findings: Vec<AuditFinding>,
}

/// One thing wrong with a journal.
#[derive(Clone, Debug, Error, miette::Diagnostic)]
pub enum AuditFinding {
    /// The chain is broken.
    #[error("audit journal `{path}`: {problem}")]
    #[diagnostic(
        code(toolgate::audit::broken),
        help("records from this one on cannot be trusted; a torn last record can be removed with `policyc audit repair`")
    )]
    Broken {
        /// The journal.
        path: String,
        /// The problem.
        problem: Problem,
    },
    /// A checkpoint that does not verify.
    #[error("checkpoint file `{path}`, line {line}: {why}")]
    #[diagnostic(
        code(toolgate::audit::bad_checkpoint),
        help("a checkpoint the key did not sign proves nothing; was the checkpoint file edited, or is this the wrong key?")
    )]
    BadCheckpoint {
        /// The checkpoint file.
        path: String,
        /// The line.
        line: usize,
        /// Why.
        why: String,
    },
    /// A snapshot that does not verify.
    #[error("snapshot `{path}` does not verify: {why}")]
    #[diagnostic(
        code(toolgate::audit::bad_snapshot),
        help("a restart would refuse it; remove it only after finding out who wrote it")
    )]
    BadSnapshot {
        /// The snapshot file.
        path: String,
        /// Why.
        why: String,
    },
    /// The journal is shorter than an anchor.
    #[error(
        "the journal ends at record {head}, but {anchor} covers record {seq}: records were removed"
    )]
    #[diagnostic(
        code(toolgate::audit::truncated),
        help("the missing records may be in a set-aside or torn backup next to the journal, or in a shipped copy")
    )]
    Truncated {
        /// The journal's last valid record.
        head: u64,
        /// The anchor's seq.
        seq: u64,
        /// Which anchor.
        anchor: String,
    },
    /// A record differs from the one an anchor sealed.
    #[error("record {seq} is not the record {anchor} sealed: the journal was rewritten")]
    #[diagnostic(
        code(toolgate::audit::rewritten),
        help("compare with a shipped copy of the journal; every record from the first changed one on is suspect")
    )]
    Rewritten {
        /// The record.
        seq: u64,
        /// Which anchor.
        anchor: String,
    },
    /// Records no checkpoint covers.
    #[error(
        "records {first} to {last} ({count}) come after the last checkpoint: they are not sealed"
    )]
    #[diagnostic(
        code(toolgate::audit::unsealed),
        help("a running writer seals them within its checkpoint interval and at shutdown; otherwise anyone with file access could have written them")
    )]
    Unsealed {
        /// How many.
        count: u64,
        /// The first.
        first: u64,
        /// The last.
        last: u64,
    },
}

/// An anchor: a seq and the hash its record must have.
struct Anchor {
    hash: String,
    name: String,
    checkpoint: Option<Checkpoint>,
}

/// The checkpoints of `path` as anchors (signature-checked with `key`).
fn load_checkpoints(
    path: &Path,
    key: Option<&VerifyingKey>,
    report: &mut AuditReport,
) -> Result<Vec<(u64, Anchor)>, JournalError> {
    let mut anchors = Vec::new();
    for (i, line) in seal::read_checkpoint_lines(path)?.iter().enumerate() {
        let checked = Checkpoint::parse(line).and_then(|c| match key {
            Some(k) => c.verify(k, "").map(|()| c),
            None => Err("no public key to check it with".into()),
        });
        match checked {
            Ok(c) => anchors.push((
                c.seq,
                Anchor {
                    hash: c.head_hash.clone(),
                    name: format!("checkpoint {} (line {})", c.seq, i + 1),
                    checkpoint: Some(c),
                },
            )),
            Err(why) => report.findings.push(AuditFinding::BadCheckpoint {
                path: path.display().to_string(),
                line: i + 1,
                why,
            }),
        }
    }
    Ok(anchors)
}

/// Audits every record of the journal at `path` (all its segments).
pub fn audit(path: &Path, options: &AuditOptions) -> Result<AuditReport, JournalError> {
    let mut report = AuditReport::default();
    let anchors = anchors(path, options, &mut report)?;
    report.anchors = anchors.values().map(Vec::len).sum();
    let cursor = scan_all(path, &anchors, &mut report)?;
    report.valid_up_to = cursor.seq;
    report.head = cursor.head();
    for (seq, list) in anchors.range(cursor.seq.saturating_add(1)..) {
        for a in list {
            report.findings.push(AuditFinding::Truncated {
                head: cursor.seq,
                seq: *seq,
                anchor: a.name.clone(),
            });
        }
    }
    flag_unsealed(&mut report, options, cursor.seq);
    Ok(report)
}

/// Every anchor, by seq: the checkpoints, the snapshots (when a public key
/// is given) and the head.
fn anchors(
    path: &Path,
    options: &AuditOptions,
    report: &mut AuditReport,
) -> Result<BTreeMap<u64, Vec<Anchor>>, JournalError> {
    let mut anchors: BTreeMap<u64, Vec<Anchor>> = BTreeMap::new();
    if let Some(file) = &options.checkpoints {
        for (seq, a) in load_checkpoints(file, options.public_key.as_ref(), report)? {
            anchors.entry(seq).or_default().push(a);
        }
    }
    if let Some(key) = &options.public_key {
        for (seq, a) in load_snapshots(path, key, report)? {
            anchors.entry(seq).or_default().push(a);
        }
    }
    if let Some(head) = &options.head {
        let anchor = Anchor {
            hash: head.hash.clone(),
            name: "`--head`".into(),
            checkpoint: None,
        };
        anchors.entry(head.seq).or_default().push(anchor);
    }
    Ok(anchors)
}

/// The snapshots as anchors (each must verify with `key`).
fn load_snapshots(
    path: &Path,
    key: &VerifyingKey,
    report: &mut AuditReport,
) -> Result<Vec<(u64, Anchor)>, JournalError> {
    let mut anchors = Vec::new();
    for (seq, file) in snapshot::list(path)? {
        match snapshot::read(&file, key) {
            Ok(s) if s.checkpoint.seq == seq => anchors.push((
                seq,
                Anchor {
                    hash: s.checkpoint.head_hash,
                    name: format!("snapshot `{}`", file.display()),
                    checkpoint: None,
                },
            )),
            Ok(_) => report.findings.push(AuditFinding::BadSnapshot {
                path: file.display().to_string(),
                why: "its checkpoint is for another record".into(),
            }),
            Err(why) => report.findings.push(AuditFinding::BadSnapshot {
                path: file.display().to_string(),
                why,
            }),
        }
    }
    Ok(anchors)
}

/// Flags the records after the last checkpoint matched, when checkpoints
/// were given and the chain is whole.
fn flag_unsealed(report: &mut AuditReport, options: &AuditOptions, head: u64) {
    let broken = report
        .findings
        .iter()
        .any(|f| matches!(f, AuditFinding::Broken { .. }));
    let sealed = match (&report.last_matched, &options.checkpoints) {
        (Some(c), _) => Some(c.seq),
        (None, Some(_)) => Some(0),
        (None, None) => None,
    };
    if let Some(sealed) = sealed.filter(|s| !broken && head > *s) {
        report.findings.push(AuditFinding::Unsealed {
            count: head - sealed,
            first: sealed + 1,
            last: head,
        });
    }
}

/// Scans the journal's files in order, comparing records with anchors.
fn scan_all(
    path: &Path,
    anchors: &BTreeMap<u64, Vec<Anchor>>,
    report: &mut AuditReport,
) -> Result<Cursor, JournalError> {
    let mut cursor = Cursor::genesis();
    for file in super::segments::all_files(path)? {
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fsutil::io(&file, e)),
        };
        let scanned = verify::scan(&bytes, &mut cursor, &mut |r| {
            for a in anchors.get(&r.seq).into_iter().flatten() {
                if a.hash != r.hash {
                    report.findings.push(AuditFinding::Rewritten {
                        seq: r.seq,
                        anchor: a.name.clone(),
                    });
                } else if let Some(c) = &a.checkpoint {
                    report.last_matched = Some(c.clone());
                }
            }
            Ok(())
        });
        if let Err(f) = scanned {
            report.findings.push(AuditFinding::Broken {
                path: file.display().to_string(),
                problem: f.problem,
            });
            break;
        }
    }
    Ok(cursor)
}
