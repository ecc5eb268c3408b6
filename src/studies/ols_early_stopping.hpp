#pragma once
// The OLS early-stopping study: paper section 3 (Figure 4) and appendix F
// (Figure 7), as one pipeline
//
//   read_ols_config -> prepare_shared -> enumerate_tasks -> run_task (each)
//                   -> assemble -> write_outputs.
//
// Shared data (replicated, deterministic, cheap): the canonical data set
// (X, beta, z) drawn from Rng(seed, 0), with y_sigma = X beta + sigma z for
// every noise level the study uses; the canonical early-stopped run (panels
// A, C) that fixes the step t of the fixed-iterate pools; the sigma = 10
// canonical endpoint of the bootstrap; the canonical endpoint of every sweep
// sigma. Every pool shares the canonical X, so Ali et al.'s Lambda(t) of that
// X is the target of panels A, B and Figure 7.
//
// Tasks (independent; any order, any rank): one per endpoint of a
// fixed-iterate or variable-stop pool (new beta and noise on the shared X)
// and one per bootstrap resample (Figure 7 pools and every sweep sigma).
// A task's draws come from Rng(seed, task.draw_stream(config)) -- its id,
// or for a sweep resample its sigma's value and (pool, endpoint) -- never
// from the order of execution. A task returns its endpoint's equations (theta, grad L) and
// step count; assemble() solves them: Lambda-hat_m for m = 1..M by
// accumulating the Lyapunov sums G, C endpoint by endpoint (core
// symmetric_solver) with fit()'s default rcond, so `gradmatch fit --family
// sym` on an equations_*.h5 file reproduces the stored Lambda-hat.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/matrix.hpp"
#include "core/ols.hpp"
#include "core/statistics.hpp"
#include "studies/study.hpp"

namespace gradmatch::io {
class ConfigReader;
}

namespace gradmatch::studies {

/// A pool layout: `pools` pools of `endpoints` endpoints each.
struct PoolSpec {
  std::int64_t pools = 10;
  std::int64_t endpoints = 100;
};

/// Every seed, size and count of the study. Defaults are the paper's values
/// (section 3, appendix H.3, Figures 4 and 7).
struct OlsEarlyStoppingConfig {
  std::uint64_t seed = 56;       ///< keys every draw (H.3 uses seed 56 for the canonical draw)
  std::int64_t n = 1000;         ///< rows of X
  std::int64_t p = 10;           ///< columns of X
  double beta_sd = 3.0;          ///< beta_j ~ N(0, beta_sd^2)
  double noise_sd = 1.0;         ///< sigma of Figure 4
  double learning_rate = 0.01;   ///< GD step epsilon

  ols::StoppingRule canonical{5, 0.0, 500};  ///< panels A, C: Lightning-style stopping

  PoolSpec fixed_iterate{10, 100};           ///< panel B: stopped at the canonical step
  std::int64_t fixed_iterate_show_m = 10;    ///< the Lambda-hat_m drawn in panel B

  PoolSpec variable_stop{10, 100};           ///< panel D
  ols::StoppingRule variable_rule{5, 1e-3, 2000};

  std::vector<std::int64_t> trace_steps{1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 500, 1000};  ///< panel E
  ols::AdamOptions adam{};                   ///< the iterative lambda fit of panel E

  double bootstrap_noise_sd = 10.0;          ///< Figure 7's sigma
  PoolSpec bootstrap{10, 100};               ///< endpoint 0 of each pool is the canonical one
  std::vector<std::int64_t> bootstrap_show_m{1, 50, 100};  ///< Figure 7 B-D

