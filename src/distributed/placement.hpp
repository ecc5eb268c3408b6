#pragma once
// Which cores each rank may run on, and whether the ranks of a host crowd
// the cores they may use.
//
// A launcher binds ranks to cores (Open MPI binds rank r to core r at up to
// two ranks, srun follows --cpu-bind), and a rank's compute threads
// (GRADMATCH_THREADS_PER_RANK) run only there. Where a host's ranks compute
// with more threads than they may use cores, their threads take turns and
// the run is slower than it looks: a rank of four threads bound to one core,
// or more ranks than cores. run_info.json records every rank's cores
// ("cores"), and the runner warns about a crowded host at the start. Two
// jobs side by side on one machine, each bound alike (every mpirun's rank 0
// on core 0), look fine from inside each: their "cores" show it.
#include <string>
#include <vector>

#include "mpi/mpi.hpp"

namespace gradmatch::distributed {

/// The cores the calling thread may run on (sched_getaffinity), ascending;
/// empty where the system does not say.
std::vector<int> allowed_cpus();

/// Linux's cpulist form: {0, 1, 2, 3, 8, 10, 11} -> "0-3,8,10-11"; {} -> "".
/// `cpus` ascending, without repeats.
std::string cpu_list_text(const std::vector<int>& cpus);
/// The inverse of cpu_list_text ("" -> {}); std::invalid_argument for text
/// it does not write.
std::vector<int> parse_cpu_list(const std::string& text);

/// One rank's host, compute threads and the cores it may use (empty: unknown).
struct RankPlacement {
  std::string host;
  int threads = 1;
  std::vector<int> cpus;
};

/// One line per host whose ranks compute with more threads than the cores
/// any of them may use: "host H: 4 ranks compute with 4 threads in all on 2
/// cores (0-1): ...". Hosts where a rank's cores are unknown are left out.
std::vector<std::string> crowded_hosts(const std::vector<RankPlacement>& ranks);

/// Collective over `comm`: every rank's placement (host, `threads`,
/// allowed_cpus()), in rank order on the root, empty elsewhere.
std::vector<RankPlacement> gather_placement(const Communicator& comm, int threads);

}  // namespace gradmatch::distributed
