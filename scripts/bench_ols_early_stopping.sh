#!/usr/bin/env bash
# Times the paper-scale OLS early-stopping study (Figures 4 and 7) on 2 cores.
# Target: <= 60 s (the paper's CPU jobs were allocated 60 to 240 minutes).
#
#   scripts/bench_ols_early_stopping.sh [BUILD_DIR] [OUT_DIR]
#
# BUILD_DIR defaults to build/ (the gradmatch executable is BUILD_DIR/src/cli/gradmatch;
# set GRADMATCH=/path/to/gradmatch to use another). OUT_DIR defaults to a fresh
# temporary directory. Prints the wall time, run_info.json's stage timings and
# the headline numbers of summary.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out=${2:-$(mktemp -d)/ols_early_stopping}
gradmatch=${GRADMATCH:-$build/src/cli/gradmatch}
config=$root/configs/ols_early_stopping.toml
[[ -x $gradmatch ]] || { echo "bench: no gradmatch executable at $gradmatch (build it, or set GRADMATCH)" >&2; exit 2; }
rm -rf "$out"

# Two ranks of one compute thread each fill the two cores (the task farm
# spreads the study's tasks over them).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ranks=${RANKS:-2}

start=$EPOCHREALTIME
mpirun -n "$ranks" --oversubscribe "$gradmatch" run "$config" --out "$out"
end=$EPOCHREALTIME
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
printf 'bench: paper-scale ols_early_stopping, %d ranks on 2 cores: %.2f s wall (target <= 60 s)\n' "$ranks" "$wall"
echo "bench: outputs in $out"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
info = json.load(open(f"{out}/run_info.json"))
s = json.load(open(f"{out}/summary.json"))
print("stages (s):", {k: round(v, 3) for k, v in info["wall_seconds"].items()}, "tasks:", info["tasks"])
print("stop_epoch:", s["stop_epoch"])
print("fixed_iterate_rel_error: %.3g" % s["fixed_iterate_rel_error"])
print("diag_retrain_max_abs_diff: %.3g" % s["diag_retrain_max_abs_diff"])
b = s["bootstrap_distance_by_m"]
print("bootstrap distance at m = 1, 50, 100: %.4g, %.4g, %.4g (zero baseline %.4g)"
      % (b["mean"][0], b["mean"][49], b["mean"][-1], b["zero_baseline"]))
w = s["sigma_sweep"]
print("sigma sweep:", ", ".join("%g: %.3g" % (x, d) for x, d in zip(w["sigma"], w["distance"])),
      "(zero baseline %.3g)" % w["zero_baseline"][0])
PY
