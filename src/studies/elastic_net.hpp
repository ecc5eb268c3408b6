#pragma once
// The elastic-net recovery study: paper section 3 "Explicit elastic net
// regularization" (Figure 3) and appendix H.2.
//
// A 10 -> 200 -> 1 ReLU network is trained by SGD on the H.2 synthetic
// regression (X ~ N(0, 1) [5000, 10], theta ~ N(0, 5^2), eps ~ N(0, 0.5^2),
// 80/20 split) with the explicit penalty
//     R(theta) = lambda1 sum_j h_beta(theta_j) + lambda2 sum_j theta_j^2,
// for every (lambda1, lambda2) of a grid and `seeds` independent data sets.
// At each endpoint the stationarity equations
//     lambda1 h'_beta(theta) + 2 lambda2 theta = -grad L(theta)
// (grad L: full-batch mean MSE gradient on the training split, float64) are
// solved for (lambda1-hat, lambda2-hat) in closed form (core fit(), family
// elastic-net:beta; QR on the p x 2 design). Figure 3 plots the mean over
// seeds of lambda_i-hat against lambda_i with +-1 standard error.
//
// Tasks and draws. A task is one seed s and a block of grid cells (all of
// them by default): its cells are trained together as replicates of one
// batched model (training/replicates.hpp), which share seed s's data set
// (Rng(seed, kData | s)), train/test split (kSplit | s), initial weights
// (kInit | s) and batch order (kOrder | s) and differ only in their penalty,
// so a cell's result depends on (study seed, s, lambda1, lambda2) only --
// never on the rank, the block size or the order of tasks. Task ids
// (kind 1 << 56 | s << 24 | block) index the run store.
//
// Fits per cell: one closed-form fit per endpoint (the mean and standard
// error over seeds are Figure 3's points) and one pooled fit over the
// cell's endpoints (m = seeds rows), the latter reproducible with
// `gradmatch fit DIR/equations_l1_<i>_l2_<j>.h5 --family elastic-net:beta=B`.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/matrix.hpp"
#include "studies/study.hpp"
#include "core/equations.hpp"

namespace gradmatch::io {
class ConfigReader;
}

namespace gradmatch::studies {

/// Every seed, size and count of the study; defaults are appendix H.2's.
struct ElasticNetConfig {
  std::uint64_t seed = 2605;                                       ///< keys every draw
  std::vector<double> lambda1{1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0};  ///< true Huber (l1) weights
  std::vector<double> lambda2{1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0};  ///< true ridge (l2) weights
  double beta = 1e-3;       ///< Huber width of the penalty and of the fitted family
  std::int64_t seeds = 10;  ///< independent data sets per cell

  // Data (H.2).
  std::int64_t n = 5000;
  std::int64_t d = 10;
  double theta_sd = 5.0;
  double noise_sd = 0.5;
  double test_fraction = 0.2;

  // Network and training (H.2).
  std::int64_t hidden = 200;
  double learning_rate = 1e-3;
  double momentum = 0.0;
  std::int64_t batch_size = 32;
  std::int64_t max_epochs = 200;
  std::int64_t patience = 15;  ///< early stopping on the training loss
  double min_delta = 0.0;
  bool keep_best = false;           ///< restore the best-training-loss epoch
  bool float64 = false;             ///< train in float64 (default float32, as PyTorch); fits are always float64
  std::int64_t cells_per_task = 0;  ///< grid cells trained together per task; 0: the whole grid

  // Fit.
  bool normalize = false;  ///< unit-norm column scaling (appendix G.1)
  bool nonneg = false;     ///< non-negative (lambda1, lambda2) by NNLS

