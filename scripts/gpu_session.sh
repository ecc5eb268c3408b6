#!/usr/bin/env bash
# A GPU allocation of fixed length, used whole: scripts/gpu_check.sh (build,
# gpu tests, benchmark, NCCL checks, whole suite) and, as soon as its
# benchmark is done (or skipped: GPU_CHECK_BENCH=0), scripts/gpu_studies.sh (default: the 480-network dropout
# grid) on the GPU beside the CPU suite -- everything stopped SECONDS after
# the start, every log and the studies' outputs packed into
# OUTDIR/gpu_session.tgz (refreshed every 20 s, so a job killed at its limit
# still leaves them), with OUTDIR/check_summary.txt, bench.log,
# studies_summary.txt and session.log beside it. A study cut off resumes
# from the packed run directory (unpack it where gpu_studies.sh's LOGDIR
# was: /tmp/gpu_session/studies).
#
#   scripts/gpu_session.sh OUTDIR SECONDS [dropout|dropout_milestones|igr_wide|bootstrap ... | none]
#                          [after-check STUDY ...]
#
# Studies named after the word after-check start only once the check has
# ended (its suite then runs on a GPU no study of those is using): e.g.
#   scripts/gpu_session.sh OUT 550 igr_wide after-check dropout_milestones
# runs the one-rank igr_wide beside the suite and the two-rank grid after it.
#
# Two short allocations on one machine (the build directory kept between
# them): first the studies alone, on a quiet machine,
#   GPU_CHECK_STOP_AFTER=gpu_targets scripts/gpu_session.sh OUT1 SECONDS dropout
# (build the CLI, then the studies until the deadline), then the check,
#   GPU_CHECK_BENCH=0 scripts/gpu_session.sh OUT2 SECONDS none
# (the rest of the build, gpu tests, NCCL checks, whole suite).
#
# A study longer than one allocation (the 480-network grid with the authors'
# step schedule, say) goes on over several: copy OUTDIR/gpu_session.tgz of
# the last one into the tree (e.g. .gpu-debs/, which travels git-ignored)
# and name it in GPU_SESSION_RESUME; its studies' run directories are
# unpacked before anything starts, and each study resumes from its store.
#
# Calls that follow each other on one warm machine can run one study
# through without a stop: with GPU_SESSION_DETACH=1 the studies still
# running at the deadline are left running (their limit is then
# GPU_SESSION_DETACH_LIMIT, default 3600 s, not the call's), and the next
# call of this script on that machine waits for them before it starts its
# own (a study it names that they finished answers "nothing to do"). If the
# machine or the allocation stops them after all, the next call resumes them
# from their stores as always. The pack made at such a deadline is taken
# while they write: resume a later allocation from the last call's pack.
#
# Environment: as scripts/gpu_check.sh and scripts/gpu_studies.sh;
# GPU_SESSION_RESUME (an earlier allocation's gpu_session.tgz);
# GPU_SESSION_DETACH, GPU_SESSION_DETACH_LIMIT (above);
# GPU_SESSION_CHECK, GPU_SESSION_STUDIES (other check and studies scripts,
# to try this one without a GPU).
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/gpu_session.sh OUTDIR SECONDS [studies ...]" >&2; exit 2; }
out=$1 budget=$2
shift 2
mkdir -p "$out"
build=${GPU_CHECK_BUILD:-/tmp/gradmatch-gpu-build}
studies=() late=() seen_after=0
for word in "$@"; do
  if [ "$word" = after-check ]; then seen_after=1
  elif [ $seen_after = 1 ]; then late+=("$word")
  else studies+=("$word")
  fi
