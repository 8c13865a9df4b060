//! The writer thread: group commit of every record waiting when it is free,
//! applied to the state machine and told to the sinks once written; syncing:
//! a batch is synced before it is acknowledged when the `Fsync` mode and its
//! records' `Durability` ask for it, and under `Fsync::Writes` a batch that
//! was only written is synced at the latest `lazy_sync` later (with the next
//! batch that syncs, or on its own when none comes); and sealing: a signed
//! checkpoint after every `every_records` records, `every` after the oldest
//! unsealed record, before a sealed append is acknowledged, and when the
//! journal is dropped.

use super::open::Prepared;
use super::seal::{self, Checkpoint, SealConfig};
use super::{fsutil, lock::Lock, sha256_hex, Ack, AuditSink, Durability, Fsync};
use super::{segments, snapshot};
use super::{JournalConfig, JournalError};
use super::{StateMachine, GENESIS};
use ed25519_dalek::SigningKey;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;
use tokio::sync::oneshot;

/// A record waiting to be written.
pub(super) struct Entry {
    pub kind: String,
    pub body: serde_json::Value,
    pub ts_ms: u64,
    /// What its acknowledgement waits for.
    pub durability: Durability,
    pub ack: oneshot::Sender<Result<Ack, String>>,
}

/// What the writer thread is sent.
pub(super) enum Msg {
    /// A record to append.
    Append(Entry),
    /// The journal was dropped: seal, finish and release the lock.
    Close,
}

/// A record's line: its fields in the order (alphabetical) that a
/// `serde_json::Value` object writes them, so every line reads the same
/// whether this or a `Value` wrote it; serialized straight from the parts.
#[derive(serde::Serialize)]
struct Line<'a> {
    body: &'a serde_json::Value,
    kind: &'a str,
    prev: &'a str,
    seq: u64,
    ts_ms: u64,
}

impl Line<'_> {
    fn to_json(&self) -> String {
        match serde_json::to_string(self) {
            Ok(line) => line,
            // Serializing strings, numbers and a `Value` does not fail; were
            // it to, the same line is built through a `Value`.
            Err(_) => self.as_value().to_string(),
        }
    }

    fn as_value(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq, "ts_ms": self.ts_ms, "kind": self.kind, "prev": self.prev,
            "body": self.body,
        })
    }
}

/// A batch ready to write.
struct Batch {
    text: String,
    acks: Vec<(oneshot::Sender<Result<Ack, String>>, Ack)>,
    lines: Vec<String>,
    wants_seal: bool,
    /// The strongest durability one of its records asked for.
    durability: Durability,
    seq: u64,
    prev: String,
}

/// The sealing half of a writer.
struct Sealer {
    key: SigningKey,
    file: Appender,
    config: SealConfig,
    /// The last seq a checkpoint covers.
    sealed_seq: u64,
    /// When unsealed records must be sealed at the latest.
    deadline: Option<Instant>,
}

/// A file written only at its end, that knows the length of what it wrote
/// whole: after a failed write it cuts back to it, and refuses to write
/// until that succeeds (a partial record is never followed by another).
pub(super) struct Appender {
    file: File,
    path: PathBuf,
    /// The length after the last complete write.
    len: u64,
    /// A failed write could not be cut back yet.
    damaged: bool,
}

impl Appender {
    /// Opens `path` for appending (see [`open_append`]).
    pub(super) fn open(path: &Path) -> Result<Appender, JournalError> {
        let file = open_append(path)?;
        let len = file.metadata().map_err(|e| fsutil::io(path, e))?.len();
        Ok(Appender {
            file,
            path: path.to_path_buf(),
            len,
            damaged: false,
        })
    }

    /// Writes `bytes` whole (and syncs them if `sync`), or writes nothing:
    /// after an error the file is cut back to its last complete length.
    pub(super) fn write(&mut self, bytes: &[u8], sync: bool) -> Result<(), String> {
        if self.damaged {
            self.cut_back().map_err(|e| {
                format!(
                    "`{}` holds a partial write that cannot be removed: {e}",
                    self.path.display()
                )
            })?;
        }
        let written = self.file.write_all(bytes).and_then(|()| match sync {
            true => self.file.sync_data(),
            false => Ok(()),
        });
        match written {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.damaged = true;
                let _ = self.cut_back();
                Err(format!("cannot write `{}`: {e}", self.path.display()))
            }
        }
    }

    /// The length of what was written whole.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    fn cut_back(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.len)?;
        self.file.sync_data()?;
        self.damaged = false;
        Ok(())
    }

    /// Makes everything written durable.
    pub(super) fn sync(&mut self) -> Result<(), String> {
        self.file
            .sync_data()
            .map_err(|e| format!("cannot sync `{}`: {e}", self.path.display()))
    }
}

