#!/usr/bin/env bash
# The door benchmark: `policyc serve` and cedar-agent (a real peer: Rust,
# rocket, Cedar) side by side in one run, on loopback, loaded by wrk.
# Not part of `cargo test`. Results and their reading: docs/performance.md,
# "The doors side by side".
#
#   apt-get install wrk
#   cargo build --release -p policyc
#   cargo install cedar-agent --locked --root target/peers
#   flock /tmp/tg-cargo.lock benches/load/doors.sh   # nothing else building during the run
#
# DURATION (10s) per cell, CONNS ("1 16 64") for the rows at every c,
# CALL_CONNS ("16 64") for /v1/calls, FSYNC (writes, the default) for the
# server's journal. Rows, each at every c:
#   GET /healthz                   HTTP alone (no auth, no body, no engine)
#   POST /v1/decide                auth + JSON + engine; nothing journaled
#   POST /v1/calls (allowed read)  + reserve, lease, decision record (journal)
#   cedar-agent GET /v1            its health route (204): its HTTP alone
#   cedar-agent POST /v1/is_authorized   the same request in Cedar
# then the ratios the targets name. wrk shares the 2 cores with the servers.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${POLICYC:-$root/target/release/policyc}"
cedar="${CEDAR_AGENT:-$root/target/peers/bin/cedar-agent}"
duration="${DURATION:-10s}"
conns="${CONNS:-1 16 64}"
call_conns="${CALL_CONNS:-16 64}"
fsync="${FSYNC:-writes}"
me="doors.sh"

command -v wrk >/dev/null || { echo "$me: needs wrk: apt-get install wrk" >&2; exit 2; }
command -v python3 >/dev/null || { echo "$me: needs python3 (to write cedar-agent's policy file)" >&2; exit 2; }
[ -x "$bin" ] || { echo "$me: no $bin: cargo build --release -p policyc" >&2; exit 2; }
[ -x "$cedar" ] || { echo "$me: no $cedar: cargo install cedar-agent --locked --root target/peers" >&2; exit 2; }

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- policyc serve: support-desk, a service key, the journal at $fsync.
data="$work/data"
mkdir -p "$data"
key="$("$bin" keys add bench --role service --data "$data" | tail -1)"
"$bin" serve --policy "$root/policies/support-desk.policy" --data "$data" \
    --listen 127.0.0.1:0 --fsync "$fsync" >"$work/serve.log" 2>&1 &
pids+=($!)
url=""
for _ in $(seq 100); do
    url="$(sed -n 's/^toolgate: listening on //p' "$work/serve.log")"
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "$me: policyc serve did not start:" >&2; cat "$work/serve.log" >&2; exit 2; }

# --- cedar-agent: the same rules (benches/load/support-desk.cedar), an API token.
python3 - "$root/benches/load/support-desk.cedar" "$work/policies.json" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
policies = []
for block in re.split(r"\n\s*\n", text):
    lines = [l for l in block.splitlines() if l.strip() and not l.lstrip().startswith("//")]
    if not lines:
        continue
    content = "\n".join(lines)
    m = re.search(r'@id\("([^"]+)"\)', content)
    policies.append({"id": m.group(1), "content": content})
json.dump(policies, open(sys.argv[2], "w"), indent=1)
PY
echo '[]' >"$work/entities.json"
cedar_key="Bearer bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
cedar_port="$(free_port)"
"$cedar" --addr 127.0.0.1 --port "$cedar_port" --authentication "$cedar_key" \
    --policies "$work/policies.json" --data "$work/entities.json" --log-level error \
    >"$work/cedar.log" 2>&1 &
pids+=($!)
cedar_url="http://127.0.0.1:$cedar_port"
for _ in $(seq 100); do
    curl -sf "$cedar_url/v1" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "$cedar_url/v1" >/dev/null || { echo "$me: cedar-agent did not start:" >&2; cat "$work/cedar.log" >&2; exit 2; }

# --- The request: support-bot reads the knowledge base (an allowed read).
read_call='{"agent":"support-bot","tool":"kb.read","args":{"q":"refund"},"context":{"tenant":"acme","env":"prod","account_id":"A1"}}'
cedar_call='{"principal":"Agent::\"support-bot\"","action":"Action::\"kb.read\"","resource":"Tenant::\"acme\"","context":{"tenant":"acme","env":"prod","account_id":"A1","args":{"q":"refund"}}}'

