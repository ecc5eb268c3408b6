#!/usr/bin/env bash
# Kill-and-resume test of `gradmatch run` (ctest label `resume`).
#
#   kill_resume_test.sh GRADMATCH CONFIG MODE [NP]
#
# MODE rank: SIGKILL one rank (chosen at random) of `mpirun -n NP` part-way
#            through the tasks; mpirun then ends the job.
# MODE job:  SIGKILL mpirun and every rank at once (a node failure, or a
#            scheduler's hard kill).
# The kill comes once the run store shows a random fraction (10-40 %) of the
# tasks done. After one rank's death mpirun needs about a second to stop the
# others, and they go on pulling tasks meanwhile: on a fast machine they can
# finish the whole list. A kill that left nothing to resume is tried again,
# earlier, in a fresh directory (at most 3 tries). Then the same command runs
# again and must resume: the final
# summary.json, results.h5 and equations_*.h5 equal (cmp) those of an
# uninterrupted run; run_info.json shows every task finished before the kill
# kept (resumed = done at the kill) and only the others run (run = total -
# resumed): none lost, none done twice. A third run prints "nothing to do" and
# changes no file; a different config on the directory exits with code 2.
set -euo pipefail

gradmatch=$1 config=$2 mode=$3 np=${4:-2}
case $mode in rank | job) ;; *) echo "MODE must be rank or job" >&2; exit 2 ;; esac
py=${GRADMATCH_TEST_PYTHON:-/usr/bin/python3}  # with h5py (Debian's by default)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE

