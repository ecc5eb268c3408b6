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
void run_study(const std::string& config_path, const std::string& out_dir, const mpi::Communicator& comm);

/// Reads and checks the config and its resource estimate (one rank's view),
/// as run_study() does before anything is written; writes nothing.
void check_study_config(const std::string& config_path, const std::string& out_dir, const mpi::Communicator& comm);

/// `gradmatch run --dry-run`: reads and checks the config, then prints (rank
/// 0, stdout) the tasks, the estimated memory, disk and time, and the files a
/// run would write (studies/estimate.hpp). Writes nothing.
void dry_run_study(const std::string& config_path, const std::string& out_dir, const mpi::Communicator& comm);

}  // namespace gradmatch::studies
