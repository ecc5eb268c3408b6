#!/usr/bin/env bash
# Task-farm efficiency of the paper-scale OLS study (configs/ols_early_stopping.toml)
# from 1 to NP ranks: wall times and parallel efficiency T1 / (NP * T_NP).
# A benchmark, not a timed test. Target: >= 85 % on 2 cores.
#
#   scripts/bench_task_farm.sh [BUILD_DIR] [REPEATS] [NP] [CONFIG]
#
# BUILD_DIR defaults to build/ (set GRADMATCH=/path/to/gradmatch to use
# another executable); REPEATS (default 5) runs per rank count, each into a
# fresh directory, medians reported; NP defaults to 2.
#
# The whole paper-scale study takes about half a second of computing, which
# the ~0.5 s start-up of an MPI job would swamp, so the table reports the
# farm's own timings from run_info.json (start of the first task to the last
# rank's finish, per stage) beside the whole command: "bootstrap pools" is
# Figure 7's bootstrap resamples and the sigma-sweep resamples together (the
# bootstrap stages, 6435 tasks), "all tasks" every farmed task (8435).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
repeats=${2:-5}
np=${3:-2}
config=${4:-$root/configs/ols_early_stopping.toml}
gradmatch=${GRADMATCH:-$build/src/cli/gradmatch}
[[ -x $gradmatch ]] || { echo "bench: no gradmatch executable at $gradmatch (build it, or set GRADMATCH)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d -t gradmatch-bench-farm.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "bench: $config, $repeats runs each at 1 and $np ranks ($(nproc --all) cores, $(uname -n))"
for k in 1 "$np"; do
  for r in $(seq "$repeats"); do
    out=$work/np$k-$r
    start=$EPOCHREALTIME
    mpirun -n "$k" "$gradmatch" run "$config" --out "$out" 2>/dev/null
    end=$EPOCHREALTIME
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.6f\n", b - a }' > "$out/command_seconds"
  done
done

/usr/bin/python3 - "$work" "$repeats" "$np" <<'PY'
import json, statistics, sys
work, repeats, np = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def measure(k):
    rows = {"bootstrap (Figure 7 A-E)": [], "bootstrap pools (Fig. 7 + sweep)": [], "all tasks": [], "whole command": []}
    for r in range(1, repeats + 1):
        d = f"{work}/np{k}-{r}"
        info = json.load(open(f"{d}/run_info.json"))
        st = info["stages"]
        rows["bootstrap (Figure 7 A-E)"].append(st["bootstrap"]["wall_seconds"])
        rows["bootstrap pools (Fig. 7 + sweep)"].append(st["bootstrap"]["wall_seconds"] + st["sigma_sweep"]["wall_seconds"])
        rows["all tasks"].append(info["wall_seconds"]["tasks"])
        rows["whole command"].append(float(open(f"{d}/command_seconds").read()))
    return {name: statistics.median(v) for name, v in rows.items()}, info

one, info1 = measure(1)
many, infon = measure(np)
tasks = {name: st["tasks"] for name, st in infon["stages"].items()}
print(f"tasks per stage: {tasks}")
print(f"tasks per rank at np {np} (last run): " +
      ", ".join(f"{n}: {infon['stages'][n]['tasks_per_rank']}" for n in tasks))
# CPU time over wall time inside tasks: below 1 when a rank lost its core to
# other processes (a shared machine), which no farm can make up for.
def cpu_share(info):
    busy = sum(sum(st["busy_seconds_per_rank"]) for st in info["stages"].values())
    cpu = sum(sum(st["cpu_seconds_per_rank"]) for st in info["stages"].values())
    return cpu / busy if busy > 0 else 1.0
print(f"CPU time / wall time inside tasks (last runs): 1 rank {cpu_share(info1):.2f}, {np} ranks {cpu_share(infon):.2f}")
print()
# CPU seconds inside tasks, summed over ranks (medians): the work the farm
# does. Work efficiency C1 / C_NP < 1 is what spreading the tasks costs
# (farm, store writes, cache and memory contention) independent of how much of
# the machine the ranks were given.
def cpu(k, stages):
    v = []
    for r in range(1, repeats + 1):
        st = json.load(open(f"{work}/np{k}-{r}/run_info.json"))["stages"]
        v.append(sum(sum(st[s]["cpu_seconds_per_rank"]) for s in stages))
    return statistics.median(v)
groups = {"bootstrap (Figure 7 A-E)": ["bootstrap"], "bootstrap pools (Fig. 7 + sweep)": ["bootstrap", "sigma_sweep"],
          "all tasks": ["fixed_iterate", "variable_stop", "bootstrap", "sigma_sweep"]}
print(f"| stage | T1 (s) | T{np} (s) | speed-up | efficiency T1/({np}*T{np}) | CPU 1 rank (s) | CPU {np} ranks (s) | work efficiency |")
print("|---|---|---|---|---|---|---|---|")
for name in one:
    t1, tn = one[name], many[name]
    row = f"| {name} | {t1:.3f} | {tn:.3f} | {t1 / tn:.2f} | {100 * t1 / (np * tn):.0f} % |"
    if name in groups:
        c1, cn = cpu(1, groups[name]), cpu(np, groups[name])
        row += f" {c1:.3f} | {cn:.3f} | {100 * c1 / cn:.0f} % |"
    else:
        row += " | | |"
    print(row)
PY
