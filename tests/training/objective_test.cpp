#include "training/objective.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "igr_problems.hpp"
#include "training/stationarity.hpp"

namespace gradmatch::training {
namespace {

using testing::class_data;
using testing::linear_model;
using testing::regression_data;
using testing::regression_moments;
using testing::relative_error;
using testing::tanh_classifier;

at::Tensor random_vector(std::int64_t p, std::uint64_t seed) {
  Rng rng(seed, 9);
  at::Tensor v = at::empty({p}, at::kDouble);
  for (std::int64_t i = 0; i < p; ++i) v.data_ptr<double>()[i] = rng.normal();
  return v;
}

TEST(Objective, HessianVectorProductMatchesCentralDifferencesOfTheGradient) {
  const ModelHandle model = tanh_classifier(4, {6, 5}, 3);
  const Dataset data = class_data(40, 4, 3, 11);
  const Objective f(model, data, LossKind::cross_entropy);
  // A point that is not the model's own parameters.
  const at::Tensor theta = f.current() + 0.3 * random_vector(f.p(), 1);
  const at::Tensor v = random_vector(f.p(), 2);
  const double eps = 1e-5;
  const at::Tensor fd = (f.gradient(theta + eps * v) - f.gradient(theta - eps * v)) / (2.0 * eps);
  const at::Tensor hv = f.hvp(theta, v);
  EXPECT_EQ(hv.scalar_type(), at::kDouble);
  EXPECT_LT(relative_error(hv, fd), 1e-8);
}

TEST(Objective, LeavesTheModelsParametersModeAndGradientsUntouched) {
  const ModelHandle model = tanh_classifier(4, {6}, 3);
  const Dataset data = class_data(30, 4, 3, 12);
  model.set_training(true);
  const at::Tensor before = flat_parameters(model, true);
  const Objective f(model, data, LossKind::cross_entropy);
  const at::Tensor theta = before + random_vector(f.p(), 3);
  f.gradient(theta);
  f.hvp(theta, random_vector(f.p(), 4));
  f.gradient_and_hvp(theta);
  f.value(theta);
  EXPECT_TRUE(at::equal(flat_parameters(model, true), before));
  EXPECT_TRUE(model.is_training());
  for (const auto& p : model.parameters) EXPECT_FALSE(p.grad().defined());
}

TEST(Objective, GradientAndHvpEqualSeparateCalls) {
  const ModelHandle model = tanh_classifier(4, {6, 5}, 3);
  const Dataset data = class_data(40, 4, 3, 13);
  const Objective f(model, data, LossKind::cross_entropy);
  const at::Tensor theta = f.current() + 0.1 * random_vector(f.p(), 5);
  const GradientAndHvp gh = f.gradient_and_hvp(theta);
  const at::Tensor g = f.gradient(theta);
  EXPECT_LT(relative_error(gh.gradient, g), 1e-14);
  EXPECT_LT(relative_error(gh.hvp, f.hvp(theta, g)), 1e-13);
  EXPECT_EQ(f.counts().gradients, 1);
  EXPECT_EQ(f.counts().hvps, 2);
}

TEST(Objective, BatchedSumsEqualOneBatch) {
  const ModelHandle model = tanh_classifier(4, {6, 5}, 3);
  const Dataset data = class_data(41, 4, 3, 14);
  const Objective whole(model, data, LossKind::cross_entropy, Penalty::ridge(0.01));
  const Objective batched(model, data, LossKind::cross_entropy, Penalty::ridge(0.01), /*batch_size=*/8);
  const at::Tensor theta = whole.current() + 0.1 * random_vector(whole.p(), 6);
  const at::Tensor v = random_vector(whole.p(), 7);
  EXPECT_NEAR(batched.value(theta), whole.value(theta), 1e-14);
  EXPECT_LT(relative_error(batched.gradient(theta), whole.gradient(theta)), 1e-13);
  EXPECT_LT(relative_error(batched.hvp(theta, v), whole.hvp(theta, v)), 1e-13);
  const GradientAndHvp a = batched.gradient_and_hvp(theta), b = whole.gradient_and_hvp(theta);
  EXPECT_LT(relative_error(a.gradient, b.gradient), 1e-13);
  EXPECT_LT(relative_error(a.hvp, b.hvp), 1e-13);
}

TEST(Objective, LinearRegressionHasGradientTwiceTheResidualAndHessianTwiceTheGram) {
  const Dataset data = regression_data(60, 4, 21);
  const ModelHandle model = linear_model(4);
  const Objective f(model, data, LossKind::mse);
  const auto m = regression_moments(data);
  const at::Tensor theta = random_vector(4, 8);
  const at::Tensor v = random_vector(4, 9);
  EXPECT_LT(relative_error(f.gradient(theta), 2.0 * (at::matmul(m.s, theta) - m.r)), 1e-13);
  EXPECT_LT(relative_error(f.hvp(theta, v), 2.0 * at::matmul(m.s, v)), 1e-13);
}

TEST(Objective, Float32ModelsComputeInFloat32) {
  MlpOptions o = testing::tanh_options(3, {4}, 2);
  const ModelHandle model = make_handle(make_mlp(o, 1, 0, torch::kCPU, at::kFloat));
  const Objective f(model, class_data(10, 3, 2, 15), LossKind::cross_entropy);
  EXPECT_EQ(f.options().dtype(), at::kFloat);
  const GradientAndHvp gh = f.gradient_and_hvp(f.current());
  EXPECT_EQ(gh.gradient.scalar_type(), at::kFloat);
  EXPECT_EQ(gh.hvp.scalar_type(), at::kFloat);
}

TEST(Objective, StationarityHvpIsTheObjectivesAtTheCurrentPoint) {
  const ModelHandle model = tanh_classifier(4, {5}, 3);
  const Dataset data = class_data(25, 4, 3, 16);
  const Objective f(model, data, LossKind::cross_entropy, Penalty::ridge(0.1));
  const at::Tensor v = random_vector(f.p(), 10);
  EXPECT_TRUE(at::equal(hessian_vector_product(model, data, LossKind::cross_entropy, Penalty::ridge(0.1), v),
                        f.hvp(f.current(), v)));
}

TEST(Objective, RejectsAWrongSizedPoint) {
  const ModelHandle model = linear_model(3);
  const at::Tensor before = flat_parameters(model, true);
  const Objective f(model, regression_data(10, 3, 1), LossKind::mse);
  EXPECT_THROW(f.gradient(at::zeros({4}, at::kDouble)), InputError);
  EXPECT_THROW(f.hvp(at::zeros({3}, at::kDouble), at::zeros({2}, at::kDouble)), InputError);
  EXPECT_TRUE(at::equal(flat_parameters(model, true), before));
}

}  // namespace
}  // namespace gradmatch::training