work=$(mktemp -d -t gradmatch-kill-resume.XXXXXX)
job_pids=()
cleanup() {
  for p in "${job_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Done tasks and total tasks in a run store, "DONE TOTAL".
store_counts() {
  "$py" - "$1" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    done = total = 0
    for t in f["tables"].values():
        s = t["status"][...]
        done += int((s != 0).sum()); total += s.size
print(done, total)
EOF
}

# Every descendant of a process, depth first.
descendants() {
  local child
  for child in $(pgrep -P "$1" || true); do
    echo "$child"
    descendants "$child"
  done
}

run() { mpirun -n "$np" "$gradmatch" run "$@"; }

echo "== uninterrupted reference run (np $np)"
run "$config" --out "$work/ref" 2> "$work/ref.log" || { cat "$work/ref.log"; fail "reference run failed"; }

seed=${KILL_RESUME_SEED:-$RANDOM}
RANDOM=$seed
percent=$((10 + RANDOM % 31))

# One interrupted run into $work/run: SIGKILL ($mode) once $1 % of the tasks
# are done; sets done_at_kill and total from the store it left.
interrupted_run() {
  local percent=$1
  rm -rf "${work:?}/run"
  echo "== interrupted run: SIGKILL ($mode) once $percent % of the tasks are done (KILL_RESUME_SEED=$seed)"
  mpirun -n "$np" "$gradmatch" run "$config" --out "$work/run" > "$work/run.log" 2>&1 &
  mpirun_pid=$!  # mpirun itself (not a subshell): its children are the ranks
  job_pids=("$mpirun_pid")
  "$py" - "$work/run/store.h5" "$percent" <<'EOF' || fail "the run never reached the kill point"
import os, sys, time, h5py
path, percent = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 120
while time.time() < deadline:
    try:
        with h5py.File(path, "r") as f:
            done = total = 0
            for t in f["tables"].values():
                s = t["status"][...]
                done += int((s != 0).sum()); total += s.size
        if total and 100 * done >= percent * total:
            sys.exit(0)
    except (OSError, KeyError):
        pass  # not created yet
    time.sleep(0.02)
sys.exit(1)
EOF
  ranks=$(pgrep -P "$mpirun_pid" -d ' ' || true)
  [ -n "$ranks" ] || fail "no rank processes under mpirun $mpirun_pid"
  if [ "$mode" = rank ]; then
    local rank_list victim
    read -r -a rank_list <<< "$ranks"
    victim=${rank_list[$((RANDOM % ${#rank_list[@]}))]}
    echo "   killing rank pid $victim (rank $(tr '\0' '\n' < /proc/"$victim"/environ | sed -n 's/^OMPI_COMM_WORLD_RANK=//p'))"
    kill -KILL "$victim"
  else
    local all
    all="$mpirun_pid $(descendants "$mpirun_pid" | tr '\n' ' ')"
    echo "   killing mpirun and its ranks: $all"
    kill -KILL $all
  fi
  local status
  set +e
  timeout 60 tail --pid="$mpirun_pid" -f /dev/null
  wait "$mpirun_pid"
  status=$?
  set -e
  job_pids=()
  [ "$status" -ne 0 ] || fail "the killed run exited with status 0"
  # A killed rank may stay a zombie until someone reaps it: alive means running.
  local survivors="" p
  for _ in $(seq 100); do
    survivors=""
    for p in $ranks; do if alive "$p"; then survivors="$survivors $p"; fi; done
    [ -n "$survivors" ] || break
    sleep 0.1
  done
  [ -z "$survivors" ] || fail "rank pids$survivors survived the kill"
  read -r done_at_kill total < <(store_counts "$work/run/store.h5")
  echo "   the store holds $done_at_kill of $total tasks done"
}
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

for try in 1 2 3; do
  interrupted_run "$percent"
  [ "$done_at_kill" -ge "$total" ] || break
  echo "   the surviving ranks finished every task before mpirun stopped them (try $try): again, earlier"
  percent=$((percent / 2 > 5 ? percent / 2 : 5))
done
[ "$done_at_kill" -gt 0 ] && [ "$done_at_kill" -lt "$total" ] || fail "the kill did not land part-way ($done_at_kill/$total) in $try tries"
[ ! -e "$work/run/summary.json" ] || fail "a killed run left summary.json"

echo "== the same command again: resumes"
run "$config" --out "$work/run" 2> "$work/resume.log" || { cat "$work/resume.log"; fail "the resumed run failed"; }
grep -q "resuming" "$work/resume.log" || fail "the resumed run did not say it resumed"
for f in "$work"/ref/summary.json "$work"/ref/results.h5 "$work"/ref/equations_*.h5; do
  cmp "$f" "$work/run/$(basename "$f")" || fail "$(basename "$f") differs from the uninterrupted run"
done
[ "$(ls "$work/ref" | grep -c .)" = "$(ls "$work/run" | grep -c .)" ] || fail "the two directories hold different files"
"$py" - "$work/run/run_info.json" "$done_at_kill" "$total" <<'EOF' || fail "run_info.json does not account for every task once"
import json, sys
info, done, total = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
t = info["tasks"]
print("   run_info tasks:", t)
assert t["total"] == total, t
assert t["resumed"] == done > 0, t
assert t["run"] == total - done, t
assert sum(t["by_attempt"].values()) == total, t
assert t["by_attempt"]["2"] == total - done, t
EOF

echo "== a third run: nothing to do"
before=$(cd "$work/run" && stat -c '%n %s %Y.%y' * | sort | md5sum)
run "$config" --out "$work/run" 2> "$work/again.log" || fail "the run on a complete directory failed"
grep -q "nothing to do: $work/run is complete" "$work/again.log" || { cat "$work/again.log"; fail "no 'nothing to do'"; }
after=$(cd "$work/run" && stat -c '%n %s %Y.%y' * | sort | md5sum)
[ "$before" = "$after" ] || fail "the run on a complete directory changed files"

echo "== a different config on the directory: refused with exit code 2"
sed 's/^seed = .*/seed = 57/' "$config" > "$work/other.toml"
set +e
run "$work/other.toml" --out "$work/run" 2> "$work/other.log"
status=$?
set -e
[ "$status" -eq 2 ] || { cat "$work/other.log"; fail "exit code $status, not 2"; }
grep -q "was made by a different config (seed: 56 there, 57 now); use a new --out or delete $work/run" "$work/other.log" ||
  { cat "$work/other.log"; fail "the refusal does not name the key"; }
echo "PASS"
