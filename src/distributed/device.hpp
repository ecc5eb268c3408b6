#pragma once
// Rank -> device: which GPU or how many CPU threads a rank computes with.
//
// On a node with G visible GPUs (LibTorch built with CUDA, G > 0) the rank
// with local rank r (its rank among the ranks of its node) computes on CUDA
// device r mod G: one rank per GPU when a job starts as many ranks per node
// as GPUs (`srun --gpus-per-task=1`, or mpirun -n G), several ranks sharing a
// GPU round-robin when it starts more. Under `--gpus-per-task=1` SLURM makes
// each rank see exactly its own GPU (G = 1), and r mod 1 = 0 picks it.
// Without GPUs a rank computes on the CPU with ONE compute thread unless
// configured otherwise (GRADMATCH_THREADS_PER_RANK, which the sbatch scripts
// set from --cpus-per-task): k ranks x 1 thread fill k cores, while k ranks
// x t threads on k cores ran 6-10x slower (oversubscribed BLAS threads).
//
// assign_device() is pure (device_assignment.hpp, header-only, unit-tested);
// the training layer asks LibTorch for G and turns the assignment into a
// torch::Device (training/device.hpp); apply_cpu_threads() sets the BLAS
// thread count for the numerical core.
#include <string>

#include "distributed/device_assignment.hpp"
#include "mpi/mpi.hpp"

namespace gradmatch::distributed {

/// GRADMATCH_THREADS_PER_RANK as a thread count; 0 when unset or empty.
/// Throws InputError when it is set to anything but an integer in [1, 1024].
int threads_from_environment();

/// Sets the BLAS thread count of this process when the BLAS in use can be
/// told (OpenBLAS' openblas_set_num_threads, found at run time); returns what
/// was set, e.g. "openblas: 1 thread", or "blas: single-threaded
/// (reference)" when there is nothing to set.
std::string apply_cpu_threads(int threads);

/// This rank's device, configured: assign_device() from the rank's place on
/// its node (collective over `comm`), `gpus_per_node` (what the caller's
/// LibTorch sees; 0 without CUDA) and GRADMATCH_THREADS_PER_RANK, with the
/// thread count applied to the BLAS. `blas` says what apply_cpu_threads() set.
struct RankDevice {
  DeviceAssignment device;
  std::string blas;
};
RankDevice configure_device(const Communicator& comm, int gpus_per_node);

}  // namespace gradmatch::distributed
