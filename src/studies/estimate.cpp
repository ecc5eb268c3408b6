#include "studies/estimate.hpp"

#include <cmath>
#include <cstdio>

#include "core/resources.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;
using resources::bytes_text;

bool store_exists(const fs::path& out_dir) {
  std::error_code ec;
  return fs::exists(out_dir / "store.h5", ec);
}

std::string hms(double seconds) {
  const auto s = static_cast<long long>(std::llround(seconds));
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

std::string short_duration(double s) {
  if (s < 1e-3) return cat(std::lround(s * 1e6), " us");
  if (s < 1.0) return cat(std::lround(s * 1e3), " ms");
  return cat(std::lround(s), " s");
}

std::string keys_text(const std::string& keys) { return keys.empty() ? std::string("the config") : cat("keys ", keys); }

}  // namespace

void check_estimate(const ResourceEstimate& e, const std::string& config_path, const fs::path& out_dir,
                    int ranks_on_node) {
  if (e.memory_bytes >= 0.0) {
    const double ranks = std::max(1, ranks_on_node);
    resources::require_memory(
        cat(config_path, ": ", keys_text(e.memory_keys), ": the run",
            ranks > 1 ? cat(" (", ranks_on_node, " ranks on this node x ", bytes_text(e.memory_bytes), ")") : std::string()),
        e.memory_bytes * ranks, cat("lower ", e.memory_keys.empty() ? std::string("the sizes") : e.memory_keys));
  }
  const bool resuming = store_exists(out_dir);
  const double store = resuming ? 0.0 : std::max(0.0, e.store_bytes);
  double outputs = std::max(0.0, e.output_bytes);
  if (resuming) {
    // Outputs already written (an earlier attempt's, or the tasks' own files)
    // are replaced, not added: count what is still to come, plus the largest
    // of them once, since a file is rewritten beside the old one and renamed.
    double present = 0.0, largest = 0.0;
    std::error_code ec;
    for (const auto& entry : fs::recursive_directory_iterator(out_dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name == "store.h5" || name == "store.lock" || !entry.is_regular_file(ec)) continue;
      const auto bytes = static_cast<double>(entry.file_size(ec));
      if (ec) continue;
      present += bytes;
      largest = std::max(largest, bytes);
    }
    outputs = std::max(0.0, outputs - present) + std::min(largest, outputs);
  }
  if (e.store_bytes >= 0.0 || e.output_bytes >= 0.0)
    resources::require_disk(
        cat(config_path, ": ", keys_text(e.disk_keys), ": the run store (", bytes_text(store), ") plus the outputs (",
            bytes_text(outputs), resuming && outputs < e.output_bytes ? " still to write" : "", ")"),
        store + outputs, out_dir,
        cat("lower ", e.disk_keys.empty() ? std::string("the sizes") : e.disk_keys, " or choose another --out"));
}

void check_store_size(const std::vector<TaskTable>& tables, const std::string& config_path, const fs::path& out_dir) {
  if (store_exists(out_dir)) return;
  double bytes = 0.0, rows = 0.0;
  for (const TaskTable& t : tables) {
    bytes += store_bytes(static_cast<double>(t.ids.size()), static_cast<double>(t.width)) - 64.0 * 1024.0;
    rows += static_cast<double>(t.ids.size());
  }
  resources::require_disk(cat(config_path, ": the run store of ", resources::count_text(rows), " tasks"), bytes,
                          out_dir, "make the study smaller or choose another --out");
}

std::string dry_run_report(const ResourceEstimate& e, const std::string& study, const std::string& config_path,
                           const fs::path& out_dir, int ranks) {
  const auto known = [](double v, const std::string& text) { return v >= 0.0 ? text : std::string("unknown"); };
  std::string out = cat("dry run of ", study, " (", config_path, ") into ", out_dir.string(), ": nothing is written\n");
  out += cat("  tasks:   ", e.tasks >= 0 ? cat(e.tasks) : std::string("unknown (counted when the study prepares its inputs)"),
             e.tasks_text.empty() ? std::string() : cat(": ", e.tasks_text), "\n");
  const std::optional<double> mem = resources::available_memory();
  out += cat("  memory:  ", known(e.memory_bytes, cat("~", bytes_text(e.memory_bytes), " per rank")),
             e.memory_keys.empty() ? std::string() : cat(" (grows with ", e.memory_keys, ")"),
             mem ? cat("; ", bytes_text(*mem), " available") : std::string(), "\n");
  const std::optional<double> disk = resources::available_disk(out_dir);
  const bool resume = store_exists(out_dir);
  out += cat("  disk:    ", known(e.store_bytes, cat("run store ~", bytes_text(e.store_bytes), resume ? " (exists: a resume)" : "")),
             ", outputs ", known(e.output_bytes, cat("~", bytes_text(e.output_bytes))),
             e.disk_keys.empty() ? std::string() : cat(" (grows with ", e.disk_keys, ")"),
             disk ? cat("; ", bytes_text(*disk), " free in ", out_dir.string()) : std::string(), "\n");
  if (e.seconds_per_task >= 0.0 && e.tasks >= 0) {
    const double total = e.seconds_per_task * static_cast<double>(e.tasks);
    out += cat("  time:    ~", hms(total / std::max(1, ranks)), " at ", ranks, ranks == 1 ? " rank" : " ranks",
               " (rough: ~", short_duration(e.seconds_per_task), " per task",
               e.time_basis.empty() ? std::string() : cat(", ", e.time_basis), ")\n");
  } else {
    out += "  time:    unknown (this study gives no per-task estimate)\n";
  }
  std::string files = "store.h5";
  for (const std::string& f : e.outputs) files += cat(", ", f);
  if (e.outputs.empty()) files += ", the study's outputs (unknown before it runs)";
  files += ", run_info.json";
  out += cat("  writes:  ", files, " in ", out_dir.string(), "\n");
  if (resources::resource_check_enabled()) {
    try {
      check_estimate(e, config_path, out_dir, 1);
      out += "  check:   fits this machine\n";
    } catch (const resources::ResourceError& err) {
      out += cat("  check:   would be refused: ", err.what(), "\n");
    }
  }
  return out;
}

}  // namespace gradmatch::studies
