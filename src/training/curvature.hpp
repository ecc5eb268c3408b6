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
#include <cstdint>

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

/// r(x) = 2 (e^{-x} - 1 + x) / x^2, accurate for every x >= 0 (a series
/// below x = 1e-2, where the closed form cancels).
double finite_step_factor(double x);

}  // namespace gradmatch::training
