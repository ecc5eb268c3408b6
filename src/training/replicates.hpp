#pragma once
// Replicate batching: R independent replicates of one small MLP trained at
// once, each with its own data, initial weights, batch order and penalty.
//
// Every weight carries a leading replicate dimension (W_l: [R, out, in],
// b_l: [R, 1, out]) and the forward pass is a batched matmul (baddbmm) over
// x [R, B, in]. The objective of a step is sum_r (mean batch loss_r +
// R_r(theta_r)); its gradient with respect to replicate r's weights is
// exactly replicate r's own gradient, and SGD (momentum) and Adam act
// element-wise, so each replicate follows the trajectory it would follow
// trained alone with train() (tested to float tolerance; SGD momentum and
// Adam are applied as torch::optim's C++ optimizers apply them). Early
// stopping, keep-best and the NaN guard act per replicate: a stopped or
// diverged replicate is written back to the model and dropped from the
// working batch (its rows of weights, optimizer state, data indices and
// mask streams are compacted away), so it costs nothing from then on.
//
// Penalties are evaluated in one elastic-net form with per-replicate
// [lambda1, lambda2, beta] (ridge: lambda1 = 0; huber: lambda2 = 0), whose
// gradient is bitwise the single-model one (a zero weight contributes 0).
// Dropout: each replicate has its own rate and keyed mask stream
// (dropout_masks.hpp); training step t of the batch draws, for replicate r,
// the masks that step t of the model trained alone with
// seed_dropout(dropout_key) draws, so dropout replicates batch too.
//
// Data: every replicate trains on its own rows of one shared pool of
// examples (ReplicateData), gathered per batch on the model's device, so R
// replicates of splits of one data set hold the data once.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "training/data.hpp"
#include "training/models.hpp"
#include "training/penalties.hpp"
#include "training/trainer.hpp"

namespace gradmatch::training {

/// What differs between replicates besides their data.
struct ReplicateSpec {
  std::uint64_t init_seed = 0;     ///< Philox key of the initial weights (as make_mlp)
  std::uint64_t init_stream = 0;
  std::uint64_t order_seed = 0;    ///< Philox key of the batch order (as TrainOptions::seed/stream)
  std::uint64_t order_stream = 0;
  Penalty penalty;
  std::optional<double> dropout;   ///< this replicate's dropout rate (default: the MlpOptions')
  std::uint64_t dropout_key = 0;   ///< its mask stream (as MlpImpl::seed_dropout)
};

class BatchedMlpImpl : public torch::nn::Module {
 public:
  /// Replicate r is initialised as make_mlp(options, specs[r].init_seed, specs[r].init_stream).
  BatchedMlpImpl(MlpOptions options, std::span<const ReplicateSpec> specs, at::ScalarType dtype = at::kFloat);

  /// x [R, B, inputs] -> [R, B, outputs] (no dropout: eval semantics).
  at::Tensor forward(const at::Tensor& x);

  std::int64_t replicates() const { return replicates_; }
  /// Replicate r's dropout rate and mask key.
  double dropout_rate(std::int64_t r) const { return rates_.at(static_cast<std::size_t>(r)); }
  std::uint64_t dropout_key(std::int64_t r) const { return keys_.at(static_cast<std::size_t>(r)); }
  const MlpOptions& options() const { return options_; }
  /// Parameters in the single model's registration order, each [R, ...].
  const std::vector<at::Tensor>& batched_parameters() const { return params_; }
  /// Replicate r as a stand-alone Mlp (a copy) for endpoint extraction.
  Mlp replicate(std::int64_t r) const;
  /// Overwrites replicate r with a single model's parameters.
  void set_replicate(std::int64_t r, const Mlp& source);

 private:
  MlpOptions options_;
  std::int64_t replicates_;
  std::vector<at::Tensor> weights_, biases_;  // biases_ entries undefined where a layer has none
  std::vector<at::Tensor> params_;
  std::vector<double> rates_;
  std::vector<std::uint64_t> keys_;
};
TORCH_MODULE(BatchedMlp);

/// x [R, B, inputs] -> [R, B, outputs] for R networks of `options` (eval
/// semantics: no dropout) whose parameters `params` are each [R, ...], in the
/// single model's registration order: weights [R, out, in], biases
/// [R, 1, out] where `options` has them. The forward pass of BatchedMlp.
at::Tensor batched_mlp_forward(const MlpOptions& options, const std::vector<at::Tensor>& params, const at::Tensor& x);

/// Stacks R data sets of equal size into x [R, n, d], y [R, n, ...].
Dataset stack_datasets(std::span<const Dataset> sets);

/// The replicates' data as rows of one pool of examples.
struct ReplicateData {
  Dataset pool;          ///< x [N, d], y [N, ...] (any device and dtype: moved to the model's)
  at::Tensor train;      ///< [R, n] int64: replicate r trains on pool rows train[r] (in this order)
  at::Tensor validation; ///< [R, m] int64, or undefined: no validation data
};

/// Trains all replicates at once on their own data (`train_sets[r]`, equal
/// sizes; `validation_sets` empty or one per replicate). `options` supplies
/// everything shared (loss, SGD or Adam, schedule, epochs, batch size,
/// shuffling, early stopping, keep-best); seeds and penalties come from
/// `specs`. Returns each replicate's TrainResult, as train() would.
std::vector<TrainResult> train_replicates(BatchedMlp& model, std::span<const Dataset> train_sets,
                                          std::span<const Dataset> validation_sets, const TrainOptions& options,
                                          std::span<const ReplicateSpec> specs);

/// What the working batch cost.
struct BatchStats {
  std::int64_t replicate_steps = 0;  ///< sum over optimizer steps of the replicates in the working batch
  /// Set before the call to time the parts of training (wall seconds, summed
  /// over the call). The device is synchronized at every boundary, so on a
  /// GPU each part is its kernels' time plus the host's; this costs a few
  /// synchronizations a step and changes no result.
  bool time_phases = false;
  struct Phases {
    double setup = 0;      ///< before the first epoch: working copies, indices, the first orders
    double orders = 0;     ///< waiting for an epoch's batch orders and sending them to the device
    double batch = 0;      ///< gathering each step's examples
    double forward = 0;    ///< forward passes with masks, losses and penalties
    double backward = 0;   ///< gradients
    double optimizer = 0;  ///< optimizer steps and the loss sums
    double epoch_end = 0;  ///< per epoch: records, validation losses, early stopping, compaction
    double total() const { return setup + orders + batch + forward + backward + optimizer + epoch_end; }
  } phases;
};

/// Called after every epoch with the epoch and how many replicates have not
/// stopped (early stopping, divergence) by its end: for progress lines.
using EpochHook = std::function<void(std::int64_t epoch, std::int64_t training)>;

/// The same on a shared pool: replicate r's training set is
/// pool.take(data.train[r]) and its validation set pool.take(data.validation[r]).
std::vector<TrainResult> train_replicates(BatchedMlp& model, const ReplicateData& data, const TrainOptions& options,
                                          std::span<const ReplicateSpec> specs, BatchStats* stats = nullptr,
                                          const EpochHook& on_epoch = {});

}  // namespace gradmatch::training
