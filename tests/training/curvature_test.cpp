// Curvature at a point: s_eff and lambda_max against the linear-regression
// Hessian H = 2 X^T X / n, computed exactly, and the finite-step factor
// against its closed form and the GD-vs-flow difference it describes.
#include "training/curvature.hpp"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "igr_problems.hpp"
#include "training/losses.hpp"

namespace gradmatch::training {
namespace {

using testing::linear_model;
using testing::regression_data;

// r(x) = 2 sum_{k>=2} (-x)^(k-2) / k!, summed in long double to 60 terms.
double series(double x) {
  long double term = 1.0L, sum = 0.0L;
  for (int k = 2; k < 60; ++k) {
    term /= k;  // 1 / k!
    sum += (k % 2 == 0 ? 1.0L : -1.0L) * term * std::pow(static_cast<long double>(x), k - 2);
  }
  return static_cast<double>(2.0L * sum);
}

TEST(FiniteStepFactor, MatchesItsSeriesOnBothSidesOfTheSwitch) {
  EXPECT_DOUBLE_EQ(finite_step_factor(0.0), 1.0);
  for (double x : {1e-9, 1e-5, 9.99e-3, 1e-2, 0.05, 0.3, 1.0, 2.0, 5.0})
    EXPECT_NEAR(finite_step_factor(x), series(x), 1e-13) << x;
  EXPECT_NEAR(finite_step_factor(2.0), 0.5677, 1e-4);
  EXPECT_LT(finite_step_factor(1.0), finite_step_factor(0.5));  // decreasing
}

TEST(FiniteStepFactor, IsTheRatioOfGdToFlowDifferenceOnAQuadratic) {
  // 1-D quadratic F = s theta^2 / 2: GD step eta vs the flow over time eta
  // differ by theta (e^{-x} - 1 + x); the leading-order IGR term is theta x^2 / 2.
  const double s = 3.0, theta = 0.7;
  for (double eta : {0.02, 0.1, 0.5}) {  // x >= 0.06: the difference below keeps 11 digits
    const double x = eta * s;
    const double gd = theta * (1.0 - x), flow = theta * std::exp(-x);
    EXPECT_NEAR((gd - flow) / (-theta * x * x / 2.0), finite_step_factor(x), 1e-11) << eta;
  }
}

class CurvatureOfLinearRegression : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = regression_data(200, 6, 17);
    model_ = linear_model(6);
    const at::Tensor x = data_.x.to(at::kDouble);
    hessian_ = 2.0 * x.t().mm(x) / static_cast<double>(x.size(0));
  }
  Dataset data_;
  ModelHandle model_;
  at::Tensor hessian_;
};

TEST_F(CurvatureOfLinearRegression, SeffIsTheRayleighQuotientOfHAlongHg) {
  const Objective f(model_, data_, LossKind::mse);
  const at::Tensor before = f.current().clone();
  const at::Tensor theta = at::full({6}, 0.3, at::kDouble);
  const at::Tensor g = f.gradient(theta);
  const at::Tensor u = hessian_.mv(g);
  const double expected = at::dot(u, hessian_.mv(u)).item<double>() / at::dot(u, u).item<double>();
  const Curvature c = curvature(f, theta);
  EXPECT_NEAR(c.s_eff, expected, 1e-10 * expected);
  // The model's own parameters are untouched.
  EXPECT_TRUE(at::equal(f.current(), before));
}

TEST_F(CurvatureOfLinearRegression, LambdaMaxIsTheTopEigenvalueOfTwoXtXOverN) {
  const Objective f(model_, data_, LossKind::mse);
  const at::Tensor theta = at::zeros({6}, at::kDouble);
  const double top = std::get<0>(at::linalg_eigh(hessian_)).max().item<double>();
  CurvatureOptions o;
  o.max_iterations = 2000;
  o.tolerance = 1e-13;
  const Curvature c = curvature(f, theta, o);
  EXPECT_TRUE(c.converged);
  EXPECT_NEAR(c.lambda_max, top, 1e-8 * top);
  EXPECT_LE(c.s_eff, c.lambda_max * (1.0 + 1e-12));  // a Rayleigh quotient cannot exceed it
}

