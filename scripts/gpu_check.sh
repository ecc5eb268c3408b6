#!/usr/bin/env bash
# The GPU check: one command for a machine with an NVIDIA GPU and a CUDA
# PyTorch (its LibTorch): configures and builds gradmatch against that
# LibTorch (bringing parallel HDF5, ScaLAPACK and toml++ from .gpu-debs/,
# see scripts/fetch_gpu_debs.sh, when the machine lacks them) with a g++ that
# links the shared libstdc++, builds the CLI, the tests labelled `gpu` and the
# GPU dropout benchmark first, runs the gpu tests while it builds the rest,
# then the benchmark, collects the evidence on the libstdc++ symbols a pip
# LibTorch exports and runs the whole ctest suite -- every log in LOGDIR.
# Aimed at 8 minutes (562 s on an H100 before the suite and the benchmark
# were trimmed); on a fresh H100 machine a first build once took over 5
# minutes (the image is read lazily), so give it 10.
#
#   scripts/gpu_check.sh LOGDIR
#
# Environment: GPU_CHECK_BUILD (build directory, default /tmp/gradmatch-gpu-build),
# GPU_CHECK_PYTHON (the python3 whose torch gives LibTorch, default python3),
# GPU_CHECK_TORCH_PREFIX (a LibTorch's CMake prefix instead of python's torch),
# GPU_CHECK_FORCE=1 (go on without a GPU: a dry run of the build and the
# suite, the gpu tests then skip), GPU_CHECK_BENCH_ARGS (extra
# scripts/bench_dropout_gpu.sh arguments), GPU_CHECK_PROFILE=1 (Nsight
# Systems kernel summaries of both batches where nsys is installed; off by
# default, to keep the check within its 8 minutes: the benchmark's phase
# table splits a step without a profiler), GPU_CHECK_BENCH=0 (no
# benchmark: where it has been measured, its minutes go to the studies),
# GPU_CHECK_CPU_PROBE=0 (no cpu_probe.log: one CPU core's LibTorch pace and
# the cost of page faults, a few seconds),
# GPU_CHECK_STOP_AFTER=gpu_targets (stop once the CLI, gpu tests and
# benchmark are built: a build for scripts/gpu_studies.sh alone; a second
# call with the same build directory then goes on incrementally).
# Exit status: 0 all passed; 1 a step failed (see LOGDIR/summary.txt);
# 77 no NVIDIA GPU visible (nothing was built; LOGDIR/env.txt says why).
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: scripts/gpu_check.sh LOGDIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" && logs=$(cd "$1" && pwd)
build=${GPU_CHECK_BUILD:-/tmp/gradmatch-gpu-build}
py=${GPU_CHECK_PYTHON:-python3}
t0=$(date +%s)
failed=0
: > "$logs/summary.txt"
say() { printf 'gpu_check [%4ss]: %s\n' "$(($(date +%s) - t0))" "$*" | tee -a "$logs/summary.txt" >&2; }
# step NAME TIMEOUT CMD...: runs CMD with its output in LOGDIR/NAME.log.
# `timeout` puts CMD in a process group of its own, which a TERM sent to this
# script (an outer time limit) does not reach: the trap passes it on.
step_pid=
trap '[ -n "${gpu_tests:-}" ] && kill -TERM "$gpu_tests" 2> /dev/null
      [ -n "$step_pid" ] && { kill -TERM -- -"$step_pid" || kill -TERM "$step_pid"; } 2> /dev/null; exit 143' TERM INT
step() {
  local name=$1 limit=$2
  shift 2
  local s=$(date +%s)
  timeout "$limit" "$@" > "$logs/$name.log" 2>&1 &
  step_pid=$!
  wait "$step_pid"
  local rc=$?
  step_pid=
  say "$name: exit $rc in $(($(date +%s) - s)) s (log: $name.log)"
  [ $rc -eq 0 ] || failed=1
  return $rc
}
# The machine's cores for builds and ctest: nproc honours OMP_NUM_THREADS, which
# is 1 here (and often in the caller's environment), so count without it. (An
# H100 run once built with --parallel 1 on 16 cores and ran out of time.)
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
# No rank bound to a core: the suite runs MPI jobs side by side, and Open MPI
# binds every job's rank r to core r (on a 16-core H100 host all two-rank
# tests shared cores 0 and 1 and ran 25x longer than on a 2-core machine).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export OMPI_MCA_hwloc_base_binding_policy=none

