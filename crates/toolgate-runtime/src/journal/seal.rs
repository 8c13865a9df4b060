//! Sealing: Ed25519 signing keys kept outside the journal, and the signed
//! checkpoints `{seq, head_hash, time, policy_hash, key_id, replica?, sig}` the writer
//! appends to a separate checkpoint file (JSON Lines) and gives to every sink.

use super::{fsutil, sha256_hex, JournalError};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the signing key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningKeySource {
    /// A file holding the key's 32-byte seed in hex; created (mode 0600) on
    /// first use when it is missing and no checkpoint exists yet.
    File(PathBuf),
    /// An environment variable holding the seed in hex.
    Env(String),
}

/// How a journal is sealed with signed checkpoints.
#[derive(Clone, Debug)]
pub struct SealConfig {
    /// The signing key.
    pub key: SigningKeySource,
    /// The checkpoint file (JSON Lines), kept apart from the journal.
    pub checkpoints: PathBuf,
    /// A checkpoint after this many records (default 1000).
    pub every_records: u64,
    /// A checkpoint this long after the oldest unsealed record (default 10 s).
    pub every: Duration,
    /// The replica whose journal this is (several gateways on one state
    /// store), signed into every checkpoint.
    pub replica: Option<String>,
}

impl SealConfig {
    /// Sealing with this key and checkpoint file, every 1000 records or 10 s.
    pub fn new(key: SigningKeySource, checkpoints: PathBuf) -> SealConfig {
        SealConfig {
            key,
            checkpoints,
            every_records: 1000,
            every: Duration::from_secs(10),
            replica: None,
        }
    }
}

/// A signed statement that the journal's record `seq` has hash `head_hash`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The last record it covers.
    pub seq: u64,
    /// That record's hash (the journal's head at `seq`).
    pub head_hash: String,
    /// When it was made (ms since the epoch).
    pub time: u64,
    /// `body.policy` of the last `policy_load` record at or before `seq`.
    pub policy_hash: Option<String>,
    /// Which key signed it: the first 16 hex digits of SHA-256 of the public key.
    pub key_id: String,
    /// The replica whose journal it seals, if the journal is one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// The Ed25519 signature (hex) of [`Checkpoint::message`].
    pub sig: String,
}

impl Checkpoint {
    /// Signs a checkpoint; `extra` is signed with it (a snapshot's state hash).
    pub(crate) fn sign(
        key: &SigningKey,
        seq: u64,
        head_hash: &str,
        policy_hash: Option<String>,
        replica: Option<String>,
        extra: &str,
    ) -> Checkpoint {
        let mut c = Checkpoint {
            seq,
            head_hash: head_hash.to_string(),
            time: fsutil::now_ms(),
            policy_hash,
            key_id: key_id(&key.verifying_key()),
            replica,
            sig: String::new(),
        };
        c.sig = to_hex(&key.sign(&c.message(extra)).to_bytes());
        c
    }

    /// The signed bytes (`extra` is empty for a plain checkpoint); a
    /// replica's id is signed after them (a lone journal's message is as before).
    pub fn message(&self, extra: &str) -> Vec<u8> {
        let replica = match &self.replica {
            Some(r) => format!("\nreplica {r}"),
            None => String::new(),
        };
        format!(
            "toolgate-checkpoint-v1\n{}\n{}\n{}\n{}\n{}\n{}{replica}",
            self.seq,
            self.head_hash,
            self.time,
            self.policy_hash.as_deref().unwrap_or(""),
            self.key_id,
            extra
        )
        .into_bytes()
    }

    /// Checks the signature with `key` (`extra` as signed).
    pub fn verify(&self, key: &VerifyingKey, extra: &str) -> Result<(), String> {
        if self.key_id != key_id(key) {
            return Err(format!(
                "signed by key `{}`, not `{}`",
                self.key_id,
                key_id(key)
            ));
        }
        let sig = from_hex(&self.sig)
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or("the signature is not an Ed25519 signature")?;
        key.verify_strict(&self.message(extra), &sig)
            .map_err(|_| "the signature does not verify".to_string())
    }

    /// The checkpoint as one JSON line (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A checkpoint from its line.
    pub fn parse(line: &str) -> Result<Checkpoint, String> {
        serde_json::from_str(line).map_err(|e| format!("not a checkpoint ({e})"))
    }
}

/// The id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes()).chars().take(16).collect()
}