TEST_F(CurvatureOfLinearRegression, AZeroHessianDirectionGivesNaNNotANumberThatMeansNothing) {
  // Inputs all zero: H = 0 and g = 0 exactly, so H g = 0 has no direction.
  Dataset flat = data_;
  flat.x = at::zeros_like(data_.x);
  const Objective f(model_, flat, LossKind::mse);
  const Curvature c = curvature(f, at::full({6}, 0.3, at::kDouble));
  EXPECT_TRUE(std::isnan(c.s_eff));
  EXPECT_TRUE(std::isnan(c.lambda_max));
  EXPECT_EQ(c.iterations, 0);
}

// <u, r(eta H) u> / ||u||^2 from H's eigendecomposition, u = H g at theta.
double dense_step_factor(const at::Tensor& hessian, const at::Tensor& u, double eta) {
  const auto [values, vectors] = at::linalg_eigh(hessian);
  const at::Tensor c = vectors.t().mv(u);
  double num = 0.0;
  for (std::int64_t i = 0; i < values.size(0); ++i)
    num += finite_step_factor(eta * values[i].item<double>()) * c[i].item<double>() * c[i].item<double>();
  return num / at::dot(u, u).item<double>();
}

TEST_F(CurvatureOfLinearRegression, QuadratureStepFactorIsRAveragedOverTheSpectrumAlongHg) {
  const Objective f(model_, data_, LossKind::mse);
  const at::Tensor before = f.current().clone();
  const at::Tensor theta = at::full({6}, 0.3, at::kDouble);
  const double top = std::get<0>(at::linalg_eigh(hessian_)).max().item<double>();
  const at::Tensor u = hessian_.mv(f.gradient(theta));
  for (double x_max : {0.1, 1.0, 1.6, 1.9}) {  // eta lambda_max: up to the stability limit 2
    const double eta = x_max / top;
    const StepFactor s = quadratic_step_factor(f, theta, eta);
    EXPECT_NEAR(s.factor, dense_step_factor(hessian_, u, eta), 1e-12) << x_max;
    EXPECT_NEAR(s.weight, at::dot(u, u).item<double>(), 1e-12 * s.weight);
    EXPECT_TRUE(s.converged);
    EXPECT_LE(s.steps, 6);  // a 6-dimensional Krylov space closes after at most 6 steps
  }
  EXPECT_TRUE(at::equal(f.current(), before));  // the model's parameters are restored
}

TEST_F(CurvatureOfLinearRegression, SpreadOfCurvaturesRaisesTheStepFactorAboveRAtSeff) {
  // Jensen: r is convex and s_eff is the spectrum's mean weighted along H g.
  const Objective f(model_, data_, LossKind::mse);
  const at::Tensor theta = at::full({6}, 0.3, at::kDouble);
  const double top = std::get<0>(at::linalg_eigh(hessian_)).max().item<double>();
  const double eta = 1.6 / top;
  const Curvature c = curvature(f, theta);
  const StepFactor s = quadratic_step_factor(f, theta, eta);
  EXPECT_GT(s.factor, finite_step_factor(eta * c.s_eff) + 5e-4);  // 0.6486 against 0.6475
}

TEST_F(CurvatureOfLinearRegression, AlongAnEigenvectorTheStepFactorIsRAtItsEigenvalue) {
  // g = H (theta - theta*), so theta = theta* + v puts H g = s^2 v on the
  // eigenvector v: one curvature, one Lanczos step, r(eta s) = r(eta s_eff).
  const Objective f(model_, data_, LossKind::mse);
  const at::Tensor x = data_.x.to(at::kDouble), y = data_.y.to(at::kDouble).reshape({-1, 1});
  const at::Tensor optimum = at::linalg_solve(x.t().mm(x), x.t().mm(y)).reshape({-1});
  const auto [values, vectors] = at::linalg_eigh(hessian_);
  const double s = values[2].item<double>();
  const double eta = 1.5 / s;
  const at::Tensor theta = optimum + vectors.select(1, 2);
  const StepFactor q = quadratic_step_factor(f, theta, eta);
  EXPECT_NEAR(q.factor, finite_step_factor(1.5), 1e-9);
  EXPECT_NEAR(q.factor, finite_step_factor(eta * curvature(f, theta).s_eff), 1e-9);
  EXPECT_LE(q.steps, 2);
}

