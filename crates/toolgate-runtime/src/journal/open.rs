//! Opening a journal: verify it against the last signed checkpoint, restore
//! the latest snapshot and apply the records after it up to the checkpoint,
//! and set aside the records after the checkpoint (or refuse, unless the
//! operator overrides).

use super::seal::{self, Checkpoint};
use super::snapshot::{self, Snapshot};
use super::verify::{self, Cursor};
use super::StateMachine;
use super::GENESIS;
use super::{fsutil, segments, sha256_hex, Ack, JournalConfig, JournalError, Problem, SetAside};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What the writer starts from.
pub(super) struct Prepared {
    /// The head after verification (and setting aside).
    pub head: Option<Ack>,
    /// The last sealed seq (0 if none).
    pub sealed_seq: u64,
    /// `body.policy` of the last `policy_load` applied.
    pub policy_hash: Option<String>,
    /// Records to write (sealed) before anything else: override, set-aside.
    pub prelude: Vec<(String, Value)>,
    /// What was set aside.
    pub set_aside: Option<SetAside>,
    /// The signing key, for a sealed journal.
    pub key: Option<SigningKey>,
    /// The seq of the live file's first record (or of the next record).
    pub live_first: u64,
}

/// The signing key, the last checkpoint (verified), and the finding that
/// it does not verify.
type Sealing = (Option<SigningKey>, Option<Checkpoint>, Option<JournalError>);

/// The last checkpoint, verified; or the finding that it does not verify.
fn last_checkpoint(config: &JournalConfig) -> Result<Sealing, JournalError> {
    let Some(sealing) = &config.seal else {
        return Ok((None, None, None));
    };
    let line = seal::last_checkpoint_line(&sealing.checkpoints)?;
    let key = seal::load_key(&sealing.key, line.is_none())?;
    let Some(line) = line else {
        return Ok((Some(key), None, None));
    };
    let checked = Checkpoint::parse(&line).and_then(|c| {
        c.verify(&key.verifying_key(), "")?;
        Ok(c)
    });
    match checked {
        Ok(c) => Ok((Some(key), Some(c), None)),
        Err(why) => {
            let finding = JournalError::BadCheckpoint {
                path: sealing.checkpoints.display().to_string(),
                why,
            };
            Ok((Some(key), None, Some(finding)))
        }
    }
}

/// Which records to read and apply.
struct Plan {
    /// The files to read, in order (the last is the live file).
    files: Vec<PathBuf>,
    /// Records up to this seq are in the snapshot (0: none).
    snapshot_seq: u64,
    /// The snapshot's head hash.
    snapshot_hash: Option<String>,
    /// Apply records up to here; later ones are set aside.
    limit: u64,
    /// The last checkpoint's seq (0: none).
    checkpoint_seq: u64,
}

/// The records the scan saw, beyond what it applied.
#[derive(Default)]
struct Scanned {
    head: Option<Ack>,
    /// Hash of the record at the checkpoint's seq.
    at_checkpoint: Option<String>,
    /// Hash of the record at the snapshot's seq.
    at_snapshot: Option<String>,
    /// File index, byte offset and seq of the first record not applied.
    rest: Option<(usize, usize, u64)>,
    /// The live file's first seq, if it holds records.
    live_first: Option<u64>,
    /// Whether any record was read.
    scanned: bool,
    policy_hash: Option<String>,
}

/// The files holding the records after the snapshot: from the newest file
/// whose first record is at or before the one after the snapshot.
fn plan_files(path: &Path, snapshot_seq: u64) -> Result<Vec<PathBuf>, JournalError> {
    let files = segments::all_files(path)?;
    if snapshot_seq == 0 {
        return Ok(files);
    }
    let live = segments::read(path)?;
    if segments::start_of(&live).is_some_and(|c| c.seq <= snapshot_seq) {
        return Ok(vec![path.to_path_buf()]);
    }
    let from = segments::sealed_segments(path)?
        .iter()
        .rposition(|(first, _)| *first <= snapshot_seq.saturating_add(1))
        .unwrap_or(0);
    Ok(files
        .get(from..)
        .map(<[PathBuf]>::to_vec)
        .unwrap_or_default())
}

