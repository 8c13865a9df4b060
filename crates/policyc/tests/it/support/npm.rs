//! The npm test peers (MCP servers, the conformance suite, the TypeScript
//! toolchain), installed pinned by scripts/setup-test-peers.sh; a missing
//! prerequisite fails the test saying what to install.

use std::path::PathBuf;

/// `node_modules` of the npm test peers, installed by the setup script.
pub fn npm_peers() -> PathBuf {
    toolgate_testkit::install_peer("npm", "npm")
}
