//! The journal's files: sealed segments `<journal>.seg-<first seq>` (20
//! digits, so names sort by seq) followed by the live file `<journal>`.

use super::{fsutil, JournalError};
use std::path::{Path, PathBuf};

const SEGMENT: &str = ".seg-";

/// The sealed segments, by first seq, oldest first.
pub(crate) fn sealed_segments(path: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let prefix = format!(
        "{}{SEGMENT}",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let dir = fsutil::dir_of(path);
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| fsutil::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| fsutil::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let first = name
            .strip_prefix(&prefix)
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            found.push((first, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Every file of the journal in order: sealed segments, then the live file.
pub(crate) fn all_files(path: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let mut files: Vec<PathBuf> = sealed_segments(path)?.into_iter().map(|(_, p)| p).collect();
    files.push(path.to_path_buf());
    Ok(files)
}
