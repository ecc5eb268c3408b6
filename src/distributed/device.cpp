// Rank -> device assignment (see device.hpp).
#include "distributed/device.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <stdexcept>

#include "core/errors.hpp"

namespace gradmatch::distributed {

std::string DeviceAssignment::describe() const {
  std::string s = kind == DeviceKind::cuda ? "cuda:" : "cpu";
  if (kind == DeviceKind::cuda) s += std::to_string(index);
  s += " (";
  s += std::to_string(threads);
  s += threads == 1 ? " thread)" : " threads)";
  return s;
}

DeviceAssignment assign_device(int local_rank, int local_size, int gpus_per_node, int threads_override) {
  if (local_size < 1 || local_rank < 0 || local_rank >= local_size) {
    std::string msg = "assign_device: local rank ";
    msg += std::to_string(local_rank);
    msg += " is not in [0, ";
    msg += std::to_string(local_size);
    msg += ")";
    throw std::invalid_argument(msg);
  }
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

int threads_from_environment() {
  const char* text = std::getenv("GRADMATCH_THREADS_PER_RANK");
  if (!text || !*text) return 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (*end != '\0' || v < 1 || v > 1024) {
    std::string msg = "GRADMATCH_THREADS_PER_RANK='";
    msg += text;
    msg += "': write a thread count per rank between 1 and 1024, or unset it for one thread per rank";
    throw InputError(msg);
  }
  return static_cast<int>(v);
}

std::string apply_cpu_threads(int threads) {
  // Looked up at run time: Debian switches BLAS implementations through
  // alternatives, so which library is loaded is known only now.
  using SetThreads = void (*)(int);
  if (auto* set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(threads);
    std::string s = "openblas: ";
    s += std::to_string(threads);
    s += threads == 1 ? " thread" : " threads";
    return s;
  }
  return "blas: single-threaded (reference)";
}

RankDevice configure_device(const Communicator& comm, int gpus_per_node) {
  const int local_rank = comm.local_rank(), local_size = comm.local_size();
  RankDevice r;
  r.device = assign_device(local_rank, local_size, gpus_per_node, threads_from_environment());
  r.blas = apply_cpu_threads(r.device.threads);
  return r;
}

}  // namespace gradmatch::distributed
