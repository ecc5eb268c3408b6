// gradmatch: estimate the implicit regularization of a training procedure by
// gradient matching (arXiv 2605.05436). See README.md.
//
// Two executables are built from this file. `gradmatch` (GRADMATCH_TORCH_COMMANDS
// = 0) has no LibTorch: it runs `fit EQUATIONS` and `report` itself and execs
// its sibling `gradmatch-torch` (the same command line) for `run` and
// `fit --model`, before any MPI start-up, so a plain fit never pays for
// loading LibTorch. Without a launcher (mpirun, srun) it also skips MPI_Init
// and runs as the one-rank world.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <new>
#include <optional>

#include "cli/commands.hpp"
#include "core/build_info.hpp"
#include "core/resources.hpp"
#include "core/text.hpp"
#include "studies/catalog.hpp"
#include "mpi/mpi.hpp"

namespace {

constexpr const char* kDescription = R"(gradmatch - estimate implicit regularization by gradient matching.

If training lands at theta, pretend theta minimises loss + R(theta; Lambda):
then grad R(theta; Lambda) = -grad L(theta), and Lambda is found by least
squares over gradient equations from endpoints, bootstrap replicates or
trajectory steps. Run under mpirun/srun to spread the work over ranks; without
a launcher it runs as one rank.

Exit codes: 0 success, 2 bad input (file, flag or config key), 1 other failure.)";

constexpr const char* kFitFooter = R"(
Families and their scale conventions (grad R = b = -grad_loss, or 'target'):
  ridge               R = lambda sum theta^2            -> lambda
  diag                R = sum_j q_j theta_j^2           -> q [p]
  sym                 R = theta^T Lambda theta          -> Lambda [p, p], minimum Frobenius norm
  huber:beta=B        R = lambda sum h_B(theta)         -> lambda
  elastic-net:beta=B  R = l1 sum h_B(theta) + l2 sum theta^2 -> [lambda1, lambda2]
  features            R = sum_c lambda_c R_c, gradients from features/<name> -> one per feature
Methods: qr (default) or normal for the column families; closed-form for diag;
structured (default, Lyapunov/eigen), vech (explicit design, isometric
coordinates: same minimum-Frobenius answer) or vech-plain (the paper's
numpy-lstsq-on-vech: minimum sum_{i<=j} Lambda_ij^2) for sym.

Examples:
  gradmatch fit equations.h5 --family ridge --output fit.json
  gradmatch fit equations.h5 --family sym --output fit.h5
  gradmatch fit --model model.pt --data data.h5 --loss mse --family ridge --save-equations eq.h5
  gradmatch fit --model 'replicates/*.pt' --params 'out.*' --data data.h5 --family sym

Warnings (the JSON's "warnings", also printed to stderr; the exit code stays 0)
say when a result means little: residual ratio above 0.9 or cosine below 0.1,
a rank-deficient design (non-identified coefficients get null standard
errors), an underdetermined sym fit, all weights zero, or non-finite statistics.)";

/// `fit --reduce nccl` takes the distributed path also on one rank (NCCL's
/// unique id goes out over MPI; the solve runs on a BLACS grid), so it needs
/// MPI_Init without a launcher too (Open MPI then starts a singleton). Found
/// on a GPU machine: without it the one-rank fit called MPI_Bcast before
/// MPI_Init and Open MPI aborted.
bool fit_needs_mpi(const gradmatch::cli::FitArgs& fit) { return fit.reduce == "nccl"; }

/// This process's rank as the launcher set it (0 without a launcher): parse
/// errors are printed once, before MPI is up.
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

/// The subcommands, for "unknown command" (main() adds them in this order).
const std::vector<std::string> kCommands{"fit", "run", "studies", "report"};

/// A word where a subcommand belongs that is none: "unknown command 'fitt';
/// the commands are: ... (did you mean fit?)". Empty when argv[1] is a known
/// command or an option (CLI11 handles those).
std::string unknown_command(int argc, char** argv) {
  if (argc < 2) return {};
  const std::string word = argv[1];
  if (word.starts_with("-")) {
    if (word == "-h" || word == "--help" || word == "--version") return {};
    std::string list;
    for (const std::string& c : kCommands) list += (list.empty() ? "" : ", ") + c;
    return gradmatch::text::cat("unknown option '", gradmatch::text::clip(word), "' before the command; the commands are: ",
                                list, " (options go after the command: gradmatch fit --help lists fit's)");
  }
  if (std::find(kCommands.begin(), kCommands.end(), word) != kCommands.end()) return {};
  std::string list;
  for (const std::string& c : kCommands) list += (list.empty() ? "" : ", ") + c;
  const std::string close = gradmatch::text::closest(word, kCommands);
  return gradmatch::text::cat("unknown command '", gradmatch::text::clip(word), "'; the commands are: ", list,
                              close.empty() ? std::string("; 'gradmatch --help' describes them")
                                            : gradmatch::text::cat(" (did you mean ", close, "?)"));
}

