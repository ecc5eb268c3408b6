#pragma once
// The dropout study: paper section 3 "Dropout" (Figure 5) and appendix H.4.
//
// ReLU classifiers with `depth` hidden layers of `width` units and dropout
// rate `rate` after every hidden block but the last (training/models.hpp)
// are trained on an IDX image data set (Fashion-MNIST by default) with SGD
// (momentum 0.9, lr 0.05, batch 2048), no weight decay, early stopping on
// the validation loss (patience 50, 10% validation split). At the endpoint
// the scalar ridge R = lambda ||theta||^2 is fitted in closed form to the
// stationarity equations 2 lambda theta = -grad L(theta):
//     lambda-hat = <theta, b> / (2 ||theta||^2),   b = -grad L,
// with grad L the full-batch mean cross-entropy gradient on the training
// split in eval mode (no dropout), in float64. Diagnostics per endpoint:
// the cosine between b and the fitted 2 lambda-hat theta (|cos(b, theta)|),
// the residual ratio ||b - 2 lambda-hat theta|| / ||b|| (= sqrt(1 - cosine^2)),
// the relative gradient norm ||grad L|| / ||theta||, and test accuracy.
// Since |lambda-hat| = cosine * ||grad L|| / (2 ||theta||), a large
// ||grad L|| / ||theta|| with a small cosine says the endpoint is not
// stationary for any ridge penalty and lambda-hat is only the small part of
// a large gradient that happens to point along theta: such cells are
// flagged `trusted = false`.
// The paper's Adam fit (lr 0.05, up to 2000 epochs, patience 100) is
// available as a parity column, on the log-parametrised, sum-reduced loss
// (core ols::fit_ridge_adam). Started at lambda = 1 it stalls far above the
// closed form: the squared gradients of the first epochs, where lambda = 1
// is 10^2-10^4 times too large, stay in Adam's second moment (beta2 = 0.999,
// a memory of ~1000 epochs) and shrink every later step; 2000 epochs are not
// enough to come down the 2-4 decades (measured: 6x too large at smoke
// scale, 28-173x in the reduced Figure 5 run of README.md).
//
// Replicates and draws: one replicate per (depth, width, rate, seed), id
//   1 << 56 | depth << 48 | width << 32 | rate in 1e-4 units << 16 | seed.
// The train/validation split is keyed by (study seed, seed), the initial
// weights and the batch order by (study seed, depth, width, seed) -- so the
// rates of one architecture and seed start alike and see the same batches --
// and the dropout masks by (study seed, replicate id).
//
// Tasks: the replicates of a (depth, width) cell, in (rate, seed) order, are
// trained together as one batched model (training/replicates.hpp) on the
// rank's device, training.replicates_per_task at a time (0: the whole cell,
// rates x seeds); a replicate that stops early or diverges leaves the batch.
// Task id 6 << 56 | depth << 48 | width << 32 | first replicate of the cell.
// Results depend on the config only (the chunking included), never on the
// number of ranks. The runner's top-level `device` ("auto" | "cpu" | "cuda")
// picks the GPU of the rank (local rank mod GPUs) or the CPU the batches
// train on; training.float64 trains in float64 (deterministic enough to
// compare a GPU with the CPU).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "studies/study.hpp"
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
  std::int64_t replicates_per_task = 0;  ///< replicates of a cell trained as one batched model (0: all)

  // Fit and diagnostics.
  std::int64_t gradient_batch_size = 8192;  ///< examples per batch of the full-batch sums
  bool adam_parity = true;                  ///< also fit lambda by Adam (log-parametrised, sum reduction)
  double adam_learning_rate = 0.05;
  std::int64_t adam_max_epochs = 2000;
  std::int64_t adam_patience = 100;
  double adam_init_lambda = 1.0;               ///< the Adam fit starts at log(this)
  double trust_max_relative_grad_norm = 1e-3;  ///< a cell is trusted when its median ||grad L||/||theta|| ...
  double trust_min_cosine = 0.5;               ///< ... is at most this, or its median cosine at least this
  bool save_equations = false;                 ///< each task writes DIR/equations_<task>.h5 (p can be 10^5-10^6)
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
  double lambda_adam = 0.0;  ///< NaN without adam_parity
  double train_loss = 0.0, validation_loss = 0.0;
  double test_loss = 0.0, test_accuracy = 0.0;
  std::int64_t epochs = 0, best_epoch = 0, parameters = 0;
  std::int64_t adam_epochs = 0;  ///< epochs the Adam fit ran (0 without adam_parity)
  bool diverged = false;
};

/// One replicate trained alone with train() on `device`: the reference the
/// batched chunks agree with. With config.save_equations also writes
/// `equations_path` (when not empty): the endpoint's one-row equation file.
DropoutEndpoint run_dropout_task(const DropoutConfig& config, const DropoutData& data, const DropoutTask& task,
                                 const std::string& equations_path = {}, const at::Device& device = at::kCPU);

/// The replicates of `chunk` (of `tasks` = enumerate_dropout_tasks) trained as
/// one batched model on `device`, then each endpoint fitted (float64, on
/// `device`). Pure in (config, data, chunk, device). With
/// config.save_equations and a non-empty `equations_dir` also writes
/// equations_<label>.h5 per replicate there.
std::vector<DropoutEndpoint> run_dropout_chunk(const DropoutConfig& config, const DropoutData& data,
                                               const std::vector<DropoutTask>& tasks, const DropoutChunk& chunk,
                                               const at::Device& device, const std::string& equations_dir = {});

/// One grid cell: medians over its seeds.
struct DropoutCell {
  std::int64_t depth = 0, width = 0;
  double rate = 0.0;
  double lambda_hat_median = 0.0, cosine_median = 0.0, residual_ratio_median = 0.0, relative_grad_norm_median = 0.0,
         test_accuracy_median = 0.0, lambda_adam_median = 0.0, epochs_median = 0.0;
  std::int64_t seeds = 0, diverged = 0;
  bool trusted = false;  ///< see DropoutConfig::trust_*
};

/// The summary.json document: `cells` (one object per (depth, width, rate))
/// and, per architecture, the Spearman correlation of lambda-hat medians
/// with the rate and whether they increase monotonically.
nlohmann::json dropout_summary(const DropoutConfig& config, const std::vector<DropoutCell>& cells);

/// Medians per cell from the endpoints (in enumerate_dropout_tasks order).
std::vector<DropoutCell> assemble_dropout(const DropoutConfig& config, const std::vector<DropoutTask>& tasks,
                                          const std::vector<DropoutEndpoint>& endpoints);

/// The study for `gradmatch run` (studies/study.hpp). Writes results.h5,
/// summary.json (and with save_equations one equation file per task).
std::unique_ptr<Study> make_dropout_study();

}  // namespace gradmatch::studies
