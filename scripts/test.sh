#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
build_dir="${GRADMATCH_BUILD_DIR:-$root/build}"
# Tests run MPI jobs as whatever user runs them (root on CI machines), many
# side by side: Open MPI binds no rank to a core, else every job's rank r
# would share core r with every other job's.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_hwloc_base_binding_policy=none
# The machine's cores, counted before OMP_NUM_THREADS=1 (which nproc honours).
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# A test that needs Fashion-MNIST or python3's h5py/torch (installed above) fails, not skips, without them.
export GRADMATCH_TESTS_REQUIRE_INPUTS=1
ctest --test-dir "$build_dir" --output-on-failure --parallel "$cores" "$@"
