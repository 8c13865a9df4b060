//! Signed state snapshots, written at each segment rotation:
//! `<journal>.snap-<seq>` holds a header line `{"checkpoint":{...},"state_sha256":"..."}`
//! (a checkpoint whose signature also covers the state's hash) and the
//! state line ([`super::StateMachine::export`] at `seq`). A restart restores
//! the latest valid one and reads only the records after it.

use super::seal::Checkpoint;
use super::{fsutil, sha256_hex, JournalError};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::io::Write as _;
use std::path::{Path, PathBuf};

const SNAPSHOT: &str = ".snap-";

/// How many snapshots are kept (the newest ones).
const KEEP: usize = 2;

/// A verified snapshot.
pub(crate) struct Snapshot {
    /// Its checkpoint (seq, head hash, policy hash).
    pub checkpoint: Checkpoint,
    /// The state at `checkpoint.seq`.
    pub state: serde_json::Value,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    checkpoint: Checkpoint,
    state_sha256: String,
}

fn snapshot_path(path: &Path, seq: u64) -> PathBuf {
    fsutil::sibling(path, &format!("{SNAPSHOT}{seq:020}"))
}

/// Writes the snapshot of `state` at `seq` durably (temporary file, fsync,
/// rename, directory fsync) and removes all but the newest [`KEEP`].
pub(crate) fn write(
    path: &Path,
    key: &SigningKey,
    head: (u64, &str),
    policy_hash: Option<String>,
    replica: Option<String>,
    state: &serde_json::Value,
) -> Result<(), JournalError> {
    let state_line = state.to_string();
    let state_sha256 = sha256_hex(state_line.as_bytes());
    let checkpoint = Checkpoint::sign(key, head.0, head.1, policy_hash, replica, &state_sha256);
    let header = serde_json::to_string(&Header {
        checkpoint,
        state_sha256,
    })
    .map_err(|e| fsutil::io(path, std::io::Error::other(e)))?;
    let target = snapshot_path(path, head.0);
    let tmp = fsutil::sibling(&target, ".tmp");
    let io = |e| fsutil::io(&tmp, e);
    let mut file = fsutil::private()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(format!("{header}\n{state_line}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, &target).map_err(|e| fsutil::io(&target, e))?;
    fsutil::sync_dir(&target)?;
    let all = list(path)?;
    for (_, old) in all.iter().rev().skip(KEEP) {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

/// The snapshots, oldest first.
pub(crate) fn list(path: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    super::segments::numbered(path, SNAPSHOT)
}

/// Reads and verifies one snapshot.
pub(crate) fn read(file: &Path, key: &VerifyingKey) -> Result<Snapshot, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    let (Some(header), Some(state_line)) = (lines.next(), lines.next()) else {
        return Err("not a whole snapshot".into());
    };
    let header: Header =
        serde_json::from_str(header).map_err(|e| format!("not a snapshot ({e})"))?;
    if sha256_hex(state_line.as_bytes()) != header.state_sha256 {
        return Err("the state does not match its signed hash".into());
    }
    header.checkpoint.verify(key, &header.state_sha256)?;
    let state = serde_json::from_str(state_line).map_err(|e| format!("bad state ({e})"))?;
    Ok(Snapshot {
        checkpoint: header.checkpoint,
        state,
    })
}

/// The newest snapshot at or before `up_to` that verifies. A snapshot that
/// does not verify is an error, unless `skip_bad` (an operator override).
pub(crate) fn latest(
    path: &Path,
    key: &VerifyingKey,
    up_to: u64,
    skip_bad: bool,
) -> Result<Option<Snapshot>, JournalError> {
    for (seq, file) in list(path)?.into_iter().rev() {
        if seq > up_to {
            continue;
        }
        match read(&file, key) {
            Ok(s) if s.checkpoint.seq == seq => return Ok(Some(s)),
            Ok(_) if skip_bad => continue,
            Err(_) if skip_bad => continue,
            Ok(_) => {
                return Err(JournalError::BadSnapshot {
                    path: file.display().to_string(),
                    why: "its checkpoint is for another record".into(),
                })
            }
            Err(why) => {
                return Err(JournalError::BadSnapshot {
                    path: file.display().to_string(),
                    why,
                })
            }
        }
    }
    Ok(None)
}
