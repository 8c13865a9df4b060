//! What the integration tests of several crates share, and nothing else: a
//! real `redis-server` on loopback ([`redis::RedisServer`]), fresh scratch
//! directories ([`scratch!`], [`fresh_dir`]) and the pinned test peers of
//! `scripts/setup-test-peers.sh` ([`install_peer`]). A dev-dependency only,
//! never published; a crate's own fixtures stay in its `tests/it/`.
//!
//! It depends on no Toolgate crate, so any crate may take it as a
//! dev-dependency without a cycle.

#![expect(
    clippy::panic,
    reason = "a test helper that cannot do its job fails the test, saying why"
)]

pub mod redis;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory `path`, empty: whatever an earlier run left there is removed.
pub fn fresh_dir(path: impl Into<PathBuf>) -> PathBuf {
    let dir = path.into();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// A fresh, empty directory `CARGO_TARGET_TMPDIR/PART/...` of the calling
/// test binary, left after the run for a look at what failed.
///
/// A macro because cargo sets `CARGO_TARGET_TMPDIR` only when it compiles an
/// integration test, not a library such as this one.
#[macro_export]
macro_rules! scratch {
    ($($part:expr),+ $(,)?) => {
        $crate::fresh_dir(::std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))$(.join($part))+)
    };
}

/// Runs `scripts/setup-test-peers.sh SECTION` (idempotent: pinned versions,
/// skipped when nothing changed) and returns the path of the `LABEL: PATH`
/// line it prints. A missing prerequisite fails the test with the script's
/// message, which says what to install: the tests never skip.
pub fn install_peer(section: &str, label: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-test-peers.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(section)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/setup-test-peers.sh {section} failed:\n{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = format!("{label}: ");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|path| PathBuf::from(path.trim()))
        .unwrap_or_else(|| {
            panic!("scripts/setup-test-peers.sh {section} printed no `{label}:` line:\n{stdout}")
        })
}
