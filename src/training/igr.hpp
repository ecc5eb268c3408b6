#pragma once
// Implicit gradient regularization (Barrett & Dherin 2022; paper section 3
// "Gradient step size", appendix H.5): the closed-form estimate of Eq. 6 and
// the probe of appendix H.5.
//
// Model: R(theta; lambda) = (lambda/p) ||g||^2 with g = grad L, so
// grad R = (2 lambda/p) H g (docs/design.md); backward-error analysis predicts
// lambda = eta p / 4 for GD with step eta (trajectory.hpp). Given rows
// (H g_t, T_t), T_t the flow-vs-GD target, Eq. 6 is the scalar least squares
//   (lambda/p)-hat = argmin_c sum_t ||T_t - 2 c H g_t||^2
//                  = (1/2) sum_t <H g_t, T_t> / sum_t ||H g_t||^2,
//   lambda-hat     = p (lambda/p)-hat,
// i.e. "lambda-hat = p times the per-parameter estimate". It equals the
// `features` fit of the rows' gradient_penalty column (2/p) H g_t, so
// `gradmatch fit --family features` on the equation files reproduces it.
// residual_ratio = ||T - 2 (lambda/p)-hat H g|| / ||T|| (stacked over rows),
// cosine = <H g, T> / (||H g|| ||T||). R_IG = ||g||^2 / p at a point.
#include <cstdint>
#include <span>

#include "core/matrix.hpp"
#include "training/data.hpp"
#include "training/flow.hpp"
#include "training/losses.hpp"
#include "training/model_handle.hpp"

namespace gradmatch::training {

struct IgrEstimate {
  double lambda_hat = 0.0;            ///< p times lambda_per_parameter
  double lambda_per_parameter = 0.0;  ///< (lambda/p)-hat of Eq. 6
  double residual_ratio = 0.0;        ///< ||T - grad R-hat|| / ||T||
  double cosine = 0.0;
  std::int64_t rows = 0;
  std::int64_t p = 0;
};

/// Eq. 6 over the rows of `hvp` (H g_t) and `target` (T_t), both [m, p].
/// InputError on mismatched shapes, no rows, or H g = 0 on every row. With
/// every target zero the residual ratio is 0.
IgrEstimate igr_closed_form(const Matrix& hvp, const Matrix& target);

/// eta p / 4.
inline double igr_theory(double eta, std::int64_t p) { return eta * static_cast<double>(p) / 4.0; }

/// R_IG = ||g||^2 / p.
double igr_r(std::span<const double> gradient);

struct IgrProbeOptions {
  LossKind loss = LossKind::cross_entropy;
  double eta = 0.01;
  std::int64_t steps = 5;  ///< T probe steps (full-batch GD on the probe set)
  Integrator integrator = Integrator::rk4;
  std::int64_t substeps = 10;  ///< k
  std::int64_t batch_size = 0;  ///< batches of the full-batch sums (0: one)
};

struct IgrProbe {
  IgrEstimate estimate;             ///< Eq. 6 pooled over the T rows
  std::vector<double> lambda_step;  ///< Eq. 6 on each row alone [T]
  double r_ig = 0.0;                ///< ||g(theta*)||^2 / p at the start, on the probe set
  double loss = 0.0;                ///< F(theta*) on the probe set
  Matrix theta, grad_loss, hvp, target;  ///< [T, p] rows
};

/// Appendix H.5's probe: from the model's current theta*, T full-batch GD
/// steps on `probe`, one flow-vs-GD row per step; the model is restored to
/// theta* afterwards.
IgrProbe igr_probe(const ModelHandle& model, const Dataset& probe, const IgrProbeOptions& options);

}  // namespace gradmatch::training
