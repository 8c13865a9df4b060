#!/usr/bin/env bash
# Makes the venv the Python tests of `cargo test` run in: target/test-peers/venv
# (so `cargo clean` removes it) with the pinned, hash-checked peers of
# clients/python/requirements-test.txt (pytest, schemathesis) and the client
# itself. Idempotent: a stamp of the inputs skips the install when nothing
# changed. Needs python3 (3.10 or newer) with venv and pip; exits non-zero with
# what to install when they are missing, never skips silently.
# Prints `venv: PATH` as its last line.
#
# To change a pinned version: edit TOP in scripts/pin-test-peers.py and run it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
peers="$target/test-peers"
venv="$peers/venv"
reqs="$root/clients/python/requirements-test.txt"
python="${PYTHON:-python3}"

# --- redis-server (the replica tests), pinned: scripts/setup-redis.sh ---
"$root/scripts/setup-redis.sh" >&2
# --- end redis-server ---

missing() {
    echo "setup-test-peers: $1" >&2
    echo "setup-test-peers: the Python tests of \`cargo test\` need python3 (3.10 or newer) with venv and pip;" >&2
    echo "setup-test-peers: on Debian/Ubuntu: apt-get install python3 python3-venv python3-pip (or set PYTHON=/path/to/python3.10+)" >&2
    exit 1
}

command -v "$python" >/dev/null 2>&1 || missing "\`$python\` is not on PATH"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null \
    || missing "\`$python\` is $("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo unknown), older than 3.10"
"$python" -c 'import venv, ensurepip' 2>/dev/null || missing "\`$python\` has no venv/ensurepip module"

mkdir -p "$peers"
# One setup at a time (cargo runs test binaries, and tests, in parallel).
exec 9>"$peers/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

stamp_of() {
    cat "$reqs" "$root/clients/python/pyproject.toml" "$0"
    find "$root/clients/python/src" -type f -name '*.py' -o -name py.typed | LC_ALL=C sort | xargs cat
    "$python" -c 'import sys; print(sys.version)'
}
stamp="$(stamp_of | "$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"

if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "venv: $venv"
    exit 0
fi

rm -rf "$venv"
"$python" -m venv "$venv" || missing "\`$python -m venv\` failed"
"$venv/bin/python" -m pip --version >/dev/null 2>&1 || missing "the venv has no pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/python" -m pip install --quiet --require-hashes --only-binary=:all: -r "$reqs" || {
    echo "setup-test-peers: \`pip install --require-hashes -r $reqs\` failed (is PyPI reachable? is this CPython 3.10-3.14 on x86_64 Linux?)" >&2
    exit 1
}
# The client itself, built with the pinned setuptools (no unpinned build deps),
# from a copy so that the build leaves nothing in the source tree.
src="$peers/client-src"
rm -rf "$src" && mkdir -p "$src"
cp -R "$root/clients/python/pyproject.toml" "$root/clients/python/README.md" "$root/clients/python/src" "$src/"
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation "$src" || {
    echo "setup-test-peers: installing the client from clients/python failed" >&2
    exit 1
}
rm -rf "$src"
echo "$stamp" >"$venv/.stamp"
echo "venv: $venv"
