//! The writer's exclusive lock: `flock` on `<journal>.lock`, held for the
//! writer's lifetime, with the holder's pid written into the file so that a
//! refused second writer can say who holds it.

use super::{fsutil, JournalError};
use fs4::fs_std::FileExt as _;
use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

/// A held lock; released when dropped (closing the file releases `flock`).
#[derive(Debug)]
pub(super) struct Lock {
    _file: File,
}

/// Takes the exclusive lock of the journal at `path`, or says who holds it.
pub(super) fn acquire(path: &Path) -> Result<Lock, JournalError> {
    let lock_path = fsutil::sibling(path, ".lock");
    let io = |e| fsutil::io(&lock_path, e);
    let mut file = fsutil::private()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io)?;
    if !try_lock(&file).map_err(io)? {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let holder = match text.trim().parse::<u32>() {
            Ok(pid) => format!("pid {pid}"),
            Err(_) => "an unknown process".to_string(),
        };
        return Err(JournalError::Locked {
            path: path.display().to_string(),
            holder,
        });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(Lock { _file: file })
}

/// Tries for a moment: a process that forks copies the lock's descriptor into
/// its child until the child's `exec` closes it (close-on-exec), so a lock
/// just released can look held for an instant.
fn try_lock(file: &File) -> std::io::Result<bool> {
    for _ in 0..25 {
        if file.try_lock_exclusive()? {
            return Ok(true);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(false)
}