/// A flag's value that must be a number in [lo, hi] (hi excluded when
/// `open_hi`); `what` says what the flag means. Checked on the text, before
/// CLI11 converts it, so "nan", "-1" and "2" are refused rather than read as
/// "the default".
CLI::Validator number_in(double lo, double hi, bool open_hi, const std::string& what) {
  const std::string range = gradmatch::text::cat("[", lo, ", ", hi, open_hi ? ")" : "]");
  return CLI::Validator(
      [=](std::string& value) -> std::string {
        double v = 0.0;
        const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        const bool parsed = ec == std::errc() && ptr == value.data() + value.size() && !value.empty();
        if (parsed && std::isfinite(v) && v >= lo && (open_hi ? v < hi : v <= hi)) return {};
        return gradmatch::text::cat("the value '", gradmatch::text::clip(value), "' is not a number in ", range, " (",
                                    what, ")");
      },
      "NUMBER in " + range);
}

/// A path flag's value that must not be empty ("--out "$DIR" with DIR unset);
/// `what` says what to give.
CLI::Validator non_empty_path(const std::string& what) {
  return CLI::Validator([=](std::string& value) -> std::string { return value.empty() ? "is empty; give " + what : ""; },
                        "PATH");
}

/// A flag's value that must be an integer >= lo.
CLI::Validator integer_at_least(std::int64_t lo, const std::string& what) {
  return CLI::Validator(
      [=](std::string& value) -> std::string {
        std::int64_t v = 0;
        const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec == std::errc() && ptr == value.data() + value.size() && !value.empty() && v >= lo) return {};
        return gradmatch::text::cat("the value '", gradmatch::text::clip(value), "' is not an integer >= ", lo, " (",
                                    what, ")");
      },
      gradmatch::text::cat("INTEGER >= ", lo));
}

/// CLI11's errors as one line naming the subcommand, not the whole help.
std::string failure_line(const CLI::App* app, const CLI::Error& e) {
  std::string command = app->get_name();
  const auto subs = app->get_subcommands();
  if (!subs.empty()) command += " " + subs.front()->get_name();
  // `gradmatch fit` with nothing to fit: say what it takes, not only the first missing option.
  std::string what = e.what();
  if (!subs.empty() && subs.front()->get_name() == "fit" && subs.front()->count("equations") == 0 &&
      subs.front()->count("--model") == 0 && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr)
    what += "; give an equation file and a family (gradmatch fit equations.h5 --family ridge) or a model and its "
            "data (gradmatch fit --model model.pt --data data.h5 --family ridge)";
  return gradmatch::text::cat(command, ": error: ", what, "\nRun '", command, " --help' for the options.\n");
}

#if !GRADMATCH_TORCH_COMMANDS
/// Replaces this process by gradmatch-torch with the same arguments
/// (GRADMATCH_TORCH_EXE overrides where it is); returns only on failure.
int exec_torch_commands(char** argv, const std::string& command) {
  std::string path;
  if (const char* v = std::getenv("GRADMATCH_TORCH_EXE")) {
    path = v;
  } else {
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    path = (self.parent_path() / "gradmatch-torch").string();
  }
  ::execv(path.c_str(), argv);
  const int err = errno;
  if (launcher_rank() == 0)
    std::cerr << "gradmatch " << command << ": error: this command needs LibTorch, which lives in " << path
              << ", and that cannot be started (" << std::strerror(err)
              << "); install gradmatch-torch beside gradmatch or set GRADMATCH_TORCH_EXE to it" << std::endl;
  return 1;
}
#endif

}  // namespace

/// `gradmatch --version`: the version and commit, and what it was built with.
/// `gradmatch run --help`: the studies, an example and how resume works.
static std::string run_footer() {
  return "\nStudies (the config's top-level key `study`):\n" + gradmatch::studies::study_list() +
         R"(
Example:
  gradmatch run configs/smoke/ols_early_stopping.toml --out runs/ols
  mpirun -n 4 gradmatch run configs/ols_early_stopping.toml --out runs/ols
  gradmatch run configs/ols_early_stopping.toml --out runs/ols --dry-run   (tasks, memory, disk, time; writes nothing)

Resume: run the same command on the same --out after an interruption (Ctrl-C,
a killed rank, a cancelled job): finished tasks are kept in OUT/store.h5 and
only the rest run; a complete directory says "nothing to do"; another config
on an existing directory is refused, naming the keys that differ (keys that a
newer gradmatch added since the run began are fine at their defaults).

One task alone: --dry-run numbers the tasks (with what each is, where the
study says); --tasks 6 (or 1-3,7) runs just those, with the random draws a
whole run gives them -- a cell rerun into a fresh --out, or a run done in
parts. The outputs are written by the run that finishes the last task.)";
}

