#pragma once
// All-reduce backends of the distributed fits (`gradmatch fit --reduce`).
//
//   mpi   MPI_Allreduce on host buffers (Communicator::allreduce_sum).
//   nccl  ncclAllReduce on device buffers: each rank computes on CUDA device
//         local_rank mod G (as distributed::assign_device), rank 0 creates
//         the NCCL unique id and MPI broadcasts it, every rank joins with
//         a non-blocking ncclCommInitRankConfig (NCCL >= 2.14) and polls it
//         for at most GRADMATCH_NCCL_INIT_TIMEOUT seconds (300); the ranks
//         then agree over MPI, so a rank whose init fails makes every rank
//         fail with its message instead of leaving them waiting. A sum is
//         copied to the device, all-reduced in place (ncclDouble, ncclSum)
//         on the rank's stream and copied back.
//
// The fits' statistics (the Gram matrix of --method normal; G and C of the
// structured sym solve; the residual sums) are computed on the host, so the
// NCCL path moves them through the GPU for the reduction only: worth it
// where the ranks' GPUs are linked by NVLink / InfiniBand GPUDirect and the
// p x p statistics are large. NCCL refuses two ranks on one GPU: run as
// many ranks per node as GPUs. Built only with GRADMATCH_WITH_NCCL (a CUDA
// LibTorch and NCCL, cmake/gpu.cmake); elsewhere nccl_built_in() is false
// and NcclReducer's constructor throws InputError.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mpi/mpi.hpp"

namespace gradmatch::distributed {

enum class ReduceBackend { mpi, nccl };
/// "mpi" | "nccl"; InputError otherwise.
ReduceBackend parse_reduce_backend(std::string_view text);
std::string to_string(ReduceBackend backend);

/// True when this gradmatch was built with NCCL.
bool nccl_built_in();

/// An NCCL communicator over the ranks of `comm` (collective to build).
class NcclReducer {
 public:
  explicit NcclReducer(const Communicator& comm);
  ~NcclReducer();
  NcclReducer(const NcclReducer&) = delete;
  NcclReducer& operator=(const NcclReducer&) = delete;

  /// In-place element-wise sum over all ranks (collective), through the GPU.
  void allreduce_sum(std::vector<double>& values);
  int cuda_device() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// allreduce_sum over `comm` by MPI, or through `nccl` when given.
void allreduce_sum(const Communicator& comm, NcclReducer* nccl, std::vector<double>& values);

}  // namespace gradmatch::distributed
