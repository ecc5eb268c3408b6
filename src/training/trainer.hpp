#pragma once
// Training loops: mini-batch SGD (momentum, step schedule), Adam, and
// full-batch L-BFGS (to reach a stationary point in float64), with explicit
// penalties, early stopping as a callback, keep-best and a NaN/Inf guard.
//
// Objective of a step on batch B: (1/|B|) sum_{i in B} l_i + R(theta), with
// l_i the per-example loss of losses.hpp and R the explicit penalty.
// Per epoch the trainer records the training loss (the data loss averaged
// over the epoch's examples as they were seen, in training mode), the
// validation loss (eval mode, full batch) and the penalty; callbacks see this
// record and say whether to stop.
//
// Early stopping is PyTorch Lightning's rule (mode "min"), the core's one
// rule (core/early_stopping.hpp): best starts at +inf; a value is an
// improvement iff value < best - min_delta (best = value, wait = 0), else
// wait += 1; training stops once wait >= patience, or at once on a
// non-finite value (which the NaN/Inf guard below turns into `diverged`
// before the rule sees it).
//
// NaN/Inf guard: a non-finite loss, penalty or parameter ends training with
// status `diverged` (no exception); the caller records the task as diverged
// and goes on.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/early_stopping.hpp"
#include "training/data.hpp"
#include "training/losses.hpp"
#include "training/model_handle.hpp"
#include "training/penalties.hpp"

namespace gradmatch::training {

enum class OptimizerKind { sgd, adam, lbfgs };
/// "sgd", "adam", "lbfgs"; InputError otherwise.
OptimizerKind parse_optimizer(std::string_view text);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::sgd;
  double learning_rate = 1e-3;
  double momentum = 0.0;       ///< sgd
  std::int64_t step_size = 0;  ///< sgd, adam: lr *= gamma every step_size epochs (0: constant)
  /// sgd, adam: lr *= gamma after each of these epochs (PyTorch's MultiStepLR,
  /// strictly increasing, >= 1); combines with step_size when both are given.
  std::vector<std::int64_t> milestones;
  double gamma = 0.1;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  ///< adam
  std::int64_t lbfgs_max_iter = 100;               ///< iterations per epoch
  double lbfgs_tolerance_grad = 1e-13;             ///< stop when max |grad| <= this
  double lbfgs_tolerance_change = 1e-16;
  std::int64_t lbfgs_history = 50;
};

/// The learning rate of epoch `epoch` (from 1) under the schedule:
///   lr * gamma^(floor((epoch-1)/step_size) + #{m in milestones : m <= epoch-1}),
/// i.e. what PyTorch's StepLR / MultiStepLR give when stepped once per epoch.
double scheduled_learning_rate(const OptimizerOptions& options, std::int64_t epoch);
/// Empty when the schedule is valid, else what is wrong with it.
std::string schedule_problem(const OptimizerOptions& options);

enum class Monitor { train, validation };
Monitor parse_monitor(std::string_view text);  ///< "train" | "validation" (alias "val")

struct EarlyStoppingOptions {
  std::int64_t patience = 5;
  double min_delta = 0.0;
  Monitor monitor = Monitor::train;
};

/// What a callback sees at the end of each epoch (epochs count from 1).
struct EpochRecord {
  std::int64_t epoch = 0;
  double train_loss = 0.0;
  double validation_loss = std::numeric_limits<double>::quiet_NaN();  ///< NaN without validation data
  double penalty = 0.0;
  double learning_rate = 0.0;

  double monitored(Monitor m) const { return m == Monitor::train ? train_loss : validation_loss; }
};

/// Callbacks (ensmallen style): end_epoch() returns true to stop training.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void begin() {}
  virtual bool end_epoch(const EpochRecord& record) = 0;
};

/// Lightning's early-stopping rule (see the top) on the monitored loss: the
/// core's EarlyStoppingRule (core/early_stopping.hpp) as a callback that
/// also remembers the epoch of the best value.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options)
      : options_(options), rule_(options.patience, options.min_delta) {}
  void begin() override;
  bool end_epoch(const EpochRecord& record) override;
  /// Feeds one value; true means stop (a non-finite value stops at once).
  bool update(double value, std::int64_t epoch);

  bool improved() const { return rule_.improved(); }  ///< the last value was an improvement
  double best() const { return rule_.best(); }
  std::int64_t best_epoch() const { return best_epoch_; }
  std::int64_t wait() const { return rule_.wait(); }
  const EarlyStoppingOptions& options() const { return options_; }

 private:
  EarlyStoppingOptions options_;
  EarlyStoppingRule rule_;
  std::int64_t best_epoch_ = 0;
};

struct TrainOptions {
  LossKind loss = LossKind::mse;
  OptimizerOptions optimizer;
  std::int64_t max_epochs = 100;
  std::int64_t batch_size = 0;  ///< <= 0 or >= n: full batch
  bool shuffle = true;          ///< reshuffle every epoch (order from (seed, stream, epoch))
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
  Penalty penalty;
  std::optional<EarlyStoppingOptions> early_stopping;
  /// Restore the parameters of the best epoch of the monitored loss (the
  /// early-stopping monitor, or the training loss without early stopping).
  bool keep_best = false;
  /// float32 matrix products on a CUDA GPU in TF32 (Tf32Scope, device.hpp)
  /// while training: faster on A100 and later, less exact; nothing changes
  /// on the CPU or in float64.
  bool tf32 = false;
};

enum class TrainStatus { completed, stopped_early, diverged };
std::string to_string(TrainStatus status);

struct TrainResult {
  TrainStatus status = TrainStatus::completed;
  std::int64_t epochs = 0;      ///< epochs run
  std::int64_t steps = 0;       ///< optimizer steps taken
  /// Epoch of the best monitored loss: with keep_best its parameters were
  /// kept; without, the early-stopping rule's best (the parameters are the
  /// last epoch's). 0 with neither, or when the run diverged.
  std::int64_t best_epoch = 0;
  std::vector<EpochRecord> history;
  std::string message;          ///< why it diverged
};

/// Trains `model` in place on `train_data` (and reports `validation`, which may
/// be empty). Bad options are InputErrors; divergence is a status, not an error.
TrainResult train(const ModelHandle& model, const Dataset& train_data, const Dataset& validation,
                  const TrainOptions& options, std::span<Callback* const> callbacks = {});

/// Full-batch mean loss in eval mode without gradients (batched for memory).
double evaluate_loss(const ModelHandle& model, const Dataset& data, LossKind loss, std::int64_t batch_size = 0);

/// Eval-mode predictions for all examples, concatenated (no gradients).
at::Tensor predict(const ModelHandle& model, const at::Tensor& x, std::int64_t batch_size = 0);

}  // namespace gradmatch::training
