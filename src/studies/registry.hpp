#pragma once
// `gradmatch run CONFIG --out DIR`: the config's top-level key `study` names
// the pipeline; this is the one place that maps names to pipelines.
#include <string>
#include <vector>

#include "mpi/mpi.hpp"

namespace gradmatch::studies {

/// The study names `run_study` accepts.
std::vector<std::string> study_names();

/// Reads the `study` key of the config and runs that study into `out_dir`.
/// Bad input (unknown study, bad keys) is an InputError on every rank.
void run_study(const std::string& config_path, const std::string& out_dir, const distributed::Communicator& comm);

}  // namespace gradmatch::studies