TEST_F(CurvatureOfLinearRegression, AQuadraticHasNoThirdOrderTerm) {
  const Objective f(model_, data_, LossKind::mse);
  const StepFactor t = third_order_step_term(f, at::full({6}, 0.3, at::kDouble), 0.05);
  EXPECT_TRUE(t.converged);
  EXPECT_NEAR(t.factor, 0.0, 1e-10);
}

// D3L[g, g] by triple backprop through the model: the serial reference of
// the central difference of HVPs.
at::Tensor third_derivative_along_gradient(const ModelHandle& model, const Dataset& data, const at::Tensor& theta) {
  const std::vector<at::Tensor> saved = snapshot_parameters(model);
  set_flat_parameters(model, theta);
  for (const at::Tensor& p : model.parameters) p.requires_grad_(true);
  const auto flat = [](const std::vector<at::Tensor>& parts) {
    std::vector<at::Tensor> v;
    for (const at::Tensor& t : parts) v.push_back(t.reshape({-1}));
    return at::cat(v);
  };
  const at::Tensor loss = mean_loss(LossKind::cross_entropy, model.forward(data.x), data.y);
  const at::Tensor g = flat(torch::autograd::grad({loss}, model.parameters, {}, true, true));
  const at::Tensor gc = g.detach();
  const at::Tensor hg = flat(torch::autograd::grad({at::dot(g, gc)}, model.parameters, {}, true, true));
  const at::Tensor t = flat(torch::autograd::grad({at::dot(hg, gc)}, model.parameters));
  restore_parameters(model, saved);
  return t.detach();
}

TEST(ThirdOrderStepTerm, EqualsTripleBackpropOnATanhClassifier) {
  const Dataset data = testing::class_data(64, 5, 3, 62);
  const ModelHandle model = testing::tanh_classifier(5, {8, 8}, 3);
  const Objective f(model, data, LossKind::cross_entropy);
  const at::Tensor theta = f.current();
  const double eta = 0.1;
  const GradientAndHvp gh = f.gradient_and_hvp(theta);
  const at::Tensor t = third_derivative_along_gradient(model, data, theta);
  const double expected = -(eta / 3.0) * at::dot(gh.hvp, t).item<double>() / at::dot(gh.hvp, gh.hvp).item<double>();
  const StepFactor term = third_order_step_term(f, theta, eta);
  EXPECT_NEAR(term.factor, expected, 1e-6 * std::abs(expected));
  EXPECT_GT(std::abs(expected), 1e-4);  // a tanh network is not a quadratic
  EXPECT_TRUE(at::equal(f.current(), theta));  // the model's parameters are restored
}

TEST(PooledStepFactor, WeighsRowsByTheirSquaredHgAndSkipsRowsWithoutADirection) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<StepFactor> rows{{0.6, 1.0, 3, true}, {0.9, 3.0, 3, true}, {nan, 0.0, 0, false}};
  EXPECT_DOUBLE_EQ(pooled_step_factor(rows), (0.6 * 1.0 + 0.9 * 3.0) / 4.0);
  EXPECT_TRUE(std::isnan(pooled_step_factor(std::span(rows).subspan(2))));
}

TEST_F(CurvatureOfLinearRegression, AZeroHgGivesANaNStepFactorWithoutAnyHvpStep) {
  Dataset flat = data_;
  flat.x = at::zeros_like(data_.x);
  const Objective f(model_, flat, LossKind::mse);
  const StepFactor s = quadratic_step_factor(f, at::full({6}, 0.3, at::kDouble), 0.1);
  EXPECT_TRUE(std::isnan(s.factor));
  EXPECT_EQ(s.steps, 0);
}

}  // namespace
}  // namespace gradmatch::training
