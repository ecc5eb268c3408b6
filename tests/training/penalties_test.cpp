// Explicit training penalties: their autograd gradients are the core's
// regularizer columns (the columns `gradmatch fit` regresses on), and their
// values are the core's values.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <vector>

#include "core/errors.hpp"
#include "core/regularizers.hpp"
#include "training/penalties.hpp"
#include "training/tensor_bridge.hpp"

namespace gradmatch::training {
namespace {

// Two parameter tensors whose entries straddle the Huber width beta = 0.3:
// inside, outside, exactly at +-beta and at zero.
std::vector<at::Tensor> parameters() {
  std::vector<double> a = {0.0, 0.1, -0.2, 0.3, -0.3, 0.7, -1.5, 0.299999, 2.0};
  std::vector<double> b = {-0.05, 0.45, 3.0, -0.31};
  return {to_tensor(a, {3, 3}).requires_grad_(true), to_tensor(b, {4}).requires_grad_(true)};
}

std::vector<double> flat(const std::vector<at::Tensor>& ts) {
  std::vector<double> out;
  for (const auto& t : ts) {
    const auto v = to_vector(t);
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

std::vector<double> autograd_gradient(const Penalty& penalty, const std::vector<at::Tensor>& params) {
  const at::Tensor r = penalty_value(penalty, params);
  return flat(torch::autograd::grad({r}, params));
}

TEST(Penalties, RidgeGradientIsTheCoreColumn) {
  const auto params = parameters();
  const std::vector<double> theta = flat(params);
  std::vector<double> expected(theta.size());
  reg::ridge_gradient(theta, 0.37, expected);
  const std::vector<double> got = autograd_gradient(Penalty::ridge(0.37), params);
  for (std::size_t j = 0; j < theta.size(); ++j) EXPECT_DOUBLE_EQ(got[j], expected[j]) << j;
  EXPECT_DOUBLE_EQ(penalty_value(Penalty::ridge(0.37), params).item<double>(), reg::ridge_value(theta, 0.37));
}

TEST(Penalties, HuberGradientIsTheCoreColumnOnBothSidesOfBeta) {
  const auto params = parameters();
  const std::vector<double> theta = flat(params);
  std::vector<double> expected(theta.size());
  reg::huber_gradient(theta, 1.7, 0.3, expected);
  const std::vector<double> got = autograd_gradient(Penalty::huber(1.7, 0.3), params);
  for (std::size_t j = 0; j < theta.size(); ++j) EXPECT_NEAR(got[j], expected[j], 1e-15) << "theta = " << theta[j];
  EXPECT_NEAR(penalty_value(Penalty::huber(1.7, 0.3), params).item<double>(), reg::huber_value(theta, 1.7, 0.3), 1e-14);
}

TEST(Penalties, ElasticNetGradientIsTheCoreColumn) {
  const auto params = parameters();
  const std::vector<double> theta = flat(params);
  std::vector<double> expected(theta.size());
  reg::elastic_net_gradient(theta, 0.8, 0.05, 0.3, expected);
  const std::vector<double> got = autograd_gradient(Penalty::elastic_net(0.8, 0.05, 0.3), params);
  for (std::size_t j = 0; j < theta.size(); ++j) EXPECT_NEAR(got[j], expected[j], 1e-15) << "theta = " << theta[j];
  EXPECT_NEAR(penalty_value(Penalty::elastic_net(0.8, 0.05, 0.3), params).item<double>(),
              reg::elastic_net_value(theta, 0.8, 0.05, 0.3), 1e-14);
}

TEST(Penalties, FloatParametersGiveTheSameColumnsToFloatPrecision) {
  std::vector<at::Tensor> params;
  for (const auto& p : parameters()) params.push_back(p.detach().to(at::kFloat).requires_grad_(true));
  const std::vector<double> theta = flat(params);
  std::vector<double> expected(theta.size());
  reg::elastic_net_gradient(theta, 0.8, 0.05, 0.3, expected);
  const std::vector<double> got = autograd_gradient(Penalty::elastic_net(0.8, 0.05, 0.3), params);
  for (std::size_t j = 0; j < theta.size(); ++j) EXPECT_NEAR(got[j], expected[j], 1e-6) << "theta = " << theta[j];
}

std::vector<double> closed_form_gradient(const Penalty& penalty, const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    grads.push_back(penalty_gradient(penalty, p));
    EXPECT_FALSE(grads.back().requires_grad());  // outside autograd: training adds it to the loss's gradient
  }
  return flat(grads);
}

TEST(Penalties, TheClosedFormGradientIsTheCoreColumnAndTheAutogradGradientOfTheValue) {
  const auto params = parameters();
  const std::vector<double> theta = flat(params);
  std::vector<double> ridge(theta.size()), huber(theta.size()), elastic(theta.size());
  reg::ridge_gradient(theta, 0.37, ridge);
  reg::huber_gradient(theta, 1.7, 0.3, huber);
  reg::elastic_net_gradient(theta, 0.8, 0.05, 0.3, elastic);
  const std::vector<std::pair<Penalty, std::vector<double>>> cases = {
      {Penalty::ridge(0.37), ridge}, {Penalty::huber(1.7, 0.3), huber}, {Penalty::elastic_net(0.8, 0.05, 0.3), elastic}};
  for (const auto& [penalty, core] : cases) {
    const std::vector<double> got = closed_form_gradient(penalty, params);
    const std::vector<double> autograd = autograd_gradient(penalty, params);
    ASSERT_EQ(got.size(), theta.size());
    for (std::size_t j = 0; j < theta.size(); ++j) {
      // Inside (-beta, beta), at +-beta, outside and at zero: the core's value.
      EXPECT_DOUBLE_EQ(got[j], core[j]) << penalty.to_string() << ", theta = " << theta[j];
      EXPECT_NEAR(got[j], autograd[j], 1e-15) << penalty.to_string() << ", theta = " << theta[j];
    }
  }
  // float32 parameters: float32 arithmetic, the core's column to float precision.
  for (const auto& [penalty, core] : cases) {
    std::vector<at::Tensor> floats;
    for (const auto& p : params) floats.push_back(p.detach().to(at::kFloat));
    const std::vector<double> got = closed_form_gradient(penalty, floats);
    for (std::size_t j = 0; j < theta.size(); ++j) EXPECT_NEAR(got[j], core[j], 1e-6) << penalty.to_string();
  }
}

TEST(Penalties, TheClosedFormGradientOfNoneIsZeroAndACustomPenaltyHasNone) {
  for (const double g : closed_form_gradient(Penalty::none(), parameters())) EXPECT_EQ(g, 0.0);
  const Penalty custom = Penalty::custom([](const std::vector<at::Tensor>& p) { return p.front().sum(); }, "sum");
  EXPECT_THROW(penalty_gradient(custom, parameters().front()), InputError);
}

TEST(Penalties, NoneIsZeroAndBadWeightsAreRejected) {
  EXPECT_EQ(penalty_value(Penalty::none(), parameters()).item<double>(), 0.0);
  EXPECT_THROW(Penalty::ridge(-1.0).validate(), InputError);
  EXPECT_THROW(Penalty::huber(1.0, 0.0).validate(), InputError);
  EXPECT_NO_THROW(Penalty::elastic_net(1.0, 0.5, 1e-3).validate());
}

}  // namespace
}  // namespace gradmatch::training