post_script() { # post_script FILE BODY AUTH: a wrk script posting BODY
    local body="${2//\\/\\\\}"
    cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "$3"
LUA
}
post_script "$work/decide.lua" "$read_call" "Bearer $key"
post_script "$work/cedar.lua" "$cedar_call" "$cedar_key"

# Both answer allow before anything is timed (and a wrong answer stops the run).
said="$(curl -s "$url/v1/decide" -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$read_call")"
grep -q '"decision":"allow"' <<<"$said" || { echo "$me: /v1/decide did not allow: $said" >&2; exit 2; }
said="$(curl -s "$url/v1/calls" -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$read_call")"
grep -q '"outcome":"allowed"' <<<"$said" || { echo "$me: /v1/calls did not allow: $said" >&2; exit 2; }
said="$(curl -s "$cedar_url/v1/is_authorized" -H "authorization: $cedar_key" -H 'content-type: application/json' -d "$cedar_call")"
grep -q '"decision":"Allow"' <<<"$said" || { echo "$me: cedar-agent did not allow: $said" >&2; exit 2; }
denied='{"principal":"Agent::\"support-bot\"","action":"Action::\"db.write\"","resource":"Tenant::\"acme\"","context":{"tenant":"acme","env":"prod","account_id":"A1","args":{}}}'
said="$(curl -s "$cedar_url/v1/is_authorized" -H "authorization: $cedar_key" -H 'content-type: application/json' -d "$denied")"
grep -q '"decision":"Deny"' <<<"$said" || { echo "$me: cedar-agent did not deny db.write: $said" >&2; exit 2; }

declare -A rps
# cell LABEL C URL [SCRIPT]: one wrk run; prints a table row, keeps req/s.
cell() {
    local label="$1" c="$2" target="$3" script="${4:-}" t out r p50 p99 errs
    t=$(( c < 2 ? 1 : 2 ))
    out="$(wrk -t"$t" -c"$c" -d"$duration" --latency ${script:+-s "$script"} "$target")"
    r="$(awk '/^Requests\/sec/ {printf "%d", $2}' <<<"$out")"
    p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    errs="$(awk '/Non-2xx|Socket errors/ {$1 = $1; print}' <<<"$out" | paste -sd ';' -)"
    rps["$label/$c"]="$r"
    printf '| %-38s | %3s | %8s | %9s | %9s |%s\n' "$label" "$c" "$r" "$p50" "$p99" "${errs:+ $errs}"
}

echo "doors.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores shared by the servers and wrk" \
    "($(wrk --version 2>&1 | awk 'NR == 1 {print $1, $2}')), $duration per cell, policyc serve --fsync $fsync," \
    "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| endpoint                               |   c |    req/s |       p50 |       p99 |"
echo "|----------------------------------------|-----|----------|-----------|-----------|"
for c in $conns; do
    cell "toolgate GET /healthz" "$c" "$url/healthz"
    cell "toolgate POST /v1/decide" "$c" "$url/v1/decide" "$work/decide.lua"
    cell "cedar-agent GET /v1 (health)" "$c" "$cedar_url/v1"
    cell "cedar-agent POST /v1/is_authorized" "$c" "$cedar_url/v1/is_authorized" "$work/cedar.lua"
done
for c in $call_conns; do
    cell "toolgate POST /v1/calls (read, $fsync)" "$c" "$url/v1/calls" "$work/decide.lua"
done

ratio() { python3 -c "import sys; a, b = float(sys.argv[1] or 0), float(sys.argv[2] or 0); print(f'{a / b:.2f}' if b else '-')" "$1" "$2"; }
echo
echo "| ratio (same run)                           |   c | measured | target |"
echo "|--------------------------------------------|-----|----------|--------|"
for c in $conns; do
    d="${rps[toolgate POST /v1/decide/$c]:-}" h="${rps[toolgate GET /healthz/$c]:-}" a="${rps[cedar-agent POST /v1/is_authorized/$c]:-}"
    printf '| %-42s | %3s | %8s | %6s |\n' "/v1/decide / /healthz" "$c" "$(ratio "$d" "$h")" "≥ 0.8"
    printf '| %-42s | %3s | %8s | %6s |\n' "/v1/decide / cedar-agent /v1/is_authorized" "$c" "$(ratio "$d" "$a")" "≥ 3"
done
for c in $call_conns; do
    k="${rps[toolgate POST /v1/calls (read, $fsync)/$c]:-}" h="${rps[toolgate GET /healthz/$c]:-}"
    printf '| %-42s | %3s | %8s | %6s |\n' "/v1/calls (read) / /healthz" "$c" "$(ratio "$k" "$h")" "≥ 0.6"
done