done
[ ${#studies[@]} -gt 0 ] || [ ${#late[@]} -gt 0 ] || studies=(dropout)
[ ${#studies[@]} -gt 0 ] || studies=(none)
root=$(cd "$(dirname "$0")/.." && pwd)
t0=$(date +%s) deadline=$(( $(date +%s) + budget ))
base=/tmp/gpu_session
mkdir -p "$base/check" "$base/studies"
# An earlier call's check summary (a warm machine) is kept aside: its
# "bench:" line must not start this call's studies before this check is there.
[ -e "$base/check/summary.txt" ] && mv "$base/check/summary.txt" "$base/check/summary.before-$(date +%s).txt"
log() { echo "session [$(( $(date +%s) - t0 ))s] $*" | tee -a "$base/session.log"; }
log "start; budget ${budget}s; studies: ${studies[*]}${late[*]:+; after the check: ${late[*]}}"
# The studies run in a session of their own (setsid), whose id is the pid of
# their gpu_studies.sh: `timeout` puts each study's mpirun in a process group
# of its own, but not outside the session. Alive: a process of the session
# that is not a zombie.
studies_running() { [ -n "${1:-}" ] && ps -s "$1" -o stat= 2> /dev/null | grep -qv '^Z'; }
stop_studies() { pkill -TERM -s "$1" 2> /dev/null; }
start_time() { awk '{print $22}' "/proc/$1/stat" 2> /dev/null; }  # since boot, in clock ticks
detach=${GPU_SESSION_DETACH:-0}
pidfile=$base/studies.pid
# Studies an earlier call on this machine left running (GPU_SESSION_DETACH=1):
# waited for, and this call's own studies start after them and the check.
# The pid file holds the session id and the process's start time (a reused
# pid is not taken for it).
attached=0
if [ -s "$pidfile" ]; then
  read -r old_pid old_start < "$pidfile"
  if studies_running "$old_pid" && [ "$(start_time "$old_pid")" = "${old_start:-}" ]; then
    studies_pid=$old_pid attached=1
    log "the studies an earlier call left running (session $studies_pid) go on; this call's start after them"
    if [ "${studies[*]}" != none ]; then late=("${studies[@]}" "${late[@]}"); fi
    studies=(none)
  fi
fi
if [ -n "${GPU_SESSION_RESUME:-}" ] && [ $attached = 1 ]; then
  log "GPU_SESSION_RESUME not unpacked: the studies of an earlier call are still writing there"
elif [ -n "${GPU_SESSION_RESUME:-}" ]; then
  # The studies only (not the earlier check's logs); files already here (a
  # warm machine's newer ones) are kept. Use an allocation's last pack: one
  # made while a study was writing its store may hold a torn copy.
  if tar xzf "$GPU_SESSION_RESUME" --skip-old-files -C /tmp gpu_session/studies 2> "$base/resume.err"; then
    log "resuming the studies of $GPU_SESSION_RESUME: $(cd "$base/studies" && ls -d -- */ 2> /dev/null | tr '\n' ' ')"
    for run in "$base"/studies/*/; do
      [ -d "$run" ] || continue  # no run directories: the pattern itself
      [ -e "${run}store.h5" ] ||
        log "warning: ${run%/} has no store.h5 (packed without its HDF5 files?): that study cannot resume"
    done
  else
    log "GPU_SESSION_RESUME=$GPU_SESSION_RESUME could not be unpacked ($(head -c 200 "$base/resume.err")); the studies start afresh"
  fi
fi
pack() {
  cp "$base/check/summary.txt" "$out/check_summary.txt" 2>/dev/null
  cp "$base/check/bench.log" "$out/bench.log" 2>/dev/null
  cp "$base/studies/summary.txt" "$out/studies_summary.txt" 2>/dev/null
  cp "$base/session.log" "$out/session.log" 2>/dev/null
  tar czf "$out/.pack.tgz" -C /tmp --exclude='*.qdstrm' --exclude='*.nsys-rep' gpu_session 2>/dev/null
  if [ "$(stat -c %s "$out/.pack.tgz" 2>/dev/null || echo 0)" -gt 15000000 ]; then
    tar czf "$out/.pack.tgz" -C /tmp --exclude='*.h5' gpu_session 2>/dev/null
  fi
  mv -f "$out/.pack.tgz" "$out/gpu_session.tgz"
}
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,clocks.sm --format=csv -l 2 >> "$base/gpu_util.csv" 2>&1 &
smi=$!
( while sleep 20; do pack; done ) &
packer=$!
GPU_CHECK_PROFILE=0 timeout -k 5 $(( budget - 25 )) "${GPU_SESSION_CHECK:-$root/scripts/gpu_check.sh}" "$base/check" > "$base/check/stdout.log" 2>&1 &
check=$!
started=0 late_started=0
# start_studies NAME...: gpu_studies.sh in a session of its own (stopping the
# session at the deadline stops its study too), limited to what is left (or,
# when they may outlive this call, to GPU_SESSION_DETACH_LIMIT).
start_studies() {
  local left=$(( deadline - $(date +%s) - 25 ))
  if [ -x "$build/src/cli/gradmatch" ] && [ $left -gt 60 ]; then
    local limit=$left
    [ "$detach" = 1 ] && limit=${GPU_SESSION_DETACH_LIMIT:-3600}
    log "studies $* start with ${left}s left in this call (their limit: ${limit}s)"
    GPU_STUDIES_LIMIT=$limit setsid "${GPU_SESSION_STUDIES:-$root/scripts/gpu_studies.sh}" "$base/studies" "$@" \
      >> "$base/studies/stdout.log" 2>&1 &
    studies_pid=$!
    echo "$studies_pid $(start_time "$studies_pid")" > "$pidfile"
  else
    log "studies $* not started (${left}s left; gradmatch built: $([ -x "$build/src/cli/gradmatch" ] && echo yes || echo no))"
  fi
}
while :; do
  now=$(date +%s)
  [ "$now" -ge $(( deadline - 20 )) ] && break
  check_alive=1; kill -0 "$check" 2>/dev/null || check_alive=0
  if [ $started = 0 ] && { grep -qE 'bench: (exit|skipped)' "$base/check/summary.txt" 2>/dev/null || [ $check_alive = 0 ]; }; then
    if [ "${studies[*]}" = none ]; then
      log "no studies beside the check"
    else
      start_studies "${studies[@]}"
    fi
    started=1
  fi
  # The late studies once the check has ended and the early ones are done
  # (one gpu_studies.sh at a time: they share its summary and run directories).
  if [ $check_alive = 0 ] && [ $started = 1 ] && [ $late_started = 0 ] && [ ${#late[@]} -gt 0 ] &&
     ! studies_running "${studies_pid:-}"; then
    if [ "${attached:-0}" = 1 ]; then log "the check and the studies an earlier call left running have ended"
    else log "the check has ended"; fi
    start_studies "${late[@]}"
    late_started=1
  fi
  if [ $check_alive = 0 ] && [ $started = 1 ] && { [ $late_started = 1 ] || [ ${#late[@]} = 0 ]; } &&
     ! studies_running "${studies_pid:-}"; then
    break
  fi
  # The studies ended first: the check goes on alone (its suite) to the deadline.
  sleep 3
done
wait "$check" 2>/dev/null; log "gpu_check exit $? (or still running at the deadline)"
kill -TERM "$check" 2>/dev/null
if studies_running "${studies_pid:-}"; then
  if [ "$detach" = 1 ]; then
    log "studies left running (session $studies_pid, GPU_SESSION_DETACH=1): call this script again on this machine to wait for them"
  else
    # Without GPU_SESSION_DETACH the deadline stops them, also those an
    # earlier call left running (they resume from their stores next time).
    log "studies stopped at the deadline"
    stop_studies "$studies_pid"
  fi
fi
sleep 2
kill "$packer" "$smi" 2>/dev/null
log "end"
pack
ls -l "$out"
