#!/usr/bin/env bash
# The `sym` solver benchmark of docs/performance.md: structured vs
# vech at p = 10, 30, 60 (m = 2p) and structured at p = 2000, m = 4000, on one
# core (one BLAS thread, pinned). Prints a Markdown table.
#   scripts/bench_sym.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${1:-${GRADMATCH_BUILD_DIR:-$root/build}}"
json="$(mktemp)"
trap 'rm -f "$json"' EXIT
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 taskset -c 0 \
  "$build_dir/tests/benchmarks/sym_solver_bench" --benchmark_format=json --benchmark_out="$json" \
  --benchmark_out_format=json >/dev/null
/usr/bin/python3 - "$json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
def secs(b):
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
    return b["real_time"] * scale
by = {}
for b in runs:
    method = "structured" if "Structured" in b["name"] else "vech"
    by[(method, int(b["p"]), int(b["m"]))] = b
print("| p | m | structured | vech | vech / structured | relative agreement |")
print("|---|---|---|---|---|---|")
for (method, p, m), b in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    if method != "structured":
        continue
    v = by.get(("vech", p, m))
    s = secs(b)
    if v:
        print(f"| {p} | {m} | {s*1e3:.3f} ms | {secs(v)*1e3:.1f} ms | {secs(v)/s:,.0f}x | {v['agreement']:.1e} |")
    else:
        print(f"| {p} | {m} | {s:.2f} s | - | - | - |")
PY
