#pragma once
// The dropout study: paper section 3 "Dropout" (Figure 5) and appendix H.4.
//
// ReLU classifiers with `depth` hidden layers of `width` units and dropout
// rate `rate` after every hidden block but the last (training/models.hpp)
// are trained on an IDX image data set (Fashion-MNIST by default) with SGD
// (momentum 0.9, lr 0.05, batch 2048), no weight decay, early stopping on
// the validation loss (patience 50, 10% validation split), optionally with
// the step schedule of the authors' code (training.milestones = [60, 100,
// 200], gamma 0.1; the paper's text has a constant rate).
//
// Per endpoint (full batch, float64; training/dropout_diagnostics.hpp):
//   lambda-hat = <theta, b> / (2 ||theta||^2),  b = -g_eval = -grad L (eval
//     mode, no masks), with its cosine |cos(b, theta)| and residual ratio
//     ||b - 2 lambda-hat theta|| / ||b|| (= sqrt(1 - cosine^2));
//   g_p = E_xi grad L_xi, the gradient of the objective dropout trains on,
//     from fit.mask_draws mask draws in two independent halves g_A, g_B:
//     the unbiased dropout_grad_norm = sqrt(max(<g_A, g_B>, 0)) / ||theta||
//     (the plug-in ||g_p|| / ||theta|| is biased upward by tr Sigma / K and
//     is reported as dropout_grad_norm_plugin);
//   lambda-hat = lambda_penalty + lambda_nonstationary, with
//     lambda_penalty = <g_p - g_eval, theta> / (2 ||theta||^2) (dropout's own
//     penalty gradient projected on ridge) and lambda_nonstationary =
//     -<g_p, theta> / (2 ||theta||^2) (what the endpoint's distance from
//     dropout stationarity contributes);
//   Euler's identity -<g_eval, theta> = (D+1) M + sum_k (k-1) <dL/db_k, b_k>
//     (M the mean margin <e_y - softmax(z), z>), checked to rounding: the
//     relative error, M and ||theta||^2 are reported;
//   the authors' Adam fit as a parity column (core ols::fit_ridge_adam_minibatch:
//     mean reduction over parameters, epsilon 1e-8, u = log lambda started
//     at 0.1 N(0, 1), targets of mini-batches of 2048 of the training split
//     reshuffled every epoch (fit.adam_batches: fresh, or a pool of
//     shuffles with the last batch drawn afresh), ReduceLROnPlateau(0.5, 10)
//     and early stopping (patience 100) on the last mini-batch's loss, as
//     Lightning's monitors read the authors' training_step log, at most
//     2000 epochs).
// Trust rule: a cell is trusted when its median dropout_grad_norm is at
// most diagnostics.max_dropout_grad_norm -- stationarity judged on the
// objective dropout trains on, not on ||g_eval||, which is nonzero even at
// an exactly dropout-stationary point. The cosine is reported beside it as
// how ridge-shaped dropout's penalty is.
// Matched stationarity (stationarity.match = true): after training, each
// network keeps training in rounds at a decaying rate until its
// dropout_grad_norm reaches stationarity.target, so rates are compared at
// equal stationarity (matched, match_rounds, match_epochs per endpoint).
//
// Replicates and draws: one replicate per (depth, width, rate, seed), id
//   1 << 56 | depth << 48 | width << 32 | rate in 1e-4 units << 16 | seed.
// The train/validation split is keyed by (study seed, seed), the initial
// weights and the batch order by (study seed, depth, width, seed) -- so the
// rates of one architecture and seed start alike and see the same batches --
// and the dropout masks by (study seed, replicate id); the diagnostics'
// mask draws, the matching rounds and the Adam start by the replicate id too.
//
// Tasks: the replicates of a (depth, width) cell, in (rate, seed) order,
// training.replicates_per_task at a time (0: the whole cell, rates x seeds),
// are trained together as one batched model (training/replicates.hpp) on a
// GPU -- a replicate that stops early or diverges leaves the batch -- and one
// after another on a CPU (ChunkTraining: the same numbers, faster there).
// Task id 6 << 56 | depth << 48 | width << 32 | first replicate of the cell.
// Results depend on the config only (the chunking included), never on the
// number of ranks. The runner's top-level `device` ("auto" | "cpu" | "cuda")
// picks the GPU of the rank (local rank mod GPUs) or the CPU the batches
// train on; training.float64 trains in float64 (deterministic enough to
// compare a GPU with the CPU); training.tf32 lets a GPU's float32 matrix
// products run in TF32.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "studies/study.hpp"
#include "studies/task_progress.hpp"
#include "training/data.hpp"

