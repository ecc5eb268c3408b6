#include "training/curvature.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace gradmatch::training {

double finite_step_factor(double x) {
  // 2 sum_{k>=2} (-x)^(k-2) / k! to x^6: below 1e-2 the error is under
  // x^7 / 181440 (1e-19), while the closed form loses 2 eps / x to cancellation.
  if (std::abs(x) < 1e-2)
    return 1.0 + x * (-1.0 / 3.0 + x * (1.0 / 12.0 + x * (-1.0 / 60.0 + x * (1.0 / 360.0 + x * (-1.0 / 2520.0 + x / 20160.0)))));
  return 2.0 * (std::expm1(-x) + x) / (x * x);
}

Curvature curvature(const Objective& f, const at::Tensor& theta, const CurvatureOptions& options) {
  Curvature out;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const at::Tensor u = f.gradient_and_hvp(theta).hvp;
  const double u_norm = u.norm().item<double>();
  if (!(u_norm > 0.0) || !std::isfinite(u_norm)) {
    out.s_eff = out.lambda_max = nan;
    return out;
  }
  at::Tensor v = u / u_norm;
  at::Tensor hv = f.hvp(theta, v);
  out.s_eff = at::dot(v, hv).item<double>();
  double rayleigh = out.s_eff;
  for (std::int64_t k = 1; k <= options.max_iterations; ++k) {
    out.iterations = k;
    const double norm = hv.norm().item<double>();
    if (!(norm > 0.0)) break;  // H v = 0: v is in the null space; lambda_max stays the last quotient
    v = hv / norm;
    hv = f.hvp(theta, v);
    const double next = at::dot(v, hv).item<double>();
    const bool done = std::abs(next - rayleigh) <= options.tolerance * std::abs(next);
    rayleigh = next;
    if (done) {
      out.converged = true;
      break;
    }
  }
  out.lambda_max = rayleigh;
  return out;
}

}  // namespace gradmatch::training
