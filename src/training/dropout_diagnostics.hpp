#pragma once
// What a dropout endpoint's ridge estimate measures (the dropout study,
// paper section 3 "Dropout" and appendix H.4).
//
// Dropout trains on the objective L_p(theta) = E_xi L_xi(theta), the loss
// averaged over the masks xi; the endpoint equations use the eval-mode
// gradient g_eval = grad L(theta) (no masks). Three diagnostics:
//
// 1. The dropout-objective gradient g_p = E_xi grad L_xi, estimated from K
//    independent mask draws (each a full pass over the data in training
//    mode, every example with its own masks) split into two halves A and B
//    of K/2 draws. Their means g_A, g_B are independent, each with mean g_p,
//    so <g_A, g_B> is an UNBIASED estimate of ||g_p||^2, while ||g_A||^2
//    alone is biased upward by tr Cov(g_A) = tr Sigma / (K/2). The
//    stationarity of a dropout endpoint is judged on sqrt(max(<g_A, g_B>, 0))
//    / ||theta|| -- not on ||g_eval||, which is nonzero even at an exactly
//    dropout-stationary point (g_eval - g_p is dropout's penalty gradient).
//
// 2. The decomposition of the closed-form ridge estimate
//      lambda-hat = -<g_eval, theta> / (2 ||theta||^2) = lambda_R + lambda_ns,
//      lambda_R  =  <g_p - g_eval, theta> / (2 ||theta||^2)   (dropout's own
//                    penalty gradient, projected on the ridge direction),
//      lambda_ns = -<g_p, theta> / (2 ||theta||^2)            (what the
//                    endpoint's non-stationarity for L_p contributes),
//    with g_p = (g_A + g_B) / 2. At rate 0, g_p = g_eval and lambda_R = 0.
//
// 3. Euler's identity for a ReLU network with D+1 linear layers (weights W_k,
//    biases b_k, k = 1..D+1): scaling W_k by a and b_k by a^k scales the
//    logits z by a^(D+1), so sum_k <dz/dW_k, W_k> + k <dz/db_k, b_k> =
//    (D+1) z, and for cross-entropy (dl/dz = softmax(z) - e_y)
//      -<grad L, theta> = (D+1) M + sum_k (k-1) <dL/db_k, b_k>,
//      M = mean_i <e_{y_i} - softmax(z_i), z_i>   (the mean "margin"),
//    exactly. So lambda-hat = [(D+1) M + bias terms] / (2 ||theta||^2): it
//    measures how far the network is from having driven its margins up, in
//    units of its squared norm. Checked at every endpoint.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <span>
#include <vector>

#include "training/data.hpp"
#include "training/losses.hpp"
#include "training/model_handle.hpp"
#include "training/models.hpp"
#include "training/replicates.hpp"
#include "training/trainer.hpp"

