#pragma once
// The subcommands of the `gradmatch` executable. main.cpp parses the command
// line (CLI11 stays in that one file); each command takes plain arguments and
// returns the process exit code: 0 success, 2 bad input, 1 anything else.
// Every rank returns the same code.
#include <string>

#include "distributed/mpi.hpp"

namespace gradmatch::cli {

struct FitArgs {
  std::string input;          ///< version-1 equation file
  std::string family;         ///< ridge | diag | sym | huber:beta=B | elastic-net:beta=B | features
  std::string method = "auto";
  std::string output;         ///< JSON file; empty: JSON to stdout
  bool normalize = false;
  bool nonneg = false;
  double rcond = -1.0;
  bool quiet = false;
};
int fit_command(const FitArgs& args, const distributed::Communicator& comm);

struct RunArgs {
  std::string config;
  std::string out;
};
int run_command(const RunArgs& args, const distributed::Communicator& comm);

struct ReportArgs {
  std::string path;  ///< a study output directory or an equation file
};
int report_command(const ReportArgs& args, const distributed::Communicator& comm);

/// Prints "gradmatch <command>: error: ..." once (on rank 0) and returns the exit code.
int report_failure(const std::string& command, const std::exception& e, const distributed::Communicator& comm);

}  // namespace gradmatch::cli
