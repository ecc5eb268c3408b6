#!/usr/bin/env bash
# Downloads, on this Debian 12 machine, the .deb files that a GPU machine
# with Ubuntu 24.04 and a pip PyTorch lacks for gradmatch -- parallel HDF5,
# ScaLAPACK (Open MPI), toml++ and Debian's Fashion-MNIST (the dropout
# study's data, 31 MB) -- into .gpu-debs/ (git-ignored, 37 MB), which
# scripts/gpu_check.sh unpacks there with dpkg -x. They only add files, and
# Debian 12's Open MPI sonames match Ubuntu 24.04's (libmpi.so.40).
#
#   scripts/fetch_gpu_debs.sh [DIR]     (default: .gpu-debs in the source tree)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/.gpu-debs}
packages=(
  libscalapack-openmpi-dev libscalapack-openmpi2.2
  libhdf5-openmpi-dev libhdf5-openmpi-103-1 libhdf5-openmpi-hl-100
  libtomlplusplus-dev libtomlplusplus3
  dataset-fashion-mnist
)
mkdir -p "$dir"
cd "$dir"
missing=()
for p in "${packages[@]}"; do
  compgen -G "${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "fetch_gpu_debs: all ${#packages[@]} packages already in $dir"
else
  # apt-get download needs no root; an outdated package list is refreshed once.
  apt-get download "${missing[@]}" 2>/dev/null || { apt-get update -qq 2>/dev/null || true; apt-get download "${missing[@]}"; }
fi
ls -l ./*.deb
du -sh . | awk '{print "fetch_gpu_debs: " $1 " in '"$dir"'"}'
