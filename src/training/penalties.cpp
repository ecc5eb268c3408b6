#include "training/penalties.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <sstream>

#include "core/errors.hpp"

namespace gradmatch::training {

void Penalty::validate() const {
  if (!(lambda1 >= 0.0) || !(lambda2 >= 0.0)) throw InputError("penalty: weights must be non-negative");
  if ((kind == Kind::huber || kind == Kind::elastic_net) && !(beta > 0.0))
    throw InputError("penalty: the Huber width beta must be positive");
  if (kind == Kind::custom && !value) throw InputError("penalty: a custom penalty needs its function");
}

std::string Penalty::to_string() const {
  std::ostringstream os;
  os.precision(17);
  switch (kind) {
    case Kind::none: os << "none"; break;
    case Kind::ridge: os << "ridge(lambda=" << lambda1 << ")"; break;
    case Kind::huber: os << "huber(lambda=" << lambda1 << ", beta=" << beta << ")"; break;
    case Kind::elastic_net:
      os << "elastic-net(lambda1=" << lambda1 << ", lambda2=" << lambda2 << ", beta=" << beta << ")";
      break;
    case Kind::custom: os << description; break;
  }
  return os.str();
}

at::Tensor huber_sum(const at::Tensor& x, double beta) {
  const at::Tensor a = x.abs();
  // where() differentiates each branch only where it is selected: x / beta
  // inside (-beta, beta), sign(x) outside, as reg::huber_derivative.
  return at::where(a < beta, x.square() / (2.0 * beta), a - 0.5 * beta).sum();
}

at::Tensor penalty_gradient(const Penalty& penalty, const at::Tensor& parameter) {
  at::NoGradGuard no_grad;
  const at::Tensor x = parameter.detach();
  // The same operations, in the same order, as the batched trainer's
  // (replicates.cpp, BatchedPenalty::gradient), so that a replicate trained
  // in a batch and alone get the same bits from them.
  const auto ridge = [&](double lambda) { return x * (2.0 * lambda); };
  const auto huber = [&](double lambda) { return (x / penalty.beta).clamp_(-1.0, 1.0) * lambda; };
  switch (penalty.kind) {
    case Penalty::Kind::none: return at::zeros_like(x);
    case Penalty::Kind::ridge: return ridge(penalty.lambda1);
    case Penalty::Kind::huber: return huber(penalty.lambda1);
    case Penalty::Kind::elastic_net: return ridge(penalty.lambda2) + huber(penalty.lambda1);
    case Penalty::Kind::custom: break;
  }
  throw InputError("penalty: " + penalty.to_string() + " has no closed-form gradient; differentiate penalty_value");
}

at::Tensor penalty_value(const Penalty& penalty, const std::vector<at::Tensor>& parameters) {
  if (parameters.empty() || !penalty.active()) {
    const at::TensorOptions opts = parameters.empty() ? at::TensorOptions(at::kDouble) : parameters.front().options();
    return at::zeros({}, opts);
  }
  if (penalty.kind == Penalty::Kind::custom) return penalty.value(parameters);
  at::Tensor squares = at::zeros({}, parameters.front().options());
  at::Tensor hubers = at::zeros({}, parameters.front().options());
  const bool need_squares = penalty.kind == Penalty::Kind::ridge || penalty.kind == Penalty::Kind::elastic_net;
  const bool need_huber = penalty.kind == Penalty::Kind::huber || penalty.kind == Penalty::Kind::elastic_net;
  for (const auto& p : parameters) {
    if (need_squares) squares = squares + p.square().sum();
    if (need_huber) hubers = hubers + huber_sum(p, penalty.beta);
  }
  switch (penalty.kind) {
    case Penalty::Kind::ridge: return penalty.lambda1 * squares;
    case Penalty::Kind::huber: return penalty.lambda1 * hubers;
    case Penalty::Kind::elastic_net: return penalty.lambda1 * hubers + penalty.lambda2 * squares;
    case Penalty::Kind::none:
    case Penalty::Kind::custom: break;
  }
  return squares;
}

}  // namespace gradmatch::training
