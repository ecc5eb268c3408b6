#!/usr/bin/env bash
# The bootstrap study at scale on CPU ranks: a 784 -> 128 -> 10 ReLU
# classifier (torch.jit.script, float32) on Fashion-MNIST (Debian's
# dataset-fashion-mnist, /usr/share/datasets/fashion-mnist), scope = the last
# layer (1,290 parameters), REPLICATES bootstrap replicates of EPOCHS SGD
# epochs each (batch 128, lr 0.05, momentum 0.9), then the ridge and sym fits
# over the scope. Reports the study's wall time, the time per replicate (rank
# busy seconds and CPU seconds per replicate, from run_info.json), the sym
# solve inside the study (on RANKS ranks: ScaLAPACK, since p = 1,290 is above
# the crossover p >= 256) and a serial refit of the written equations.h5 by
# `gradmatch fit` on one rank, and the sym fit's rank and warnings. The sym
# fit is underdetermined unless REPLICATES >= 1,290 (it says so).
#   scripts/bench_bootstrap.sh [BUILD_DIR] [REPLICATES (default 16)] [RANKS (default 2)] [EPOCHS (default 1)] [KEEP_DIR]
# KEEP_DIR: run the study there and keep it (default: a temporary directory).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${1:-${GRADMATCH_BUILD_DIR:-$root/build}}"
replicates="${2:-16}"
ranks="${3:-2}"
epochs="${4:-1}"
exe="$build_dir/src/cli/gradmatch"
py="${BENCH_PYTHON:-/usr/bin/python3}"   # a python3 with torch (BENCH_PYTHON: e.g. a CUDA PyTorch's)
data=/usr/share/datasets/fashion-mnist
[[ -x "$exe" ]] || { echo "bench_bootstrap.sh: build $exe first" >&2; exit 1; }
[[ -d "$data" ]] || { echo "bench_bootstrap.sh: $data is missing (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
keep="${5:-}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gradmatch_bench.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
run="${keep:-$tmp/run}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# torch.jit.script reads the class's source: the script must be a file.
cat >"$tmp/classifier.py" <<'PY'
import sys, torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(784, 128)
        self.out = torch.nn.Linear(128, 10)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x.reshape(x.shape[0], -1))))
torch.jit.script(Net()).save(sys.argv[1])
PY
"$py" "$tmp/classifier.py" "$tmp/classifier.pt"
cat >"$tmp/bootstrap.toml" <<TOML
study = "bootstrap"
seed = 1
loss = "ce"
replicates = $replicates
scope = ["out.*"]
[model]
file = "classifier.pt"
[data]
dir = "$data"
[training]
optimizer = "sgd"
learning_rate = 0.05
momentum = 0.9
batch_size = 128
epochs = $epochs
[fit]
families = ["ridge", "sym"]
TOML

seconds() { local t0 t1; t0=$(date +%s%N); "$@" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }; t1=$(date +%s%N); echo "$(((t1 - t0) / 1000000))"; }
study_ms=$(seconds mpirun --oversubscribe -n "$ranks" "$exe" run "$tmp/bootstrap.toml" --out "$run")
fit1_ms=$(seconds "$exe" fit "$run/equations.h5" --family sym -q -o "$tmp/sym1.h5")
"$py" - "$run" "$replicates" "$ranks" "$epochs" "$study_ms" "$fit1_ms" <<'PY'
import json, sys
run, replicates, ranks, epochs, study_ms, fit1_ms = sys.argv[1:]
info = json.load(open(f"{run}/run_info.json"))
stage = info["stages"]["replicates"]
busy = sum(stage["busy_seconds_per_rank"]) / stage["tasks"]
cpu = sum(stage["cpu_seconds_per_rank"]) / stage["tasks"]
sym = json.load(open(f"{run}/fit_sym.json"))
print(f"| replicates | ranks | epochs | study wall s | s per replicate (rank busy) | CPU s per replicate "
      f"| sym solve in the study ({info['sym_ranks']} rank(s)) s | sym refit, 1 rank s | sym rank / unknowns |")
print("|---|---|---|---|---|---|---|---|---|")
print(f"| {int(replicates):,} | {ranks} | {epochs} | {int(study_ms) / 1000:.1f} | {busy:.2f} | {cpu:.2f} "
      f"| {info['fit_seconds']['sym']:.2f} | {int(fit1_ms) / 1000:.2f} | {sym['rank']:,} / {sym['unknowns']:,} |")
print("sym warnings:", sym["warnings"] or "none")
PY
