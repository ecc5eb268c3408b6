// gradmatch: estimate the implicit regularization of a training procedure by
// gradient matching (arXiv 2605.05436). See README.md.
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "distributed/mpi.hpp"

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
  gradmatch fit --model model.pt --data data.h5 --loss mse --family ridge --save-equations eq.h5)";

}  // namespace

int main(int argc, char** argv) {
  gradmatch::distributed::Environment env(&argc, &argv);
  const gradmatch::distributed::Communicator world;

  CLI::App app{kDescription, "gradmatch"};
  app.set_version_flag("--version", "gradmatch 0.1.0");
  app.require_subcommand(1);
  app.failure_message(CLI::FailureMessage::help);

  gradmatch::cli::FitArgs fit;
  auto* fit_cmd = app.add_subcommand("fit", "Fit a regularizer family to a version-1 equation file or a TorchScript model");
  fit_cmd->add_option("equations", fit.input,
                      "Equation file (HDF5: theta, grad_loss, optional target, features/, weights); not with --model");
  fit_cmd->add_option("--family,-f", fit.family, "Regularizer family (see below)")->required();
  fit_cmd->add_option("--method,-m", fit.method, "Solver: auto, qr, normal, closed-form, structured, vech, vech-plain")
      ->capture_default_str();
  fit_cmd->add_option("--output,-o", fit.output, "Write the JSON result here (default: print it to stdout)");
  fit_cmd->add_flag("--normalize", fit.normalize, "Scale candidate gradients to unit norm before fitting (appendix G.1)");
  fit_cmd->add_flag("--nonneg", fit.nonneg, "Constrain coefficients to be non-negative (exact active-set NNLS)");
  fit_cmd->add_option("--reduce", fit.reduce,
                      "All-reduce of the distributed fit's statistics: mpi, or nccl (GPU buffers; builds with NCCL)")
      ->capture_default_str();
  fit_cmd->add_option("--rcond", fit.rcond,
                      "Relative singular-value cut of the design (default sqrt(100 * unknowns * eps))");
  fit_cmd->add_flag("--quiet,-q", fit.quiet, "Do not print the one-line summary to stderr");
  fit_cmd->add_option("--model", fit.model,
                      "TorchScript module (torch.jit.save): build its full-batch equations at its current parameters");
  fit_cmd->add_option("--data", fit.data, "With --model: an MNIST-format IDX directory, or HDF5 with X [n, d] and y");
  fit_cmd->add_option("--loss", fit.loss, "With --model: mse, ce or bce")->capture_default_str();
  fit_cmd->add_option("--save-equations", fit.save_equations, "With --model: also write the equations (version 1)");
  fit_cmd->add_option("--candidates", fit.candidates,
                      "With --model: feature columns for --family features (ridge, huber:beta=B, "
                      "elastic-net:beta=B, layerwise-ridge, nuclear), comma-separated")
      ->delimiter(',');
  fit_cmd->add_option("--batch-size", fit.batch_size, "With --model: examples per batch of the full-batch gradient (0: all)");
  fit_cmd->footer(kFitFooter);

  gradmatch::cli::RunArgs run;
  auto* run_cmd = app.add_subcommand("run", "Run a study from a TOML config (configs/*.toml) into an output directory");
  run_cmd->add_option("config", run.config, "Study config, e.g. configs/smoke/ols_early_stopping.toml")->required();
  run_cmd->add_option("--out,-o", run.out, "Output directory (re-running on it resumes)")->required();

  gradmatch::cli::ReportArgs report;
  auto* report_cmd = app.add_subcommand("report", "Summarise a study output directory or describe an equation file");
  report_cmd->add_option("path", report.path, "Study output directory or equation file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version are "errors" with exit code 0; real parse errors are bad input.
    if (world.is_root()) app.exit(e);  // prints the help, the version or the error
    return e.get_exit_code() == 0 ? 0 : 2;
  }

  if (*fit_cmd) return gradmatch::cli::fit_command(fit, world);
  if (*run_cmd) return gradmatch::cli::run_command(run, world);
  if (*report_cmd) return gradmatch::cli::report_command(report, world);
  return 2;
}
