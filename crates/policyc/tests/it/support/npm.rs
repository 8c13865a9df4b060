//! The npm test peers (MCP servers, the conformance suite, the TypeScript
//! toolchain), installed pinned by scripts/setup-test-peers.sh; a missing
//! prerequisite fails the test saying what to install.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test helper fails loudly when a peer is missing"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `node_modules` of the npm test peers, installed by the setup script.
pub fn npm_peers() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-test-peers.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("npm")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scripts/setup-test-peers.sh npm failed:\n{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("npm: "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("scripts/setup-test-peers.sh printed no `npm:` line:\n{stdout}"))
}