namespace gradmatch::io {
class ConfigReader;
}

namespace gradmatch::studies {

/// Every seed, size and count of the study; defaults are appendix H.4's
/// (on Fashion-MNIST, the data set Debian ships, instead of MNIST).
struct DropoutConfig {
  std::uint64_t seed = 2605;
  std::vector<std::int64_t> depths{3, 5};
  std::vector<std::int64_t> widths{128, 256, 512};
  std::vector<double> rates{0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5};
  std::int64_t seeds = 10;

  // Data.
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::int64_t train_subset = 0;  ///< images drawn from the training file (0: all)
  std::int64_t test_subset = 0;   ///< images drawn from the t10k file (0: all)
  double validation_fraction = 0.1;

  // Training (H.4).
  double learning_rate = 0.05;
  double momentum = 0.9;
  std::int64_t batch_size = 2048;
  std::int64_t max_epochs = 500;
  std::int64_t patience = 50;  ///< on the validation loss
  double min_delta = 0.0;
  bool keep_best = false;  ///< restore the best-validation-loss epoch
  bool float64 = false;    ///< train in float64 (default float32; the fit is float64 always)
  bool tf32 = false;       ///< float32 training on a CUDA GPU with TF32 matrix products (faster, less exact)
  std::vector<std::int64_t> milestones;  ///< lr *= gamma after each of these epochs (empty: constant rate)
  double gamma = 0.1;
  std::int64_t replicates_per_task = 0;  ///< replicates of a cell trained as one batched model (0: all)

  // Fit and diagnostics.
  std::int64_t gradient_batch_size = 8192;  ///< examples per batch of the full-batch sums
  std::int64_t mask_draws = 16;             ///< K mask draws for g_p (two halves of K/2)
  bool adam_parity = true;                  ///< also fit lambda as the authors' code does (see the top)
  double adam_learning_rate = 0.05;
  std::int64_t adam_max_epochs = 2000;
  std::int64_t adam_patience = 100;
  std::int64_t adam_batch_size = 2048;      ///< mini-batches of the Adam fit's targets
  double adam_init_sd = 0.1;                ///< log lambda starts at adam_init_sd * N(0, 1)
  double adam_epsilon = 1e-8;
  double adam_plateau_factor = 0.5;         ///< ReduceLROnPlateau(factor, patience)
  std::int64_t adam_plateau_patience = 10;
  std::string adam_monitor = "last_batch";  ///< loss the plateau and stopping rules read: last_batch | epoch_mean
  std::string adam_batches = "pool";        ///< each epoch's mini-batches: fresh | pool | fixed (see fit.adam_batches)
  std::int64_t adam_shuffles = 10;          ///< shuffles of the pool (adam_batches = "pool")
  std::string batched_gradients = "auto";   ///< the mask draws and the parity fit's mini-batch gradients many per pass: auto (on a GPU) | on | off
  double max_dropout_grad_norm = 1e-3;      ///< a cell is trusted when its median dropout_grad_norm is at most this

  // Matched stationarity (training/dropout_diagnostics.hpp).
  bool match_stationarity = false;
  double match_target = 3e-4;               ///< dropout_grad_norm to reach
  double match_learning_rate = 5e-3;        ///< first round's rate
  double match_decay = 0.5;                 ///< rate factor per round
  std::int64_t match_round_epochs = 20;
  std::int64_t match_max_rounds = 10;

