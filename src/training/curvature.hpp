#pragma once
// Curvature of an objective at a point, for reading the IGR estimate of
// appendix H.5 at finite step sizes.
//
// With g = grad F(theta) and u = H g:
//   s_eff      = <u, H u> / ||u||^2, the Rayleigh quotient of H along H g:
//                the curvature the Eq. 6 fit sees (its rows are H g);
//   lambda_max = the eigenvalue of H of largest magnitude, by power iteration
//                started at H g (deterministic; converged when two successive
//                Rayleigh quotients agree to `tolerance` relative).
// On a quadratic F(theta) = 1/2 theta^T S theta along an eigenvector of S
// with eigenvalue s, gradient descent with step eta and the gradient flow of
// F over time eta differ by theta (e^{-x} - 1 + x), x = eta s, so the
// implicit penalty GD carries is eta p / 4 times the exact finite-step factor
//   r(x) = 2 (e^{-x} - 1 + x) / x^2  (r(0) = 1, r decreasing, r(2) = 0.57).
// finite_step_factor(eta * s_eff) is therefore the ratio lambda-hat / (eta p/4)
// expected from curvature alone.
//
// With a spread of curvatures one s_eff is an approximation. On a quadratic
// with Hessian H the flow-vs-GD target of a step from theta (the two
// displacements' difference over eta) is exactly (eta/2) r(eta H) H g, so
// the Eq. 6 fit of rows u_t = H g_t returns
//   lambda-hat / (eta p/4) = sum_t <u_t, r(eta H) u_t> / sum_t ||u_t||^2,
// which quadratic_step_factor() computes at one row by Lanczos (Gauss)
// quadrature started at u and pooled_step_factor() pools over rows. r(x) =
// 2 int_0^1 (1 - s) e^{-x s} ds is a mixture of exponentials, hence convex,
// and s_eff is the mean of H's spectrum weighted by u's components, so by
// Jensen <u, r(eta H) u>/||u||^2 >= r(eta s_eff): at one row the spread alone
// can only raise the predicted ratio (pooled over rows whose curvature
// differs, the factor can fall below r at theta*'s s_eff). What the
// measured ratio leaves to this spectral factor is the objective's
// departure from a quadratic over the probe.
#include <cstdint>
#include <span>

#include "training/objective.hpp"

namespace gradmatch::training {

struct CurvatureOptions {
  std::int64_t max_iterations = 100;  ///< power-iteration steps (each one HVP)
  double tolerance = 1e-8;            ///< relative change of the Rayleigh quotient
};

struct Curvature {
  double s_eff = 0.0;       ///< <Hg, H Hg> / ||Hg||^2 (NaN when H g = 0)
  double lambda_max = 0.0;  ///< eigenvalue of H of largest magnitude (NaN when H g = 0)
  std::int64_t iterations = 0;  ///< power-iteration steps taken
  bool converged = false;
};

/// s_eff and lambda_max of `f` at `theta` (see the top). The model's
/// parameters are restored. Costs one gradient-and-HVP pass plus one HVP per
/// power-iteration step.
Curvature curvature(const Objective& f, const at::Tensor& theta, const CurvatureOptions& options = {});

struct QuadratureOptions {
  std::int64_t max_steps = 40;  ///< Lanczos steps (each one HVP)
  double tolerance = 1e-10;     ///< relative change of the quadrature between steps
};

struct StepFactor {
  double factor = 0.0;  ///< <u, r(eta H) u> / ||u||^2 (NaN when u = H g = 0 or H overflows)
  double weight = 0.0;  ///< ||u||^2: the row's weight in the pooled Eq. 6 fit
  std::int64_t steps = 0;  ///< HVPs after u: Lanczos steps (2 for third_order_step_term)
  bool converged = false;  ///< the quadrature settled (or the Krylov space closed)
};

/// The finite-step factor an exact quadratic with H = H(theta) gives the
/// Eq. 6 row at theta (see the top), by Gauss quadrature on the Lanczos
/// tridiagonal of H started at u = H g: e_1^T r(eta T_k) e_1 for k = 1, 2, ...
/// until two successive values agree to `tolerance` relative. No
/// reorthogonalization: three vectors of size p. Costs one gradient-and-HVP
/// pass plus one HVP per step; the model's parameters are restored.
StepFactor quadratic_step_factor(const Objective& f, const at::Tensor& theta, double eta,
                                 const QuadratureOptions& options = {});
/// The same with u = H g at theta already at hand (a probe row has it).
StepFactor quadratic_step_factor(const Objective& f, const at::Tensor& theta, const at::Tensor& u, double eta,
                                 const QuadratureOptions& options = {});

/// sum_t weight_t factor_t / sum_t weight_t over the rows whose factor is
/// finite (NaN when none is): the factor of the pooled Eq. 6 fit.
double pooled_step_factor(std::span<const StepFactor> rows);

/// The leading part of the Eq. 6 row at theta that no quadratic has. The
/// flow over time eta expands as theta - eta g + (eta^2/2) H g
/// - (eta^3/6) (H^2 g + D3L[g, g]) + O(eta^4), so the row's target is
/// (eta/2) r(eta H) H g - (eta^2/6) D3L[g, g] + O(eta^3) and its ratio moves
/// by -(eta/3) <u, D3L[g, g]> / ||u||^2 (u = H g) beyond the quadratic's.
/// Returned as a StepFactor: factor = that term, weight = ||u||^2 (pool with
/// pooled_step_factor; the pooled term adds to the pooled spectral factor).
/// D3L[g, g] = d/de H(theta + e g) g at e = 0, by a central difference of two
/// HVPs with e ||g|| = relative_step * max(||theta||, 1). Costs one
/// gradient-and-HVP pass and two HVPs; the model's parameters are restored.
StepFactor third_order_step_term(const Objective& f, const at::Tensor& theta, double eta,
                                 double relative_step = 1e-4);
/// The same with g and H g at theta already at hand (two HVPs).
StepFactor third_order_step_term(const Objective& f, const at::Tensor& theta, const GradientAndHvp& at_theta,
                                 double eta, double relative_step = 1e-4);

/// r(x) = 2 (e^{-x} - 1 + x) / x^2, accurate for every x >= 0 (a series
/// below x = 1e-2, where the closed form cancels).
double finite_step_factor(double x);

}  // namespace gradmatch::training
