#pragma once
// Explicit penalties added to the training loss, as differentiable torch ops
// over all parameters (flat theta), with docs/design.md's conventions:
//   ridge        R = lambda sum theta^2                      grad = 2 lambda theta
//   huber        R = lambda sum h_beta(theta)                grad = lambda h'_beta(theta)
//   elastic net  R = lambda1 sum h_beta(theta) + lambda2 sum theta^2
//   h_beta(x) = x^2 / (2 beta) for |x| < beta, else |x| - beta / 2.
// Their autograd gradients equal the core's columns (reg::*_gradient), which
// is what makes `gradmatch fit --family ridge|huber|elastic-net` recover them.
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace gradmatch::training {

struct Penalty {
  /// custom: `value` (any differentiable function of the parameters, e.g. a
  /// quadratic form on a subset); not batched by replicates.hpp.
  enum class Kind { none, ridge, huber, elastic_net, custom };
  Kind kind = Kind::none;
  double lambda1 = 0.0;  ///< ridge: lambda; huber: lambda; elastic net: the Huber (l1) weight
  double lambda2 = 0.0;  ///< elastic net: the ridge (l2) weight
  double beta = 0.0;     ///< Huber width (huber, elastic net)
  std::function<at::Tensor(const std::vector<at::Tensor>&)> value;  ///< custom: R(parameters)
  std::string description;  ///< custom: what to_string() says

  static Penalty none() { return {}; }
  static Penalty ridge(double lambda) { return {Kind::ridge, lambda, 0.0, 0.0, {}, {}}; }
  static Penalty huber(double lambda, double beta) { return {Kind::huber, lambda, 0.0, beta, {}, {}}; }
  static Penalty elastic_net(double lambda1, double lambda2, double beta) {
    return {Kind::elastic_net, lambda1, lambda2, beta, {}, {}};
  }
  static Penalty custom(std::function<at::Tensor(const std::vector<at::Tensor>&)> f, std::string description) {
    return {Kind::custom, 0.0, 0.0, 0.0, std::move(f), std::move(description)};
  }
  bool active() const { return kind != Kind::none; }
  /// Throws InputError on negative weights or a non-positive Huber width.
  void validate() const;
  std::string to_string() const;
};

/// sum_j h_beta(x_j) of a tensor (differentiable).
at::Tensor huber_sum(const at::Tensor& x, double beta);

/// R(theta) over all the tensors (a 0-d tensor; zero for Kind::none).
at::Tensor penalty_value(const Penalty& penalty, const std::vector<at::Tensor>& parameters);

/// grad R at one parameter tensor, in closed form and outside autograd:
/// 2 lambda2 theta + lambda1 clamp(theta / beta, -1, 1) (ridge: 2 lambda1
/// theta), the core's columns. Training adds it to the data loss's
/// gradient instead of differentiating penalty_value: the penalty's own
/// autograd graph (about 13 operations a tensor forward and as many back)
/// was 45-60% of a batched elastic-net step. Zero for Kind::none;
/// Kind::custom has no closed form (InputError).
at::Tensor penalty_gradient(const Penalty& penalty, const at::Tensor& parameter);

}  // namespace gradmatch::training
