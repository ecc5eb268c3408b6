#pragma once
// `gradmatch run CONFIG --out DIR`: the config's top-level key `study` names
// the study; this table is the one place that maps names to studies.
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "mpi/mpi.hpp"
#include "studies/study.hpp"

namespace gradmatch::studies {

/// A study's name and how to make it; studies/catalog.hpp describes it.
struct StudyEntry {
  const char* name;  ///< the config's `study` value
  std::function<std::unique_ptr<Study>()> make;
};

/// Every study gradmatch runs, in the order of kStudyCatalog.
std::span<const StudyEntry> study_registry();

/// The names of study_registry(), in order.
std::vector<std::string> study_names();

/// Reads the `study` key of the config and runs that study into `out_dir`
/// (run_study above). An unknown study is an InputError on every rank that
/// lists the known ones.
void run_study(const std::string& config_path, const std::string& out_dir, const mpi::Communicator& comm,
               const RunOptions& options = {});

/// Reads and checks the config and its resource estimate (one rank's view),
/// as run_study() does before anything is written; writes nothing.
void check_study_config(const std::string& config_path, const std::string& out_dir, const mpi::Communicator& comm);

/// `gradmatch run --dry-run`: reads and checks the config, then prints (rank
/// 0, stdout) the tasks, the estimated memory, disk and time, and the files a
/// run would write (studies/estimate.hpp), then the tasks by number for
/// `--tasks` when the study labels them (task_list_text). Writes nothing.
/// With `tasks` (--tasks), also checks the selection against the labelled
/// tasks and names the selected ones.
void dry_run_study(const std::string& config_path, const std::string& out_dir, const mpi::Communicator& comm,
                   const std::string& tasks = {});

/// The numbered task list --dry-run prints: "  tasks by number (for --tasks):"
/// and a line per label, the first `head` and last `tail` of a longer list
/// with the count left out between them. Empty for no labels.
std::string task_list_text(const std::vector<std::string>& labels, std::size_t head = 24, std::size_t tail = 4);

}  // namespace gradmatch::studies
