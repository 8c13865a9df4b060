//! The journal's files: sealed segments `<journal>.seg-<first seq>` (20
//! digits, so names sort by seq) followed by the live file `<journal>`.
//! The writer rotates the live file into a sealed segment when it grows past
//! `segment_bytes` (after sealing it and writing a snapshot).

use super::verify::Cursor;
use super::{fsutil, JournalError};
use std::path::{Path, PathBuf};

const SEGMENT: &str = ".seg-";

/// The sealed segment whose first record is `first`.
pub(crate) fn segment_path(path: &Path, first: u64) -> PathBuf {
    fsutil::sibling(path, &format!("{SEGMENT}{first:020}"))
}

/// Files next to `path` named `<journal><infix><20 digits>`, by number.
pub(crate) fn numbered(path: &Path, infix: &str) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let prefix = format!(
        "{}{infix}",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let dir = fsutil::dir_of(path);
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| fsutil::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| fsutil::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let n = name
            .strip_prefix(&prefix)
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = n {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The sealed segments, by first seq, oldest first.
pub(crate) fn sealed_segments(path: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    numbered(path, SEGMENT)
}

/// Every file of the journal in order: sealed segments, then the live file.
pub(crate) fn all_files(path: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let mut files: Vec<PathBuf> = sealed_segments(path)?.into_iter().map(|(_, p)| p).collect();
    files.push(path.to_path_buf());
    Ok(files)
}

/// Reads a journal file; a missing one is empty.
pub(crate) fn read(file: &Path) -> Result<Vec<u8>, JournalError> {
    match std::fs::read(file) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(fsutil::io(file, e)),
    }
}

/// The cursor before a file's first record, from that record itself (its
/// seq and `prev`): where a scan of that file alone starts. `None` if the
/// file has no whole first line that says so.
pub(crate) fn start_of(bytes: &[u8]) -> Option<Cursor> {
    let end = bytes.iter().position(|b| *b == b'\n')?;
    let first: serde_json::Value = serde_json::from_slice(bytes.get(..end)?).ok()?;
    Some(Cursor {
        seq: first["seq"].as_u64()?.checked_sub(1)?,
        hash: first["prev"].as_str()?.to_string(),
    })
}