fn apply(
    path: &Path,
    state: &mut dyn StateMachine,
    seq: u64,
    line: &str,
    policy: &mut Option<String>,
) -> Result<(), JournalError> {
    if line.contains("\"policy_load\"") {
        if let Ok(r) = serde_json::from_str::<Value>(line) {
            if let (Some("policy_load"), Some(p)) =
                (r["kind"].as_str(), r["body"]["policy"].as_str())
            {
                *policy = Some(p.to_string());
            }
        }
    }
    state.apply(line).map_err(|reason| JournalError::State {
        path: path.display().to_string(),
        seq,
        reason,
    })
}

/// Verifies the planned files and applies the records after the snapshot
/// up to the limit to `state`.
fn scan(
    plan: &Plan,
    state: &mut dyn StateMachine,
    policy: Option<String>,
) -> Result<Scanned, JournalError> {
    let mut s = Scanned {
        policy_hash: policy,
        ..Scanned::default()
    };
    let mut cursor: Option<Cursor> = None;
    let last = plan.files.len().saturating_sub(1);
    for (i, file) in plan.files.iter().enumerate() {
        let bytes = segments::read(file)?;
        let mut c = match cursor.take() {
            Some(c) => c,
            None if plan.snapshot_seq == 0 => Cursor::genesis(),
            None => match segments::start_of(&bytes) {
                Some(c) => c,
                None if bytes.is_empty() => continue,
                // Bytes that do not start with a record: never appended to.
                None => {
                    return Err(JournalError::Broken {
                        path: file.display().to_string(),
                        problem: first_line_problem(&bytes, plan.snapshot_seq.saturating_add(1)),
                    })
                }
            },
        };
        note(plan, &mut s, c.seq, &c.hash);
        if i == last {
            s.live_first = segments::start_of(&bytes).map(|c| c.seq.saturating_add(1));
        }
        scan_file(file, &bytes, i, plan, &mut c, state, &mut s)?;
        s.scanned = true;
        cursor = Some(c);
    }
    s.head = match cursor {
        Some(c) => c.head(),
        None => plan.snapshot_hash.as_ref().map(|h| Ack {
            seq: plan.snapshot_seq,
            hash: h.clone(),
        }),
    };
    Ok(s)
}

/// What is wrong with a file whose first line is not a record.
fn first_line_problem(bytes: &[u8], line: u64) -> Problem {
    if bytes.contains(&b'\n') {
        Problem::Malformed {
            line,
            why: "the first line of the file is not a record".into(),
        }
    } else {
        Problem::Torn { line }
    }
}

/// Remembers the hashes at the checkpoint's and the snapshot's seq.
fn note(plan: &Plan, s: &mut Scanned, seq: u64, hash: &str) {
    if seq > 0 && seq == plan.checkpoint_seq {
        s.at_checkpoint = Some(hash.to_string());
    }
    if seq > 0 && seq == plan.snapshot_seq {
        s.at_snapshot = Some(hash.to_string());
    }
}

fn scan_file(
    file: &Path,
    bytes: &[u8],
    index: usize,
    plan: &Plan,
    cursor: &mut Cursor,
    state: &mut dyn StateMachine,
    s: &mut Scanned,
) -> Result<(), JournalError> {
    let mut refused = None;
    let scanned = verify::scan(bytes, cursor, &mut |r| {
        note(plan, s, r.seq, r.hash);
        if r.seq <= plan.snapshot_seq {
            return Ok(());
        }
        if r.seq > plan.limit {
            s.rest.get_or_insert((index, r.start, r.seq));
            return Ok(());
        }
        apply(file, state, r.seq, r.line, &mut s.policy_hash).map_err(|e| {
            refused = Some(e);
            Problem::Chain { line: r.seq }
        })
    });
    if let Some(e) = refused {
        return Err(e);
    }
    scanned.map_err(|f| JournalError::Broken {
        path: file.display().to_string(),
        problem: f.problem,
    })
}

/// Whether any file of the journal holds anything.
fn any_data(path: &Path) -> Result<bool, JournalError> {
    Ok(segments::all_files(path)?
        .iter()
        .any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0)))
}

