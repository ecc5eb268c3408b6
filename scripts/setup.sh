#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks for gradmatch, then builds it.
# Idempotent: with everything present it only checks packages (dpkg, no
# network) and lets the build system rebuild what changed (seconds).
#
#   scripts/setup.sh            install missing packages + configure + build into build/
#   GRADMATCH_BUILD_DIR=dir     build somewhere else
#   GRADMATCH_SKIP_INSTALL=1    skip the package step (e.g. on a cluster with modules)
#   GRADMATCH_WERROR=1          warnings are errors (-DGRADMATCH_WERROR=ON; CI sets it)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${GRADMATCH_BUILD_DIR:-$root/build}"

# Debian packages only (docs/design.md, "Building, testing"). libopenblas switches
# LAPACK, ScaLAPACK and LibTorch to OpenBLAS through Debian alternatives.
packages=(
  build-essential cmake ninja-build pkg-config git
  libopenmpi-dev openmpi-bin
  libtorch-dev
  libscalapack-openmpi-dev
  libhdf5-openmpi-dev hdf5-tools
  libopenblas0-pthread libopenblas-pthread-dev
  libgtest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev zlib1g-dev
  dataset-fashion-mnist
  python3 python3-numpy python3-h5py python3-matplotlib python3-torch
  slurm-wlm munge   # the test suite's single-node SLURM (tests/slurm); their services are not started
)

log() { printf 'setup: %s\n' "$*" >&2; }

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "all ${#packages[@]} Debian packages present"
    return
  fi
  log "installing ${#missing[@]} missing packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else
      log "not root and no sudo: run as root: apt-get install -y --no-install-recommends ${missing[*]}"
      exit 2
    fi
  fi
  # DEBIAN_FRONTEND through env: sudo's env_reset would drop an export (and a
  # question from tzdata would then wait unseen behind >/dev/null).
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  # Packages must not start daemons as services (slurmctld, slurmd, munged:
  # the SLURM test starts its own on loopback): policy-rc.d refuses them.
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    "${sudo[@]}" sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d' &&
      made_policy=1
  fi
  local rc=0
  { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
  if [ "$made_policy" = 1 ]; then "${sudo[@]}" rm -f /usr/sbin/policy-rc.d; fi
  if [ "$rc" -ne 0 ]; then
    log "apt-get failed (exit $rc): install these packages and run scripts/setup.sh again: ${missing[*]}"
    exit "$rc"
  fi
  # The parallel HDF5 must be the one CMake finds: refuse a serial -dev beside it.
  if dpkg-query -W -f='${Status}' libhdf5-dev 2>/dev/null | grep -q 'install ok installed'; then
    log "warning: libhdf5-dev (serial) is installed beside libhdf5-openmpi-dev; CMake may pick the serial one"
  fi
}

if [ "${GRADMATCH_SKIP_INSTALL:-0}" != 1 ]; then install_missing; fi

generator=()
if command -v ninja >/dev/null && [ ! -f "$build_dir/Makefile" ]; then generator=(-G Ninja); fi
werror=OFF
if [ "${GRADMATCH_WERROR:-0}" = 1 ]; then werror=ON; fi
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  log "configuring $build_dir (warnings as errors: $werror)"
  cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DGRADMATCH_WERROR="$werror" >/dev/null
elif [ "$werror" = ON ]; then
  # An existing build directory follows the environment too (CI reuses caches).
  cmake "$build_dir" -DGRADMATCH_WERROR=ON >/dev/null
fi
log "building (this takes a few minutes the first time)"
cmake --build "$build_dir" --parallel "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"  # nproc honours OMP_NUM_THREADS
log "built $build_dir/src/cli/gradmatch"
