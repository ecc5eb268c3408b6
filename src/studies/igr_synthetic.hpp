#pragma once
// The synthetic implicit-gradient-regularization study: the trajectory
// estimator of paper section 3 ("Gradient step size", appendix H.5) on
// linear regression, where everything is known.
//
//   read_igr_synthetic_config -> enumerate tasks -> run_task (each)
//                             -> assemble -> outputs
//
// A task is one (p, eta, replicate): data y = X beta + eps with n rows,
// x_ij ~ N(0, 1), beta_j ~ N(0, theta_sd^2), eps ~ N(0, noise_sd^2) drawn from
// Rng(seed, data id) (data id from (p, replicate), so the step sizes of a cell
// share their data set); a bias-free linear model in float64 from theta = 0;
// `steps` full-batch GD steps with step eta, each one flow-vs-GD row
// (training/trajectory.hpp) with an RK4 reference of `substeps` substeps
// (Euler on request, for comparison). Here L = (1/n) ||y - X theta||^2, so
// H = 2 S is constant and the exact per-row answer is known: with
// e = theta - theta*, b = (exp(-eta H) - I + eta H) e / eta and H g = H^2 e,
// so for S = s I, lambda-hat / (eta p / 4) = 2 (e^{-x} - 1 + x) / x^2 with
// x = 2 eta s: 1 - x/3 + x^2/12 ~ 0.993 at eta = 0.01, 0.98 at eta = 0.03
// (the authors saw ~0.99 and 0.97). For any S the pooled fit's exact ratio
// is the spectral finite-step factor sum_t <u_t, r(eta H) u_t> / sum_t
// ||u_t||^2 (u_t = H g_t), which every run also reports.
//
// Estimates: lambda-hat pooled over all the rows of a run (Eq. 6, constant
// Lambda; the headline), and per row at log-spaced checkpoints (Lambda(t)).
// Outputs: results.h5, summary.json (key `runs`), one equation file per run
// (equations_p{p}_eta{eta}_seed{r}.h5, with `target` and
// features/gradient_penalty: `gradmatch fit --family features` reproduces
// lambda-hat), run_info.json.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/equations.hpp"
#include "core/matrix.hpp"
#include "studies/study.hpp"
#include "training/flow.hpp"
#include "training/igr.hpp"

namespace gradmatch::io {
class ConfigReader;
}

namespace gradmatch::studies {

/// Defaults: the paper-scale values (n 1000, p {5, 10, 20}, eta
/// {1e-3, 3e-3, 1e-2, 3e-2}, RK4 with k = 100, 3 seeds, 300 GD steps); the
/// data-generating process is the paper's OLS one (H.3: theta_sd 3, noise 1).
struct IgrSyntheticConfig {
  std::uint64_t seed = 605;
  std::int64_t n = 1000;
  std::vector<std::int64_t> dims{5, 10, 20};
  double theta_sd = 3.0;
  double noise_sd = 1.0;
  std::vector<double> learning_rates{1e-3, 3e-3, 1e-2, 3e-2};
  std::int64_t steps = 300;
  training::Integrator integrator = training::Integrator::rk4;
  std::int64_t substeps = 100;
  std::int64_t replicates = 3;   ///< seeds per (p, eta) cell
  std::int64_t checkpoints = 12;  ///< log-spaced per-checkpoint estimates
};

/// Reads every key (top-level `study = "igr_synthetic"`), checks ranges, then
/// reader.finish(). InputError naming the file and key.
IgrSyntheticConfig read_igr_synthetic_config(io::ConfigReader& reader);

struct IgrSyntheticTask {
  std::int64_t p_index = 0;
  std::int64_t eta_index = 0;
  std::int64_t replicate = 0;
  /// p << 40 | eta_index << 20 | replicate (p the dimension, not its index).
  std::uint64_t id(const IgrSyntheticConfig& config) const;
  /// The data set's stream: p << 20 | replicate (shared by the step sizes).
  std::uint64_t data_stream(const IgrSyntheticConfig& config) const;
};

/// p-major, then eta, then replicate.
std::vector<IgrSyntheticTask> enumerate_igr_synthetic_tasks(const IgrSyntheticConfig& config);

struct IgrSyntheticResult {
  std::int64_t p = 0;                       ///< the task's coordinates
  double eta = 0.0;
  std::int64_t seed = 0;
  bool diverged = false;                    ///< the loss did not fall: estimates are NaN
  double lambda_theory = 0.0, ratio = 0.0;  ///< eta p / 4 and lambda_hat / it
  /// The exact ratio of this quadratic: sum_t <u_t, r(eta H) u_t> / sum_t
  /// ||u_t||^2 over the rows, u_t = H g_t (training/curvature.hpp)
  double finite_step_factor_spectral = 0.0;
  std::vector<double> ratio_checkpoints;    ///< lambda_checkpoints / lambda_theory
  training::IgrEstimate estimate;           ///< pooled over every row
  std::vector<double> lambda_checkpoints;   ///< per-row estimate at the log-spaced checkpoints
  double r_ig = 0.0;                        ///< ||grad L(theta_0)||^2 / p
  double loss_start = 0.0, loss_end = 0.0;  ///< L at the first and last rows
  Equations equations;                      ///< every row (theta, grad L, target, gradient_penalty)
};

/// Pure: depends on (config, task) only.
IgrSyntheticResult run_igr_synthetic_task(const IgrSyntheticConfig& config, const IgrSyntheticTask& task,
                                          torch::Device device = torch::Device(torch::kCPU));

/// The checkpoint steps of the per-row estimates.
std::vector<std::int64_t> igr_synthetic_checkpoints(const IgrSyntheticConfig& config);

/// The summary.json document: `runs` (one object per task: p, eta, seed,
/// lambda_hat, lambda_theory, ratio, residual_ratio, r_ig, ...) and `cells`
/// (ratio mean/min/max over replicates per (p, eta)).
nlohmann::json igr_synthetic_summary(const IgrSyntheticConfig& config, std::span<const IgrSyntheticResult> results);

/// The study for `gradmatch run` (studies/study.hpp): one store table per p
/// (a row holds the run's record and its [steps, p] equations).
std::unique_ptr<Study> make_igr_synthetic_study();

}  // namespace gradmatch::studies
