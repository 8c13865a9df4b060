//! Finding `.policy` files and reading them.

use std::path::{Path, PathBuf};

/// Every file named by `paths`: files as given, directories searched
/// recursively (hidden directories and `target` skipped) for `*.policy`, sorted.
///
/// Paths named on the command line are taken as given (a symbolic link is
/// followed, a pipe is read). Inside a directory the walk never follows a
/// symbolic link and reads only regular files, so a link cycle cannot repeat
/// or hang it and a FIFO cannot block it; a skipped link or special file
/// that would otherwise have been visited is named in a note on stderr.
pub(crate) fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    collect_suffix(paths, ".policy")
}

/// Like [`collect`], for files whose name ends with `suffix` (`.test.toml`).
pub(crate) fn collect_suffix(paths: &[PathBuf], suffix: &str) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        let meta =
            std::fs::metadata(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()))?;
        if meta.is_dir() {
            walk(p, suffix, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let read =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
    // `DirEntry::file_type` does not follow symbolic links.
    let mut entries: Vec<(PathBuf, std::fs::FileType)> = read
        .filter_map(|e| e.ok().and_then(|e| Some((e.path(), e.file_type().ok()?))))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, kind) in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let policy = name.ends_with(suffix) && name.len() > suffix.len();
        if kind.is_symlink() {
            if policy || path.is_dir() {
                skipped(
                    &path,
                    "a symbolic link (directory walks do not follow links)",
                );
            }
        } else if kind.is_dir() {
            if !name.starts_with('.') && name != "target" {
                walk(&path, suffix, out)?;
            }
        } else if policy && kind.is_file() {
            out.push(path);
        } else if policy {
            skipped(&path, "not a regular file");
        }
    }
    Ok(())
}

fn skipped(path: &Path, why: &str) {
    eprintln!("note: skipped `{}`: {why}", path.display());
}