pub(super) struct Writer {
    path: PathBuf,
    file: Appender,
    /// Rotate past this size.
    segment_bytes: u64,
    /// The seq of the live file's first record.
    live_first: u64,
    /// Every committed record was applied to the state (else no snapshot).
    state_ok: bool,
    fsync: Fsync,
    seq: u64,
    prev: String,
    policy_hash: Option<String>,
    sinks: Vec<Box<dyn AuditSink>>,
    state: Box<dyn StateMachine>,
    sealer: Option<Sealer>,
    /// The last seq synced to disk, shared with the journal's handles.
    durable: Arc<AtomicU64>,
    /// When records written but not synced must be synced at the latest.
    sync_deadline: Option<Instant>,
    /// How long after it is written a record may wait for its sync (`Fsync::Writes`).
    lazy_sync: std::time::Duration,
    _lock: Lock,
}

impl Writer {
    /// A writer appending to `path` (created, and its directory synced, if
    /// new) from where `prepared` says; writes the prelude records, sealed.
    pub(super) fn create(
        path: &Path,
        config: JournalConfig,
        prepared: Prepared,
        state: Box<dyn StateMachine>,
        lock: Lock,
        durable: Arc<AtomicU64>,
    ) -> Result<Writer, JournalError> {
        let sealer = match (config.seal, prepared.key) {
            (Some(c), Some(key)) => Some(Sealer::open(c, key, prepared.sealed_seq)?),
            _ => None,
        };
        let head = prepared.head;
        let mut writer = Writer {
            path: path.to_path_buf(),
            file: Appender::open(path)?,
            segment_bytes: config.segment_bytes,
            live_first: prepared.live_first,
            state_ok: true,
            fsync: config.fsync,
            seq: head.as_ref().map_or(0, |h| h.seq),
            prev: head.map_or_else(|| GENESIS.to_string(), |h| h.hash),
            policy_hash: prepared.policy_hash,
            sinks: config.sinks,
            state,
            sealer,
            durable,
            sync_deadline: None,
            lazy_sync: config.lazy_sync,
            _lock: lock,
        };
        writer.seal_new()?;
        writer.write_prelude(prepared.prelude)?;
        Ok(writer)
    }

    /// Seals a new journal (no records, an empty checkpoint file: a first
    /// start) at once: a checkpoint of record 0, the genesis hash, durable
    /// before the first record is written. So a crash before the first timed
    /// checkpoint leaves records after a checkpoint, set aside on restart like
    /// any crash's, never records no checkpoint anchors (which `open` refuses
    /// until an operator overrides).
    fn seal_new(&mut self) -> Result<(), JournalError> {
        let Some(s) = self.sealer.as_mut() else {
            return Ok(());
        };
        if self.seq > 0 || s.file.len() > 0 {
            return Ok(());
        }
        let c = Checkpoint::sign(&s.key, 0, GENESIS, None, s.config.replica.clone(), "");
        let line = c.to_line();
        s.file
            .write(format!("{line}\n").as_bytes(), true)
            .map_err(|reason| JournalError::Refused { reason })?;
        for sink in &mut self.sinks {
            sink.checkpoint(&line);
        }
        Ok(())
    }

    /// Writes the records opening itself produced, each sealed at once.
    fn write_prelude(
        &mut self,
        prelude: Vec<(String, serde_json::Value)>,
    ) -> Result<(), JournalError> {
        for (kind, body) in prelude {
            let (ack, rx) = oneshot::channel();
            let ts_ms = fsutil::now_ms();
            self.commit(vec![Entry {
                kind,
                body,
                ts_ms,
                durability: Durability::Sealed,
                ack,
            }]);
            self.prelude_result(rx)?;
        }
        Ok(())
    }

