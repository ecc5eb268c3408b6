#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the OLS early-stopping
# study at paper scale (paper Figure 4 and appendix Figure 7; a few seconds),
# draws its figures and prints its report.
#   scripts/example.sh [OUT_DIR]     (default runs/example)
# Re-running on a finished OUT_DIR redraws the figures and the report.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
build_dir="${GRADMATCH_BUILD_DIR:-$root/build}"
out="${1:-$root/runs/example}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
"$build_dir/src/cli/gradmatch" run "$root/configs/ols_early_stopping.toml" --out "$out"
/usr/bin/python3 "$root/scripts/plot_ols_early_stopping.py" "$out"
"$build_dir/src/cli/gradmatch" report "$out"