/// What is wrong with the journal relative to its last checkpoint, if anything.
fn finding(
    path: &Path,
    s: &Scanned,
    plan: &Plan,
    checkpoint: Option<&Checkpoint>,
    sealed: bool,
    data: bool,
) -> Option<JournalError> {
    let p = path.display().to_string();
    let head = s.head.as_ref().map_or(0, |h| h.seq);
    if let Some(h) = &plan.snapshot_hash {
        // The records read must continue the snapshot's record exactly.
        let continues = match &s.at_snapshot {
            Some(found) => found == h,
            None => !s.scanned,
        };
        if !continues {
            return Some(JournalError::Rewritten {
                path: p,
                seq: plan.snapshot_seq,
            });
        }
    }
    match checkpoint {
        None if sealed && head > 0 => Some(JournalError::Unanchored {
            path: p,
            records: head,
        }),
        None => None,
        // The checkpoint a new journal is sealed with: records after it are set aside.
        Some(c) if c.seq == 0 => {
            (c.head_hash != GENESIS).then_some(JournalError::Rewritten { path: p, seq: 0 })
        }
        Some(c) if !data => Some(JournalError::Missing {
            path: p,
            seq: c.seq,
        }),
        Some(c) if head < c.seq => Some(JournalError::Truncated {
            path: p,
            head,
            seq: c.seq,
        }),
        Some(c) if s.at_checkpoint.as_deref() != Some(c.head_hash.as_str()) => {
            Some(JournalError::Rewritten {
                path: p,
                seq: c.seq,
            })
        }
        Some(_) => None,
    }
}

/// Verifies the journal at `path` against its last checkpoint and rebuilds
/// `state` from it; see [`super::Journal::open`].
pub(super) fn prepare(
    path: &Path,
    config: &JournalConfig,
    state: &mut dyn StateMachine,
) -> Result<Prepared, JournalError> {
    let (key, checkpoint, mut problem) = last_checkpoint(config)?;
    let sealed = config.seal.is_some();
    let checkpoint_seq = checkpoint.as_ref().map_or(0, |c| c.seq);
    let snapshot = match (&key, &checkpoint) {
        (Some(k), Some(_)) => {
            let skip_bad = config.override_reason.is_some();
            snapshot::latest(path, &k.verifying_key(), checkpoint_seq, skip_bad)?
        }
        _ => None,
    };
    let plan = make_plan(path, snapshot.as_ref(), &checkpoint, sealed)?;
    let policy = restore(path, snapshot, state)?;
    let mut s = scan(&plan, state, policy)?;
    let data = any_data(path)?;
    problem = problem.or_else(|| finding(path, &s, &plan, checkpoint.as_ref(), sealed, data));
    let mut prepared = Prepared {
        head: s.head.clone(),
        sealed_seq: checkpoint_seq,
        policy_hash: s.policy_hash.take(),
        prelude: Vec::new(),
        set_aside: None,
        key,
        live_first: 0,
    };
    let found = Found {
        problem,
        checkpoint,
    };
    resolve(path, config, &plan, found, state, &mut prepared, &mut s)?;
    prepared.live_first = s
        .live_first
        .unwrap_or_else(|| prepared.head.as_ref().map_or(0, |h| h.seq) + 1);
    Ok(prepared)
}

/// What opening found: a problem, and the last checkpoint.
struct Found {
    problem: Option<JournalError>,
    checkpoint: Option<Checkpoint>,
}

/// Refuses a problem, or overrides it (applying everything, journaling the
/// override); without a problem, sets aside the records after the checkpoint.
fn resolve(
    path: &Path,
    config: &JournalConfig,
    plan: &Plan,
    found: Found,
    state: &mut dyn StateMachine,
    prepared: &mut Prepared,
    s: &mut Scanned,
) -> Result<(), JournalError> {
    match (found.problem, &config.override_reason) {
        (Some(e), None) => Err(e),
        (Some(e), Some(reason)) => {
            apply_rest(plan, s.rest, state, prepared)?;
            // The checkpoints describe another history: seal this one anew.
            prepared.sealed_seq = 0;
            let body = override_body(&e, reason, found.checkpoint.as_ref());
            prepared.prelude.push(("journal_override".into(), body));
            Ok(())
        }
        (None, _) => match (s.rest, &found.checkpoint) {
            (Some(rest), Some(c)) => set_aside(path, plan, rest, c, prepared, s),
            _ => Ok(()),
        },
    }
}

