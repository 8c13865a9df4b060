//! File-system helpers shared by the journal's parts: sibling paths, durable
//! journal I/O errors.

use super::JournalError;
use std::path::{Path, PathBuf};

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
