#include "training/flow.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.hpp"
#include "igr_problems.hpp"

namespace gradmatch::training {
namespace {

using testing::class_data;
using testing::exact_regression_flow;
using testing::linear_model;
using testing::regression_data;
using testing::tanh_classifier;

// ||theta_numerical(T) - theta_exact(T)|| of the linear-regression gradient
// flow from the model's start over T = 1, with k substeps.
double regression_flow_error(Integrator integrator, std::int64_t substeps) {
  const Dataset data = regression_data(80, 4, 31);
  const ModelHandle model = linear_model(4, 2);
  const Objective f(model, data, LossKind::mse);
  const at::Tensor theta0 = f.current();
  const double t = 1.0;
  const at::Tensor numerical = theta0 + objective_flow_displacement(f, theta0, t, substeps, integrator);
  return (numerical - exact_regression_flow(data, theta0, t)).norm().item<double>();
}

// Observed order log2(e(h) / e(h/2)): 4 for RK4 once h is in the asymptotic
// range (at k = 8 it is still 4.2 on this problem).
TEST(Flow, Rk4ErrorFallsSixteenfoldWhenTheStepHalves) {
  const double e16 = regression_flow_error(Integrator::rk4, 16);
  const double e32 = regression_flow_error(Integrator::rk4, 32);
  const double e64 = regression_flow_error(Integrator::rk4, 64);
  EXPECT_GT(e64, 1e-11);  // far above rounding: the ratios measure the method
  EXPECT_NEAR(std::log2(e16 / e32), 4.0, 0.15);
  EXPECT_NEAR(std::log2(e32 / e64), 4.0, 0.1);
}

TEST(Flow, EulerErrorHalvesWhenTheStepHalves) {
  const double e32 = regression_flow_error(Integrator::euler, 32);
  const double e64 = regression_flow_error(Integrator::euler, 64);
  EXPECT_NEAR(e32 / e64, 2.0, 0.1);
}

TEST(Flow, Rk4ReachesTheExactFlowToTwelveDigits) {
  EXPECT_LT(regression_flow_error(Integrator::rk4, 400), 1e-11);
}

// One GD step follows the modified flow to O(eta^3) but the gradient flow
// only to O(eta^2): halving eta divides the distances by ~8 and ~4.
TEST(Flow, GradientDescentFollowsTheModifiedFlowToThirdOrder) {
  const ModelHandle model = tanh_classifier(4, {6, 5}, 3);
  const Objective f(model, class_data(40, 4, 3, 41), LossKind::cross_entropy);
  const at::Tensor theta = f.current();
  const at::Tensor g = f.gradient(theta);
  const auto distances = [&](double eta) {
    const at::Tensor gd = -eta * g;
    const at::Tensor flow = objective_flow_displacement(f, theta, eta, 20, Integrator::rk4);
    const at::Tensor modified = objective_flow_displacement(f, theta, eta, 20, Integrator::rk4, eta);
    return std::pair{(gd - flow).norm().item<double>(), (gd - modified).norm().item<double>()};
  };
  const auto [flow_a, modified_a] = distances(0.04);
  const auto [flow_b, modified_b] = distances(0.02);
  EXPECT_NEAR(flow_a / flow_b, 4.0, 0.3);
  EXPECT_NEAR(modified_a / modified_b, 8.0, 0.8);
  EXPECT_LT(modified_b, 0.1 * flow_b);
}

TEST(Flow, Rk4UsesFourEvaluationsPerSubstepLessAGivenFirstStage) {
  const ModelHandle model = linear_model(3);
  const Objective f(model, regression_data(20, 3, 1), LossKind::mse);
  const at::Tensor theta = f.current();
  ParameterScope scope(model);
  const VectorField field = gradient_flow_field(f, scope);
  f.reset_counts();
  flow_displacement(field, theta, 0.1, 5, Integrator::rk4);
  EXPECT_EQ(f.counts().gradients, 20);
  f.reset_counts();
  flow_displacement(field, theta, 0.1, 5, Integrator::rk4, field(theta));
  EXPECT_EQ(f.counts().gradients, 20);  // 19 inside + the one given
  f.reset_counts();
  flow_displacement(field, theta, 0.1, 5, Integrator::euler);
  EXPECT_EQ(f.counts().gradients, 5);
}

TEST(Flow, ZeroDurationIsNoDisplacementAndTheModelIsRestored) {
  const ModelHandle model = linear_model(3);
  const at::Tensor before = flat_parameters(model, true);
  const Objective f(model, regression_data(20, 3, 1), LossKind::mse);
  EXPECT_EQ(objective_flow_displacement(f, before, 0.0, 3).abs().max().item<double>(), 0.0);
  objective_flow_displacement(f, before, 0.5, 3, Integrator::rk4, 0.1);
  EXPECT_TRUE(at::equal(flat_parameters(model, true), before));
}

TEST(Flow, RejectsBadArguments) {
  const VectorField zero = [](const at::Tensor& t) { return at::zeros_like(t); };
  const at::Tensor theta = at::zeros({2}, at::kDouble);
  EXPECT_THROW(flow_displacement(zero, theta, 1.0, 0), InputError);
  EXPECT_THROW(flow_displacement(zero, theta, -1.0, 2), InputError);
  EXPECT_THROW(parse_integrator("rk45"), InputError);
  EXPECT_EQ(parse_integrator("euler"), Integrator::euler);
  EXPECT_EQ(to_string(Integrator::rk4), "rk4");
}

}  // namespace
}  // namespace gradmatch::training
