#include "studies/farm_study.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>

#include "core/errors.hpp"
#include "distributed/task_farm.hpp"
#include "io/config.hpp"
#include "io/json_output.hpp"
#include "io/run_store.hpp"

namespace gradmatch::studies {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

nlohmann::json stage_json(const distributed::FarmStats& s) {
  return {{"tasks", s.items},
          {"wall_seconds", s.wall_seconds},
          {"tasks_per_rank", s.done_per_rank},
          {"busy_seconds_per_rank", s.busy_per_rank},
          {"cpu_seconds_per_rank", s.cpu_per_rank},
          {"efficiency", s.efficiency()},
          {"diverged", s.diverged}};
}

}  // namespace

distributed::RankDevice configure_study_device(const distributed::Communicator& comm) {
  distributed::RankDevice device;
  distributed::collective(comm, [&] {
    device = distributed::configure_device(comm, 0);  // Debian's LibTorch: CPU only
    at::set_num_threads(device.device.threads);
  });
  return device;
}

void config_error(const io::ConfigReader& reader, const std::string& key, const std::string& what) {
  throw InputError(cat(reader.path(), ": key '", key, "': ", what));
}

std::uint64_t read_study_seed(io::ConfigReader& reader, const char* study, std::uint64_t fallback) {
  const std::string name = reader.get_string("study");
  if (name != study) config_error(reader, "study", cat("this reader is for study \"", study, "\", not \"", name, "\""));
  return static_cast<std::uint64_t>(reader.get_int("seed", static_cast<std::int64_t>(fallback), 0,
                                                   std::numeric_limits<std::int64_t>::max()));
}

std::string short_number(double value) {
  char buffer[32];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
    if (std::stod(buffer) == value) break;
  }
  return buffer;
}

void run_farm_study(const distributed::Communicator& comm, const distributed::RankDevice& device,
                    const std::string& out_dir, const StudyRunSpec& spec, const ComputeRow& compute,
                    const WriteOutputs& write) {
  using distributed::collective;
  const auto t0 = Clock::now();
  const bool root = comm.is_root();
  const auto say = [&](const std::string& line) {
    if (root) std::fprintf(stderr, "%s: %s\n", spec.study.c_str(), line.c_str());
  };

  io::RunStoreSpec store_spec{spec.study, spec.effective_config, {}};
  for (const StudyTable& t : spec.tables) store_spec.tables.push_back({t.name, t.width, t.ids});
  std::unique_ptr<io::RunStore> store;
  collective(comm, [&] { store = std::make_unique<io::RunStore>(comm.get(), out_dir, store_spec); });

  const std::filesystem::path dir(out_dir);
  std::vector<std::string> outputs = spec.outputs;
  outputs.push_back("run_info.json");
  const bool outputs_present =
      comm.broadcast(root && std::all_of(outputs.begin(), outputs.end(),
                                         [&](const std::string& f) { return std::filesystem::exists(dir / f); })
                         ? "1"
                         : "0") == "1";
  if (store->complete_at_open() && outputs_present) {
    store->close();
    if (root) std::fprintf(stderr, "gradmatch: nothing to do: %s is complete\n", out_dir.c_str());
    return;
  }
  const std::int64_t total = store->total_rows(), resumed = store->finished_at_open();
  if (resumed > 0) {
    std::string line = "resuming ";
    line += out_dir;
    line += ": ";
    line += std::to_string(resumed);
    line += " of ";
    line += std::to_string(total);
    line += " tasks already done (attempt ";
    line += std::to_string(store->attempt());
    line += ")";
    say(line);
  }

  auto t = Clock::now();
  std::vector<distributed::FarmStats> stages;
  for (std::size_t k = 0; k < spec.tables.size(); ++k)
    stages.push_back(
        distributed::farm_table(comm, *store, k, [&](std::int64_t row) { return compute(k, row); }));
  const double tasks_s = seconds_since(t);

  std::vector<std::vector<double>> data(spec.tables.size());
  std::map<std::int32_t, std::int64_t> by_attempt;
  std::int64_t diverged = 0;
  collective(comm, [&] {
    if (!root) return;
    for (std::size_t k = 0; k < spec.tables.size(); ++k) {
      data[k] = store->read_data(k);
      const std::vector<io::TaskStatus> status = store->read_status(k);
      const std::vector<std::int32_t> attempts = store->read_attempts(k);
      for (std::size_t row = 0; row < status.size(); ++row) {
        if (status[row] == io::TaskStatus::pending) {
          std::string msg = store->path();
          msg += ": task ";
          msg += std::to_string(row);
          msg += " of table '";
          msg += store->table_name(k);
          msg += "' is still pending after the farm";
          throw std::runtime_error(msg);
        }
        if (status[row] == io::TaskStatus::diverged) ++diverged;
        ++by_attempt[attempts[row]];
      }
    }
  });
  const std::int32_t attempt = store->attempt();
  const std::vector<std::string> hosts = comm.gather(distributed::processor_name());
  const std::vector<std::string> devices = comm.gather(device.device.describe());

  collective(comm, [&] {
    if (!root) return;
    t = Clock::now();
    std::string line = "writing ";
    line += out_dir;
    say(line);
    nlohmann::json extra = write(data);
    const double write_s = seconds_since(t);

    nlohmann::json attempts = nlohmann::json::object();
    for (const auto& [a, n] : by_attempt) attempts[std::to_string(a)] = n;
    nlohmann::json stage_info = nlohmann::json::object();
    std::int64_t run_now = 0;
    for (std::size_t k = 0; k < stages.size(); ++k) {
      stage_info[spec.tables[k].name] = stage_json(stages[k]);
      run_now += stages[k].items;
    }
    nlohmann::json info = {
        {"study", spec.study},
        {"ranks", comm.size()},
        {"hosts", hosts},
        {"devices", devices},
        {"blas", device.blas},
        {"store", {{"attempt", attempt}, {"fingerprint", io::store_fingerprint(spec.study, spec.effective_config)}}},
        {"tasks",
         {{"total", total}, {"resumed", resumed}, {"run", run_now}, {"diverged", diverged}, {"by_attempt", attempts}}},
        {"stages", stage_info},
        {"wall_seconds",
         {{"shared", spec.shared_seconds}, {"tasks", tasks_s}, {"write", write_s}, {"total", seconds_since(t0)}}}};
    if (extra.is_object())
      for (auto it = extra.begin(); it != extra.end(); ++it) info[it.key()] = it.value();
    io::write_json_file((dir / "run_info.json").string(), info);
    std::string done = "done in ";
    done += std::to_string(seconds_since(t0));
    done += " s";
    say(done);
  });
  store->close();
}

}  // namespace gradmatch::studies
