#!/usr/bin/env bash
# Runs one gradmatch study on one machine under mpirun.
#
#   mpi_jobs/mpirun_study.sh CONFIG OUT [NP]
#
# NP defaults to the machine's cores (nproc --all); on a GPU machine use the
# number of GPUs (rank r computes on CUDA device r mod GPUs). Each rank gets
# one compute thread (GRADMATCH_THREADS_PER_RANK overrides). Re-running the
# same command after an interruption resumes from OUT/store.h5; on a finished
# OUT it prints "nothing to do". GRADMATCH=/path/to/gradmatch picks the
# executable (default: build/src/cli/gradmatch of this checkout, else
# gradmatch on PATH).
set -euo pipefail
usage="usage: mpi_jobs/mpirun_study.sh CONFIG OUT [NP]"
config=${1:?$usage}
out=${2:?$usage}
cores=$(nproc --all)
np=${3:-$cores}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gradmatch=${GRADMATCH:-}
if [[ -z $gradmatch ]]; then
  if [[ -x $root/build/src/cli/gradmatch ]]; then gradmatch=$root/build/src/cli/gradmatch; else gradmatch=gradmatch; fi
fi
export GRADMATCH_THREADS_PER_RANK=${GRADMATCH_THREADS_PER_RANK:-1}
export OMP_NUM_THREADS=$GRADMATCH_THREADS_PER_RANK OPENBLAS_NUM_THREADS=$GRADMATCH_THREADS_PER_RANK
opts=()
[[ $EUID -eq 0 ]] && opts+=(--allow-run-as-root)
((np > cores)) && opts+=(--oversubscribe)
# A rank with several threads gets that many cores (Open MPI binds each rank
# to one core otherwise, and its threads would share it).
((GRADMATCH_THREADS_PER_RANK > 1 && np * GRADMATCH_THREADS_PER_RANK <= cores)) &&
  opts+=(--map-by "slot:PE=$GRADMATCH_THREADS_PER_RANK")
((np * GRADMATCH_THREADS_PER_RANK > cores)) && opts+=(--bind-to none)
exec mpirun "${opts[@]}" -n "$np" "$gradmatch" run "$config" --out "$out"
