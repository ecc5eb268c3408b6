#!/usr/bin/env bash
# Whole-process time of small fits: `gradmatch fit` of an equation file
# (p = 60, m = 100) against a python3 + numpy + h5py script that reads the
# same file and computes the ridge lambda (the least a user would run instead).
# Rows:
#   gradmatch fit --family sym      the light executable: no LibTorch, no MPI_Init
#   gradmatch fit --family ridge    the same, ridge
#   gradmatch-torch fit --family sym  the executable with LibTorch: what a fit
#                                   costs when the LibTorch libraries load
#   python3 + numpy + h5py ridge
# Each command runs N times (default 21) after one warm-up run; the table gives
# the median and the minimum wall time in seconds, measured with date +%s%N.
# Prints a Markdown table.
#   scripts/bench_fit_startup.sh [BUILD_DIR] [N]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${1:-${GRADMATCH_BUILD_DIR:-$root/build}}"
n="${2:-21}"
exe="$build_dir/src/cli/gradmatch"
torch_exe="$build_dir/src/cli/gradmatch-torch"
for f in "$exe" "$torch_exe"; do
  if [[ ! -x "$f" ]]; then
    echo "bench_fit_startup.sh: $f is missing; build it: cmake --build $build_dir --target gradmatch" >&2
    exit 1
  fi
done
python=/usr/bin/python3
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gradmatch_bench.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

"$python" - "$tmp/eq.h5" <<'EOF'
import sys, h5py, numpy as np
rng = np.random.default_rng(0)
m, p = 100, 60
theta = rng.standard_normal((m, p))
a = rng.standard_normal((p, p))
lam = a @ a.T / p
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["format"] = "gradmatch.equations"
    f.attrs["version"] = 1
    f["theta"] = theta
    f["grad_loss"] = -2.0 * theta @ lam + 0.01 * rng.standard_normal((m, p))
EOF

cat >"$tmp/ridge.py" <<'EOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    theta = f["theta"][()]
    b = -f["grad_loss"][()]
a = 2.0 * theta
print(float(np.sum(a * b) / np.sum(a * a)))
EOF

# Median and minimum of N wall times (seconds) of the command in "$@".
measure() {
  "$@" >/dev/null 2>&1
  local times=()
  for ((i = 0; i < n; ++i)); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    times+=("$(((t1 - t0) / 1000))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%.3f | %.3f", v[int((NR + 1) / 2)] / 1e6, v[1] / 1e6 }'
}

echo "| command (p = 60, m = 100) | median s | min s |"
echo "|---|---|---|"
echo "| \`gradmatch fit eq.h5 --family sym\` | $(measure "$exe" fit "$tmp/eq.h5" --family sym -q -o "$tmp/sym.json") |"
echo "| \`gradmatch fit eq.h5 --family ridge\` | $(measure "$exe" fit "$tmp/eq.h5" --family ridge -q -o "$tmp/ridge.json") |"
echo "| \`gradmatch-torch fit eq.h5 --family sym\` (LibTorch loaded) | $(measure "$torch_exe" fit "$tmp/eq.h5" --family sym -q -o "$tmp/sym2.json") |"
echo "| \`python3 ridge.py eq.h5\` (numpy + h5py) | $(measure "$python" "$tmp/ridge.py" "$tmp/eq.h5") |"
