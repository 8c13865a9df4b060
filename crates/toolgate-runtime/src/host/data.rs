//! The data directory and the only places that open or read the journal:
//! `open_state` (journal, state rebuilt from it, digest key, gateway),
//! `read_audit` (its records, for `GET /v1/audit`) and `audit_head`.

use super::index::{Index, IndexSink};
use crate::gateway::open_journal;
use crate::gateway::{CompiledPolicy, DigestKey, Gateway, Limits, Services, SystemClock};
use crate::journal::{
    journal_files, read_checkpoint_lines, Checkpoint, Fsync, JournalConfig, SealConfig,
    SigningKeySource,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Where the server keeps its files.
#[derive(Clone, Debug)]
pub struct DataDir(pub PathBuf);

impl DataDir {
    /// The audit journal.
    pub fn journal(&self) -> PathBuf {
        self.0.join("journal.jsonl")
    }

    /// The journal's signing key (Ed25519 seed, 0600).
    pub fn signing_key(&self) -> PathBuf {
        self.0.join("signing.key")
    }

    /// The journal's signed checkpoints.
    pub fn checkpoints(&self) -> PathBuf {
        self.0.join("journal.checkpoints")
    }

    /// The key of argument digests.
    pub fn digest_key(&self) -> PathBuf {
        self.0.join("digest.key")
    }

    /// The default keys file.
    pub fn keys(&self) -> PathBuf {
        self.0.join("keys.toml")
    }

    /// Creates the directory with mode 0700, or tightens an existing one to
    /// 0700: only its owner may read the journal, its checkpoints and the
    /// keys (every file the journal creates in it is 0600). Tightening a
    /// directory that already holds a journal is said on stderr.
    pub fn create(&self) -> Result<(), DataError> {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        let dir = &self.0;
        let err = |e: std::io::Error| DataError::Dir {
            path: dir.display().to_string(),
            why: e.to_string(),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
        let mode = std::fs::metadata(dir).map_err(err)?.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        if self.journal().exists() {
            eprintln!(
                "toolgate: data directory `{}` was mode {mode:04o}, readable by others: now 0700",
                dir.display()
            );
        }
        Ok(())
    }
}

/// Why the state could not be opened.
#[derive(Debug, Error, miette::Diagnostic)]
pub enum DataError {
    /// The data directory could not be created.
    #[error("data directory `{path}`: {why}")]
    #[diagnostic(code(toolgate::server::data_dir))]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        why: String,
    },
    /// The journal, the digest key or the gateway failed to open.
    #[error("{0}")]
    #[diagnostic(code(toolgate::server::open))]
    Open(String),
}

/// Opens the journal under `data` (created 0700 or tightened to it; sealed:
/// signed checkpoints with the key `data/signing.key`, created 0600 on first
/// start), restores the gateway's
/// state from it (`open_journal`: the latest snapshot and the records after
/// it), and opens a gateway on the policy.
pub async fn open_state(
    data: &DataDir,
    policy: CompiledPolicy,
    fsync: Fsync,
    limits: Limits,
    index: &Arc<Index>,
    shared: super::store::Opened,
) -> Result<Gateway, DataError> {
    data.create()?;
    let open = |e: String| DataError::Open(e);
    let sink = Box::new(IndexSink(index.clone()));
    let mut seal = SealConfig::new(
        SigningKeySource::File(data.signing_key()),
        data.checkpoints(),
    );
    seal.replica = shared.replica.clone();
    let config = JournalConfig {
        fsync,
        sinks: vec![sink],
        seal: Some(seal),
        ..JournalConfig::default()
    };
    let (journal, embedded, _) = open_journal(&data.journal(), config)
        .await
        .map_err(|e| open(e.to_string()))?;
    // With Redis, the state of record is Redis: the state rebuilt from this
    // replica's journal is not used.
    let store: Arc<dyn crate::store::Store> = match shared.store {
        Some(shared) => shared,
        None => embedded,
    };
    let digest_key =
        DigestKey::load_or_create(&data.digest_key()).map_err(|e| open(e.to_string()))?;
    same_digest_key(data, store.as_ref(), &digest_key).await?;
    let services = Services {
        journal,
        store,
        clock: Arc::new(SystemClock),
        digest_key,
        replica: shared.replica,
        limits,
    };
    Gateway::open(policy, services)
        .await
        .map_err(|e| open(e.to_string()))
}

/// Refuses to start a replica whose digest key is not the one the other
/// gateways on its shared store use: its approvals' digests and sealed
/// tokens would match none of theirs. A store that does not answer now
/// cannot tell: the replica starts (failing closed on state until the store
/// answers, as it does for every outage) and says so.
async fn same_digest_key(
    data: &DataDir,
    store: &dyn crate::store::Store,
    key: &DigestKey,
) -> Result<(), DataError> {
    let mine = key.fingerprint();
    match store.claim_digest_key(&mine).await {
        Ok(None) => Ok(()),
        Err(e) => {
            eprintln!("toolgate: warning: cannot compare the digest key with the other replicas' now: {e}");
            Ok(())
        }
        Ok(Some(theirs)) => Err(DataError::Open(format!(
            "the digest key `{}` (fingerprint {}) is not the one the other replicas on this store \
             use (fingerprint {}): copy `digest.key` from a running replica's data directory over it, \
             then start again",
            data.digest_key().display(),
            mine.get(..12).unwrap_or(""),
            theirs.get(..12).unwrap_or("")
        ))),
    }
}

/// Every record of the journal (its sealed segments, then the live file), as
/// its lines, read as they are consumed (the caller filters; blocking I/O:
/// run it off the async threads).
pub fn read_audit(
    data: &DataDir,
) -> std::io::Result<impl Iterator<Item = std::io::Result<String>> + Send + 'static> {
    use std::io::BufRead as _;
    let files = journal_files(&data.journal()).map_err(std::io::Error::other)?;
    let mut readers = Vec::new();
    for file in files {
        match std::fs::File::open(&file) {
            Ok(f) => readers.push(std::io::BufReader::new(f).lines()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(readers.into_iter().flatten())
}

/// The journal's head: its last record, and the latest signed checkpoint
/// (what a verifier anchors to: `policyc audit verify --head SEQ:HASH`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Head {
    /// The last record's sequence number.
    pub seq: u64,
    /// Its hash (SHA-256 of its line): every earlier record is chained into it.
    pub hash: String,
    /// Its time (ms since the epoch).
    pub ts_ms: u64,
    /// The latest signed checkpoint, once one was made.
    pub checkpoint: Option<SignedHead>,
}

/// A signed checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedHead {
    /// The last record it covers.
    pub seq: u64,
    /// That record's hash.
    pub hash: String,
    /// When it was made (ms since the epoch).
    pub time: u64,
    /// Which key signed it (first 16 hex digits of SHA-256 of the public key).
    pub key_id: String,
    /// The Ed25519 signature (hex).
    pub sig: String,
}

/// The head of the journal, if it has records.
pub fn audit_head(data: &DataDir) -> std::io::Result<Option<Head>> {
    let text = std::fs::read_to_string(data.journal())?;
    let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_default();
    Ok(Some(Head {
        seq: v["seq"].as_u64().unwrap_or(0),
        hash: crate::journal::sha256_hex(last.as_bytes()),
        ts_ms: v["ts_ms"].as_u64().unwrap_or(0),
        checkpoint: latest_checkpoint(data),
    }))
}

fn latest_checkpoint(data: &DataDir) -> Option<SignedHead> {
    let lines = read_checkpoint_lines(&data.checkpoints()).ok()?;
    let c = Checkpoint::parse(lines.last()?).ok()?;
    Some(SignedHead {
        seq: c.seq,
        hash: c.head_hash,
        time: c.time,
        key_id: c.key_id,
        sig: c.sig,
    })
}

/// Whether the journal file can be written (for `/readyz`).
pub fn journal_writable(data: &Path) -> bool {
    std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("journal.jsonl"))
        .is_ok()
}
