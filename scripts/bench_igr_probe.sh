#!/usr/bin/env bash
# IGR probe-step cost (issue target): one probe step -- g and H g by double
# backprop, the GD step and an RK4 reference of k substeps -- must cost at
# most 1.2x its 4k + 2 gradient evaluations. Runs igr_probe_bench (the
# paper's probe: bias-free tanh MLP 784 -> 5 x width -> 10, cross-entropy,
# 2048 examples, float64, one thread) and prints the table of docs/performance.md.
#
#   scripts/bench_igr_probe.sh [BUILD_DIR]
#
# BUILD_DIR defaults to build/ (needs BUILD_DIR/tests/benchmarks/igr_probe_bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
bench=$build/tests/benchmarks/igr_probe_bench
[[ -x $bench ]] || { echo "bench: no $bench (build the igr_probe_bench target)" >&2; exit 2; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"${pin[@]}" "$bench" --benchmark_format=json --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true >"$out"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
med = {r["run_name"]: r["real_time"] for r in runs if r.get("aggregate_name") == "median"}
def t(name, *args):
    return med["%s/%s/min_time:0.500" % (name, "/".join(str(a) for a in args))]
print("| width | p | k | gradient (ms) | g and Hg (ms) | probe step (ms) | (4k+2) gradients (ms) | ratio |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for width in (50, 100, 200):
    p = 784 * width + 4 * width * width + 10 * width + 10
    g = t("BM_Gradient", width, 2048)
    gh = t("BM_GradientAndHvp", width, 2048)
    for k in (2, 10):
        step = t("BM_ProbeStep", width, 2048, k)
        budget = (4 * k + 2) * g
        print("| %d | %d | %d | %.2f | %.2f | %.1f | %.1f | %.3f |" % (width, p, k, g, gh, step, budget, step / budget))
PY
