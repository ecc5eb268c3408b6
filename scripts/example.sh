#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job on a shipped
# example: the OLS early-stopping study at smoke scale, then its figures.
#   scripts/example.sh [OUT_DIR]     (default runs/example)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
build_dir="${GRADMATCH_BUILD_DIR:-$root/build}"
out="${1:-$root/runs/example}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
"$build_dir/src/cli/gradmatch" run "$root/configs/smoke/ols_early_stopping.toml" --out "$out"
/usr/bin/python3 "$root/scripts/plot_ols_early_stopping.py" "$out"
"$build_dir/src/cli/gradmatch" report "$out"
