#!/usr/bin/env bash
# Load benchmark of `policyc serve` replicas on one Redis, with wrk. Not part
# of `cargo test`. Results: docs/performance.md, "Replicas on Redis".
#
#   cargo build --release -p policyc
#   benches/load/replicas.sh        # DURATION=8s CONNS=16 by default
#
# Rows: an allowed read (`kb.read`, no state) and a budgeted write
# (`ticket.create`, one budget unit each) through one replica and through three
# (one wrk per replica, at the same time; calls/s summed, p99 the worst of the
# three). Redis round trips per call from `INFO commandstats` deltas (calls to
# Redis from the replicas, not counting the commands inside scripts). The
# replicas, Redis and wrk all share this machine's cores.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${POLICYC:-$root/target/release/policyc}"
duration="${DURATION:-8s}"
conns="${CONNS:-16}"
command -v wrk >/dev/null || { echo "replicas.sh: needs wrk (apt-get install wrk)" >&2; exit 2; }
[ -x "$bin" ] || { echo "replicas.sh: no $bin (cargo build --release -p policyc)" >&2; exit 2; }
redis_bin="$("$root/scripts/setup-redis.sh" | sed -n 's/^redis-server: //p')"

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(( 20000 + RANDOM % 20000 ))
"$redis_bin" --port "$port" --bind 127.0.0.1 --dir "$work" --appendonly yes --appendfsync everysec \
    --save "" >"$work/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done

keys="$work/keys.toml"
key="$("$bin" keys add bench --role service --keys "$keys" | tail -1)"
urls=()
for i in 1 2 3; do
    data="$work/r$i"; mkdir -p "$data"
    [ "$i" -gt 1 ] && cp "$work/r1/digest.key" "$data/digest.key"
    "$bin" serve --policy "$root/benches/load/replicas.policy" --data "$data" --keys "$keys" \
        --listen 127.0.0.1:0 --fsync never --store "redis://127.0.0.1:$port/0" --replica-id "r$i" \
        >"$work/serve-$i.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        url="$(sed -n 's/^toolgate: listening on //p' "$work/serve-$i.log")"
        [ -n "$url" ] && break
        sleep 0.1
    done
    [ -n "$url" ] || { echo "replica $i did not start:" >&2; cat "$work/serve-$i.log" >&2; exit 2; }
    urls+=("$url")
done

# The same policy with the embedded store, for comparison (no Redis).
mkdir -p "$work/mem"
"$bin" serve --policy "$root/benches/load/replicas.policy" --data "$work/mem" --keys "$keys" \
    --listen 127.0.0.1:0 --fsync never >"$work/serve-mem.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    mem_url="$(sed -n 's/^toolgate: listening on //p' "$work/serve-mem.log")"
    [ -n "$mem_url" ] && break
    sleep 0.1
done

script() { # script TOOL ARGS: a wrk script posting a call (a fresh id each time)
    cat >"$work/$1.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $key"
local n = 0
request = function()
  n = n + 1
  local body = '{"id":"c' .. n .. '-' .. math.random(1e9) .. '","agent":"bot","tool":"$1","args":$2,"context":{"tenant":"acme","env":"prod"}}'
  return wrk.format(nil, "/v1/calls", nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %.3f %.3f\n", summary.requests, latency:percentile(99) / 1000, summary.duration / 1e6))
end
LUA
}
script kb.read '{}'
script ticket.create '{"title":"t"}'

# Round trips: top-level commands only. Commands run inside the scripts
# (zremrangebyscore, zcard, zadd, pexpire, set) and the kill switch watcher's
# HKEYS every 100 ms per replica are left out.
calls() {
    redis-cli -p "$port" info commandstats | awk -F'[:=,]' '
        /^cmdstat_/ && $1 !~ /_(zremrangebyscore|zcard|zadd|pexpire|set|hkeys|info)$/ { s += $3 }
        END { print s + 0 }'
}

row() { # row NAME TOOL N [URL]: N replicas on Redis, or the one server at URL
    local before after out total=0 p99=0 secs=0
    before="$(calls)"
    for i in $(seq 0 $(( $3 - 1 ))); do
        wrk -t1 -c"$conns" -d"$duration" -s "$work/$2.lua" "${4:-${urls[$i]}}" >"$work/wrk-$i.txt" 2>&1 &
    done
    wait $(jobs -p | tail -n "$3") 2>/dev/null || true
    after="$(calls)"
    for i in $(seq 0 $(( $3 - 1 ))); do
        read -r _ n p s < <(grep RESULT "$work/wrk-$i.txt")
        total=$(( total + n ))
        p99=$(awk -v a="$p99" -v b="$p" 'BEGIN { print (b > a) ? b : a }')
        secs="$s"
    done
    awk -v name="$1" -v n="$3" -v total="$total" -v secs="$secs" -v p99="$p99" -v rt="$(( after - before ))" \
        'BEGIN { printf "| %-28s | %d | %8.0f | %8.2f ms | %5.2f |\n", name, n, total / secs, p99, rt / total }'
}

echo "| call                         | replicas | calls/s | p99 | Redis round trips per call |"
echo "|------------------------------|---|----------|-------------|-------|"
row "allowed read, --store memory" kb.read 1 "$mem_url"
row "allowed read (kb.read)" kb.read 1
row "allowed read (kb.read)" kb.read 3
row "budgeted write, --store memory" ticket.create 1 "$mem_url"
row "budgeted write (ticket.create)" ticket.create 1
row "budgeted write (ticket.create)" ticket.create 3
