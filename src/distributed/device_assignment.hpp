#pragma once
// Rank -> device, the pure part (see device.hpp): header-only and free of
// MPI and LibTorch, so that the training layer, which asks LibTorch how many
// GPUs there are, can apply it without linking the MPI layer.
#include <stdexcept>
#include <string>

namespace gradmatch::distributed {

enum class DeviceKind { cpu, cuda };

struct DeviceAssignment {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;    ///< CUDA device ordinal; 0 for the CPU
  int threads = 1;  ///< host compute threads (BLAS, intra-op) of the rank
  /// "cuda:1 (1 thread)" or "cpu (1 thread)"; training::describe_device()
  /// names the GPU instead ("cuda:1 (NVIDIA H200)").
  std::string describe() const {
    std::string s = kind == DeviceKind::cuda ? "cuda:" + std::to_string(index) : std::string("cpu");
    s += " (";
    s += std::to_string(threads);
    s += threads == 1 ? " thread)" : " threads)";
    return s;
  }
  bool operator==(const DeviceAssignment&) const = default;
};

/// The device of the rank with local rank `local_rank` of `local_size` ranks
/// on its node, with `gpus_per_node` visible GPUs (0: CPU only) and
/// `threads_override` compute threads per rank (0: the default of one):
/// CUDA device local_rank mod gpus_per_node when there are GPUs.
/// Throws std::invalid_argument for a local rank outside [0, local_size) or
/// negative counts.
inline DeviceAssignment assign_device(int local_rank, int local_size, int gpus_per_node, int threads_override) {
  if (local_size < 1 || local_rank < 0 || local_rank >= local_size)
    throw std::invalid_argument("assign_device: local rank " + std::to_string(local_rank) + " is not in [0, " +
                                std::to_string(local_size) + ")");
  if (gpus_per_node < 0 || threads_override < 0)
    throw std::invalid_argument("assign_device: GPU and thread counts must be >= 0");
  DeviceAssignment a;
  a.threads = threads_override > 0 ? threads_override : 1;
  if (gpus_per_node > 0) {
    a.kind = DeviceKind::cuda;
    a.index = local_rank % gpus_per_node;
  }
  return a;
}

}  // namespace gradmatch::distributed
