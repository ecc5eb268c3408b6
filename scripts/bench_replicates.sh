#!/usr/bin/env bash
# Replicate batching benchmark (issue item 5): the appendix H.2 elastic-net
# network (10 -> 200 ReLU -> 1, SGD lr 1e-3, batch 32, 4000 examples per
# replicate, float32), trained
#   - R replicates at once (C++, train_replicates: leading replicate dimension, baddbmm),
#   - one model at a time (C++, train),
#   - one model at a time in a python3-torch loop (scripts/bench_replicates.py),
#     the penalty differentiated by autograd or its gradient added by hand,
#   - R replicates as one batched PyTorch model (baddbmm; --batched),
# all on one core of this machine. Target: batched >= 5x the per-replicate
# throughput of the Python loop.
#
#   scripts/bench_replicates.sh [BUILD_DIR] [EPOCHS]
#
# BUILD_DIR defaults to build/ (needs BUILD_DIR/tests/benchmarks/replicate_training_bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
epochs=${2:-5}
bench=$build/tests/benchmarks/replicate_training_bench
[[ -x $bench ]] || { echo "bench: no $bench (build the replicate_training_bench target)" >&2; exit 2; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi

rows=()
rows+=("$("${pin[@]}" /usr/bin/python3 "$root/scripts/bench_replicates.py" --replicates 8 --epochs "$epochs")")
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
if [[ -f $jemalloc ]]; then
  rows+=("$(LD_PRELOAD=$jemalloc "${pin[@]}" /usr/bin/python3 "$root/scripts/bench_replicates.py" --replicates 8 --epochs "$epochs" |
            sed 's/"python3-torch loop"/"python3-torch loop + jemalloc"/')")
fi
rows+=("$("${pin[@]}" /usr/bin/python3 "$root/scripts/bench_replicates.py" --replicates 8 --epochs "$epochs" --closed-form-penalty)")
for r in 8 64; do
  rows+=("$("${pin[@]}" /usr/bin/python3 "$root/scripts/bench_replicates.py" --replicates "$r" --epochs "$epochs" --batched)")
done
rows+=("$("${pin[@]}" "$bench" --mode single --replicates 8 --epochs "$epochs")")
for r in 8 16 32 64 128; do
  rows+=("$("${pin[@]}" "$bench" --mode batched --replicates "$r" --epochs "$epochs")")
done

printf '%s\n' "${rows[@]}" | /usr/bin/python3 -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin if line.strip()]
base = rows[0]["us_per_replicate_step"]
print("| implementation | replicates | epochs | s | us / replicate-step | replicate-epochs / s | vs Python loop |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    us = r["us_per_replicate_step"]
    print("| %s | %d | %d | %.2f | %.1f | %.1f | %.1fx |" % (r["impl"], r["replicates"], r["epochs"], r["seconds"], us,
                                                           r["replicate_epochs_per_s"], base / us))
'
