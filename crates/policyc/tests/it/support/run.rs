//! Runs the real `policyc` binary in a directory and captures what it did:
//! the one runner of the command-line tests (cli.rs, ci.rs, test_cmd.rs, dates.rs).

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one `policyc` run did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `policyc ARGS` in `dir` with `envs` set.
pub fn policyc_with(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_policyc"))
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(dir)
        .output()
        .expect("runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `policyc ARGS` in `dir`.
pub fn policyc(dir: &Path, args: &[&str]) -> Run {
    policyc_with(dir, args, &[])
}

/// A fresh, empty scratch directory under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    toolgate_testkit::scratch!(name)
}

/// Writes `content` to `dir/name`, making its parent directories.
pub fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("parent dir");
    }
    std::fs::write(path, content).expect("write");
}
