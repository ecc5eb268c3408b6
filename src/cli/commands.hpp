#pragma once
// The subcommands of the `gradmatch` executable. main.cpp parses the command
// line (CLI11 stays in that one file); each command takes plain arguments and
// returns the process exit code: 0 success, 2 bad input, 1 anything else.
// Every rank returns the same code.
#include <cstdint>
#include <string>
#include <vector>

#include "core/fit.hpp"
#include "distributed/mpi.hpp"

namespace gradmatch::cli {

struct FitArgs {
  std::string input;          ///< version-1 equation file (exactly one of input / model)
  std::string family;         ///< ridge | diag | sym | huber:beta=B | elastic-net:beta=B | features
  std::string method = "auto";
  std::string reduce = "mpi";  ///< mpi | nccl (distributed::ReduceBackend)
  std::string output;         ///< JSON file; empty: JSON to stdout
  bool normalize = false;
  bool nonneg = false;
  double rcond = -1.0;
  bool quiet = false;
  // --model: build the equations from a TorchScript module at its parameters.
  std::string model;                    ///< TorchScript file (torch.jit.save)
  std::string data;                     ///< IDX directory or HDF5 file with X [n, d] and y
  std::string loss = "mse";             ///< mse | ce | bce
  std::string save_equations;           ///< keep the built equations here (version-1 file)
  std::vector<std::string> candidates;  ///< feature columns to add (for --family features)
  std::int64_t batch_size = 0;          ///< batches of the full-batch gradient; 0: one batch
};
int fit_command(const FitArgs& args, const distributed::Communicator& comm);
/// `fit --model`: called by fit_command (model_fit_command.cpp, the only CLI file using LibTorch).
int model_fit_command(const FitArgs& args, const distributed::Communicator& comm);
/// The one-line summary `fit` prints to stderr.
std::string fit_headline(const FitResult& result);

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
