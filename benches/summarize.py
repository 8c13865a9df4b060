#!/usr/bin/env python3
"""Turns criterion's results (target/criterion) into the markdown tables of
docs/performance.md. Run after `cargo bench -p toolgate-benches --features peers`:

    python3 benches/summarize.py > /tmp/tables.md
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
results = {}
for bench in root.glob("**/new/benchmark.json"):
    meta = json.loads(bench.read_text())
    est = json.loads((bench.parent / "estimates.json").read_text())
    results[meta["full_id"]] = est["median"]["point_estimate"]  # nanoseconds


def fmt(ns):
    if ns is None:
        return "–"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns / 1e6:.2f} ms"


cases = ["support-desk", "synthetic-10", "synthetic-100", "synthetic-1000", "synthetic-10000"]
kinds = ["unconditional allow", "unknown tool deny", "write with condition", "schema-checked condition", "conditional deny"]
print("### Decision latency (median)\n")
print("| request | how | " + " | ".join(cases) + " |")
print("|---|---|" + "---|" * len(cases))
for kind in kinds:
    for how in ["request", "request, cache hit", "json"]:
        row = [results.get(f"decide/{c}/{kind}/{how}") for c in cases]
        if any(v is not None for v in row):
            print(f"| {kind} | {how} | " + " | ".join(fmt(v) for v in row) + " |")
for how in ["request, distinct args", "request, distinct args, cache misses"]:
    v = results.get(f"decide/synthetic-1000/schema-checked condition/{how}")
    if v is not None:
        print(f"| schema-checked condition, 4,096 distinct args | {how.replace('request, distinct args', '').strip(', ') or 'no cache'} | – | – | – | {fmt(v)} | – |")

print("\n### Compile time: parse + check + compile (median)\n")
print("| policy | time |\n|---|---|")
for name in ["compile/support-desk"] + [f"compile/synthetic/{n}" for n in [10, 100, 1000, 10000]]:
    print(f"| {name.split('/', 1)[1]} | {fmt(results.get(name))} |")

print("\n### Side by side with Cedar and Rego (median; same rules, same requests)\n")
print("| rules | request | toolgate | cedar-policy | regorus | cedar / toolgate | regorus / toolgate |")
print("|---|---|---|---|---|---|---|")
for n in [10, 100, 1000, 10000]:
    for kind in kinds:
        t, c, r = (results.get(f"peers/{n}/{kind}/{e}") for e in ["toolgate", "cedar", "regorus"])
        if t is None:
            continue
        ratio = lambda x: f"{x / t:,.0f}x" if x else "–"
        print(f"| {n:,} | {kind} | {fmt(t)} | {fmt(c)} | {fmt(r)} | {ratio(c)} | {ratio(r)} |")
