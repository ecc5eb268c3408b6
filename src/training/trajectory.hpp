#pragma once
// Trajectory rows: gradient equations from the deviations of an observed
// training trajectory from an unbiased reference (paper Eq. 4, appendix C).
//
// Appendix C: with the observed (implicitly biased) iterates theta-hat_t, a
// reference procedure's iterates theta_t and step eta,
//   b_t = (theta-hat_t - theta-hat_{t+1}) / eta - (theta_t - theta_{t+1}) / eta,
// the observed update direction minus the reference's. When the reference step
// is taken from the observed point (theta_t = theta-hat_t: modes flow, dropout,
// sgd) and the observed procedure descends L + R, this is Eq. 4,
// b_t = grad R(theta-hat_t): each step is one row of equations
// grad R(theta-hat_t; Lambda) = b_t, regressed per checkpoint (a time-varying
// Lambda(t)) or pooled (a constant Lambda).
// Modes:
//   flow    observed: one full-batch GD step theta' = theta - eta g; reference:
//           the gradient flow of L over the same time eta from the same theta
//           (flow.hpp). b_t = (dtheta_flow - dtheta_GD) / eta. Section 3
//           "Gradient step size", appendix H.5.
//   dropout observed: an SGD step with dropout on batch D_t; reference: the
//           plain step (eval mode) on the same batch from the same point.
//           b_t = g_dropout(theta-hat_t, D_t) - grad L(theta-hat_t, D_t).
//   sgd     observed: mini-batch SGD; reference: the full-batch GD step from
//           the same point (Eq. 4). b_t = grad L(theta-hat_t, D_t)
//           - grad L(theta-hat_t, D). Its conditional mean given the past is
//           0 for plain SGD (a uniform batch's gradient is unbiased), so a fit
//           returns noise around 0: one SGD step carries no bias of its own at
//           its point. A step that does descend L + R (weight decay, a
//           penalty) gives E[b_t] = grad R(theta-hat_t), which the fit
//           recovers.
//   coupled observed: mini-batch SGD; reference: a coupled full-batch GD
//           trajectory (same start, same step), appendix C's SGD example:
//           b_t = grad L(theta-hat_t, D_t) - grad L(theta_t, D). Its
//           predictable part is grad L(theta-hat_t) - grad L(theta_t), the
//           drift between the two paths, which grows with t; the fit gives
//           the R whose gradient at theta-hat_t best approximates that drift
//           (appendix C's "predictable bias"), not an R the observed steps
//           descend: were they to descend L + R, b_t would hold grad
//           R(theta-hat_t) plus grad L(theta-hat_t) - grad L(theta_t).
//
// Backward-error analysis of the flow mode (Barrett & Dherin). The gradient
// flow from theta, expanded in time: theta(s) = theta - s g + (s^2/2) H g +
// O(s^3), so over time eta
//   dtheta_flow = -eta g + (eta^2/2) H g + O(eta^3),   dtheta_GD = -eta g,
//   b = (dtheta_flow - dtheta_GD) / eta = (eta/2) H g + O(eta^2).
// The gradient penalty R = (lambda/p) ||g||^2 has grad R = (2 lambda/p) H g
// (docs/design.md), so b = grad R at lambda = eta p / 4: GD follows the flow of
// L + (eta/4) ||g||^2 to O(eta^3) per step. The row's feature column is
// therefore "gradient_penalty" = (2/p) H g (grad R at lambda = 1), and the
// fitted coefficient is lambda-hat itself (Eq. 6: lambda-hat = p times the
// per-parameter estimate; igr.hpp). Signs: the opposite target
// (dtheta_GD - dtheta_flow) / eta gives -eta p / 4; a k-substep Euler
// reference gives (1 - 1/k) eta p / 4 (flow.hpp), hence RK4.
//
// Rows are written at checkpoints only (the flow reference costs 4k + 2
// gradient evaluations; see flow_deviation), log-spaced by default. The
// model is advanced in place along the observed trajectory and ends at
// theta-hat_T. Every row also records the full-batch grad L(theta-hat_t)
// (eval mode) as `grad_loss`, so the rows are version-1 equation files with a
// `target` dataset that `gradmatch fit --family features` solves.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/equations.hpp"
#include "core/fit.hpp"
#include "training/data.hpp"
#include "training/endpoint.hpp"
#include "training/flow.hpp"
#include "training/losses.hpp"
#include "training/model_handle.hpp"
#include "training/objective.hpp"