namespace gradmatch::training {

/// Per mini-batch eval-mode mean-loss gradients g_k of consecutive batches
/// of `batch_size` rows (the last may be shorter), reduced to what a scalar
/// ridge fit needs. With `order` (rows of the data, each at most once: a
/// permutation, or part of one) the batches are consecutive runs of it, as a
/// data loader that shuffles makes them.
struct MinibatchGradients {
  std::vector<double> theta_dot_grad;  ///< <theta, g_k>
  std::vector<double> grad_squared;    ///< ||g_k||^2
  double theta_squared = 0.0;          ///< ||theta||^2
  std::int64_t parameters = 0;
};
MinibatchGradients minibatch_gradients(const ModelHandle& model, const Dataset& data, LossKind loss,
                                       std::int64_t batch_size, const std::vector<std::int64_t>& order = {});

/// The same reduction for batches of equal size given by their rows
/// (`batches[k]` the rows of batch k), computed for many batches in one pass:
/// the network's parameters are repeated once per batch in that pass (as the
/// replicates of a BatchedMlp), so one backward gives every batch's gradient.
/// Each pass holds at most `max_rows` rows (at least one batch). Equal to
/// minibatch_gradients() over the batches one at a time up to rounding; on a
/// GPU, where the one-at-a-time loop is bound by launching small kernels and
/// copying each gradient to the host, many times faster.
MinibatchGradients minibatch_gradients_batched(const Mlp& mlp, const Dataset& data, LossKind loss,
                                               std::span<const std::vector<std::int64_t>> batches,
                                               std::int64_t max_rows);

/// g_A and g_B of (1) above: flat float64 on the CPU.
struct DropoutObjectiveGradient {
  at::Tensor half_a, half_b;
  std::int64_t draws = 0;  ///< K (K/2 per half)
  /// (g_A + g_B) / 2.
  at::Tensor mean() const;
  /// <g_A, g_B>: unbiased for ||g_p||^2 (may be negative when g_p is small).
  double unbiased_squared_norm() const;
  /// ||(g_A + g_B) / 2||^2: biased upward by tr Sigma / K.
  double plugin_squared_norm() const;
};

/// K = `draws` (even, >= 2) full passes in training mode over `data`,
/// `batch_size` rows per forward pass; draw d uses the mask stream keyed by
/// splitmix64_mix(key + d + 1). Leaves the model in its previous mode with
/// its mask stream reseeded to `key`. A model without masks (rate 0, or no
/// hidden block but the last) takes one pass: every draw would be the same.
DropoutObjectiveGradient dropout_objective_gradient(const Mlp& mlp, const Dataset& data, LossKind loss,
                                                    std::int64_t draws, std::uint64_t key, std::int64_t batch_size);

/// The same estimate with the draws of a half computed together: the
/// network's parameters shared, each batch of `batch_size` rows (the same
/// batches, so the same masks, as dropout_objective_gradient's) sent through
/// the network once per draw in one pass, up to max(1, max_rows /
/// batch_size) draws a pass (the activations of that many copies of the
/// batch are held at once); one backward pass then gives the pass's summed
/// gradient. Equal to dropout_objective_gradient() up to rounding; on a GPU,
/// where K passes of small kernels one draw at a time are bound by launches,
/// K / 2 times fewer passes. Leaves the model as dropout_objective_gradient()
/// does.
DropoutObjectiveGradient dropout_objective_gradient_batched(const Mlp& mlp, const Dataset& data, LossKind loss,
                                                            std::int64_t draws, std::uint64_t key,
                                                            std::int64_t batch_size, std::int64_t max_rows);

/// sqrt(max(<g_A, g_B>, 0)) / ||theta||.
double dropout_relative_grad_norm(const DropoutObjectiveGradient& g, double theta_norm);

/// (3) above at the model's parameters, with grad_loss the eval-mode
/// full-batch cross-entropy gradient (flat, registration order).
struct MarginIdentity {
  std::int64_t linear_layers = 0;  ///< D + 1
  double lhs = 0.0;                ///< -<grad L, theta>
  double margin_mean = 0.0;        ///< M
  double bias_terms = 0.0;         ///< sum_k (k - 1) <dL/db_k, b_k>
  double rhs = 0.0;                ///< (D + 1) M + bias_terms
  /// |lhs - rhs| / ((D + 1) |M| + |bias_terms|) (0 when both sides vanish).
  double relative_error = 0.0;
};
/// InputError unless the network is positively homogeneous (relu or identity activation).
MarginIdentity margin_identity(const Mlp& mlp, const Dataset& data, std::span<const double> grad_loss,
                               std::int64_t batch_size);

/// Matched stationarity: keep training until the unbiased dropout gradient
/// norm reaches `target`, in rounds of `round_epochs` epochs at learning
/// rates start_learning_rate * decay^r (r = 0, 1, ...), at most `max_rounds`
/// rounds; the norm is measured before every round with `draws` mask draws.
struct StationarityTarget {
  double target = 3e-4;
  double start_learning_rate = 5e-3;
  double decay = 0.5;
  std::int64_t round_epochs = 20;
  std::int64_t max_rounds = 10;
  std::int64_t draws = 8;
  std::int64_t gradient_batch_size = 8192;
};
struct StationarityMatch {
  bool reached = false;
  bool diverged = false;
  std::int64_t rounds = 0;   ///< training rounds run
  std::int64_t epochs = 0;   ///< epochs trained in them
  double relative_grad_norm = 0.0;  ///< the last measurement
};
/// `base` gives the loss, optimizer kind, momentum and batch size; its
/// schedule, early stopping and keep-best are not used. Round r's batch
/// order is keyed by (base.seed, base.stream + r + 1) and its masks by
/// splitmix64_mix(mask_key + r + 1); the measurement before round r draws
/// with key splitmix64_mix(mask_key + 1024 + r).
StationarityMatch train_to_dropout_stationarity(Mlp& mlp, const Dataset& train, const TrainOptions& base,
                                                const StationarityTarget& target, std::uint64_t mask_key);

/// The same for every replicate of a batched model at once: replicate r
/// (training set data.pool.take(data.train[r]); data.validation is not used)
/// follows train_to_dropout_stationarity(model->replicate(r), that set, base
/// with base.stream = order_streams[r], target, mask_keys[r]) -- the same
/// rounds, batch orders, masks and measurements, to float rounding (tested).
/// Each round trains the replicates still above the target as one batch;
/// those with skip[r] != 0 (diverged in training) are left alone (their
/// result says 0 rounds, not reached). `on_round(round, above, median)` hears
/// before each round how many replicates go into it and the median of their
/// ||g_p|| / ||theta|| (for progress lines).
std::vector<StationarityMatch> train_replicates_to_dropout_stationarity(
    BatchedMlp& model, const ReplicateData& data, const TrainOptions& base, std::span<const std::uint64_t> order_streams,
    const StationarityTarget& target, std::span<const std::uint64_t> mask_keys, std::span<const char> skip,
    const std::function<void(std::int64_t round, std::int64_t above, double median)>& on_round = {});

}  // namespace gradmatch::training