  std::vector<double> sweep_sigmas{0.5, 1, 1.5, 2, 3, 4, 6, 8, 10, 14, 20};  ///< Figure 7 F
  std::int64_t sweep_steps = 500;
  /// A sweep resample's draws keyed by its sigma's "value" (any sub-list of
  /// sigmas gives the same endpoints) or its "position" in the list (before
  /// sigma_sweep.draw_key existed).
  std::string sweep_draw_key = "value";
  PoolSpec sweep{5, 100};
};

/// Reads every key (including top-level `study = "ols_early_stopping"`),
/// checks ranges and cross-field constraints, then calls reader.finish().
/// Throws InputError naming the file and key.
OlsEarlyStoppingConfig read_ols_config(io::ConfigReader& reader);

enum class OlsTaskKind : std::uint8_t { fixed_iterate = 1, variable_stop = 2, bootstrap = 3, sigma_sweep = 4 };

struct OlsTask {
  OlsTaskKind kind;
  std::int64_t sigma_index = 0;  ///< sweep only
  std::int64_t pool = 0;
  std::int64_t endpoint = 0;     ///< index within its pool
  /// kind << 56 | sigma_index << 40 | pool << 20 | endpoint: a task keeps its
  /// id whatever the other counts of the config are.
  std::uint64_t id() const;
  /// The stream of its draws: id(), except for a sweep resample with
  /// sweep_draw_key = "value", whose stream mixes its sigma's value with
  /// (pool, endpoint), so that it draws the same resample whatever the other
  /// sigmas of the list are.
  std::uint64_t draw_stream(const OlsEarlyStoppingConfig& config) const;
};

/// Shared data and the canonical runs (see the top).
struct OlsShared {
  ols::Dataset data;                          ///< canonical X, beta; noise = z ~ N(0, 1)
  ols::Moments moments;                       ///< of y = X beta + noise_sd z
  ols::Spectrum spectrum;                     ///< of X^T X / n
  ols::GradientDescentRun canonical;          ///< panels A, C
  std::vector<double> bootstrap_y;            ///< X beta + bootstrap_noise_sd z
  ols::Moments bootstrap_moments;
  ols::GradientDescentRun bootstrap_canonical;  ///< endpoint 0 of every Figure 7 pool
  std::vector<std::vector<double>> sweep_y;   ///< per sweep sigma
  std::vector<ols::Moments> sweep_moments;    ///< per sweep sigma
  std::vector<std::vector<double>> sweep_theta;  ///< canonical endpoint at sweep_steps, per sigma
};

/// Throws InputError when the learning rate breaks Ali et al.'s condition.
OlsShared prepare_shared(const OlsEarlyStoppingConfig& config);

/// Every task, in a fixed order (pools in order, endpoints in order).
std::vector<OlsTask> enumerate_tasks(const OlsEarlyStoppingConfig& config);

struct OlsTaskResult {
  std::vector<double> theta;      ///< [p] the endpoint
  std::vector<double> grad_loss;  ///< [p] grad L at the endpoint on the task's own data
  std::int64_t steps = 0;         ///< GD steps taken
};

/// Pure: the result depends only on (config, shared, task).
OlsTaskResult run_task(const OlsEarlyStoppingConfig& config, const OlsShared& shared, const OlsTask& task);

/// Mean and 95% Student-t interval over pools, per m (or per sigma).
using Band = stats::Band;

/// Everything results.h5, the equation files and summary.json hold.
struct OlsStudyResults {
  // Canonical run (Figure 4 A, C).
  std::int64_t stop_step = 0;
  Matrix lambda_theory;                       ///< Lambda(stop_step)
  std::vector<double> q_hat, theta_retrained;
  double diag_retrain_max_abs_diff = 0.0;
  // Panel B.
  Matrix fixed_distance;                      ///< [pools, M]
  Band fixed_band;
  std::vector<double> fixed_relative_error;   ///< [pools] at m = M
  Matrix fixed_lambda_show, fixed_lambda_full;  ///< pool 0 at show_m and M
  // Panel D.
  Matrix variable_distance;                   ///< [pools, M]
  Band variable_band;
  Matrix variable_steps;                      ///< [pools, M] t_k
  std::vector<double> variable_lambda_median; ///< [pools, p, p]
  Matrix variable_lambda_full;                ///< pool 0 at M
  // Panel E.
  Matrix trace_theta, trace_grad_loss;        ///< [checkpoints, p]
  std::vector<double> trace_closed, trace_theory, trace_iterative;
  std::vector<std::int64_t> trace_adam_epochs;
  // Figure 7.
  std::int64_t bootstrap_steps = 0;
  Matrix bootstrap_lambda_theory;
  Matrix bootstrap_distance;                  ///< [pools, M]
  Band bootstrap_band;
  double bootstrap_zero_baseline = 0.0;
  std::vector<double> bootstrap_lambda_show;  ///< [show_m.size(), p, p], pool 0
  Matrix bootstrap_lambda_full;               ///< pool 0 at M
  Matrix sweep_distance;                      ///< [sigmas, pools] at m = M
  Band sweep_band;
  std::vector<double> sweep_zero_baseline;    ///< [sigmas]
  // Equations of pool 0 of each kind, for the equation files.
  Equations canonical_equations, fixed_equations, variable_equations, bootstrap_equations;
};

/// Solves every pool and gathers the panels. `results[i]` belongs to `tasks[i]`.
OlsStudyResults assemble(const OlsEarlyStoppingConfig& config, const OlsShared& shared,
                         std::span<const OlsTask> tasks, std::span<const OlsTaskResult> results);

/// The summary.json document (results only, no timings).
nlohmann::json summary_json(const OlsEarlyStoppingConfig& config, const OlsStudyResults& results);

/// The study for `gradmatch run` (studies/study.hpp): every rank reads and
/// checks the config and computes the shared data; the tasks go through the
/// task farm into the run store (one table per task kind, a row = theta,
/// grad L, steps); rank 0 then assembles and writes DIR/results.h5,
/// DIR/equations_*.h5 and DIR/summary.json.
std::unique_ptr<Study> make_ols_early_stopping_study();

}  // namespace gradmatch::studies