namespace gradmatch::training {

/// The feature name of the gradient-penalty column (2/p) H g.
inline constexpr const char* kGradientPenaltyFeature = "gradient_penalty";

enum class TrajectoryMode { flow, dropout, sgd, coupled };
/// "flow", "dropout", "sgd", "coupled"; InputError otherwise.
TrajectoryMode parse_trajectory_mode(std::string_view text);
std::string to_string(TrajectoryMode mode);

/// One flow-mode row at theta.
struct FlowDeviation {
  at::Tensor gradient;  ///< g(theta)
  at::Tensor hvp;       ///< H(theta) g(theta)
  at::Tensor target;    ///< b = (dtheta_flow - dtheta_GD) / eta
  at::Tensor next;      ///< theta - eta g: the GD step
};

/// The flow-mode row at theta (the objective's model is left untouched).
/// Cost: one gradient_and_hvp() (whose g is also the GD step and the first
/// reference stage) and 4k - 1 gradients for RK4 (k - 1 for Euler): the
/// 4k + 2 gradient evaluations of a probe step when an HVP costs about three.
FlowDeviation flow_deviation(const Objective& objective, const at::Tensor& theta, double eta,
                             Integrator integrator = Integrator::rk4, std::int64_t substeps = 10);

/// (2/p) H g: grad R of the gradient penalty at lambda = 1.
at::Tensor gradient_penalty_column(const at::Tensor& hvp);

/// Steps t in [0, steps) at log-spaced positions: round(exp(u)) - 1 for u
/// evenly spaced in [0, log steps], count points, duplicates removed (so
/// fewer when steps is small); always holds 0 and steps - 1.
std::vector<std::int64_t> log_spaced_steps(std::int64_t steps, std::int64_t count);

struct TrajectoryOptions {
  TrajectoryMode mode = TrajectoryMode::flow;
  LossKind loss = LossKind::mse;
  double learning_rate = 0.01;  ///< eta
  std::int64_t steps = 100;     ///< T optimizer steps; rows at steps t in [0, T)
  /// Rows at these steps (strictly increasing, in [0, T)); empty:
  /// log_spaced_steps(steps, checkpoint_count).
  std::vector<std::int64_t> checkpoints;
  std::int64_t checkpoint_count = 20;
  // flow mode
  Integrator integrator = Integrator::rk4;
  std::int64_t substeps = 10;  ///< k: reference steps h = eta / k
  // dropout, sgd and coupled modes: mini-batches of a fresh permutation each epoch,
  // drawn from Rng(seed, stream) (the last batch of an epoch may be smaller).
  // Dropout masks come from the model's own generator (Mlp::seed_dropout).
  std::int64_t batch_size = 128;
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
  // columns
  bool gradient_penalty = true;       ///< feature "gradient_penalty" = (2/p) H g (full batch, eval mode)
  std::vector<Candidate> candidates;  ///< further feature columns (endpoint.hpp), after it
  std::int64_t eval_batch_size = 0;   ///< batches of the full-batch sums (0: one)

  /// InputError (prefixed "trajectory: ") on bad values.
  void validate() const;
};

struct TrajectoryRows {
  std::vector<std::int64_t> steps;  ///< step t of each row
  Equations equations;              ///< theta-hat_t, grad L, target b_t, features
  Matrix hvp;                       ///< [rows, p] H g (full batch) when gradient_penalty, else empty
  std::vector<double> loss;         ///< full-batch F(theta-hat_t) per row
};

/// Runs the observed trajectory for options.steps steps from the model's
/// current parameters (the model ends at theta-hat_T) and records the rows.
TrajectoryRows trajectory_rows(const ModelHandle& model, const Dataset& data, const TrajectoryOptions& options);

/// One fit per row (the time-varying Lambda(t) of the checkpoints).
std::vector<FitResult> fit_per_checkpoint(const Equations& equations, const FitOptions& options);

}  // namespace gradmatch::training
