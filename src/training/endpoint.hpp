#pragma once
// Endpoint extraction: a trained model as one row of gradient equations.
//
// At the model's current parameters theta (flat, registration order):
//   grad_loss = (1/N) sum_batches grad sum_{i in batch} l_i     (eval mode: no dropout)
// i.e. the full-batch mean loss gradient of docs/design.md, whatever the batch
// size used to compute it, and the gradient columns of candidate
// regularizers (each at unit coefficient):
//   ridge                 R = sum theta^2                        col = 2 theta
//   huber:beta=B          R = sum h_B(theta)                     col = h'_B(theta)
//   elastic-net:beta=B    the two columns [huber, ridge] -> (lambda1, lambda2)
//   layerwise-ridge       R_l = sum_{theta in layer l} theta^2   one column per layer
//                         (parameters grouped by module prefix, e.g. layer0.weight + layer0.bias)
//   activation-quadratic  R = sum_l sum_ij W_l,ij^2 m_l,j,  m_l,j = (1/N) sum_n a_l,nj^2
//                         with a_l the input of linear layer l, its second
//                         moments frozen at theta (Wager et al.'s dropout
//                         penalty shape); col = 2 W (.) m on weights, 0 on biases
//   nuclear               R = sum_l ||W_l||_* over 2-D weights     col = U_r V_r^T (0 elsewhere)
// ridge/huber/elastic-net use the core's reg::*_gradient, so `gradmatch fit
// --family ridge|huber|elastic-net` on the written equations reproduces a fit
// on the features exactly. Stationarity diagnostic: ||grad L|| / ||theta||.
#include <ATen/core/Tensor.h>

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/equations.hpp"
#include "training/data.hpp"
#include "training/losses.hpp"
#include "training/model_handle.hpp"

namespace gradmatch::training {

struct Candidate {
  enum class Kind { ridge, huber, elastic_net, layerwise_ridge, activation_quadratic, nuclear };
  Kind kind = Kind::ridge;
  double beta = 0.0;

  /// "ridge", "huber:beta=B", "elastic-net:beta=B", "layerwise-ridge",
  /// "activation-quadratic", "nuclear"; InputError otherwise.
  static Candidate parse(std::string_view text);
};

using Column = std::pair<std::string, std::vector<double>>;

/// Which forward pass a gradient is of: eval (no dropout; the endpoint
/// equations) or train (dropout masks drawn as in training: one forward
/// pass per batch).
enum class ForwardMode { eval, train };

/// Full-batch mean loss gradient (see the top), flat float64 on the CPU. Each
/// batch of `data` is converted to the parameters' dtype and device first.
/// With `mean_loss` also the full-batch mean loss of the same forward passes.
at::Tensor full_batch_gradient(const ModelHandle& model, const Dataset& data, LossKind loss, std::int64_t batch_size = 0,
                               ForwardMode mode = ForwardMode::eval, double* mean_loss = nullptr);

/// Per linear layer input second moments m_l (eval mode, no gradients), aligned
/// with model.parameters (undefined where a parameter is not a layer weight).
std::vector<at::Tensor> input_second_moments(const ModelHandle& model, const Dataset& data, std::int64_t batch_size = 0);

/// Candidate gradient columns at the model's current parameters. `data` is
/// needed by activation-quadratic only.
std::vector<Column> candidate_columns(const ModelHandle& model, std::span<const Candidate> candidates,
                                      const Dataset& data, std::int64_t batch_size = 0);

struct EndpointOptions {
  LossKind loss = LossKind::mse;
  std::int64_t batch_size = 0;  ///< for the full-batch sums; <= 0: one batch
  std::vector<Candidate> candidates;
};

struct Endpoint {
  std::vector<double> theta;
  std::vector<double> grad_loss;
  std::vector<Column> features;
  double loss = 0.0;                    ///< full-batch mean loss, eval mode
  double relative_gradient_norm = 0.0;  ///< ||grad L|| / ||theta||
};

Endpoint extract_endpoint(const ModelHandle& model, const Dataset& data, const EndpointOptions& options);

/// The endpoints as equations (one row each, features in the endpoints' order).
Equations to_equations(std::span<const Endpoint> endpoints);

}  // namespace gradmatch::training
