//! The data directory and the only places that open or read the journal:
//! `open_state` (journal, state rebuilt from it, digest key, gateway),
//! `read_audit` (its records, for `GET /v1/audit`) and `audit_head`.

use crate::index::{Index, IndexSink};
use crate::{Gate, Sidecar};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use toolgate_runtime::gateway::{
    CompiledPolicy, DigestKey, Gateway, Limits, Services, SystemClock,
};
use toolgate_runtime::journal::{Fsync, Journal};
use toolgate_runtime::store::{replay, MemoryStore};
use utoipa::ToSchema;

/// Where the server keeps its files.
#[derive(Clone, Debug)]
pub struct DataDir(pub PathBuf);

impl DataDir {
    /// The audit journal.
    pub fn journal(&self) -> PathBuf {
        self.0.join("journal.jsonl")
    }

    /// The key of argument digests.
    pub fn digest_key(&self) -> PathBuf {
        self.0.join("digest.key")
    }

    /// The default keys file.
    pub fn keys(&self) -> PathBuf {
        self.0.join("keys.toml")
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

/// Opens the journal under `data`, rebuilds the state from its records
/// (and feeds them to `index`), and opens a gateway on the policy.
pub async fn open_state(
    data: &DataDir,
    policy: CompiledPolicy,
    fsync: Fsync,
    limits: Limits,
    index: &Arc<Index>,
) -> Result<Gate, DataError> {
    std::fs::create_dir_all(&data.0).map_err(|e| DataError::Dir {
        path: data.0.display().to_string(),
        why: e.to_string(),
    })?;
    let open = |e: String| DataError::Open(e);
    let sink = Box::new(IndexSink(index.clone()));
    let (journal, opened) =
        Journal::open(&data.journal(), fsync, vec![sink]).map_err(|e| open(e.to_string()))?;
    let store = Arc::new(MemoryStore::default());
    replay(store.as_ref(), &opened.lines).map_err(|e| open(e.to_string()))?;
    for line in &opened.lines {
        index.observe(line);
    }
    let digest_key =
        DigestKey::load_or_create(&data.digest_key()).map_err(|e| open(e.to_string()))?;
    let services = Services {
        journal,
        store,
        clock: Arc::new(SystemClock),
        credentials: Sidecar,
        executor: Sidecar,
        digest_key,
        limits,
    };
    Gateway::open(policy, services)
        .await
        .map_err(|e| open(e.to_string()))
}

/// Every record of the journal, as its lines, read as they are consumed
/// (the caller filters; blocking I/O: run it off the async threads).
pub fn read_audit(
    data: &DataDir,
) -> std::io::Result<impl Iterator<Item = std::io::Result<String>> + Send + 'static> {
    use std::io::BufRead as _;
    let file = std::fs::File::open(data.journal())?;
    Ok(std::io::BufReader::new(file).lines())
}

/// The journal's head: its last record's sequence number and hash.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Head {
    /// The last record's sequence number.
    pub seq: u64,
    /// Its hash (SHA-256 of its line): every earlier record is chained into it.
    pub hash: String,
    /// Its time (ms since the epoch).
    pub ts_ms: u64,
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
        hash: toolgate_runtime::journal::sha256_hex(last.as_bytes()),
        ts_ms: v["ts_ms"].as_u64().unwrap_or(0),
    }))
}

/// Whether the journal file can be written (for `/readyz`).
pub fn journal_writable(data: &Path) -> bool {
    std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("journal.jsonl"))
        .is_ok()
}