fn make_plan(
    path: &Path,
    snapshot: Option<&Snapshot>,
    checkpoint: &Option<Checkpoint>,
    sealed: bool,
) -> Result<Plan, JournalError> {
    let snapshot_seq = snapshot.map_or(0, |s| s.checkpoint.seq);
    Ok(Plan {
        files: plan_files(path, snapshot_seq)?,
        snapshot_seq,
        snapshot_hash: snapshot.map(|s| s.checkpoint.head_hash.clone()),
        limit: match (checkpoint, sealed) {
            (Some(c), _) => c.seq,
            (None, true) => 0,
            (None, false) => u64::MAX,
        },
        checkpoint_seq: checkpoint.as_ref().map_or(0, |c| c.seq),
    })
}

/// Restores the snapshot's state; returns its policy hash.
fn restore(
    path: &Path,
    snapshot: Option<Snapshot>,
    state: &mut dyn StateMachine,
) -> Result<Option<String>, JournalError> {
    let Some(snap) = snapshot else {
        return Ok(None);
    };
    state
        .restore(&snap.state)
        .map_err(|reason| JournalError::State {
            path: path.display().to_string(),
            seq: snap.checkpoint.seq,
            reason,
        })?;
    Ok(snap.checkpoint.policy_hash)
}

/// Under an override: applies the records the scan did not.
fn apply_rest(
    plan: &Plan,
    rest: Option<(usize, usize, u64)>,
    state: &mut dyn StateMachine,
    prepared: &mut Prepared,
) -> Result<(), JournalError> {
    let Some((index, offset, mut seq)) = rest else {
        return Ok(());
    };
    for (i, file) in plan.files.iter().enumerate().skip(index) {
        let bytes = segments::read(file)?;
        let from = if i == index { offset } else { 0 };
        let tail = bytes.get(from..).unwrap_or_default();
        for raw in tail.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line = String::from_utf8_lossy(raw);
            apply(file, state, seq, &line, &mut prepared.policy_hash)?;
            seq += 1;
        }
    }
    Ok(())
}

fn override_body(found: &JournalError, reason: &str, checkpoint: Option<&Checkpoint>) -> Value {
    let code = miette::Diagnostic::code(found).map(|c| c.to_string());
    json!({
        "reason": reason,
        "found": found.to_string(),
        "code": code,
        "checkpoint": checkpoint.map(|c| json!({ "seq": c.seq, "head_hash": c.head_hash })),
    })
}

/// Moves the records after the checkpoint to a backup file and cuts them
/// off the live file. They can only be there: a segment is sealed before it
/// is rotated, so records after the checkpoint in a sealed segment mean the
/// checkpoint file lost checkpoints.
fn set_aside(
    path: &Path,
    plan: &Plan,
    (index, offset, first): (usize, usize, u64),
    checkpoint: &Checkpoint,
    prepared: &mut Prepared,
    s: &mut Scanned,
) -> Result<(), JournalError> {
    if index + 1 != plan.files.len() {
        let segment = plan
            .files
            .get(index)
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        return Err(JournalError::Behind {
            path: segment,
            seq: checkpoint.seq,
        });
    }
    let (backup, sha256) = cut_live(path, offset)?;
    let last = prepared.head.as_ref().map_or(first, |h| h.seq);
    let aside = SetAside {
        count: last - first + 1,
        first_seq: first,
        last_seq: last,
        backup,
        sha256,
    };
    prepared.prelude.push((
        "unsealed_set_aside".into(),
        json!({
            "count": aside.count, "first_seq": aside.first_seq, "last_seq": aside.last_seq,
            "backup": aside.backup.display().to_string(), "sha256": aside.sha256,
        }),
    ));
    prepared.head = Some(Ack {
        seq: checkpoint.seq,
        hash: checkpoint.head_hash.clone(),
    });
    if offset == 0 {
        s.live_first = None;
    }
    prepared.set_aside = Some(aside);
    Ok(())
}

/// Saves the live file's bytes from `offset` to a backup, then cuts them
/// off; returns the backup and the SHA-256 of what was cut.
fn cut_live(path: &Path, offset: usize) -> Result<(PathBuf, String), JournalError> {
    let bytes = segments::read(path)?;
    let cut = bytes.get(offset..).unwrap_or_default();
    let backup = fsutil::write_backup(path, ".set-aside", cut)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| fsutil::io(path, e))?;
    file.set_len(offset as u64)
        .and_then(|()| file.sync_all())
        .map_err(|e| fsutil::io(path, e))?;
    Ok((backup, sha256_hex(cut)))
}
