#!/usr/bin/env bash
# Load benchmark of `policyc serve` on loopback with wrk (Debian: apt-get install wrk).
# Not part of `cargo test`. Results and their reading: docs/performance.md, "Gateway service".
#
#   cargo build --release -p policyc
#   benches/load/run.sh                   # DURATION=10s CONNS="1 16 64" by default
#
# Rows: GET /healthz (HTTP alone: no auth, no JSON, no engine), POST /v1/decide
# (auth + JSON + engine), POST /v1/calls on an allowed read (+ state, journal)
# with the journal at fsync writes (the default), always and never. The load
# generator runs on the same machine as the server and shares its cores.
# benches/load/doors.sh is the side-by-side run with cedar-agent.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${POLICYC:-$root/target/release/policyc}"
duration="${DURATION:-10s}"
conns="${CONNS:-1 16 64}"
command -v wrk >/dev/null || { echo "run.sh: needs wrk (apt-get install wrk)" >&2; exit 2; }
[ -x "$bin" ] || { echo "run.sh: no $bin (cargo build --release -p policyc)" >&2; exit 2; }

work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

start() { # start FSYNC: a fresh data dir, a service key, a server; sets $url $key
    local data="$work/data-$1"
    mkdir -p "$data"
    key="$("$bin" keys add bench --role service --data "$data" | tail -1)"
    opkey="$("$bin" keys add bench-ops --role operator --data "$data" | tail -1)"
    "$bin" serve --policy "$root/policies/support-desk.policy" --data "$data" \
        --listen 127.0.0.1:0 --fsync "$1" >"$work/serve-$1.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do
        url="$(sed -n 's/^toolgate: listening on //p' "$work/serve-$1.log")"
        [ -n "$url" ] && return 0
        sleep 0.1
    done
    echo "run.sh: the server did not start:" >&2; cat "$work/serve-$1.log" >&2; exit 2
}

# Server-side means from /metrics (sum/count of each duration histogram): time
# inside the handlers, the engine and the journal, without the client's share.
means() {
    curl -s "$url/metrics" -H "authorization: Bearer $opkey" | awk '
        /^toolgate_(http_request|decision|journal_write)_duration_seconds_(sum|count)/ {
            name = $1; sub(/_(sum|count)/, "", name); kind = ($1 ~ /_sum/) ? "sum" : "count"
            v[name, kind] = $2; names[name] = 1 }
        END { for (n in names) if (v[n, "count"] > 0)
            printf "  %-75s mean %8.1f us over %d\n", n, 1e6 * v[n, "sum"] / v[n, "count"], v[n, "count"] }' | sort
}

stop() { echo; echo "server-side means ($1):"; means; echo; kill "$server"; wait "$server" 2>/dev/null || true; server=""; }

lua() { # lua BODY: a wrk script posting BODY with the key
    cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$1'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $key"
LUA
}

row() { # row LABEL PATH [lua]
    local label="$1" path="$2" script="${3:-}" c t out rps p50 p99 errs
    for c in $conns; do
        t=$(( c < 2 ? 1 : 2 ))
        out="$(wrk -t"$t" -c"$c" -d"$duration" --latency ${script:+-s "$script"} "$url$path")"
        rps="$(awk '/^Requests\/sec/ {printf "%d", $2}' <<<"$out")"
        p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
        p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
        errs="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
        printf '| %-34s | %3s | %8s | %9s | %9s |%s\n' "$label" "$c" "$rps" "$p50" "$p99" "${errs:+ non-2xx: $errs}"
    done
}

read_call='{"agent":"support-bot","tool":"kb.read","args":{"q":"refund"},"context":{"tenant":"acme","env":"prod","account_id":"A1"}}'

echo "policyc serve, loopback, wrk $(wrk --version 2>&1 | awk 'NR==1 {print $2}'), $duration per cell, $(nproc) cores shared by server and wrk"
echo
echo "| endpoint                           |   c |    req/s |       p50 |       p99 |"
echo "|------------------------------------|-----|----------|-----------|-----------|"
start writes
row "GET /healthz" /healthz
lua "$read_call"
row "POST /v1/decide (allowed read)" /v1/decide "$work/post.lua"
row "POST /v1/calls, fsync writes" /v1/calls "$work/post.lua"
stop "fsync writes"
start always
lua "$read_call"
row "POST /v1/calls, fsync always" /v1/calls "$work/post.lua"
stop "fsync always"
start never
lua "$read_call"
row "POST /v1/calls, fsync never" /v1/calls "$work/post.lua"
stop "fsync never"
