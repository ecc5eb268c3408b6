// Rank -> device assignment (see device.hpp).
#include "distributed/device.hpp"

#include <dlfcn.h>

#include <cstdlib>

#include "core/errors.hpp"

namespace gradmatch::distributed {

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
