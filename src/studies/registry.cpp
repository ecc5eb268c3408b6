#include "studies/registry.hpp"

#include <cstdio>

#include "core/errors.hpp"
#include "io/config.hpp"
#include "io/provenance.hpp"
#include "io/run_store.hpp"
#include "studies/bootstrap.hpp"
#include "studies/estimate.hpp"
#include "studies/dropout.hpp"
#include "studies/elastic_net.hpp"
#include "studies/igr_calibration.hpp"
#include "studies/igr_synthetic.hpp"
#include "studies/long_horizon.hpp"
#include "studies/ols_early_stopping.hpp"

namespace gradmatch::studies {

std::span<const StudyEntry> study_registry() {
  // In the order of kStudyCatalog (studies/catalog.hpp), which describes them.
  static const StudyEntry entries[] = {
      {"ols_early_stopping", make_ols_early_stopping_study},
      {"igr_synthetic", make_igr_synthetic_study},
      {"long_horizon", make_long_horizon_study},
      {"igr_calibration", make_igr_calibration_study},
      {"elastic_net", make_elastic_net_study},
      {"dropout", make_dropout_study},
      {"bootstrap", make_bootstrap_study},
  };
  return entries;
}

std::vector<std::string> study_names() {
  std::vector<std::string> names;
  for (const StudyEntry& e : study_registry()) names.emplace_back(e.name);
  return names;
}

namespace {

/// The study the config's `study` key names; InputError listing the known ones.
const StudyEntry& entry_for(const std::string& config_path, const mpi::Communicator& comm, std::string& name) {
  const StudyEntry* entry = nullptr;
  mpi::collective(comm, [&] {
    io::ConfigReader peek(config_path);
    name = peek.get_string("study");
    for (const StudyEntry& e : study_registry())
      if (name == e.name) entry = &e;
    if (entry == nullptr) {
      std::string list;
      for (const StudyEntry& e : study_registry()) list += cat(list.empty() ? "" : ", ", e.name);
      const std::string close = text::closest(name, study_names());
      throw InputError(cat(peek.where("study"), ": unknown study '", text::clip(name), "'; known studies: ", list,
                           close.empty() ? "" : cat(" (did you mean ", close, "?)")));
    }
  });
  return *entry;
}

}  // namespace

void run_study(const std::string& config_path, const std::string& out_dir, const mpi::Communicator& comm,
               const RunOptions& options) {
  std::string name;
  const StudyEntry& entry = entry_for(config_path, comm, name);
  io::set_study(name);
  const std::unique_ptr<Study> study = entry.make();
  run_study(*study, name, config_path, out_dir, comm, options);
}

void check_study_config(const std::string& config_path, const std::string& out_dir, const mpi::Communicator& comm) {
  std::string name;
  const StudyEntry& entry = entry_for(config_path, comm, name);
  const std::unique_ptr<Study> study = entry.make();
  mpi::collective(comm, [&] {
    io::ConfigReader reader(config_path);
    study->configure(reader);
    reader.finish();
    device_request_for(*study, name, reader);
    check_estimate(study->estimate(), config_path, out_dir, 1);
  });
}

void dry_run_study(const std::string& config_path, const std::string& out_dir, const mpi::Communicator& comm,
                   const std::string& tasks) {
  std::string name;
  const StudyEntry& entry = entry_for(config_path, comm, name);
  const std::unique_ptr<Study> study = entry.make();
  std::string report;
  mpi::collective(comm, [&] {
    io::ConfigReader reader(config_path);
    study->configure(reader);
    reader.finish();
    device_request_for(*study, name, reader);
    // What the run would find in DIR: the same refusals, read-only (no
    // lock, nothing created); the task layout is checked when the run starts.
    std::string resume;
    if (comm.is_root()) {
      const io::StoreCheck found = io::check_run_store(out_dir, {name, reader.effective(), reader.defaults(), {}},
                                                       [&] { return input_digest_lines(*study); });
      if (found.exists) {
        std::string lacks;
        for (const std::string& key : found.keys_added) lacks += cat(lacks.empty() ? "" : ", ", key);
        resume = cat("  resume:  ", out_dir, "/store.h5 has ", std::to_string(found.finished), " of ",
                     std::to_string(found.total), " tasks done; ",
                     found.finished == found.total ? "the run only writes outputs that are missing" : "the run does the rest",
                     lacks.empty() ? std::string() : cat(" (its config lacks ", lacks, ", now at their defaults)"), "\n");
      }
    }
    report = dry_run_report(study->estimate(), name, config_path, out_dir, comm.size()) + resume;
    const std::vector<std::string> labels = study->task_labels();
    report += task_list_text(labels);
    if (!tasks.empty() && labels.empty()) {
      report += "  --tasks: checked against the task count when the run starts (this study does not list its tasks)\n";
    } else if (!tasks.empty()) {
      report += "  --tasks " + tasks + " selects:\n";
      for (const std::int64_t k : parse_task_selection(tasks, static_cast<std::int64_t>(labels.size())))
        report += cat("    ", std::to_string(k + 1), "  ", labels[static_cast<std::size_t>(k)], "\n");
    }
  });
  if (comm.is_root()) std::fputs(report.c_str(), stdout);
}

std::string task_list_text(const std::vector<std::string>& labels, std::size_t head, std::size_t tail) {
  if (labels.empty()) return {};
  const std::size_t n = labels.size();
  const int digits = static_cast<int>(std::to_string(n).size());
  std::string out = "  tasks by number (for --tasks):\n";
  const auto line = [&](std::size_t k) {
    char number[32];
    std::snprintf(number, sizeof number, "    %*zu  ", digits, k + 1);
    out += cat(number, labels[k], "\n");
  };
  if (n <= head + tail + 1) {
    for (std::size_t k = 0; k < n; ++k) line(k);
  } else {
    for (std::size_t k = 0; k < head; ++k) line(k);
    out += cat("    ", std::string(static_cast<std::size_t>(digits), ' '), "  ... ", std::to_string(n - head - tail),
               " more in the same order\n");
    for (std::size_t k = n - tail; k < n; ++k) line(k);
  }
  return out;
}

}  // namespace gradmatch::studies
