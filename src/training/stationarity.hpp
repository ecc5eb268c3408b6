#pragma once
// Stationary points of the full-batch objective F(theta) = L(theta) + R(theta)
// (mean loss of losses.hpp, explicit penalty of penalties.hpp).
//
// Line-search optimizers (L-BFGS) stall once loss changes fall below float64
// resolution, near a relative gradient residual of sqrt(eps) ~ 1e-7..1e-8.
// Newton steps on grad F need no loss comparisons and converge quadratically,
// so a few of them polish such a point to ~1e-15: what known-answer recovery
// tests need. The Hessian is built densely from p Hessian-vector products
// (double backprop), so this is for small models (p up to a few thousand).
#include <ATen/core/Tensor.h>

#include "training/data.hpp"
#include "training/losses.hpp"
#include "training/model_handle.hpp"
#include "training/penalties.hpp"

namespace gradmatch::training {

/// grad F at the model's parameters, flat (registration order), in the parameters' dtype.
at::Tensor objective_gradient(const ModelHandle& model, const Dataset& data, LossKind loss, const Penalty& penalty);

/// H v with H the Hessian of F (eval mode), v flat [p].
at::Tensor hessian_vector_product(const ModelHandle& model, const Dataset& data, LossKind loss, const Penalty& penalty,
                                  const at::Tensor& v);

/// Up to `iterations` Newton steps theta -= H^+ grad F (least-squares solve, so a
/// singular Hessian is tolerated). Returns ||grad F|| / ||grad L|| at the end.
double refine_stationary_point(const ModelHandle& model, const Dataset& data, LossKind loss, const Penalty& penalty,
                               int iterations = 4);

}  // namespace gradmatch::training