/// Lower-case hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex (`None` if it is not hex).
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn seed(text: &str) -> Option<[u8; 32]> {
    from_hex(text)?.try_into().ok()
}

/// A public key from hex (64 digits).
pub fn public_key_from_hex(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = from_hex(text)
        .and_then(|b| b.try_into().ok())
        .ok_or("a public key is 64 hex digits")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key".to_string())
}

/// A public key in hex.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    to_hex(key.as_bytes())
}

/// The public key of a signing key (to give to auditors); never creates one.
pub fn public_key(source: &SigningKeySource) -> Result<VerifyingKey, JournalError> {
    Ok(load_key(source, false)?.verifying_key())
}

/// Loads the signing key; a missing key file is created only if `create`.
pub(crate) fn load_key(
    source: &SigningKeySource,
    create: bool,
) -> Result<SigningKey, JournalError> {
    let bad = |what: String| JournalError::Key { what };
    match source {
        SigningKeySource::Env(var) => {
            let text = std::env::var(var)
                .map_err(|_| bad(format!("environment variable `{var}` is not set")))?;
            let seed = seed(&text).ok_or_else(|| bad(format!("`{var}` is not 64 hex digits")))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        SigningKeySource::File(path) => match std::fs::read_to_string(path) {
            Ok(text) => seed(&text)
                .map(|s| SigningKey::from_bytes(&s))
                .ok_or_else(|| bad(format!("`{}` is not 64 hex digits", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                generate_key_file(path).map(|(key, _)| key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(bad(format!(
                "key file `{}` is missing but checkpoints signed with it exist",
                path.display()
            ))),
            Err(e) => Err(fsutil::io(path, e)),
        },
    }
}

/// Creates a new signing key file (mode 0600, never over an existing file)
/// and returns the key and its public key in hex.
pub fn generate_key_file(path: &Path) -> Result<(SigningKey, String), JournalError> {
    use std::io::Write as _;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| JournalError::Key {
        what: format!("no randomness for a new key: {e}"),
    })?;
    let key = SigningKey::from_bytes(&seed);
    let io = |e| fsutil::io(path, e);
    let mut file = fsutil::private()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    writeln!(file, "{}", to_hex(&seed))
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    fsutil::sync_dir(path)?;
    let public = public_key_hex(&key.verifying_key());
    Ok((key, public))
}

/// The last whole checkpoint line of the checkpoint file, read from its end
/// (never the whole history). `None` if the file is missing or has none.
pub(crate) fn last_checkpoint_line(path: &Path) -> Result<Option<String>, JournalError> {
    let io = |e| fsutil::io(path, e);
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    let mut window = 4096u64;
    loop {
        let from = len.saturating_sub(window);
        file.seek(SeekFrom::Start(from)).map_err(io)?;
        let mut tail = Vec::new();
        (&mut file)
            .take(len - from)
            .read_to_end(&mut tail)
            .map_err(io)?;
        // Only whole lines count: a torn last one (a crash mid-write) is ignored.
        let whole = match tail.iter().rposition(|b| *b == b'\n') {
            Some(end) => tail.get(..end).unwrap_or_default(),
            None if from == 0 => return Ok(None),
            None => &[],
        };
        let start = whole.iter().rposition(|b| *b == b'\n').map(|i| i + 1);
        match (start, from) {
            (Some(s), _) => return Ok(Some(lossy(whole.get(s..).unwrap_or_default()))),
            (None, 0) if !whole.is_empty() => return Ok(Some(lossy(whole))),
            (None, 0) => return Ok(None),
            (None, _) => window = window.saturating_mul(4),
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every whole line of the checkpoint file (for a full audit).
pub fn read_checkpoint_lines(path: &Path) -> Result<Vec<String>, JournalError> {
    let bytes = std::fs::read(path).map_err(|e| fsutil::io(path, e))?;
    let whole = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => bytes.get(..end).unwrap_or_default(),
        None => &[],
    };
    Ok(whole
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(lossy)
        .collect())
}

/// Cuts a torn last line (a crash while a checkpoint was written) off the
/// checkpoint file, so the next checkpoint starts on a line of its own. Reads
/// only the last byte unless the file is torn.
pub(crate) fn cut_torn_checkpoint(path: &Path) -> Result<(), JournalError> {
    let io = |e| fsutil::io(path, e);
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::End(-1))
        .and_then(|_| file.read_exact(&mut last))
        .map_err(io)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    file.set_len(keep as u64)
        .and_then(|()| file.sync_all())
        .map_err(io)
}