  bool save_equations = false;              ///< each task writes DIR/equations_<task>.h5 (p can be 10^5-10^6)
};

/// Reads every key (top-level `study = "dropout"`), checks ranges, then
/// reader.finish(). InputError naming the file and key otherwise.
DropoutConfig read_dropout_config(io::ConfigReader& reader);

struct DropoutTask {
  std::int64_t depth = 0, width = 0;
  std::int64_t rate_index = 0;
  std::int64_t rate_units = 0;  ///< rate in units of 1e-4
  std::int64_t seed_index = 0;
  std::uint64_t id() const;  ///< see the top
  /// "d3_w128_r0500_s0": the task's equation file is equations_<this>.h5.
  std::string label() const;
};

/// Depth-major, then width, rate, seed.
std::vector<DropoutTask> enumerate_dropout_tasks(const DropoutConfig& config);

/// Replicates [first, first + count) of enumerate_dropout_tasks(), all of one (depth, width) cell.
struct DropoutChunk {
  std::int64_t depth = 0, width = 0;
  std::int64_t first = 0, count = 0;
  std::uint64_t id() const;  ///< see the top (first within its cell)
};
/// Each cell split into chunks of config.replicates_per_task (the last may be shorter).
std::vector<DropoutChunk> enumerate_dropout_chunks(const DropoutConfig& config);
/// A linear layer's fixed cost on a GPU in parameters' worth (its kernels,
/// whatever its width): on an NVIDIA H200 the paper's six cells took about
/// 65 s (depth 3) and 122 s (depth 5) plus 160-180 s per million parameters.
/// A CPU's time goes with the parameters alone.
inline constexpr double kDropoutGpuLayerCost = 100'000.0;
/// A chunk's relative cost for the task farm's order and its ETA: its
/// networks times the parameters of one (inputs -> depth x width ReLU ->
/// classes, with biases), plus kDropoutGpuLayerCost per linear layer on a GPU.
double dropout_chunk_cost(const DropoutChunk& chunk, std::int64_t inputs, std::int64_t classes, bool gpu);

/// Training and test images, loaded once per rank.
struct DropoutData {
  std::vector<std::int64_t> train_indices;  ///< which training-file images are used
  std::vector<std::int64_t> test_indices;
  std::int64_t inputs = 0, classes = 0;
  training::Dataset train;  ///< x float32 [n, inputs] in [0, 1], y int64 class indices
  training::Dataset test;
};

/// Loads the IDX files of config.data_dir and draws the subsets (keyed by
/// the study seed). InputError naming the file when it is missing or malformed.
DropoutData load_dropout_data(const DropoutConfig& config);

/// One trained endpoint and its fits.
struct DropoutEndpoint {
  double lambda_hat = 0.0, lambda_fit_se = 0.0;
  double residual_ratio = 0.0, cosine = 0.0;
  double relative_grad_norm = 0.0, grad_norm = 0.0, theta_norm = 0.0;
  double lambda_penalty = 0.0, lambda_nonstationary = 0.0;    ///< lambda_R, lambda_ns (see the top)
  double dropout_grad_norm = 0.0, dropout_grad_norm_plugin = 0.0;
  double margin_mean = 0.0, theta_squared = 0.0, margin_identity_error = 0.0;
  double lambda_adam = 0.0;        ///< NaN without adam_parity
  double lambda_adam_exact = 0.0;  ///< the exact minimiser of the Adam fit's loss (NaN without adam_parity)
  double train_loss = 0.0, validation_loss = 0.0;
  double test_loss = 0.0, test_accuracy = 0.0;
  std::int64_t epochs = 0, best_epoch = 0, parameters = 0;
  std::int64_t adam_epochs = 0;  ///< epochs the Adam fit ran (0 without adam_parity)
  bool matched = false;          ///< reached the matched-stationarity target
  std::int64_t match_rounds = 0, match_epochs = 0;
  bool diverged = false;
};

/// One replicate trained alone with train() on `device`: the reference the
/// batched chunks agree with. With config.save_equations also writes
/// `equations_path` (when not empty): the endpoint's one-row equation file.
DropoutEndpoint run_dropout_task(const DropoutConfig& config, const DropoutData& data, const DropoutTask& task,
                                 const std::string& equations_path = {}, const at::Device& device = at::kCPU);

/// How a task's classifiers train: as one batched model (what a GPU needs to
/// be busy), or one after another, each as a batch of one. On a CPU the
/// second is faster per classifier -- a batch's activations and gathered
/// inputs outgrow the caches (docs/performance.md) -- and gives the same
/// numbers: each replicate of a batch follows its own trajectory (to the bit
/// on the CPU with Debian's LibTorch; to rounding in float64 anywhere, tested).
enum class ChunkTraining { batched, one_at_a_time };
/// one_at_a_time on the CPU, batched on a GPU.
ChunkTraining chunk_training_for(const at::Device& device);

/// The replicates of `chunk` (of `tasks` = enumerate_dropout_tasks) trained
/// on `device` as `how` says, then each endpoint fitted (float64, on
/// `device`). Pure in (config, data, chunk, device). With
/// config.save_equations and a non-empty `equations_dir` also writes
/// equations_<label>.h5 per replicate there. `progress`, if given, hears
/// of every training epoch and endpoint.
std::vector<DropoutEndpoint> run_dropout_chunk(const DropoutConfig& config, const DropoutData& data,
                                               const std::vector<DropoutTask>& tasks, const DropoutChunk& chunk,
                                               const at::Device& device, const std::string& equations_dir = {},
                                               TaskProgress* progress = nullptr,
                                               ChunkTraining how = ChunkTraining::batched);

/// One grid cell: medians over its seeds.
struct DropoutCell {
  std::int64_t depth = 0, width = 0;
  double rate = 0.0;
  double lambda_hat_median = 0.0, lambda_penalty_median = 0.0, lambda_nonstationary_median = 0.0,
         dropout_grad_norm_median = 0.0, cosine_median = 0.0, residual_ratio_median = 0.0,
         relative_grad_norm_median = 0.0, margin_mean_median = 0.0, theta_squared_median = 0.0,
         margin_identity_max_error = 0.0, test_accuracy_median = 0.0, adam_lambda_median = 0.0, epochs_median = 0.0,
         best_epoch_median = 0.0;
  std::int64_t seeds = 0, diverged = 0, matched = 0;
  bool trusted = false;  ///< see DropoutConfig::max_dropout_grad_norm
};

/// The summary.json document: `cells` (one object per (depth, width, rate))
/// and, per architecture (`trends`), the Spearman correlation with the rate
/// of the medians of lambda-hat (`spearman`), lambda_penalty and
/// lambda_nonstationary, whether lambda-hat increases monotonically, and
/// for each of the three a test of the trend within seeds (`seed_trend`,
/// `seed_trend_penalty`, `seed_trend_nonstationary`: the mean over seeds of
/// the Spearman correlation with the rate, and its one-sided permutation
/// p-values, stats::blocked_trend_test). The medians' Spearman takes one
/// number per rate; the seed trend uses every endpoint and says whether a
/// trend stands out from the spread between seeds.
nlohmann::json dropout_summary(const DropoutConfig& config, const std::vector<DropoutTask>& tasks,
                               const std::vector<DropoutEndpoint>& endpoints, const std::vector<DropoutCell>& cells);

/// Medians per cell from the endpoints (in enumerate_dropout_tasks order).
std::vector<DropoutCell> assemble_dropout(const DropoutConfig& config, const std::vector<DropoutTask>& tasks,
                                          const std::vector<DropoutEndpoint>& endpoints);

/// The study for `gradmatch run` (studies/study.hpp). Writes results.h5,
/// summary.json (and with save_equations one equation file per task).
std::unique_ptr<Study> make_dropout_study();

}  // namespace gradmatch::studies
