#include "training/curvature.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

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

namespace {

/// e_1^T r(eta T) e_1 for the Lanczos tridiagonal T (diagonal `alpha`,
/// off-diagonal `beta`): the Gauss quadrature of <q_1, r(eta H) q_1>.
double gauss_quadrature(const std::vector<double>& alpha, const std::vector<double>& beta, double eta) {
  const auto k = static_cast<std::int64_t>(alpha.size());
  at::Tensor t = at::zeros({k, k}, at::kDouble);
  double* a = t.data_ptr<double>();
  for (std::int64_t i = 0; i < k; ++i) {
    a[i * k + i] = alpha[static_cast<std::size_t>(i)];
    if (i + 1 < k) a[i * k + i + 1] = a[(i + 1) * k + i] = beta[static_cast<std::size_t>(i)];
  }
  const auto [nodes, vectors] = at::linalg_eigh(t);
  double q = 0.0;
  for (std::int64_t i = 0; i < k; ++i) {
    const double z = vectors[0][i].item<double>();
    q += z * z * finite_step_factor(eta * nodes[i].item<double>());
  }
  return q;
}

}  // namespace

StepFactor quadratic_step_factor(const Objective& f, const at::Tensor& theta, double eta,
                                 const QuadratureOptions& options) {
  return quadratic_step_factor(f, theta, f.gradient_and_hvp(theta).hvp, eta, options);
}

StepFactor quadratic_step_factor(const Objective& f, const at::Tensor& theta, const at::Tensor& u, double eta,
                                 const QuadratureOptions& options) {
  StepFactor out;
  const double u_norm = u.norm().item<double>();
  if (!(u_norm > 0.0) || !std::isfinite(u_norm)) {
    out.factor = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
  out.weight = u_norm * u_norm;
  std::vector<double> alpha, beta;
  at::Tensor previous;  // q_{j-1}
  at::Tensor q = u / u_norm;
  double value = 0.0, scale = 0.0;
  for (std::int64_t j = 1; j <= options.max_steps; ++j) {
    out.steps = j;
    at::Tensor w = f.hvp(theta, q);
    if (previous.defined()) w = w - beta.back() * previous;
    alpha.push_back(at::dot(q, w).item<double>());
    w = w - alpha.back() * q;
    const double b = w.norm().item<double>();
    if (!std::isfinite(alpha.back()) || !std::isfinite(b)) {  // H overflowed along the Krylov space
      out.factor = std::numeric_limits<double>::quiet_NaN();
      return out;
    }
    scale = std::max({scale, std::abs(alpha.back()), b});
    const double next = gauss_quadrature(alpha, beta, eta);
    const bool settled = j > 1 && std::abs(next - value) <= options.tolerance * std::abs(next);
    value = next;
    // beta = 0: the Krylov space is invariant and the quadrature is exact.
    if (settled || !(b > 1e-14 * scale)) {
      out.converged = true;
      break;
    }
    beta.push_back(b);
    previous = q;
    q = w / b;
  }
  out.factor = value;
  return out;
}

StepFactor third_order_step_term(const Objective& f, const at::Tensor& theta, double eta, double relative_step) {
  return third_order_step_term(f, theta, f.gradient_and_hvp(theta), eta, relative_step);
}

StepFactor third_order_step_term(const Objective& f, const at::Tensor& theta, const GradientAndHvp& gh, double eta,
                                 double relative_step) {
  StepFactor out;
  const double u_norm = gh.hvp.norm().item<double>(), g_norm = gh.gradient.norm().item<double>();
  if (!(u_norm > 0.0) || !std::isfinite(u_norm) || !(g_norm > 0.0) || !std::isfinite(g_norm)) {
    out.factor = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
  const double e = relative_step * std::max(theta.norm().item<double>(), 1.0) / g_norm;
  const at::Tensor third = (f.hvp(theta + e * gh.gradient, gh.gradient) - f.hvp(theta - e * gh.gradient, gh.gradient)) / (2.0 * e);
  out.weight = u_norm * u_norm;
  out.factor = -(eta / 3.0) * at::dot(gh.hvp, third).item<double>() / out.weight;
  out.steps = 2;
  out.converged = std::isfinite(out.factor);
  return out;
}

double pooled_step_factor(std::span<const StepFactor> rows) {
  double num = 0.0, den = 0.0;
  for (const StepFactor& r : rows)
    if (std::isfinite(r.factor) && r.weight > 0.0) {
      num += r.weight * r.factor;
      den += r.weight;
    }
  return den > 0.0 ? num / den : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace gradmatch::training