    fn prelude_result(
        &self,
        mut rx: oneshot::Receiver<Result<Ack, String>>,
    ) -> Result<(), JournalError> {
        match rx.try_recv() {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(reason)) => Err(JournalError::Refused { reason }),
            Err(_) => Err(JournalError::Stopped),
        }
    }

    /// The head (seq, hash) the writer stands at.
    pub(super) fn head(&self) -> Option<Ack> {
        (self.seq > 0).then(|| Ack {
            seq: self.seq,
            hash: self.prev.clone(),
        })
    }

    /// Runs until the journal is dropped.
    pub(super) fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let seal_at = self.sealer.as_ref().and_then(|s| s.deadline);
            let deadline = match (seal_at, self.sync_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let msg = match deadline {
                Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(m) => m,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.on_deadline();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => Msg::Close,
                },
                None => rx.recv().unwrap_or(Msg::Close),
            };
            let Msg::Append(first) = msg else { break };
            let mut batch = vec![first];
            let mut closing = false;
            for msg in rx.try_iter() {
                match msg {
                    Msg::Append(e) => batch.push(e),
                    Msg::Close => closing = true,
                }
            }
            self.commit(batch);
            if closing {
                break;
            }
        }
        // Clean shutdown leaves nothing unsealed or unsynced.
        let _ = self.seal();
        if self.sync_deadline.is_some() {
            let _ = self.sync();
        }
    }

    /// A deadline passed with no batch to carry it: the records written but
    /// not synced are synced; the unsealed ones are sealed.
    fn on_deadline(&mut self) {
        let now = Instant::now();
        if self.sync_deadline.is_some_and(|d| d <= now) {
            // A failed sync is retried at the next deadline or batch: the
            // records are in the file, only their durability waits.
            let _ = self.sync();
        }
        if self
            .sealer
            .as_ref()
            .and_then(|s| s.deadline)
            .is_some_and(|d| d <= now)
        {
            let _ = self.seal();
        }
    }

    /// Whether a batch asking for `durability` is synced before it is
    /// acknowledged: always under `Always`, never under `Never` (sealing
    /// syncs on its own), under `Writes` when a record asks for it or the
    /// records written before it are due.
    fn syncs(&self, durability: Durability) -> bool {
        match self.fsync {
            Fsync::Always => true,
            Fsync::Never => false,
            Fsync::Writes => {
                durability >= Durability::Durable
                    || self.sync_deadline.is_some_and(|d| d <= Instant::now())
            }
        }
    }

    /// Makes every record written so far durable.
    fn sync(&mut self) -> Result<(), String> {
        if self.durable.load(Ordering::Relaxed) == self.seq {
            self.sync_deadline = None;
            return Ok(());
        }
        self.file.sync()?;
        self.synced();
        Ok(())
    }

    /// Every record written so far is durable.
    fn synced(&mut self) {
        self.durable.store(self.seq, Ordering::Release);
        self.sync_deadline = None;
    }

    /// Writes a batch whole and acknowledges it, or refuses all of it (and
    /// leaves the file as it was: the next batch is tried afresh).
    fn commit(&mut self, batch: Vec<Entry>) {
        let Batch {
            text,
            acks,
            lines,
            wants_seal,
            durability,
            seq,
            prev,
        } = self.format(batch);
        let sync = self.syncs(durability);
        if let Err(reason) = self.file.write(text.as_bytes(), sync) {
            for (ack, _) in acks {
                let _ = ack.send(Err(reason.clone()));
            }
            return;
        }
        (self.seq, self.prev) = (seq, prev);
        if sync {
            self.synced();
        } else if self.fsync == Fsync::Writes && self.sync_deadline.is_none() {
            let now = Instant::now();
            self.sync_deadline = Some(now.checked_add(self.lazy_sync).unwrap_or(now));
        }
        self.committed(&lines);
        let sealed = self.after_commit(wants_seal);
        for (ack, a) in acks {
            let _ = ack.send(sealed.clone().map(|()| a));
        }
        if self.file.len() > self.segment_bytes {
            let _ = self.rotate();
        }
    }

    /// Seals the live file, snapshots the state at its last record, and
    /// renames it to a sealed segment; the next record starts a new live
    /// file. On an error the live file simply goes on (rotation is retried
    /// after the next batch).
    fn rotate(&mut self) -> Result<(), String> {
        self.seal()?;
        // Records written but not synced are synced in the file they are in.
        if self.sync_deadline.is_some() {
            self.sync()?;
        }
        if let (Some(s), true) = (&self.sealer, self.state_ok) {
            let head = (self.seq, self.prev.as_str());
            let state = self.state.export();
            let (policy, replica) = (self.policy_hash.clone(), s.config.replica.clone());
            snapshot::write(&self.path, &s.key, head, policy, replica, &state)
                .map_err(|e| e.to_string())?;
        }
        let segment = segments::segment_path(&self.path, self.live_first);
        std::fs::rename(&self.path, &segment).map_err(|e| e.to_string())?;
        fsutil::sync_dir(&segment).map_err(|e| e.to_string())?;
        // From here on the old handle must not be written: a new live file.
        match Appender::open(&self.path) {
            Ok(file) => {
                self.file = file;
                self.live_first = self.seq.saturating_add(1);
                Ok(())
            }
            Err(e) => {
                // Keep appending to the renamed segment rather than lose records;
                // its name (by first seq) stays true.
                Err(e.to_string())
            }
        }
    }

    /// The batch's lines, numbered and chained after the head (not yet
    /// taken: a failed write leaves the head where it was).
    fn format(&self, batch: Vec<Entry>) -> Batch {
        let mut b = Batch {
            text: String::new(),
            acks: Vec::with_capacity(batch.len()),
            lines: Vec::with_capacity(batch.len()),
            wants_seal: false,
            durability: Durability::Written,
            seq: self.seq,
            prev: self.prev.clone(),
        };
        for e in batch {
            b.seq += 1;
            let line = Line {
                body: &e.body,
                kind: &e.kind,
                prev: &b.prev,
                seq: b.seq,
                ts_ms: e.ts_ms,
            }
            .to_json();
            b.prev = sha256_hex(line.as_bytes());
            b.text.push_str(&line);
            b.text.push('\n');
            b.wants_seal |= e.durability == Durability::Sealed;
            b.durability = b.durability.max(e.durability);
            b.acks.push((
                e.ack,
                Ack {
                    seq: b.seq,
                    hash: b.prev.clone(),
                },
            ));
            b.lines.push(line);
        }
        b
    }

    /// Applies committed lines to the state, tracks the policy, tells the sinks.
    fn committed(&mut self, lines: &[String]) {
        for line in lines {
            if line.contains("\"kind\":\"policy_load\"") {
                if let Ok(r) = serde_json::from_str::<serde_json::Value>(line) {
                    if let (Some("policy_load"), Some(p)) =
                        (r["kind"].as_str(), r["body"]["policy"].as_str())
                    {
                        self.policy_hash = Some(p.to_string());
                    }
                }
            }
            // A record the state refuses makes later snapshots wrong: stop
            // writing them, so a restart replays (and fails closed) instead.
            self.state_ok &= self.state.apply(line).is_ok();
            for sink in &mut self.sinks {
                sink.committed(line);
            }
        }
    }

    /// Seals when a record asked for it or enough records are unsealed; an
    /// error only when a record that asked for it could not be sealed.
    fn after_commit(&mut self, wants_seal: bool) -> Result<(), String> {
        let Some(s) = self.sealer.as_mut() else {
            return Ok(());
        };
        if s.deadline.is_none() {
            s.deadline = Some(Instant::now() + s.config.every);
        }
        let due = self.seq.saturating_sub(s.sealed_seq) >= s.config.every_records
            || s.deadline.is_some_and(|d| d <= Instant::now());
        if !(wants_seal || due) {
            return Ok(());
        }
        let sealed = self.seal();
        match (sealed, wants_seal) {
            (Err(e), true) => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes a checkpoint covering every record written so far (the records
    /// are made durable first, so a checkpoint never covers lost records).
    fn seal(&mut self) -> Result<(), String> {
        let Some(s) = self.sealer.as_mut() else {
            return Ok(());
        };
        if s.sealed_seq == self.seq {
            s.deadline = None;
            return Ok(());
        }
        if self.durable.load(Ordering::Relaxed) != self.seq {
            self.file.sync()?;
        }
        self.durable.store(self.seq, Ordering::Release);
        self.sync_deadline = None;
        let (policy, replica) = (self.policy_hash.clone(), s.config.replica.clone());
        let c = Checkpoint::sign(&s.key, self.seq, &self.prev, policy, replica, "");
        let line = c.to_line();
        s.file.write(format!("{line}\n").as_bytes(), true)?;
        s.sealed_seq = self.seq;
        s.deadline = None;
        for sink in &mut self.sinks {
            sink.checkpoint(&line);
        }
        Ok(())
    }
}

impl Sealer {
    fn open(config: SealConfig, key: SigningKey, sealed_seq: u64) -> Result<Sealer, JournalError> {
        seal::cut_torn_checkpoint(&config.checkpoints)?;
        Ok(Sealer {
            key,
            file: Appender::open(&config.checkpoints)?,
            config,
            sealed_seq,
            deadline: None,
        })
    }
}

/// Opens `path` for appending; a file it creates is synced with its
/// directory entry, so the file survives a machine crash.
pub(super) fn open_append(path: &Path) -> Result<File, JournalError> {
    let io = |e| fsutil::io(path, e);
    let created = !path.exists();
    let file = fsutil::private()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    if created {
        file.sync_all().map_err(io)?;
        fsutil::sync_dir(path)?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::Line;

    #[test]
    fn a_line_reads_as_the_value_of_its_parts_writes_it() {
        let body = serde_json::json!({ "z": 1, "a": "é\n\"", "m": [null, 2.5, { "b": true }] });
        let line = Line {
            body: &body,
            kind: "decision",
            prev: "00ff",
            seq: 7,
            ts_ms: 1_800_000_000_000,
        };
        assert_eq!(line.to_json(), line.as_value().to_string());
    }
}