# ---- 0. the machine ------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(uname -a)"
  echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(env -u OMP_NUM_THREADS nproc) cores"
  grep PRETTY_NAME /etc/os-release 2>/dev/null
  echo "g++: $(g++ --version 2>/dev/null | head -1) (CXX=${CXX:-unset}: $("${CXX:-c++}" --version 2>/dev/null | head -1); its libstdc++.so: $("${CXX:-c++}" -print-file-name=libstdc++.so 2>/dev/null))"
  echo "cmake: $(cmake --version 2>/dev/null | head -1)"
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo none)"
  echo "nvidia-smi:"; nvidia-smi 2>&1 | head -20
  echo "nccl.h: $(grep -hE '#define NCCL_(MAJOR|MINOR|PATCH)' /usr/include/nccl.h 2>/dev/null | awk '{printf "%s ", $3}')"
  # The python3 start and torch import, timed (the tests start python3 with torch dozens of times).
  t_py=$(date +%s%N)
  echo "torch: $("$py" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "devices", torch.cuda.device_count(), "cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI)' 2>&1)"
  t_py=$(date +%s%N)-$t_py
  echo "python3 -c 'import torch' (first, with CUDA's device query): $(awk "BEGIN {printf \"%.2f\", ($t_py) / 1e9}") s"
  t_py=$(date +%s%N)
  "$py" -c 'import torch' > /dev/null 2>&1
  t_py=$(date +%s%N)-$t_py
  echo "python3 -c 'import torch' (again): $(awk "BEGIN {printf \"%.2f\", ($t_py) / 1e9}") s"
  echo "mpirun: $(mpirun --version 2>/dev/null | head -1)"
  # The cores a two-rank job's ranks may use, as the suite starts them (bound to
  # none: each should list every core), then with Open MPI's default binding.
  echo "mpirun -n 2 ranks' cores, as the suite runs them: $(timeout 30 mpirun -n 2 --oversubscribe \
    grep Cpus_allowed_list /proc/self/status 2>&1 | awk '{print $2}' | paste -sd ' ')"
  echo "mpirun -n 2 ranks' cores, Open MPI's default binding: $(OMPI_MCA_hwloc_base_binding_policy= timeout 30 \
    mpirun -n 2 --oversubscribe grep Cpus_allowed_list /proc/self/status 2>&1 | awk '{print $2}' | paste -sd ' ')"
  # How many cores' worth of work the machine does at once: one fixed loop alone,
  # then one per core side by side. (The suite ran several times slower per
  # process on a 16-core GPU host than alone; this says whether the cores are slow
  # or fewer than nproc says.) About 2 s.
  t_one=$(date +%s%N); awk 'BEGIN { for (i = 0; i < 3e7; i++) s += i }'; t_one=$(($(date +%s%N) - t_one))
  t_all=$(date +%s%N)
  for _ in $(seq "$cores"); do awk 'BEGIN { for (i = 0; i < 3e7; i++) s += i }' & done; wait
  t_all=$(($(date +%s%N) - t_all))
  echo "cpu throughput: one loop alone $(awk "BEGIN {printf \"%.2f\", $t_one / 1e9}") s, $cores side by side $(awk "BEGIN {printf \"%.2f\", $t_all / 1e9}") s: about $(awk "BEGIN {printf \"%.1f\", $cores * $t_one / $t_all}") cores' worth"
  echo "cgroup cpu.max: $(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo none)"
} > "$logs/env.txt" 2>&1
gpu=0
if nvidia-smi -L > /dev/null 2>&1 && "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  gpu=1
  say "GPU: $(nvidia-smi -L | head -1)"
else
  say "no GPU: nvidia-smi or $py's torch sees no CUDA device (env.txt)"
  if [ "${GPU_CHECK_FORCE:-0}" != 1 ]; then
    say "nothing to check on this machine (GPU_CHECK_FORCE=1 builds and runs the suite anyway)"
    exit 77
  fi
