#!/usr/bin/env bash
# Makes sure `redis-server` (the Debian package, at the version pinned in
# scripts/test-peers/redis-server.version) is installed, for the replica tests
# of `cargo test` (crates/policyc/tests/it/replicas.rs), which start their own
# redis-server on a port and in a directory of their own. Idempotent. Exits
# non-zero with what to install when it cannot install it, never skips.
# Prints `redis-server: PATH` as its last line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pin="$(tr -d '[:space:]' <"$root/scripts/test-peers/redis-server.version")"

missing() {
    echo "setup-redis: $1" >&2
    echo "setup-redis: the replica tests of \`cargo test\` need redis-server; on Debian 12: apt-get install redis-server=$pin (or any redis-server 7 on PATH)" >&2
    exit 1
}

installed_version() {
    dpkg-query -W -f='${Version}' redis-server 2>/dev/null || true
}

if ! command -v redis-server >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || missing "redis-server is not on PATH and there is no apt-get"
    [ "$(id -u)" = 0 ] || missing "redis-server is not on PATH and installing it needs root"
    # One install at a time (cargo runs test binaries in parallel).
    exec 8>/tmp/toolgate-setup-redis.lock
    if command -v flock >/dev/null 2>&1; then flock 8; fi
    if ! command -v redis-server >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "redis-server=$pin" >&2 \
            || { apt-get update -q >&2 && apt-get install -y -q "redis-server=$pin" >&2; } \
            || missing "\`apt-get install redis-server=$pin\` failed"
    fi
fi
have="$(installed_version)"
if [ -n "$have" ] && [ "$have" != "$pin" ]; then
    echo "setup-redis: note: redis-server $have is installed, the pin is $pin" >&2
fi
echo "redis-server: $(command -v redis-server)"