static std::string version_text() {
  namespace b = gradmatch::build_info;
  std::string commit(b::git_commit());
  std::string text = "gradmatch " + std::string(b::version) + (commit.empty() ? "" : " (" + commit + ")");
  text += "\n  LibTorch " + std::string(b::libtorch_version) + (b::with_cuda ? ", CUDA" : ", no CUDA") +
          (b::with_nccl ? ", NCCL" : ", no NCCL");
  text += "\n  MPI: " + std::string(b::mpi_library_version);
  text += "\n  HDF5 " + std::string(b::hdf5_version) + " (parallel)";
  text += "\n  built " + std::string(b::build_type) + " with " + std::string(b::compiler);
  return text;
}

int main(int argc, char** argv) {

  CLI::App app{kDescription, "gradmatch"};
  app.set_version_flag("--version", version_text());
  app.require_subcommand(1);
  app.failure_message(failure_line);

  gradmatch::cli::FitArgs fit;
  auto* fit_cmd = app.add_subcommand("fit", "Fit a regularizer family to a version-1 equation file or a TorchScript model");
  fit_cmd->add_option("equations", fit.input,
                      "Equation file (HDF5: theta, grad_loss, optional target, features/, weights); not with --model");
  fit_cmd->add_option("--family,-f", fit.family, "Regularizer family (see below)")->required();
  fit_cmd->add_option("--method,-m", fit.method, "Solver: auto, qr, normal (alias gram), closed-form, structured, vech, vech-plain")
      ->capture_default_str();
  fit_cmd->add_option("--output,-o", fit.output,
                      "Write the result here: *.json (JSON) or *.h5 (HDF5: dataset lambda, statistics as "
                      "attributes); default: JSON to stdout")
      ->check(non_empty_path("a file name ending in .json or .h5, or leave --output out for JSON on stdout"));
  fit_cmd->add_flag("--normalize", fit.normalize, "Scale candidate gradients to unit norm before fitting (appendix G.1)");
  fit_cmd->add_flag("--nonneg", fit.nonneg, "Constrain coefficients to be non-negative (exact active-set NNLS)");
  fit_cmd->add_option("--reduce", fit.reduce,
                      "All-reduce of the distributed fit's statistics: mpi, or nccl (GPU buffers; builds with NCCL)")
      ->capture_default_str();
  fit_cmd
      ->add_option("--rcond", fit.rcond,
                   "Relative singular-value cut of the design, in [0, 1): singular values at or below rcond * the "
                   "largest count as zero, on every route (default sqrt(100 * unknowns * eps))")
      ->check(number_in(0.0, 1.0, true, "the relative singular-value cut; leave --rcond out for the default"));
  fit_cmd->add_flag("--quiet,-q", fit.quiet, "Do not print the one-line summary to stderr");
  fit_cmd
      ->add_option("--model", fit.models,
                   "TorchScript module (torch.jit.save): build its full-batch equations at its current parameters. "
                   "Repeat the flag or give a quoted glob ('runs/*.pt') to pool several endpoints, one row each")
      ->allow_extra_args(false);
  fit_cmd
      ->add_option("--params", fit.params,
                   "With --model: only the parameters whose names match one of these globs "
                   "(e.g. 'out.*'), comma-separated or repeated; default: all")
      ->delimiter(',')
      ->allow_extra_args(false);
  fit_cmd->add_flag("--include-frozen", fit.include_frozen,
                    "With --model: also the parameters with requires_grad false (left out by default)");
  fit_cmd
      ->add_option("--columns", fit.columns,
                    "With --family features on an equation file: the features/ columns to fit, comma-separated "
                    "names or globs (e.g. 'ridge,nuclear*'; kept in that order; default: all, sorted by name)")
      ->delimiter(',');
  fit_cmd->add_option("--data", fit.data, "With --model: an MNIST-format IDX directory, or HDF5 with X [n, d] and y");
  fit_cmd->add_option("--loss", fit.loss, "With --model: mse, ce or bce")->capture_default_str();
  fit_cmd->add_option("--save-equations", fit.save_equations, "With --model: also write the equations (version 1)")
      ->check(non_empty_path("a file name for the equations (HDF5)"));
  fit_cmd->add_option("--candidates", fit.candidates,
                      "With --model: feature columns for --family features (ridge, huber:beta=B, "
                      "elastic-net:beta=B, layerwise-ridge, nuclear), comma-separated")
      ->delimiter(',');
  fit_cmd
      ->add_option("--batch-size", fit.batch_size, "With --model: examples per batch of the full-batch gradient (0: all)")
      ->check(integer_at_least(0, "examples per batch; 0 takes all examples in one batch"));
  fit_cmd->add_flag("--ignore-resource-check", fit.ignore_resource_check,
                    "Read an equation file or data set even when it declares more than the available memory");
  fit_cmd->footer(kFitFooter);

  gradmatch::cli::RunArgs run;
  // The closing "next: gradmatch report OUT" hint names the executable as it
  // was started (build/src/cli/gradmatch is not on PATH); gradmatch-torch
  // keeps gradmatch's argv[0].
  if (argc > 0 && std::string(argv[0]).find('/') != std::string::npos) run.program = argv[0];
  auto* run_cmd = app.add_subcommand("run", "Run a study from a TOML config (configs/*.toml) into an output directory");
  run_cmd->add_option("config", run.config, "Study config, e.g. configs/smoke/ols_early_stopping.toml")->required();
  run_cmd->add_option("--out,-o", run.out, "Output directory (re-running on it resumes)")
      ->required()
      ->check(non_empty_path("the output directory (a new one, or a run's to resume it)"));
  run_cmd->add_flag("--dry-run", run.dry_run,
                    "Print the tasks, the estimated memory, disk and time and the files a run would write, and "
                    "check DIR as the run would (a run there of another config is refused alike); write nothing");
  run_cmd->add_flag("--ignore-resource-check", run.ignore_resource_check,
                    "Start even when the estimated memory or disk exceeds what this machine has");
  run_cmd->add_option("--tasks", run.tasks,
                      "Run only these tasks, numbered as --dry-run lists them (e.g. 6 or 1-3,7), with the draws a "
                      "whole run gives them; the outputs are written once every task is done")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            // An unset shell variable (--tasks "$TASKS") must not run the whole study.
            return value.empty() ? "is empty; give task numbers (e.g. 6 or 1-3,7), or leave --tasks out to run every task"
                                 : "";
          },
          "TASKS"));
  run_cmd->footer(run_footer());

  auto* studies_cmd = app.add_subcommand("studies", "List the studies `gradmatch run` runs, one line each");

  gradmatch::cli::ReportArgs report;
  auto* report_cmd = app.add_subcommand("report", "Summarise a study output directory or describe an equation file");
  report_cmd->add_option("path", report.path, "Study output directory or equation file")->required();
  report_cmd->add_flag("--json", report.json, "Print the report as JSON instead of tables");

  if (const std::string unknown = unknown_command(argc, argv); !unknown.empty()) {
    if (launcher_rank() == 0) std::cerr << "gradmatch: error: " << unknown << std::endl;
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version are "errors" with exit code 0; real parse errors are bad input.
    if (launcher_rank() == 0) app.exit(e);  // prints the help, the version or the error
    return e.get_exit_code() == 0 ? 0 : 2;
  }

  if (fit.ignore_resource_check || run.ignore_resource_check) gradmatch::resources::set_resource_check(false);
  if (*studies_cmd) {
    std::fputs(gradmatch::studies::study_list().c_str(), stdout);
    return 0;
  }
  fit.model_only_given = fit_cmd->count("--loss") > 0 || fit_cmd->count("--batch-size") > 0;