fi
if [ -n "${GPU_CHECK_TORCH_PREFIX:-}" ]; then
  torch_prefix=$GPU_CHECK_TORCH_PREFIX
else
  torch_prefix=$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null) ||
    { say "no torch in $py: install a CUDA PyTorch (pip install torch) or set GPU_CHECK_PYTHON"; exit 1; }
fi
torch_lib=$(dirname "$torch_prefix")/../lib
[ -e "$torch_lib/libtorch_cpu.so" ] || torch_lib=$(dirname "$(find "$torch_prefix"/.. "$torch_prefix"/../.. -maxdepth 3 -name 'libtorch_cpu.so*' 2>/dev/null | head -1)")
torch_lib=$(cd "$torch_lib" 2>/dev/null && pwd || echo "$torch_lib")
# A fresh machine reads its image lazily: the first build there spent most of
# its time waiting for LibTorch's headers and libraries (300 s for a third of
# the objects, then 61 s for all of them once read). Reading them in parallel
# while the packages unpack takes that wait off the compiler's path.
# Its own process group (setsid), so that stopping it stops its readers too;
# shared libraries only (the CUDA static archives are gigabytes no link reads).
setsid bash -c 'for dirs in "$1/../../include /usr/local/cuda/include /usr/include /usr/lib/gcc" "$2 /usr/local/cuda/lib64"; do
   find $dirs -type f \( -name "*.h*" -o -name "*.cuh" -o -name "*.so*" -o ! -name "*.*" \) -print0 2> /dev/null |
     xargs -0 -P 32 -n 64 cat > /dev/null 2>&1
 done' prefetch "$torch_prefix" "$torch_lib" &  # headers first, then the libraries the links read
prefetch=$!

