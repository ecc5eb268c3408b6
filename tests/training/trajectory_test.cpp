#include "training/trajectory.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "core/rng.hpp"
#include "igr_problems.hpp"
#include "training/curvature.hpp"
#include "training/igr.hpp"
#include "training/tensor_bridge.hpp"

namespace gradmatch::training {
namespace {

using testing::class_data;
using testing::linear_model;
using testing::regression_data;
using testing::relative_error;
using testing::tanh_classifier;

FitOptions features_family() {
  FitOptions o;
  o.family = FamilySpec::parse("features");
  return o;
}

// lambda-hat / (eta p / 4) of one flow-vs-GD row at theta.
double single_row_ratio(const Objective& f, const at::Tensor& theta, double eta, Integrator integrator,
                        std::int64_t k) {
  const FlowDeviation d = flow_deviation(f, theta, eta, integrator, k);
  const IgrEstimate e = igr_closed_form(to_matrix(d.hvp.unsqueeze(0)), to_matrix(d.target.unsqueeze(0)));
  return e.lambda_hat / igr_theory(eta, f.p());
}

TEST(Trajectory, FlowTargetIsHalfEtaTimesHgToFirstOrder) {
  const ModelHandle model = tanh_classifier(4, {6, 5}, 3);
  const Objective f(model, class_data(40, 4, 3, 51), LossKind::cross_entropy);
  const at::Tensor theta = f.current();
  const auto error = [&](double eta) {
    const FlowDeviation d = flow_deviation(f, theta, eta, Integrator::rk4, 10);
    EXPECT_LT(relative_error(d.next, theta - eta * d.gradient), 1e-15);
    return relative_error(d.target, 0.5 * eta * d.hvp);
  };
  const double e1 = error(0.02), e2 = error(0.01);
  EXPECT_LT(e1, 0.05);
  EXPECT_NEAR(e1 / e2, 2.0, 0.2);  // the O(eta^2) remainder over the O(eta) term
  // The sign: b = (flow - GD) / eta gives +eta p / 4; its opposite -eta p / 4.
  EXPECT_NEAR(single_row_ratio(f, theta, 1e-3, Integrator::rk4, 10), 1.0, 0.01);
}

TEST(Trajectory, EulerReferenceGivesTheOneMinusOneOverKBias) {
  const Dataset data = regression_data(100, 5, 52);
  const ModelHandle model = linear_model(5);
  const Objective f(model, data, LossKind::mse);
  const at::Tensor theta = f.current();
  const double eta = 1e-3;
  for (const std::int64_t k : {1, 2, 4, 10}) {
    const double expected = 1.0 - 1.0 / static_cast<double>(k);
    if (k == 1) {
      // One Euler substep is the GD step itself: no deviation at all.
      EXPECT_EQ(flow_deviation(f, theta, eta, Integrator::euler, 1).target.abs().max().item<double>(), 0.0);
      continue;
    }
    EXPECT_NEAR(single_row_ratio(f, theta, eta, Integrator::euler, k), expected, 5e-3) << "k = " << k;
  }
  EXPECT_NEAR(single_row_ratio(f, theta, eta, Integrator::rk4, 10), 1.0, 5e-3);
}

TEST(Trajectory, LogSpacedStepsCoverTheRange) {
  const auto s = log_spaced_steps(300, 12);
  EXPECT_EQ(s.front(), 0);
  EXPECT_EQ(s.back(), 299);
  for (std::size_t i = 1; i < s.size(); ++i) EXPECT_GT(s[i], s[i - 1]);
  EXPECT_EQ(log_spaced_steps(1, 5), std::vector<std::int64_t>{0});
  EXPECT_EQ(log_spaced_steps(5, 100), (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(log_spaced_steps(10, 2), (std::vector<std::int64_t>{0, 9}));
}

TEST(Trajectory, FlowRowsAreEquationsThatTheFeaturesFitSolvesAsEquationSix) {
  const Dataset data = regression_data(100, 6, 53);
  const ModelHandle model = linear_model(6);
  const at::Tensor start = flat_parameters(model, true);
  TrajectoryOptions o;
  o.learning_rate = 0.01;
  o.steps = 40;
  o.checkpoint_count = 8;
  o.substeps = 20;
  const TrajectoryRows rows = trajectory_rows(model, data, o);
  EXPECT_EQ(rows.steps, log_spaced_steps(40, 8));
  const Equations& eq = rows.equations;
  eq.validate("test");
  ASSERT_TRUE(eq.target.has_value());
  ASSERT_EQ(eq.features.size(), 1u);
  EXPECT_EQ(eq.features[0].first, kGradientPenaltyFeature);
  EXPECT_EQ(eq.m(), static_cast<std::int64_t>(rows.steps.size()));

  const FitResult pooled = fit(eq, features_family());
  const IgrEstimate closed = igr_closed_form(rows.hvp, *eq.target);
  EXPECT_NEAR(pooled.coefficient(), closed.lambda_hat, 1e-12 * closed.lambda_hat);
  EXPECT_NEAR(pooled.residual_ratio, closed.residual_ratio, 1e-9);
  // A quadratic loss: each row's ratio to eta p / 4 is the finite-step factor
  // r(eta H) averaged over H's spectrum along H g (curvature.hpp), and the
  // pooled fit's is those factors pooled by ||H g||^2.
  const Objective f(model, data, LossKind::mse);
  std::vector<StepFactor> factors;
  for (std::int64_t t = 0; t < eq.m(); ++t)
    factors.push_back(quadratic_step_factor(f, to_tensor(eq.theta.row(t), {6}), 0.01));
  EXPECT_NEAR(closed.lambda_hat / igr_theory(0.01, 6), pooled_step_factor(factors), 1e-7);
  const std::vector<FitResult> per_row = fit_per_checkpoint(eq, features_family());
  ASSERT_EQ(per_row.size(), factors.size());
  for (std::size_t t = 0; t < per_row.size(); ++t)
    EXPECT_NEAR(per_row[t].coefficient() / igr_theory(0.01, 6), factors[t].factor, 1e-7) << t;

  // The model ends at theta-hat_T: 40 GD steps from the start.
  at::Tensor theta = start;
  for (int t = 0; t < 40; ++t) theta = theta - 0.01 * f.gradient(theta);
  EXPECT_LT(relative_error(flat_parameters(model, true), theta), 1e-13);
  // Row t holds theta-hat_t and its full-batch gradient.
  const std::int64_t last = eq.m() - 1;
  EXPECT_LT(relative_error(to_tensor(eq.grad_loss.row(last), {6}), f.gradient(to_tensor(eq.theta.row(last), {6}))),
            1e-13);
}

/// Six mini-batch steps of 16 of 50 examples (seed 7) at eta = 0.05, with the ridge column.
TrajectoryOptions mini_batch_options(TrajectoryMode mode) {
  TrajectoryOptions o;
  o.mode = mode;
  o.learning_rate = 0.05;
  o.steps = 6;
  o.batch_size = 16;
  o.seed = 7;
  o.candidates = {Candidate::parse("ridge")};
  return o;
}

TEST(Trajectory, SgdTargetsAreBatchGradientsMinusTheFullBatchGradientAtTheSameIterate) {
  // Eq. 4: b_t = -dtheta-hat_t / eta - grad L(theta-hat_t, D), both at theta-hat_t.
  const Dataset data = regression_data(50, 4, 54);
  const ModelHandle model = linear_model(4);
  const at::Tensor start = flat_parameters(model, true);
  TrajectoryOptions o = mini_batch_options(TrajectoryMode::sgd);
  o.checkpoints = {0, 2, 3, 5};
  const TrajectoryRows rows = trajectory_rows(model, data, o);
  const Equations& eq = rows.equations;
  ASSERT_EQ(eq.m(), 4);
  ASSERT_EQ(eq.features.size(), 2u);
  const Objective f(model, data, LossKind::mse);
  // Replay the mini-batch steps (batches of 16 from a fresh permutation of
  // the 50 examples each epoch, drawn from Rng(seed 7, stream 0)) and check each row.
  Rng rng(7, 0);
  std::vector<std::int64_t> order;
  std::int64_t position = 50;
  const auto next_batch = [&] {
    if (position >= 50) {
      order = permutation(50, rng);
      position = 0;
    }
    const std::int64_t end = std::min<std::int64_t>(50, position + 16);
    std::vector<std::int64_t> batch(order.begin() + position, order.begin() + end);
    position = end;
    return batch;
  };
  at::Tensor theta = start;
  std::int64_t k = 0;
  for (std::int64_t t = 0; t < 6; ++t) {
    const at::Tensor batch_gradient = Objective(model, data.take(next_batch()), LossKind::mse).gradient(theta);
    if (t == 0 || t == 2 || t == 3 || t == 5) {
      const at::Tensor full_gradient = f.gradient(theta);
      EXPECT_LT(relative_error(to_tensor(eq.theta.row(k), {4}), theta), 1e-14) << "t = " << t;
      EXPECT_LT(relative_error(to_tensor(eq.grad_loss.row(k), {4}), full_gradient), 1e-13) << "t = " << t;
      EXPECT_LT(relative_error(to_tensor(eq.target->row(k), {4}), batch_gradient - full_gradient), 1e-12) << "t = " << t;
      // gradient_penalty = (2/p) H g with H = 2 X^T X / n for the MSE of a linear model.
      const at::Tensor x = data.x.to(at::kDouble);
      const at::Tensor hessian = 2.0 * x.t().matmul(x) / 50.0;
      EXPECT_LT(relative_error(to_tensor(eq.features[0].second.row(k), {4}), hessian.matmul(full_gradient) * 0.5),
                1e-12);
      EXPECT_GT(to_tensor(eq.target->row(k), {4}).norm().item<double>(), 0.0);
      ++k;
    }
    theta = theta - 0.05 * batch_gradient;
  }
  EXPECT_LT(relative_error(flat_parameters(model, true), theta), 1e-13);
  // Full batches: every target vanishes (up to summation order).
  set_flat_parameters(model, start);
  o.batch_size = 50;
  const TrajectoryRows full = trajectory_rows(model, data, o);
  for (double v : full.equations.target->values()) EXPECT_NEAR(v, 0.0, 1e-13);
}

TEST(Trajectory, CoupledTargetsAreBatchGradientsMinusTheCoupledGdGradients) {
  const Dataset data = regression_data(50, 4, 54);
  const ModelHandle model = linear_model(4);
  const at::Tensor start = flat_parameters(model, true);
  TrajectoryOptions o = mini_batch_options(TrajectoryMode::coupled);
  o.checkpoints = {0, 1, 2, 3, 4, 5};
  o.gradient_penalty = false;
  const TrajectoryRows rows = trajectory_rows(model, data, o);
  const Equations& eq = rows.equations;
  ASSERT_EQ(eq.m(), 6);
  ASSERT_EQ(eq.features.size(), 1u);
  EXPECT_EQ(eq.features[0].first, "ridge");
  // theta-hat_{t+1} = theta-hat_t - eta (b_t + grad L(theta_t)), theta_t the GD iterate.
  const Objective f(model, data, LossKind::mse);
  at::Tensor reference = start;
  for (std::int64_t t = 0; t < 6; ++t) {
    const at::Tensor hat = to_tensor(eq.theta.row(t), {4});
    const at::Tensor b = to_tensor(eq.target->row(t), {4});
    const at::Tensor g_ref = f.gradient(reference);
    const at::Tensor next = hat - 0.05 * (b + g_ref);
    const at::Tensor expected = t + 1 < 6 ? to_tensor(eq.theta.row(t + 1), {4}) : flat_parameters(model, true);
    EXPECT_LT(relative_error(next, expected), 1e-13) << "t = " << t;
    EXPECT_LT(relative_error(to_tensor(eq.features[0].second.row(t), {4}), 2.0 * hat), 1e-15);
    reference = reference - 0.05 * g_ref;
    EXPECT_GT(b.norm().item<double>(), 0.0);
  }
  // Full batches: SGD is GD and every target vanishes (up to summation order).
  set_flat_parameters(model, start);
  o.batch_size = 50;
  const TrajectoryRows full = trajectory_rows(model, data, o);
  for (double v : full.equations.target->values()) EXPECT_NEAR(v, 0.0, 1e-13);
}

TEST(Trajectory, DropoutTargetsVanishWithoutDropoutAndRepeatWithTheSameMasks) {
  const Dataset data = class_data(60, 4, 3, 55);
  TrajectoryOptions o;
  o.mode = TrajectoryMode::dropout;
  o.loss = LossKind::cross_entropy;
  o.learning_rate = 0.1;
  o.steps = 5;
  o.checkpoint_count = 5;
  o.batch_size = 20;
  o.gradient_penalty = false;
  o.candidates = {Candidate::parse("ridge")};
  const auto run = [&](double rate) {
    MlpOptions mo = testing::tanh_options(4, {8, 8}, 3);
    mo.dropout = rate;
    Mlp mlp = make_mlp(mo, 5, 0, torch::kCPU, at::kDouble);
    mlp->seed_dropout(99);
    return trajectory_rows(make_handle(mlp), data, o);
  };
  const TrajectoryRows plain = run(0.0);
  for (double v : plain.equations.target->values()) EXPECT_EQ(v, 0.0);
  const TrajectoryRows a = run(0.3), b = run(0.3);
  EXPECT_EQ(a.equations.target->values(), b.equations.target->values());
  EXPECT_GT(frobenius_norm(*a.equations.target), 0.0);
  const FitResult r = fit(a.equations, features_family());
  EXPECT_TRUE(std::isfinite(r.coefficient()));
}

TEST(Trajectory, RejectsBadOptions) {
  const ModelHandle model = linear_model(2);
  const Dataset data = regression_data(10, 2, 1);
  TrajectoryOptions o;
  o.steps = 5;
  o.checkpoints = {0, 5};
  EXPECT_THROW(trajectory_rows(model, data, o), InputError);
  o.checkpoints = {2, 1};
  EXPECT_THROW(trajectory_rows(model, data, o), InputError);
  o.checkpoints = {};
  o.learning_rate = 0.0;
  EXPECT_THROW(trajectory_rows(model, data, o), InputError);
  EXPECT_THROW(parse_trajectory_mode("adam"), InputError);
  EXPECT_EQ(parse_trajectory_mode("sgd"), TrajectoryMode::sgd);
  EXPECT_EQ(parse_trajectory_mode("coupled"), TrajectoryMode::coupled);
  EXPECT_EQ(to_string(TrajectoryMode::coupled), "coupled");
}

}  // namespace
}  // namespace gradmatch::training