  std::int64_t cells() const { return static_cast<std::int64_t>(lambda1.size() * lambda2.size()); }
  std::int64_t block_size() const { return cells_per_task > 0 ? std::min(cells_per_task, cells()) : cells(); }
  std::int64_t blocks() const { return (cells() + block_size() - 1) / block_size(); }
  /// Task block `b` trains cells [block_first(b), block_end(b)).
  std::int64_t block_first(std::int64_t b) const { return b * block_size(); }
  std::int64_t block_end(std::int64_t b) const { return std::min(cells(), block_first(b) + block_size()); }
  /// Flat parameter count of the network: d*hidden + hidden + hidden + 1.
  std::int64_t parameters() const { return d * hidden + 2 * hidden + 1; }
};

/// Reads every key (top-level `study = "elastic_net"`), checks ranges, then
/// reader.finish(). InputError naming the file and key otherwise.
ElasticNetConfig read_elastic_net_config(io::ConfigReader& reader);

struct ElasticNetTask {
  std::int64_t seed_index = 0;
  std::int64_t block = 0;
  std::uint64_t id() const;  ///< 1 << 56 | seed_index << 24 | block
};

/// Seeds in order, blocks in order within a seed.
std::vector<ElasticNetTask> enumerate_elastic_net_tasks(const ElasticNetConfig& config);

/// One trained endpoint and its closed-form fit.
struct ElasticNetEndpoint {
  double lambda1_hat = 0.0, lambda2_hat = 0.0;
  double lambda1_fit_se = 0.0, lambda2_fit_se = 0.0;  ///< the single fit's regression standard errors
  double residual_ratio = 0.0, cosine = 0.0;
  /// Of the p x 2 design [h'_beta(theta), 2 theta]: large when the two columns
  /// are nearly parallel (most |theta_j| < beta), i.e. (lambda1, lambda2) not identifiable.
  double condition_number = 0.0;
  double relative_grad_norm = 0.0;           ///< ||grad L|| / ||theta||
  double train_loss = 0.0, test_loss = 0.0;  ///< eval-mode full-batch MSE
  std::int64_t epochs = 0;
  bool diverged = false;
  std::vector<double> theta, grad_loss;  ///< [p], float64
};

/// Pure: the endpoints of the task's cells, in grid order (lambda1-major).
std::vector<ElasticNetEndpoint> run_elastic_net_task(const ElasticNetConfig& config, const ElasticNetTask& task,
                                                     torch::Device device = torch::Device(torch::kCPU));

/// Per cell: Figure 3's statistics over seeds and the pooled fit.
struct ElasticNetCell {
  double lambda1 = 0.0, lambda2 = 0.0;
  double lambda1_hat_mean = 0.0, lambda1_hat_se = 0.0, lambda2_hat_mean = 0.0, lambda2_hat_se = 0.0;
  double residual_ratio_median = 0.0, cosine_median = 0.0, relative_grad_norm_median = 0.0;
  double condition_number_median = 0.0;
  double test_loss_median = 0.0;
  double lambda1_pooled = 0.0, lambda2_pooled = 0.0, residual_ratio_pooled = 0.0;
  std::int64_t seeds = 0, diverged = 0;
};

struct ElasticNetResults {
  std::vector<ElasticNetCell> cells;  ///< lambda1-major
  /// Per (cell, seed), cell-major: every estimate NaN where diverged.
  std::vector<ElasticNetEndpoint> endpoints;
  std::vector<Equations> equations;  ///< per cell: its non-diverged seeds' endpoints (0 rows if none)
  std::vector<double> theta_true;    ///< [seeds, d]
};

/// Gathers the endpoints ([cells][seeds]) into the per-cell statistics.
ElasticNetResults assemble_elastic_net(const ElasticNetConfig& config,
                                       const std::vector<std::vector<ElasticNetEndpoint>>& endpoints);

/// The summary.json document: grid, and `cells` (one object per (lambda1,
/// lambda2) with lambda1_hat_mean, lambda1_hat_se, lambda2_hat_mean,
/// lambda2_hat_se, residual_ratio_median and more).
nlohmann::json elastic_net_summary(const ElasticNetConfig& config, const ElasticNetResults& results);

/// The study for `gradmatch run` (studies/study.hpp). Writes results.h5,
/// summary.json and one equations_l1_<i>_l2_<j>.h5 per cell (its seeds'
/// endpoints; none when every seed diverged).
std::unique_ptr<Study> make_elastic_net_study();

}  // namespace gradmatch::studies