#if GRADMATCH_TORCH_COMMANDS
  // Without a launcher, fit and run --dry-run need no MPI, and a run's config
  // is checked in the one-rank world before MPI starts: bad input is
  // reported without paying for MPI_Init.
  std::optional<gradmatch::mpi::Environment> env;
  const bool launched = gradmatch::mpi::launched_by_mpi();
  const bool study_run = *run_cmd && !run.dry_run;
  if (!launched && study_run)
    if (const int code = gradmatch::cli::run_precheck(run, gradmatch::mpi::Communicator()); code != 0) return code;
  if (launched || study_run || (*fit_cmd && fit_needs_mpi(fit))) env.emplace(&argc, &argv);
#else
  if (*run_cmd) return exec_torch_commands(argv, "run");
  if (*fit_cmd && !fit.models.empty()) return exec_torch_commands(argv, "fit --model");
  std::optional<gradmatch::mpi::Environment> env;
  if (gradmatch::mpi::launched_by_mpi() || (*fit_cmd && fit_needs_mpi(fit))) env.emplace(&argc, &argv);
#endif
  const gradmatch::mpi::Communicator world;

  try {
    if (*fit_cmd) return gradmatch::cli::fit_command(fit, world);
#if GRADMATCH_TORCH_COMMANDS
    if (*run_cmd) return gradmatch::cli::run_command(run, world);
#endif
    if (*report_cmd) return gradmatch::cli::report_command(report, world);
  } catch (const std::bad_alloc& e) {  // the commands report their own; this is the last resort
    if (world.is_root()) std::cerr << "gradmatch: error: out of memory (" << e.what() << "); free memory or use a smaller input" << std::endl;
    return 1;
  }
  return 2;
}
