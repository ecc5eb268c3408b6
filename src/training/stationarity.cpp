#include "training/stationarity.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "core/errors.hpp"
#include "training/objective.hpp"

namespace gradmatch::training {
namespace {

at::Tensor flatten(const std::vector<at::Tensor>& parts) {
  std::vector<at::Tensor> flat;
  for (const auto& t : parts) flat.push_back(t.reshape({-1}));
  return at::cat(flat);
}

}  // namespace

// Both delegate to objective.hpp at the model's current parameters, so the
// Newton polish and the trajectory estimators share one HVP implementation.
at::Tensor objective_gradient(const ModelHandle& model, const Dataset& data, LossKind loss, const Penalty& penalty) {
  const Objective f(model, data, loss, penalty);
  return f.gradient(f.current());
}

at::Tensor hessian_vector_product(const ModelHandle& model, const Dataset& data, LossKind loss, const Penalty& penalty,
                                  const at::Tensor& v) {
  const Objective f(model, data, loss, penalty);
  return f.hvp(f.current(), v);
}

double refine_stationary_point(const ModelHandle& model, const Dataset& data, LossKind loss, const Penalty& penalty,
                               int iterations) {
  const std::int64_t p = model.parameter_count();
  const auto options = model.parameters.front().options().requires_grad(false);
  for (int it = 0; it < iterations; ++it) {
    const at::Tensor g = objective_gradient(model, data, loss, penalty).detach();
    at::Tensor h = at::empty({p, p}, options);
    for (std::int64_t j = 0; j < p; ++j) {
      at::Tensor e = at::zeros({p}, options);
      e.narrow(0, j, 1).fill_(1.0);
      h.select(1, j).copy_(hessian_vector_product(model, data, loss, penalty, e).detach());
    }
    h = 0.5 * (h + h.t());
    // On the host: CUDA's lstsq (gels) assumes full rank, and a ReLU net's
    // Hessian with dead units is singular; the CPU default (gelsy) is not.
    const at::Tensor step =
        std::get<0>(at::linalg_lstsq(h.cpu(), g.cpu().unsqueeze(1))).squeeze(1).to(g.options());
    set_flat_parameters(model, flat_parameters(model, /*keep_dtype=*/true) - step);
  }
  const at::Tensor g = objective_gradient(model, data, loss, penalty).detach();
  EvalModeGuard eval(model);
  const at::Tensor gl = flatten(torch::autograd::grad({mean_loss(loss, model.forward(data.x), data.y)}, model.parameters));
  return (g.norm() / gl.norm()).item<double>();
}

}  // namespace gradmatch::training
