#include "training/flow.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.hpp"

namespace gradmatch::training {

Integrator parse_integrator(std::string_view text) {
  if (text == "rk4") return Integrator::rk4;
  if (text == "euler") return Integrator::euler;
  std::string msg = "integrator: unknown integrator '";
  msg += text;
  msg += "'; use rk4 or euler";
  throw InputError(msg);
}

std::string to_string(Integrator integrator) { return integrator == Integrator::rk4 ? "rk4" : "euler"; }

at::Tensor flow_displacement(const VectorField& field, const at::Tensor& theta0, double duration,
                             std::int64_t substeps, Integrator integrator, const at::Tensor& field_at_start) {
  if (substeps < 1) throw InputError("flow_displacement(): substeps must be at least 1");
  if (!(duration >= 0.0) || !std::isfinite(duration))
    throw InputError("flow_displacement(): the duration must be finite and non-negative");
  const double h = duration / static_cast<double>(substeps);
  at::Tensor d = at::zeros_like(theta0);
  for (std::int64_t s = 0; s < substeps; ++s) {
    const at::Tensor k1 = s == 0 && field_at_start.defined() ? field_at_start : field(theta0 + d);
    if (integrator == Integrator::euler) {
      d = d + h * k1;
      continue;
    }
    const at::Tensor k2 = field(theta0 + (d + (0.5 * h) * k1));
    const at::Tensor k3 = field(theta0 + (d + (0.5 * h) * k2));
    const at::Tensor k4 = field(theta0 + (d + h * k3));
    d = d + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
  }
  return d;
}

VectorField gradient_flow_field(const Objective& objective, ParameterScope& scope) {
  return [&objective, &scope](const at::Tensor& theta) { return -objective.gradient_in(scope, theta); };
}

VectorField modified_flow_field(const Objective& objective, ParameterScope& scope, double eta) {
  return [&objective, &scope, eta](const at::Tensor& theta) {
    const GradientAndHvp gh = objective.gradient_and_hvp_in(scope, theta);
    return -gh.gradient - (0.5 * eta) * gh.hvp;
  };
}

at::Tensor objective_flow_displacement(const Objective& objective, const at::Tensor& theta0, double duration,
                                       std::int64_t substeps, Integrator integrator, double eta_modified) {
  if (!(eta_modified >= 0.0)) throw InputError("objective_flow_displacement(): eta_modified must be >= 0");
  ParameterScope scope(objective.model());
  const at::Tensor start = theta0.to(objective.options()).reshape({-1});
  const VectorField field = eta_modified > 0.0 ? modified_flow_field(objective, scope, eta_modified)
                                               : gradient_flow_field(objective, scope);
  return flow_displacement(field, start, duration, substeps, integrator);
}

}  // namespace gradmatch::training
