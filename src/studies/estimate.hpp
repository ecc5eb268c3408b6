#pragma once
// A study's ResourceEstimate against this machine, before a run starts, and
// the report of `gradmatch run --dry-run` (core/resources.hpp does the
// measuring and the refusal; `--ignore-resource-check` turns it off).
#include <filesystem>
#include <string>
#include <vector>

#include "studies/study.hpp"

namespace gradmatch::studies {

/// Refuses (resources::ResourceError, exit code 2) an estimate this machine
/// cannot hold: memory times the ranks on this node against MemAvailable,
/// and the run store (unless DIR/store.h5 exists: a resume) plus the outputs
/// against the free space of DIR. Unknown parts are not checked.
void check_estimate(const ResourceEstimate& estimate, const std::string& config_path,
                    const std::filesystem::path& out_dir, int ranks_on_node);

/// The same for the run store of `tables`, once they are known (every study,
/// whether or not it estimates).
void check_store_size(const std::vector<TaskTable>& tables, const std::string& config_path,
                      const std::filesystem::path& out_dir);

/// `gradmatch run --dry-run`: the tasks, memory, disk, time and the files a
/// run would write, with what this machine has.
std::string dry_run_report(const ResourceEstimate& estimate, const std::string& study, const std::string& config_path,
                           const std::filesystem::path& out_dir, int ranks);

}  // namespace gradmatch::studies
