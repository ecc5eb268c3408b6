#!/usr/bin/env bash
# The distributed-fit benchmark of docs/performance.md: the fit of
# `gradmatch fit` (distributed::fit_equation_file: each rank reads its rows,
# then the distributed solve) under mpirun at 1, 2 and 4 ranks, one BLAS
# thread per rank, against the serial core fit() on the same file:
#   sym, p = 500, m = 1000: structured by ScaLAPACK (PDGEMM + PDSYEVD, the
#     default from p = 256) and by the all-reduce of G and C
#   features, r = 8, on 10^7 equations (m = 10^5 points x p = 100):
#     the Gram all-reduce (--method normal) and distributed QR (--method qr)
# Times are best of N from barrier to barrier and include the parallel read;
# "serial" is read_equation_file + fit() on one rank (from the 1-rank run).
# Agreement is max |coef - serial coef| / max |serial coef|.
# The equation files (~0.85 GB) live in a temporary directory that is deleted
# on exit. Prints a Markdown table.
#   scripts/bench_distributed_fit.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${1:-${GRADMATCH_BUILD_DIR:-$root/build}}"
bench="$build_dir/tests/benchmarks/distributed_fit_bench"
if [[ ! -x "$bench" ]]; then
  echo "bench_distributed_fit.sh: $bench is missing; build it: make -C $build_dir distributed_fit_bench" >&2
  exit 1
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gradmatch_bench.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
run() { local np="$1"; shift; mpirun --oversubscribe -n "$np" "$bench" "$@"; }

run 1 generate-sym "$tmp/sym.h5" 1000 500
run 1 generate-features "$tmp/features.h5" 100000 100 8

runs="$tmp/runs.tsv"
bench_case() {  # LABEL FILE FAMILY METHOD REPEAT [EXTRA...]
  local label="$1" file="$2" family="$3" method="$4" repeat="$5"
  shift 5
  for np in 1 2 4; do
    local serial=()
    [[ "$np" == 1 ]] && serial=(--serial)
    printf '%s\t%s\n' "$label" "$(run "$np" fit "$file" "$family" "$method" --repeat "$repeat" "${serial[@]}" "$@")" >>"$runs"
  done
}
bench_case "sym p=500 m=1000 | structured, ScaLAPACK" "$tmp/sym.h5" sym structured 3
bench_case "sym p=500 m=1000 | structured, all-reduce of G, C" "$tmp/sym.h5" sym structured 3 --scalapack-min-p 1000000000
bench_case "features r=8, 10^7 equations | normal (Gram all-reduce)" "$tmp/features.h5" features normal 2
bench_case "features r=8, 10^7 equations | qr (PDGEQRF)" "$tmp/features.h5" features qr 2

/usr/bin/python3 - "$runs" <<'PY'
import json, sys
rows = [line.rstrip("\n").split("\t", 1) for line in open(sys.argv[1])]
serial = {}
for label, text in rows:
    d = json.loads(text)
    if "serial_coefficients" in d:
        serial[label] = (d["serial_seconds"], d["serial_coefficients"])
print("| problem | path | ranks | time | serial fit() | agreement with serial |")
print("|---|---|---|---|---|---|")
for label, text in rows:
    d = json.loads(text)
    problem, path = label.split(" | ")
    s_time, s_coef = serial[label]
    scale = max(abs(c) for c in s_coef)
    diff = max(abs(a - b) for a, b in zip(d["coefficients"], s_coef)) / scale
    print(f"| {problem} | {path} | {d['ranks']} | {d['seconds']:.3f} s | {s_time:.3f} s | {diff:.1e} |")
PY