# ---- 1. what the machine lacks: parallel HDF5, ScaLAPACK, toml++, Fashion-MNIST ---------
need=()
command -v h5pcc.openmpi > /dev/null || need+=(hdf5)
ls /usr/lib/x86_64-linux-gnu/libscalapack-openmpi.so > /dev/null 2>&1 || need+=(scalapack)
[ -e /usr/include/toml++/toml.h ] || [ -e /usr/include/toml++/toml.hpp ] || need+=(tomlplusplus)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(fashion-mnist)
if [ ${#need[@]} -gt 0 ]; then
  say "missing: ${need[*]}; unpacking $root/.gpu-debs"
  if ! compgen -G "$root/.gpu-debs/*.deb" > /dev/null; then
    say "no .gpu-debs/*.deb: run scripts/fetch_gpu_debs.sh on a Debian 12 machine first"
    exit 1
  fi
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  for deb in "$root"/.gpu-debs/*.deb; do "${sudo[@]}" dpkg -x "$deb" / || failed=1; done
  "${sudo[@]}" ldconfig
fi

# The NCCL checks (seconds): `fit --reduce nccl` through the CLI and two ranks
# on one GPU; run as soon as their programs exist, before the whole suite,
# whose failures could otherwise use up the time they need.
nccl_checks() {
  [ -x "$build/src/cli/gradmatch" ] || return 0
  # `fit --reduce nccl` through the CLI, one rank (NCCL refuses two ranks on one
  # GPU): with NCCL built in the flag is taken and the missing file is the error.
  "$build/src/cli/gradmatch" fit /nonexistent/eq.h5 --family ridge --method normal --reduce nccl > "$logs/fit_nccl.log" 2>&1
  rc_fit=$?
  # Expected: exit 2 naming the missing file (NCCL set up on one rank first);
  # a build without NCCL (its --version says "no NCCL") or a machine without
  # a GPU (GPU_CHECK_FORCE=1) says that instead, also with exit 2.
  expect="does not exist"
  "$build/src/cli/gradmatch" --version 2>&1 | grep -q "no NCCL" && expect="built without NCCL"
  [ "$expect" = "does not exist" ] && [ $gpu -eq 0 ] && expect="no CUDA device is visible"
  say "fit --reduce nccl on a missing file: exit $rc_fit ($(head -c 160 "$logs/fit_nccl.log" | tr '\n' ' '))"
  if ! { [ $rc_fit -eq 2 ] && grep -q "$expect" "$logs/fit_nccl.log"; }; then
    say "fit --reduce nccl: expected exit 2 and '$expect' (fit_nccl.log)"
    failed=1
  fi
  # Two ranks on one GPU: NCCL refuses them, and every rank must learn it and
  # stop (the non-blocking setup with its deadline) instead of waiting for the
  # other; 124 would be that hang. The test then skips with NCCL's message.
  if [ $gpu -eq 1 ] && [ -x "$build/tests/distributed/nccl_tests" ]; then
    t_nccl=$(date +%s)
    GRADMATCH_NCCL_INIT_TIMEOUT=30 timeout 90 mpirun -n 2 --oversubscribe "$build/tests/distributed/nccl_tests" \
      --gtest_filter='NcclReduce.SumsAndFitsEqualTheMpiPath' > "$logs/nccl_two_ranks.log" 2>&1
    rc_nccl=$?
    say "nccl, two ranks on one GPU: exit $rc_nccl in $(($(date +%s) - t_nccl)) s (124: the ranks hung); $(grep -m1 -oE 'nccl reduce: [^]]{0,160}' "$logs/nccl_two_ranks.log")"
  fi
  nccl_done=1
}

# ---- 2. configure and build ------------------------------------------------------------
# nvcc for the dropout masks' CUDA kernel (cmake/gpu.cmake's check_language(CUDA)).
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc > /dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
generator=()
keep_going=(-- -k)  # make: keep going after errors; ninja needs a count (0: no limit)
command -v ninja > /dev/null && { generator=(-G Ninja); keep_going=(-- -k 0); }
# A compiler without a shared libstdc++ (libstdc++.so) links it statically, and
# programs that also load LibTorch then crash in std::filesystem (seen on a GPU
# image whose CXX was such a g++): take the system's g++ instead.
# (Where none has one, configure links the system's libstdc++.so.6 by path.)
compilers=()
build_cxx=${CXX:-c++}  # the compiler the build uses (its libstdc++ is the one to preload below)
if [[ "$("${CXX:-c++}" -print-file-name=libstdc++.so 2>/dev/null)" != /* ]]; then
  for cxx in /usr/bin/g++ /usr/bin/g++-13 /usr/bin/g++-14 /usr/bin/g++-12; do
    if [ -x "$cxx" ] && [[ "$("$cxx" -print-file-name=libstdc++.so 2>/dev/null)" == /* ]]; then
      cc=${cxx/g++/gcc}
      say "CXX=${CXX:-c++} has no shared libstdc++; building with $cxx"
      compilers=(-DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CUDA_HOST_COMPILER="$cxx")
      build_cxx=$cxx
      break
    fi
  done
fi
step configure 120 cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${compilers[@]}" \
  -DCMAKE_PREFIX_PATH="$torch_prefix" -DHDF5_C_COMPILER_EXECUTABLE=/usr/bin/h5pcc.openmpi \
  -DGRADMATCH_WITH_NCCL=AUTO -DGRADMATCH_BUILD_BENCHMARKS=ON -DGRADMATCH_TEST_PYTHON="$(command -v "$py")" ||
  { say "configure failed"; tail -20 "$logs/configure.log" >&2; exit 1; }
grep -E "gradmatch: LibTorch" "$logs/configure.log" | sed 's/^-- //' | while read -r line; do say "$line"; done
# What the GPU evidence needs first (the CLI, the gpu tests, the benchmark), so
# that a slow first build still leaves time for it; the rest of the tree after.
gpu_targets=(gradmatch gradmatch-torch gpu_training_tests gpu_studies_tests nccl_tests dropout_gpu_bench)
step build_gpu_targets 420 cmake --build "$build" --parallel "$cores" --target "${gpu_targets[@]}" "${keep_going[@]}" ||
  grep -E 'error' "$logs/build_gpu_targets.log" | head -40 >&2
kill -- -"$prefetch" 2> /dev/null
if [ "${GPU_CHECK_STOP_AFTER:-}" = gpu_targets ]; then
  say "stopping after the gpu targets (GPU_CHECK_STOP_AFTER=gpu_targets): $([ $failed -eq 0 ] && echo built || echo 'build FAILED')"
  exit $failed
fi
# The gpu tests as soon as their targets exist, beside the rest of the build:
# they check numbers, not times (the benchmark waits for the build), and the
# build runs niced. Its own trap: `step` puts ctest in a process group that a
# TERM to this script does not reach.
gpu_tests= gpu_ran=0
if [ $gpu -eq 1 ] && [ -x "$build/tests/training/gpu_training_tests" ]; then
  ( trap '[ -n "$step_pid" ] && { kill -TERM -- -"$step_pid" || kill -TERM "$step_pid"; } 2> /dev/null; exit 143' TERM
    step ctest_gpu 150 ctest --test-dir "$build" -L gpu --output-on-failure -V --timeout 140 ) &
  gpu_tests=$! gpu_ran=1
  sleep 3  # ctest reads its test list before the build's test discovery rewrites parts of it
fi
# -k: every compile error in one log. If the build fails, the CUDA kernel and
# NCCL (the parts only a CUDA machine compiles) are left out and it is tried
# once more, so the rest of the check still runs; summary.txt says so. From
# here on the CPU work runs niced: a study may be using the GPU beside it.
build_ok=1
step build 420 nice -n 10 cmake --build "$build" --parallel "$cores" "${keep_going[@]}" || build_ok=0
if [ -n "$gpu_tests" ]; then
  wait "$gpu_tests" || failed=1
  gpu_tests=
  grep -E "SKIPPED|Passed|Failed|device:|cuda run" "$logs/ctest_gpu.log" | head -20 >&2
fi
if [ $build_ok -eq 0 ]; then
  grep -E 'error|Error' "$logs/build.log" | head -40 >&2
  say "build failed; building again without the CUDA kernel and NCCL (build_fallback.log)"
  step configure_fallback 120 cmake "$build" -DGRADMATCH_CUDA_KERNELS_REQUEST=OFF -DGRADMATCH_WITH_NCCL=OFF ||
    { say "configure without CUDA kernel and NCCL failed"; exit 1; }
  step build_fallback 300 nice -n 10 cmake --build "$build" --parallel "$cores" "${keep_going[@]}" ||
    { say "build failed without the CUDA kernel and NCCL too (build_fallback.log)"; grep -E 'error|Error' "$logs/build_fallback.log" | head -40 >&2; exit 1; }
fi
# The benchmark and the kernel profile once the build is done (nothing else
# using the CPU or the GPU), then the NCCL checks.
if [ $gpu_ran -eq 1 ]; then
  if [ "${GPU_CHECK_BENCH:-1}" = 0 ]; then
    say "bench: skipped (GPU_CHECK_BENCH=0)"
  else
    # shellcheck disable=SC2086
    step bench 240 "$root/scripts/bench_dropout_gpu.sh" --build "$build" --device cuda --python "$py" ${GPU_CHECK_BENCH_ARGS:-}
    tail -32 "$logs/bench.log" >&2
  fi
  # Where the time of a batched step goes, when Nsight Systems is installed:
  # the kernel and memory-copy summaries of gradmatch's and PyTorch's batch.
  nsys_bin=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2> /dev/null | head -1)
  if [ "${GPU_CHECK_PROFILE:-0}" = 0 ]; then
    say "no kernel profile (GPU_CHECK_PROFILE=1 adds one where nsys is installed)"
  elif [ -n "$nsys_bin" ]; then
    step profile_gradmatch 120 "$nsys_bin" profile --stats=true --force-overwrite=true -o /tmp/gm_profile \
      "$build/tests/benchmarks/dropout_gpu_bench" --device cuda --depth 3 --width 128 --epochs 2
    step profile_pytorch 120 "$nsys_bin" profile --stats=true --force-overwrite=true -o /tmp/pt_profile \
      "$py" "$root/scripts/bench_dropout_torch.py" --mode batched --device cuda --depth 3 --width 128 --epochs 2
  else
    say "no nsys: no kernel profile"
  fi
  nccl_checks
  gpu_done=1
fi

# ---- 2b. the pace of one CPU core (seconds) ---------------------------------------------
# The suite's studies compute on the CPU, and on a 16-core H100 host they ran
# 3-30x slower than on this project's 2-core development VM -- the MPI tests
# mostly because every mpirun bound its ranks to cores 0 and 1 (no binding
# since). Whether one core's pace differs as well: two probes, alone on the
# machine: LibTorch's compute (the dropout classifiers batched on the
# CPU; 27-29 ms per model-epoch on the VM) and the cost of page faults (small
# batched replicate steps with malloc keeping freed memory, as gradmatch does,
# and without: 18 against 49 us per replicate-step on the VM, 27 k against
# 465 k faults).
if [ "${GPU_CHECK_CPU_PROBE:-1}" != 0 ] && [ -x "$build/tests/benchmarks/replicate_training_bench" ]; then
  nomallopt=${TMPDIR:-/tmp}/gradmatch_nomallopt_$$.so
  printf 'int mallopt(int a, int b) { (void)a; (void)b; return 1; }\n' |
    "$build_cxx" -shared -fPIC -x c - -o "$nomallopt" 2> /dev/null || nomallopt=
  {
    echo "== dropout classifiers on one CPU core (8 x 3 x 128, 4,096 images, 3 epochs)"
    "$build/tests/benchmarks/dropout_gpu_bench" --device cpu --depth 3 --width 128 --replicates 8 --images 4096 --epochs 3 2>&1 | tail -1
    for pre in "" $nomallopt; do
      echo "== batched replicate steps, R = 64, 3 epochs, LD_PRELOAD=${pre:-none}"
      t_rep=$(date +%s%N)
      LD_PRELOAD=$pre "$build/tests/benchmarks/replicate_training_bench" --mode batched --replicates 64 --epochs 3 2>&1 | tail -1
      echo "wall $(( ($(date +%s%N) - t_rep) / 1000000 )) ms"
    done
  } > "$logs/cpu_probe.log" 2>&1
  rm -f "$nomallopt"
  say "cpu probe: dropout $(grep -m1 -oE '"ms_per_model_epoch": [0-9.]+' "$logs/cpu_probe.log" | grep -oE '[0-9.]+$') ms/model-epoch (VM: 27-29);" \
    "replicate step $(grep -oE '"us_per_replicate_step": [0-9.]+' "$logs/cpu_probe.log" | grep -oE '[0-9.]+$' | paste -sd / -) us kept/without (VM: 18/49)"
fi

# ---- 3. evidence: libstdc++ symbols that LibTorch exports (pytorch/pytorch#133437) -----
{
  echo "== libtorch_cpu.so: exported std::filesystem / other libstdc++ definitions"
  nm -D --defined-only "$torch_lib/libtorch_cpu.so" 2>/dev/null | grep -c 'St10filesystem' | sed 's/^/filesystem symbols: /'
  nm -D --defined-only "$torch_lib/libtorch_cpu.so" 2>/dev/null | grep -E ' [TWiu] .*St10filesystem' | head -20
  echo "== zlib / HDF5 / protobuf names defined by the torch libraries"
  for lib in "$torch_lib"/lib{torch,c10,caffe2,shm,gomp,nccl,cu}*.so*; do
    n=$(nm -D --defined-only "$lib" 2>/dev/null | grep -cE ' (inflate|deflate|gzopen|gzread|H5Fopen|crc32)$')
    [ "$n" -gt 0 ] && echo "$(basename "$lib"): $n"
  done
  echo "== NEEDED order of the test and CLI binaries (libstdc++ must come before libtorch)"
  for exe in tests/training/training_tests tests/studies/studies_tests src/cli/gradmatch-torch; do
    echo "-- $exe"; readelf -d "$build/$exe" 2>/dev/null | grep NEEDED | head -12
  done
  echo "== the link command of training_tests (libstdc++.so.6 by its path before the objects)"
  command -v ninja > /dev/null && ninja -C "$build" -t commands tests/training/training_tests 2>/dev/null | tail -1 | tr ' ' '\n' | head -40
  echo "== ldd training_tests"; ldd "$build/tests/training/training_tests" 2>&1 | grep -E 'torch|c10|stdc\+\+|libz|hdf5|gomp|cuda|nccl'
  echo "== which library std::filesystem binds to in a test that used to segfault"
  LD_DEBUG=bindings LD_DEBUG_OUTPUT="$logs/ld_bindings" \
    "$build/tests/training/training_tests" --gtest_filter='Idx.CorruptGzipStreamIsAnErrorNamingTheFile' > /dev/null 2>&1
  echo "exit: $?"
  # "binding file A to B: symbol": B is libstdc++.so.6 when the fix holds, libtorch_cpu.so when it does not.
  cat "$logs"/ld_bindings.* 2>/dev/null | grep -E 'St10filesystem' | grep -E 'training_tests|torch' |
    sed -E 's/^ *[0-9]+: *//' | sort | uniq | head -20
  rm -f "$logs"/ld_bindings.*
  if command -v gdb > /dev/null; then
    echo "== gdb backtrace of Recovery.RidgeOfATanhMlpThroughAnEquationFile (empty when it passes)"
    timeout 60 gdb -batch -ex run -ex bt --args "$build/tests/training/training_tests" \
      --gtest_filter='Recovery.RidgeOfATanhMlpThroughAnEquationFile' 2>&1 | grep -A30 -E 'SIGSEGV|signal' | head -40
  fi
} > "$logs/symbols.txt" 2>&1
say "symbols: $(grep -m1 'filesystem symbols' "$logs/symbols.txt"); bindings in symbols.txt"

# ---- 4. the gpu tests (unless run above), then the whole suite ---------------------------
if [ "${gpu_done:-0}" != 1 ]; then
  step ctest_gpu 150 ctest --test-dir "$build" -L gpu --output-on-failure -V --timeout 140
  grep -E "SKIPPED|Passed|Failed|device:|cuda run" "$logs/ctest_gpu.log" | head -20 >&2
fi
[ "${nccl_done:-0}" = 1 ] || nccl_checks
# The whole suite but the gpu tests when they ran above (once is enough).
exclude=()
[ "${gpu_done:-0}" = 1 ] && exclude=(-LE gpu)
# The MPI study tests (COST: started first; TIMEOUT 600; split into parts)
# ran their smoke-size models on the GPU here once, bound by kernel launches:
# 86-220 s a binary on an H200 with four at once, 240+ s beside the rest of
# the suite. The small-model smoke configs now say device = "cpu" (the gpu
# tests above run each study on cuda); the dropout and the bootstrap
# tests' own configs still take the GPU under "auto".
if ! step ctest 420 nice -n 10 ctest --test-dir "$build" "${exclude[@]}" --output-on-failure -j "$cores" --timeout 240; then
  # The failures once more with the system libstdc++ preloaded: if they pass
  # then, the cause is which libstdc++ defines the program's symbols.
  step ctest_preload 150 env LD_PRELOAD="$("$build_cxx" -print-file-name=libstdc++.so.6)" \
    ctest --test-dir "$build" --rerun-failed --output-on-failure -j "$cores" --timeout 180
  failed=1
fi
grep -E "tests passed|tests failed|The following tests" -A25 "$logs/ctest.log" | head -30 >&2
# Where the suite's time went: its slowest tests, for the record.
say "slowest tests: $(grep -E 'Test +#[0-9]+: ' "$logs/ctest.log" | sed -E 's/^.*Test +#[0-9]+: ([^ ]+) .* ([0-9.]+) sec.*$/\2 s \1/' |
  sort -rn | head -6 | paste -sd ';' - | sed 's/;/; /g')"
# ---- 5. the benchmark (unless run above) ---------------------------------------------------
[ $gpu -eq 1 ] && [ "${gpu_done:-0}" != 1 ] && [ "${GPU_CHECK_BENCH:-1}" = 0 ] && say "bench: skipped (GPU_CHECK_BENCH=0)"
if [ $gpu -eq 1 ] && [ "${gpu_done:-0}" != 1 ] && [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
  # shellcheck disable=SC2086
  step bench 240 "$root/scripts/bench_dropout_gpu.sh" --build "$build" --device cuda --python "$py" ${GPU_CHECK_BENCH_ARGS:-}
  tail -8 "$logs/bench.log" >&2
fi
say "done in $(($(date +%s) - t0)) s (aimed at 480 s on a GPU host): $([ $failed -eq 0 ] && echo 'every step passed' || echo 'some step FAILED')"
exit $failed
