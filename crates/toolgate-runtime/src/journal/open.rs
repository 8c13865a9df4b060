//! Opening a journal: verify it against the last signed checkpoint, rebuild
//! the state from the records the checkpoint covers, and set aside the
//! records after it (or refuse, unless the operator overrides).

use super::seal::{self, Checkpoint};
use super::verify::{self, Cursor};
use super::{
    fsutil, sha256_hex, Ack, JournalConfig, JournalError, Problem, SetAside, StateMachine,
};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use std::path::Path;

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

/// The records the scan saw, beyond what it applied.
struct Scanned {
    head: Option<Ack>,
    /// Hash of the record at the checkpoint's seq.
    at_checkpoint: Option<String>,
    /// Byte offset and seq of the first record not applied.
    rest: Option<(usize, u64)>,
    policy_hash: Option<String>,
}

fn apply(
    path: &Path,
    state: &mut dyn StateMachine,
    seq: u64,
    line: &str,
    policy: &mut Option<String>,
) -> Result<(), JournalError> {
    if let Ok(r) = serde_json::from_str::<Value>(line) {
        if r["kind"] == "policy_load" {
            if let Some(p) = r["body"]["policy"].as_str() {
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

/// Verifies `bytes` and applies the records up to `limit` to `state`.
fn scan(
    path: &Path,
    bytes: &[u8],
    limit: u64,
    checkpoint_seq: u64,
    state: &mut dyn StateMachine,
) -> Result<Scanned, JournalError> {
    let mut s = Scanned {
        head: None,
        at_checkpoint: None,
        rest: None,
        policy_hash: None,
    };
    let mut refused = None;
    let mut cursor = Cursor::genesis();
    let scanned = verify::scan(bytes, &mut cursor, &mut |r| {
        if r.seq == checkpoint_seq {
            s.at_checkpoint = Some(r.hash.to_string());
        }
        if r.seq > limit {
            s.rest.get_or_insert((r.start, r.seq));
            return Ok(());
        }
        apply(path, state, r.seq, r.line, &mut s.policy_hash).map_err(|e| {
            refused = Some(e);
            Problem::Chain { line: r.seq }
        })
    });
    if let Some(e) = refused {
        return Err(e);
    }
    scanned.map_err(|f| JournalError::Broken {
        path: path.display().to_string(),
        problem: f.problem,
    })?;
    s.head = cursor.head();
    Ok(s)
}

/// What is wrong with the journal relative to its last checkpoint, if anything.
fn finding(
    path: &Path,
    s: &Scanned,
    checkpoint: Option<&Checkpoint>,
    sealed: bool,
) -> Option<JournalError> {
    let p = path.display().to_string();
    let head = s.head.as_ref().map_or(0, |h| h.seq);
    match checkpoint {
        None if sealed && head > 0 => Some(JournalError::Unanchored {
            path: p,
            records: head,
        }),
        None => None,
        Some(c) if head == 0 => Some(JournalError::Missing {
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
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(fsutil::io(path, e)),
    };
    let sealed = config.seal.is_some();
    let limit = match (&checkpoint, sealed) {
        (Some(c), _) => c.seq,
        (None, true) => 0,
        (None, false) => u64::MAX,
    };
    let checkpoint_seq = checkpoint.as_ref().map_or(0, |c| c.seq);
    let mut s = scan(path, &bytes, limit, checkpoint_seq, state)?;
    problem = problem.or_else(|| finding(path, &s, checkpoint.as_ref(), sealed));
    let mut prepared = Prepared {
        head: s.head.clone(),
        sealed_seq: checkpoint_seq,
        policy_hash: s.policy_hash.take(),
        prelude: Vec::new(),
        set_aside: None,
        key,
    };
    match (problem, &config.override_reason) {
        (Some(e), None) => Err(e),
        (Some(e), Some(reason)) => {
            apply_rest(path, &bytes, s.rest, state, &mut prepared)?;
            // The checkpoints describe another history: seal this one anew.
            prepared.sealed_seq = 0;
            prepared.prelude.push((
                "journal_override".into(),
                override_body(&e, reason, checkpoint.as_ref()),
            ));
            Ok(prepared)
        }
        (None, _) => {
            if let (Some((offset, first)), Some(c)) = (s.rest, &checkpoint) {
                set_aside(path, &bytes, offset, first, c, &mut prepared)?;
            }
            Ok(prepared)
        }
    }
}

/// Under an override: applies the records the scan did not.
fn apply_rest(
    path: &Path,
    bytes: &[u8],
    rest: Option<(usize, u64)>,
    state: &mut dyn StateMachine,
    prepared: &mut Prepared,
) -> Result<(), JournalError> {
    let Some((offset, first)) = rest else {
        return Ok(());
    };
    let tail = bytes.get(offset..).unwrap_or_default();
    for (i, raw) in tail
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let line = String::from_utf8_lossy(raw);
        apply(
            path,
            state,
            first + i as u64,
            &line,
            &mut prepared.policy_hash,
        )?;
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

/// Moves the records after the checkpoint to a backup file and cuts them off.
fn set_aside(
    path: &Path,
    bytes: &[u8],
    offset: usize,
    first: u64,
    checkpoint: &Checkpoint,
    prepared: &mut Prepared,
) -> Result<(), JournalError> {
    let cut = bytes.get(offset..).unwrap_or_default();
    let last = prepared.head.as_ref().map_or(first, |h| h.seq);
    let backup = fsutil::write_backup(path, ".set-aside", cut)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| fsutil::io(path, e))?;
    file.set_len(offset as u64)
        .and_then(|()| file.sync_all())
        .map_err(|e| fsutil::io(path, e))?;
    let aside = SetAside {
        count: last - first + 1,
        first_seq: first,
        last_seq: last,
        backup,
        sha256: sha256_hex(cut),
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
    prepared.set_aside = Some(aside);
    Ok(())
}
