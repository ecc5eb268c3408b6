// Which cores each rank may run on (see placement.hpp).
#include "distributed/placement.hpp"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <stdexcept>

#include "core/text.hpp"

namespace gradmatch::distributed {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return {};
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

std::string cpu_list_text(const std::vector<int>& cpus) {
  std::string out;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

std::vector<int> parse_cpu_list(const std::string& text) {
  std::vector<int> cpus;
  const auto bad = [&] { return std::invalid_argument("not a cpu list: '" + text + "'"); };
  const char* p = text.data();
  const char* const end = text.data() + text.size();
  const auto number = [&] {
    int v = -1;
    const auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || v < 0) throw bad();
    p = next;
    return v;
  };
  if (text.empty()) return cpus;
  while (true) {  // a number or a range, then the end or a comma and more
    const int first = number();
    int last = first;
    if (p < end && *p == '-') {
      ++p;
      last = number();
    }
    if (last < first || (!cpus.empty() && first <= cpus.back())) throw bad();
    for (int c = first; c <= last; ++c) cpus.push_back(c);
    if (p == end) return cpus;
    if (*p++ != ',') throw bad();
  }
}

std::vector<std::string> crowded_hosts(const std::vector<RankPlacement>& ranks) {
  struct Host {
    int ranks = 0;
    long threads = 0;
    std::set<int> cpus;
    bool known = true;
  };
  std::map<std::string, Host> hosts;
  std::vector<std::string> order;  // hosts in the order their first rank comes
  for (const RankPlacement& r : ranks) {
    auto [it, fresh] = hosts.try_emplace(r.host);
    if (fresh) order.push_back(r.host);
    Host& h = it->second;
    ++h.ranks;
    h.threads += r.threads;
    h.known = h.known && !r.cpus.empty();
    h.cpus.insert(r.cpus.begin(), r.cpus.end());
  }
  std::vector<std::string> lines;
  for (const std::string& name : order) {
    const Host& h = hosts.at(name);
    if (!h.known || h.threads <= static_cast<long>(h.cpus.size())) continue;
    lines.push_back(text::cat(
        "host ", name, ": ", h.ranks, h.ranks == 1 ? " rank computes" : " ranks compute", " with ", h.threads,
        h.threads == 1 ? " thread" : " threads", " in all on ", h.cpus.size(), h.cpus.size() == 1 ? " core" : " cores",
        " (", cpu_list_text(std::vector<int>(h.cpus.begin(), h.cpus.end())),
        "): their threads take turns; start fewer ranks or threads there (GRADMATCH_THREADS_PER_RANK), or let "
        "each rank use as many cores as threads (mpirun --map-by slot:PE=<threads> or --bind-to none, srun "
        "--cpus-per-task=<threads>)"));
  }
  return lines;
}

std::vector<RankPlacement> gather_placement(const Communicator& comm, int threads) {
  const std::vector<std::string> hosts = comm.gather(mpi::processor_name());
  const std::vector<std::string> thread_counts = comm.gather(std::to_string(threads));
  const std::vector<std::string> cpus = comm.gather(cpu_list_text(allowed_cpus()));
  std::vector<RankPlacement> out(hosts.size());
  for (std::size_t r = 0; r < out.size(); ++r) out[r] = {hosts[r], std::stoi(thread_counts[r]), parse_cpu_list(cpus[r])};
  return out;
}

}  // namespace gradmatch::distributed
