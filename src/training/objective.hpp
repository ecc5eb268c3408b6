#pragma once
// The full-batch training objective as a function of a flat parameter vector,
// with its gradient and Hessian-vector products by double backprop.
//
//   F(theta) = (1/N) sum_i l_i(theta) + R(theta)      (eval mode: no dropout)
//   g(theta) = grad F(theta),   H(theta) v = grad_theta <g(theta), v>
//
// l_i is the per-example loss of losses.hpp and R an explicit penalty
// (penalties.hpp; none by default), so F is docs/design.md's full-batch mean loss.
// theta is docs/design.md's flat vector (registration order) and may be ANY point,
// not just the model's current parameters: every call sets theta into the
// model, evaluates, and puts the model back exactly as it was -- parameter
// values, training flag and .grad (untouched: gradients come from
// torch::autograd::grad, never backward()). One objective can therefore probe
// many points along a reference flow while a trainer owns the model.
//
// Precision: the computation runs in the parameters' dtype and device (the
// data are converted once, at construction). A float64 model gives float64
// end to end: double-backprop H v then agrees with central differences of g
// to ~1e-10 (tests/training/objective_test.cpp).
//
// Cost: gradient() is one forward and one backward pass. hvp() is a forward,
// a backward with graph and a double backward. gradient_and_hvp() returns g
// and H g from that same pass (v = g, detached), so the pair costs one HVP,
// not a gradient plus an HVP. With batch_size < N the sums run over batches
// (memory), and H g needs the full-batch g first: two passes.
//
// Second derivatives need a twice-differentiable model: with ReLU the
// activation's curvature is zero almost everywhere and H misses it (the
// backward-error analysis of reference flows does not apply); use tanh.
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "training/data.hpp"
#include "training/losses.hpp"
#include "training/model_handle.hpp"
#include "training/penalties.hpp"

namespace gradmatch::training {

/// g and H g at one point.
struct GradientAndHvp {
  at::Tensor gradient;  ///< g = grad F(theta), flat [p]
  at::Tensor hvp;       ///< H(theta) g, flat [p]
};

/// How many evaluations an objective has done (benchmarks and tests).
struct EvaluationCounts {
  std::int64_t values = 0;
  std::int64_t gradients = 0;
  std::int64_t hvps = 0;  ///< hvp() and gradient_and_hvp() calls
};

/// Sets the model's parameters to flat vectors for the guard's lifetime and
/// restores their values (and the training flag, which it sets to eval) at
/// the end, also when an exception leaves the scope.
class ParameterScope {
 public:
  explicit ParameterScope(const ModelHandle& model);
  ~ParameterScope();
  ParameterScope(const ParameterScope&) = delete;
  ParameterScope& operator=(const ParameterScope&) = delete;
  /// Writes theta (any dtype/device, p entries) into the parameters.
  void set(const at::Tensor& theta);

 private:
  const ModelHandle& model_;
  std::vector<at::Tensor> saved_;
  EvalModeGuard eval_;
};

class Objective {
 public:
  /// `data` is converted to the parameters' dtype and device. `batch_size`
  /// <= 0 or >= N: one batch. InputError on an invalid data set or penalty.
  Objective(ModelHandle model, const Dataset& data, LossKind loss, Penalty penalty = {}, std::int64_t batch_size = 0);

  std::int64_t p() const { return p_; }
  /// dtype and device of theta, g and H v (the parameters').
  at::TensorOptions options() const;
  const ModelHandle& model() const { return model_; }
  const Dataset& data() const { return data_; }
  LossKind loss() const { return loss_; }

  /// The model's current parameters as a flat vector in options() (a copy).
  at::Tensor current() const;

  /// F(theta).
  double value(const at::Tensor& theta) const;
  /// g(theta), flat [p] in options().
  at::Tensor gradient(const at::Tensor& theta) const;
  /// H(theta) v, flat [p] in options().
  at::Tensor hvp(const at::Tensor& theta, const at::Tensor& v) const;
  /// g(theta) and H(theta) g(theta) from one double-backprop pass.
  GradientAndHvp gradient_and_hvp(const at::Tensor& theta) const;

  /// The same, with the parameters already set by the caller's scope (no
  /// save/restore per call: reference flows evaluate many points in a row).
  at::Tensor gradient_in(ParameterScope& scope, const at::Tensor& theta) const;
  GradientAndHvp gradient_and_hvp_in(ParameterScope& scope, const at::Tensor& theta) const;

  const EvaluationCounts& counts() const { return counts_; }
  void reset_counts() const { counts_ = {}; }

 private:
  at::Tensor gradient_here() const;
  at::Tensor hvp_here(const at::Tensor& v) const;
  GradientAndHvp gradient_and_hvp_here() const;
  // (1/N) * summed loss of batch [begin, end), plus R on the first batch.
  at::Tensor batch_objective(std::int64_t begin, std::int64_t end) const;

  ModelHandle model_;
  Dataset data_;
  LossKind loss_;
  Penalty penalty_;
  std::int64_t batch_size_;
  std::int64_t p_;
  mutable EvaluationCounts counts_;
};

}  // namespace gradmatch::training
