//! File-system helpers shared by the journal's parts: sibling paths, durable
//! journal I/O errors.

use super::JournalError;
use std::path::{Path, PathBuf};

/// Options that create a file readable and writable by its owner only
/// (mode 0600): every file of a journal (the live file, segments,
/// checkpoints, snapshots, backups, the lock) holds or describes arguments,
/// decisions and state. Files that exist keep their mode.
pub(crate) fn private() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// A journal I/O error.
pub(super) fn io(path: &Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `path` with `suffix` appended to its file name (`audit.jsonl` → `audit.jsonl.lock`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare file name).
pub(super) fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes the directory entries of `path`'s directory durable: after a file
/// is created, renamed or removed there, a machine crash could otherwise
/// lose the entry (and the file with it) even though the file was synced.
pub(super) fn sync_dir(path: &Path) -> Result<(), JournalError> {
    let dir = dir_of(path);
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `bytes` to a new file `<path><suffix>-<ms>` (never an existing
/// one), durably (file and directory synced); returns its path.
pub(super) fn write_backup(
    path: &Path,
    suffix: &str,
    bytes: &[u8],
) -> Result<PathBuf, JournalError> {
    use std::io::Write as _;
    let stamp = now_ms();
    for n in 0..100u32 {
        let name = match n {
            0 => format!("{suffix}-{stamp}"),
            n => format!("{suffix}-{stamp}-{n}"),
        };
        let backup = sibling(path, &name);
        let file = private().write(true).create_new(true).open(&backup);
        match file {
            Ok(mut f) => {
                f.write_all(bytes)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| io(&backup, e))?;
                sync_dir(&backup)?;
                return Ok(backup);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(&backup, e)),
        }
    }
    Err(io(
        path,
        std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free backup name"),
    ))
}
