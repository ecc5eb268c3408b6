#pragma once
// The subcommands of the `gradmatch` executable. main.cpp parses the command
// line (CLI11 stays in that one file); each command takes plain arguments and
// returns the process exit code: 0 success, 2 bad input, 1 anything else.
// Every rank returns the same code.
#include <cstdint>
#include <string>
#include <vector>

#include "core/fit.hpp"
#include "mpi/mpi.hpp"

namespace gradmatch::cli {

struct FitArgs {
  std::string input;          ///< version-1 equation file (exactly one of input / models)
  std::string family;         ///< ridge | diag | sym | huber:beta=B | elastic-net:beta=B | features
  std::string method = "auto";
  std::string reduce = "mpi";  ///< mpi | nccl (distributed::ReduceBackend)
  std::string output;         ///< *.json or *.h5; empty: JSON to stdout
  bool normalize = false;
  bool nonneg = false;
  double rcond = -1.0;
  bool quiet = false;
  // --model: build the equations from TorchScript modules at their parameters.
  std::vector<std::string> models;      ///< TorchScript files or globs (torch.jit.save); one row each
  std::string data;                     ///< IDX directory or HDF5 file with X [n, d] and y
  std::string loss = "mse";             ///< mse | ce | bce
  std::string save_equations;           ///< keep the built equations here (version-1 file)
  std::vector<std::string> candidates;  ///< feature columns to add (for --family features)
  std::int64_t batch_size = 0;          ///< batches of the full-batch gradient; 0: one batch
  std::vector<std::string> params;      ///< parameter name globs; empty: every parameter
  bool include_frozen = false;          ///< also parameters with requires_grad false
  std::vector<std::string> columns;     ///< --columns: the features/ columns --family features uses (globs)
  bool model_only_given = false;        ///< --loss or --batch-size was on the command line (they need --model)
  bool ignore_resource_check = false;   ///< --ignore-resource-check (core/resources.hpp)
};
/// The model files named by `patterns`: each is a path, or a glob (with * ? [)
/// expanded in sorted order. InputError for a glob that matches nothing.
std::vector<std::string> expand_model_paths(const std::vector<std::string>& patterns);
/// Checks every output path of a fit before any work: the --output extension
/// (.json or .h5), that each output's directory exists, and that no output is
/// one of the inputs (`inputs`) or the other output. InputError otherwise.
void check_fit_outputs(const FitArgs& args, const std::vector<std::string>& inputs);
int fit_command(const FitArgs& args, const mpi::Communicator& comm);
/// `fit --model`: called by fit_command in the gradmatch-torch executable
/// (model_fit_command.cpp; the CLI's LibTorch users are it and run_command.cpp).
/// `models` are the expanded model paths.
int model_fit_command(const FitArgs& args, const std::vector<std::string>& models, const mpi::Communicator& comm);
/// The one-line summary `fit` prints to stderr.
std::string fit_headline(const FitResult& result);
/// Prints the headline (with `extra` appended) unless `quiet`, then every
/// warning as "gradmatch fit: warning: ..." (warnings are printed even when quiet).
void print_fit_messages(const FitResult& result, bool quiet, const std::string& extra);

struct RunArgs {
  std::string config;
  std::string out;
  bool dry_run = false;                ///< print the tasks, estimates and files; write nothing
  bool ignore_resource_check = false;  ///< --ignore-resource-check (core/resources.hpp)
  std::string tasks;                   ///< --tasks: 1-based task numbers, "6" or "1-3,7" (studies::RunOptions)
  std::string program = "gradmatch";   ///< how the user started gradmatch (argv[0] when it holds a '/')
};
int run_command(const RunArgs& args, const mpi::Communicator& comm);
/// Reads and checks the config and the resource estimate of `run` (nothing
/// is written) and returns 0, or reports the failure and returns its exit code.
int run_precheck(const RunArgs& args, const mpi::Communicator& comm);

struct ReportArgs {
  std::string path;  ///< a study output directory or an equation file
  bool json = false;  ///< machine-readable output instead of tables
};
int report_command(const ReportArgs& args, const mpi::Communicator& comm);

/// Prints "gradmatch <command>: error: ..." once (on rank 0) and returns the
/// exit code. An allocation failure (std::bad_alloc) becomes "out of memory
/// while ... `input`", exit code 1.
int report_failure(const std::string& command, const std::exception& e, const mpi::Communicator& comm,
                   const std::string& input = "");

}  // namespace gradmatch::cli
