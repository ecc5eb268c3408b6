#!/usr/bin/env bash
# The paper's neural studies on one GPU, after scripts/gpu_check.sh has built
# the tree there: the dropout grid of Figure 5 (configs/dropout.toml, 480
# networks, optionally with the authors' step schedule) and the wide
# igr_calibration runs of Figure 6 (the paper's wide widths, 400, 800 and
# 1600: GPU_STUDIES_IGR_WIDTHS), each with its
# wall time, `gradmatch report` and figures, every log and output in LOGDIR.
# Each study resumes where an earlier call of this script left it (same
# LOGDIR), so a study cut off by a time limit goes on at the next call.
#
#   scripts/gpu_studies.sh LOGDIR [dropout|dropout_milestones|igr_wide|bootstrap ...]
#
# bootstrap: scripts/bench_bootstrap.sh at 4,096 replicates on one rank (its
# GPU); GPU_STUDIES_REPLICATES changes the count.
# Default: dropout. Environment: GPU_CHECK_BUILD (the build directory of
# scripts/gpu_check.sh, default /tmp/gradmatch-gpu-build), GPU_STUDIES_LIMIT
# (seconds per study, default 540), GPU_STUDIES_RANKS (ranks sharing the GPU
# for the dropout grid, default 2), GPU_STUDIES_PYTHON (the python3 with h5py
# and matplotlib for the figures, default the first of python3 and
# /usr/bin/python3 that has them),
# GPU_STUDIES_TORCH_PYTHON (the python3 with the CUDA torch, default python3),
# GPU_STUDIES_IGR_WIDTHS (igr_wide's widths, default "400, 800, 1600"),
# GPU_STUDIES_PER_TASK (networks per task of dropout_milestones, default 40;
# keep it between the calls that resume one grid), GPU_STUDIES_TASKS (the
# dropout grids' tasks to run, as `gradmatch run --tasks`: a grid done in parts over
# allocations, the cheap cells where little time is left; the outputs come
# with the part that finishes the last task), GPU_STUDIES_SMOKE=1 (the configs/smoke/
# copies instead, on whatever device there is: a check of this script).
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/gpu_studies.sh LOGDIR [dropout|dropout_milestones|igr_wide|bootstrap ...]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" && logs=$(cd "$1" && pwd)
shift
studies=("$@")
[ ${#studies[@]} -gt 0 ] || studies=(dropout)
build=${GPU_CHECK_BUILD:-/tmp/gradmatch-gpu-build}
limit=${GPU_STUDIES_LIMIT:-540}
gm="$build/src/cli/gradmatch"
[ -x "$gm" ] || { echo "gpu_studies: no $gm; run scripts/gpu_check.sh first" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
config_dir="$root/configs"
[ "${GPU_STUDIES_SMOKE:-0}" = 1 ] && config_dir="$root/configs/smoke"
failed=0
# The two dropout grids number their tasks differently (cells of 80 and of
# 40 networks): one GPU_STUDIES_TASKS cannot name tasks of both.
if [ -n "${GPU_STUDIES_TASKS:-}" ] && [[ " ${studies[*]} " == *" dropout "* ]] && [[ " ${studies[*]} " == *" dropout_milestones "* ]]; then
  echo "gpu_studies: GPU_STUDIES_TASKS=$GPU_STUDIES_TASKS would apply to both dropout and dropout_milestones, whose tasks are numbered differently; run them in separate calls" >&2
  exit 2
fi
# The figures need h5py and matplotlib: the first python3 that has both.
plot_python=${GPU_STUDIES_PYTHON:-}
if [ -z "$plot_python" ]; then
  for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import h5py, matplotlib' 2> /dev/null; then plot_python=$candidate; break; fi
  done
fi
plot_python=${plot_python:-/usr/bin/python3}

# run NAME CONFIG [RANKS [TASKS]]: one study into LOGDIR/NAME with its wall
# time, report and figures (those once its last task is done). Its ranks are
# bound to no core: they run beside the suite's MPI tests, which Open MPI
# would otherwise put on the same cores 0 and 1.
run() {
  local name=$1 config=$2 ranks=${3:-1} out="$logs/$1"
  local s=$(date +%s)
  local tasks=(); [ -n "${4:-}" ] && tasks=(--tasks "$4")
  # Appended: a resumed run (or one that finds the grid finished by a run
  # an earlier call left going) keeps the earlier run's lines above its own.
  echo "=== $(date -u +%FT%TZ) $name: gradmatch run $config${4:+ --tasks $4}" >> "$logs/$name.log"
  timeout "$limit" mpirun -n "$ranks" --oversubscribe --bind-to none "$gm" run "$config" --out "$out" "${tasks[@]}" >> "$logs/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc in $(($(date +%s) - s)) s, $ranks rank(s)${4:+, tasks $4}, on $(nvidia-smi -L 2>/dev/null | head -1 || echo 'no GPU')" | tee -a "$logs/summary.txt"
  if [ $rc -eq 0 ] && [ -n "${4:-}" ] && [ ! -e "$out/results.h5" ]; then
    echo "$name: tasks $4 done; the outputs come with the part that finishes the last task" | tee -a "$logs/summary.txt"
  elif [ $rc -eq 0 ]; then
    "$gm" report "$out" > "$logs/$name.report.txt" 2>&1
    "$plot_python" "$root/scripts/plot_$(sed -n 's/^study = "\(.*\)"/\1/p' "$config").py" "$out" >> "$logs/$name.log" 2>&1
  else
    failed=1
  fi
}

for study in "${studies[@]}"; do
  case $study in
    # Each (depth, width) cell's 80 networks as one batch (replicates_per_task
    # = 0) rather than eight batches of 10; GPU_STUDIES_RANKS ranks (default
    # 2) share the GPU, the dearest cell first, so that one rank's
    # launch-bound small cells and host work overlap the other's large one.
    dropout)
      sed 's/^replicates_per_task = .*/replicates_per_task = 0/' "$config_dir/dropout.toml" > "$logs/dropout.toml"
      run dropout "$logs/dropout.toml" "${GPU_STUDIES_RANKS:-2}" "${GPU_STUDIES_TASKS:-}" ;;
    # The step schedule's grid is longer than what one 15-min allocation
    # leaves after a build: cells in two tasks of 40 networks
    # (GPU_STUDIES_PER_TASK), so that a stop loses less than a whole cell
    # (a replicate's draws are keyed by its (rate, seed), not its task).
    dropout_milestones)
      sed "s/^milestones = \[\]/milestones = [60, 100, 200]/; s/^replicates_per_task = .*/replicates_per_task = ${GPU_STUDIES_PER_TASK:-40}/" \
        "$config_dir/dropout.toml" > "$logs/dropout_milestones.toml"
      run dropout_milestones "$logs/dropout_milestones.toml" "${GPU_STUDIES_RANKS:-2}" "${GPU_STUDIES_TASKS:-}" ;;
    igr_wide)
      if [ "${GPU_STUDIES_SMOKE:-0}" = 1 ]; then
        cp "$config_dir/igr_calibration.toml" "$logs/igr_wide.toml"
      else
        sed "s/^widths = .*/widths = [${GPU_STUDIES_IGR_WIDTHS:-400, 800, 1600}]/; s/^train_accuracy_threshold = .*/train_accuracy_threshold = 0.0/" \
          "$config_dir/igr_calibration.toml" > "$logs/igr_wide.toml"
      fi
      run igr_wide "$logs/igr_wide.toml" ;;
    bootstrap)
      replicates=${GPU_STUDIES_REPLICATES:-4096}
      [ "${GPU_STUDIES_SMOKE:-0}" = 1 ] && replicates=${GPU_STUDIES_REPLICATES:-8}
      s=$(date +%s)
      BENCH_PYTHON=${GPU_STUDIES_TORCH_PYTHON:-python3} timeout "$limit" "$root/scripts/bench_bootstrap.sh" "$build" \
        "$replicates" 1 1 "$logs/bootstrap" > "$logs/bootstrap.log" 2>&1
      rc=$?
      echo "bootstrap ($replicates replicates): exit $rc in $(($(date +%s) - s)) s on $(nvidia-smi -L 2>/dev/null | head -1 || echo 'no GPU')" |
        tee -a "$logs/summary.txt"
      [ $rc -eq 0 ] || failed=1 ;;
    *) echo "gpu_studies: unknown study '$study'; use dropout, dropout_milestones, igr_wide or bootstrap" >&2; exit 2 ;;
  esac
done
exit $failed
