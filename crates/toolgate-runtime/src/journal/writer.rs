//! The writer thread: group commit of every record waiting when it is free,
//! applied to the state machine and told to the sinks once written.

use super::{fsutil, lock::Lock, sha256_hex, Ack, AuditSink, Fsync, JournalConfig, JournalError};
use super::{StateMachine, GENESIS};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// A record waiting to be written.
pub(super) struct Entry {
    pub kind: String,
    pub body: serde_json::Value,
    pub ts_ms: u64,
    pub ack: oneshot::Sender<Result<Ack, ()>>,
}

/// What the writer thread is sent.
pub(super) enum Msg {
    /// A record to append.
    Append(Entry),
    /// The journal was dropped: finish and release the lock.
    Close,
}

pub(super) struct Writer {
    file: File,
    fsync: Fsync,
    seq: u64,
    prev: String,
    sinks: Vec<Box<dyn AuditSink>>,
    state: Box<dyn StateMachine>,
    _lock: Lock,
}

impl Writer {
    /// A writer appending to `path` (created, and its directory synced, if new).
    pub(super) fn create(
        path: &Path,
        config: JournalConfig,
        head: Option<Ack>,
        state: Box<dyn StateMachine>,
        lock: Lock,
    ) -> Result<Writer, JournalError> {
        let file = open_append(path)?;
        Ok(Writer {
            file,
            fsync: config.fsync,
            seq: head.as_ref().map_or(0, |h| h.seq),
            prev: head.map_or_else(|| GENESIS.to_string(), |h| h.hash),
            sinks: config.sinks,
            state,
            _lock: lock,
        })
    }

    /// Runs until the journal is dropped.
    pub(super) fn run(mut self, rx: mpsc::Receiver<Msg>) {
        while let Ok(Msg::Append(first)) = rx.recv() {
            let mut batch = vec![first];
            let mut closing = false;
            for msg in rx.try_iter() {
                match msg {
                    Msg::Append(e) => batch.push(e),
                    Msg::Close => closing = true,
                }
            }
            if self.commit(batch).is_err() || closing {
                // The file may hold a partial batch; refuse everything from now on.
                return;
            }
        }
    }

    fn commit(&mut self, batch: Vec<Entry>) -> Result<(), ()> {
        let mut text = String::new();
        let mut acks = Vec::with_capacity(batch.len());
        let mut lines = Vec::with_capacity(batch.len());
        for e in batch {
            self.seq += 1;
            let line = serde_json::json!({
                "seq": self.seq, "ts_ms": e.ts_ms, "kind": e.kind, "prev": self.prev, "body": e.body,
            })
            .to_string();
            self.prev = sha256_hex(line.as_bytes());
            text.push_str(&line);
            text.push('\n');
            acks.push((
                e.ack,
                Ack {
                    seq: self.seq,
                    hash: self.prev.clone(),
                },
            ));
            lines.push(line);
        }
        let written = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| match self.fsync {
                Fsync::Always => self.file.sync_data(),
                Fsync::Never => Ok(()),
            });
        if written.is_err() {
            for (ack, _) in acks {
                let _ = ack.send(Err(()));
            }
            return Err(());
        }
        for line in &lines {
            let _ = self.state.apply(line);
            for sink in &mut self.sinks {
                sink.committed(line);
            }
        }
        for (ack, a) in acks {
            let _ = ack.send(Ok(a));
        }
        Ok(())
    }
}

/// Opens `path` for appending; a file it creates is synced with its
/// directory entry, so the file survives a machine crash.
pub(super) fn open_append(path: &Path) -> Result<File, JournalError> {
    let io = |e| fsutil::io(path, e);
    let created = !path.exists();
    let file = OpenOptions::new()
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
