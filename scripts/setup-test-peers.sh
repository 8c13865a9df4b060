#!/usr/bin/env bash
# The one set-up script of the test peers that `cargo test` runs against.
# Idempotent (a stamp of the inputs skips an install when nothing changed);
# a missing prerequisite exits non-zero saying what to install, never skips.
#
#   scripts/setup-test-peers.sh [python] [npm] [redis] [agentdojo]
#   (no argument: python, npm and redis, the peers of `cargo test`)
#
# Each section prints one `NAME: PATH` line:
# - python: `venv: PATH`, target/test-peers/venv (so `cargo clean` removes it)
#   with the pinned, hash-checked peers of clients/python/requirements-test.txt
#   (pytest, schemathesis, the MCP Python SDK) and the client itself. Needs
#   python3 (3.10 or newer) with venv and pip. To change a pinned version: edit
#   TOP in scripts/pin-test-peers.py and run it.
# - npm: `npm: PATH`, target/test-peers/npm/node_modules with the MCP peers
#   pinned by crates/policyc/tests/peers/package-lock.json (`npm ci`): the
#   reference servers server-filesystem and server-everything, the MCP
#   conformance suite, and openapi-typescript + typescript (the test that
#   docs/openapi.json types a call). Needs node (20 or newer) and npm. To change a version:
#   edit package.json there and run `npm install --package-lock-only`.
# - agentdojo (only when named; `cargo test` does not need it): `agentdojo: PATH`,
#   target/test-peers/agentdojo-venv with agentdojo==0.1.35 and everything it
#   pulls in, pinned and hash-checked by benches/agentdojo/requirements.txt
#   (scripts/pin-test-peers.py --set agentdojo). The full AgentDojo evaluation
#   runs in it (benches/agentdojo/README.md). Needs python3 (3.10 or newer).
# - redis: `redis-server: PATH`, Debian's redis-server at the version pinned in
#   scripts/test-peers/redis-server.version (scripts/setup-redis.sh; apt-get
#   install when it is missing, which needs root).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
peers="$target/test-peers"
mkdir -p "$peers"
# One setup at a time (cargo runs test binaries, and tests, in parallel).
exec 9>"$peers/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

hash_stdin() { sha256sum | cut -d" " -f1; }

# Checks that $python (3.10 or newer, with venv and pip) can build a venv for
# $1 (what needs it, for the message); `missing` exits saying what to install.
need_python() {
    need_for="$1"
    missing() {
        echo "setup-test-peers: $1" >&2
        echo "setup-test-peers: $need_for need python3 (3.10 or newer) with venv and pip;" >&2
        echo "setup-test-peers: on Debian/Ubuntu: apt-get install python3 python3-venv python3-pip (or set PYTHON=/path/to/python3.10+)" >&2
        exit 1
    }
    command -v "$python" >/dev/null 2>&1 || missing "\`$python\` is not on PATH"
    "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null \
        || missing "\`$python\` is $("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo unknown), older than 3.10"
    "$python" -c 'import venv, ensurepip' 2>/dev/null || missing "\`$python\` has no venv/ensurepip module"
}

setup_python() {
    local venv="$peers/venv" reqs="$root/clients/python/requirements-test.txt" python="${PYTHON:-python3}"
    need_python "the Python tests of \`cargo test\`"

    stamp_of() {
        cat "$reqs" "$root/clients/python/pyproject.toml" "$0"
        find "$root/clients/python/src" -type f -name '*.py' -o -name py.typed | LC_ALL=C sort | xargs cat
        "$python" -c 'import sys; print(sys.version)'
    }
    stamp="$(stamp_of | "$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"

    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ]; then
        echo "venv: $venv"
        return 0
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

}

# A venv at $1 with the hash-locked requirements $2 (the AgentDojo
# evaluation's), rebuilt only when the requirements or the interpreter change.
setup_pinned_venv() {
    local venv="$1" reqs="$2" python="${PYTHON:-python3}"
    need_python "$3"
    local stamp
    stamp="$({ cat "$reqs" "$0"; "$python" -c 'import sys; print(sys.version)'; } | hash_stdin)"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv" || missing "\`$python -m venv\` failed"
    "$venv/bin/python" -m pip --version >/dev/null 2>&1 || missing "the venv has no pip"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet --require-hashes --only-binary=:all: -r "$reqs" || {
        echo "setup-test-peers: \`pip install --require-hashes -r $reqs\` failed (is PyPI reachable? is this CPython 3.10-3.14 on x86_64 Linux?)" >&2
        exit 1
    }
    echo "$stamp" >"$venv/.stamp"
}

setup_agentdojo() {
    setup_pinned_venv "$peers/agentdojo-venv" "$root/benches/agentdojo/requirements.txt" "the AgentDojo evaluation (benches/agentdojo) and its tools"
    echo "agentdojo: $peers/agentdojo-venv"
}

setup_npm() {
    local lock="$root/crates/policyc/tests/peers" dir="$peers/npm"
    nomissing() {
        echo "setup-test-peers: $1" >&2
        echo "setup-test-peers: the MCP tests of \`cargo test\` need node (20 or newer) and npm, with the npm registry reachable;" >&2
        echo "setup-test-peers: on Debian/Ubuntu: apt-get install nodejs npm (or install Node.js 20+ from nodejs.org)" >&2
        exit 1
    }
    command -v node >/dev/null 2>&1 || nomissing "\`node\` is not on PATH"
    command -v npm >/dev/null 2>&1 || nomissing "\`npm\` is not on PATH"
    node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
        || nomissing "\`node\` is $(node --version), older than 20"
    local stamp
    stamp="$(cat "$lock/package.json" "$lock/package-lock.json" <(node --version) | hash_stdin)"
    if [ -d "$dir/node_modules" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
        echo "npm: $dir/node_modules"
        return 0
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$lock/package.json" "$lock/package-lock.json" "$dir/"
    # `npm ci` installs exactly the lockfile (integrity-checked) or fails.
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2 || {
        echo "setup-test-peers: \`npm ci\` in $dir failed (is the npm registry reachable?)" >&2
        exit 1
    }
    echo "$stamp" >"$dir/.stamp"
    echo "npm: $dir/node_modules"
}

setup_redis() {
    # redis-server (the replica tests), the Debian package at the version
    # pinned in scripts/test-peers/redis-server.version; prints `redis-server: PATH`.
    "$root/scripts/setup-redis.sh"
}

if [ "$#" -eq 0 ]; then set -- python npm redis; fi
for part in "$@"; do
    case "$part" in
        python) setup_python ;;
        npm) setup_npm ;;
        redis) setup_redis ;;
        agentdojo) setup_agentdojo ;;
        *) echo "setup-test-peers: unknown part \`$part\` (python, npm, redis, agentdojo)" >&2; exit 2 ;;
    esac
done
