#!/usr/bin/env bash
# Batched dropout classifiers on a GPU (paper appendix H.4): 784 -> depth x
# width ReLU -> 10, dropout after every hidden block but the last, SGD
# momentum 0.9, lr 0.05, batch 2048, all Fashion-MNIST training images
# (54,000 by default) per model, 80 models (8 rates x 10 seeds), for
# d3 w128 and d5 w512, in ms per model-epoch (float32):
#   gradmatch batched   tests/benchmarks/dropout_gpu_bench (train_replicates, keyed masks)
#   PyTorch one at a time   scripts/bench_dropout_torch.py --mode single
#   PyTorch batched     scripts/bench_dropout_torch.py --mode batched (baddbmm, 80 models)
# and, on a GPU, both batches again with TF32 matrix products
# all in one run, on one device; prints a Markdown table (docs/gpu.md) with
# wall time and the process's CPU time (the robust figure on a shared CPU;
# on a GPU, wall time is the figure).
#
#   scripts/bench_dropout_gpu.sh [--build DIR] [--device cuda|cpu] [--python PY]
#        [--images N] [--replicates R] [--epochs E] [--single-models K] [--archs "3x128 5x512"]
#        [--no-dropout-rows 0|1]
#
# --no-dropout-rows 1 (default) adds gradmatch's and PyTorch's batches with
# every rate 0: the difference to the dropout rows is what the masks cost.
# A second table splits one more gradmatch epoch into its parts (gather,
# forward, backward, optimizer, ...), the device synchronized between them.
#
# --single-models K: the one-at-a-time loop times K models (not all R) and
# reports per model-epoch. CPU-sized run: --device cpu --images 4096
# --replicates 8 --epochs 2 --single-models 2.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build device=cuda py=python3 images=54000 replicates=80 epochs=3 single=4 archs="3x128 5x512" nodrop=1
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2 ;;
    --device) device=$2 ;;
    --python) py=$2 ;;
    --images) images=$2 ;;
    --replicates) replicates=$2 ;;
    --epochs) epochs=$2 ;;
    --single-models) single=$2 ;;
    --archs) archs=$2 ;;
    --no-dropout-rows) nodrop=$2 ;;
    *) echo "bench_dropout_gpu: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
bench=$build/tests/benchmarks/dropout_gpu_bench
[[ -x $bench ]] || { echo "bench_dropout_gpu: no $bench (build the dropout_gpu_bench target)" >&2; exit 2; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
rows=()
# One process per tool and architecture (a CUDA LibTorch or PyTorch takes
# seconds to start; the runs of a process share its start-up and images).
variants=base runs=single,batched
if [ "$device" = cuda ]; then variants+=,tf32 runs+=,batched-tf32; fi
if [ "$nodrop" = 1 ]; then variants+=,rates0 runs+=,batched-rates0; fi  # the same batches without dropout: what the masks cost
for arch in $archs; do
  d=${arch%x*} w=${arch#*x}
  common=(--depth "$d" --width "$w" --images "$images" --epochs "$epochs" --device "$device")
  out=$("$bench" "${common[@]}" --replicates "$replicates" --variants "$variants")
  mapfile -t -O "${#rows[@]}" rows <<< "$out"
  out=$("$py" "$root/scripts/bench_dropout_torch.py" --runs "$runs" "${common[@]}" --models "$replicates" --single-models "$single")
  mapfile -t -O "${#rows[@]}" rows <<< "$out"
done
printf '%s\n' "${rows[@]}" | "$py" -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin if line.strip()]
print("device: %s; %d images, %d epochs timed after one warm-up epoch, float32" % (
    rows[0]["device"], rows[0]["images"], rows[0]["epochs"]))
print()
print("| depth x width | implementation | models | ms / model-epoch (wall) | CPU ms / model-epoch | vs PyTorch one at a time (wall) |")
print("|---|---|---:|---:|---:|---:|")
for arch in sorted({(r["depth"], r["width"]) for r in rows}):
    def order(r):  # the dropout grid (gradmatch, one at a time, PyTorch batched), then TF32, then rates 0
        variant = 2 if r.get("rates", "grid") != "grid" else 1 if "tf32" in r["mode"] else 0
        return (variant, 0 if r["tool"] == "gradmatch" else 1 if r["mode"] == "single" else 2)
    group = sorted((r for r in rows if (r["depth"], r["width"]) == arch), key=order)
    one = next(r for r in group if r["tool"] == "pytorch" and r["mode"] == "single")["ms_per_model_epoch"]
    for r in group:
        name = {"gradmatch": "gradmatch batched (train_replicates%s)" % (", TF32" if "tf32" in r["mode"] else "")}.get(r["tool"], "PyTorch " + {
            "single": "one at a time", "batched": "batched (baddbmm)", "batched tf32": "batched (baddbmm, TF32)"}[r["mode"]])
        if r.get("rates", "grid") != "grid":
            name += ", rates " + r["rates"] + (" (no dropout)" if all(float(v) == 0 for v in r["rates"].split(",")) else "")
        print("| %d x %d | %s | %d | %.2f | %.2f | %.1fx |" % (arch[0], arch[1], name, r["replicates"],
              r["ms_per_model_epoch"], r["cpu_ms_per_model_epoch"], one / r["ms_per_model_epoch"]))
parts = ["setup", "orders", "batch", "forward", "backward", "optimizer", "epoch_end"]
timed = [r for r in rows if "phases" in r]
if timed:
    print()
    print("gradmatch, one more epoch synchronized between the parts of a step (ms per model-epoch):")
    print()
    print("| depth x width | run | " + " | ".join(parts) + " | sum |")
    print("|---|---|" + "---:|" * (len(parts) + 1))
    for r in timed:
        ph = r["phases"]
        run = "rates " + r.get("rates", "grid") + (", TF32" if "tf32" in r["mode"] else "")
        print("| %d x %d | %s | %s | %.2f |" % (r["depth"], r["width"], run,
              " | ".join("%.2f" % ph[k] for k in parts), sum(ph[k] for k in parts)))
'
