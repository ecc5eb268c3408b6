// Retrain validation (paper section 2.1, second mode of success): retraining
// without the implicit mechanism and with the fitted explicit penalty should
// land near the original weights. Each test prints its numbers.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "core/fit.hpp"
#include "core/ols.hpp"
#include "training/data.hpp"
#include "training/endpoint.hpp"
#include "training/idx.hpp"
#include "training/models.hpp"
#include "training/retrain.hpp"
#include "training/stationarity.hpp"
#include "training/tensor_bridge.hpp"
#include "training/trainer.hpp"
#include "../required_inputs.hpp"

namespace gradmatch::training {
namespace {

const torch::Device kCpu(torch::kCPU);

FitResult fit_family(const ModelHandle& model, const Dataset& data, LossKind loss, const std::string& family) {
  EndpointOptions eo;
  eo.loss = loss;
  const Endpoint e = extract_endpoint(model, data, eo);
  FitOptions fo;
  fo.family = FamilySpec::parse(family);
  return fit(to_equations(std::span<const Endpoint>(&e, 1)), fo);
}

void print(const char* what, const ModelComparison& c) {
  std::printf("  %-34s |dtheta|/|theta| = %.3e  agreement = %.6f  prediction rmse = %.3e\n", what,
              c.relative_parameter_distance, c.prediction_agreement, c.prediction_rmse);
}

TrainOptions to_convergence(const Penalty& penalty) {
  TrainOptions o;
  o.optimizer.kind = OptimizerKind::lbfgs;
  o.optimizer.learning_rate = 1.0;
  o.optimizer.lbfgs_max_iter = 200;
  o.max_epochs = 3;
  o.penalty = penalty;
  return o;
}

TEST(Retrain, AnExplicitRidgeIsReproducedFromAnotherStart) {
  // Convex (linear model): the ridge solution is unique, so retraining with the
  // recovered lambda from a different initialisation lands on the same weights.
  const Dataset data = linear_regression({200, 6, 1.0, 0.5, {}}, 31, 0).data;
  MlpOptions mo;
  mo.inputs = 6;
  const ModelHandle original = make_handle(make_mlp(mo, 1, 0, kCpu, at::kDouble));
  train(original, data, Dataset{}, to_convergence(Penalty::ridge(0.1)));
  refine_stationary_point(original, data, LossKind::mse, Penalty::ridge(0.1));
  const FitResult r = fit_family(original, data, LossKind::mse, "ridge");
  const ModelHandle fresh = make_handle(make_mlp(mo, 2, 0, kCpu, at::kDouble));
  const RetrainResult rr =
      retrain_and_compare(original, fresh, data, to_convergence(penalty_from_fit(r, FamilySpec::parse("ridge"))), data);
  refine_stationary_point(fresh, data, LossKind::mse, penalty_from_fit(r, FamilySpec::parse("ridge")));
  const ModelComparison c = compare_models(original, fresh, data.x, LossKind::mse);
  std::printf("explicit ridge 0.1, lambda-hat = %.12g\n", r.coefficient());
  print("retrained with lambda-hat", c);
  EXPECT_NE(rr.training.status, TrainStatus::diverged);
  EXPECT_LT(c.relative_parameter_distance, 1e-10);
  EXPECT_GT(c.prediction_agreement, 1.0 - 1e-12);
}

TEST(Retrain, EarlyStoppingIsCloserToItsFittedRidgeThanToNoPenalty) {
  // OLS under full-batch GD from zero, stopped after 15 steps (section 3):
  // retrain to convergence with the fitted scalar ridge, and with nothing.
  const Dataset data = linear_regression({1000, 10, 3.0, 1.0, {}}, 56, 0).data;
  MlpOptions mo;
  mo.inputs = 10;
  mo.output_bias = false;
  const auto zero_model = [&] {
    const ModelHandle h = make_handle(make_mlp(mo, 1, 0, kCpu, at::kDouble));
    set_flat_parameters(h, at::zeros({10}, at::kDouble));
    return h;
  };
  const ModelHandle stopped = zero_model();
  TrainOptions gd;
  gd.optimizer.learning_rate = 0.01;
  gd.max_epochs = 15;
  train(stopped, data, Dataset{}, gd);
  const FitResult r = fit_family(stopped, data, LossKind::mse, "ridge");
  const ModelHandle ridge = zero_model();
  const ModelHandle plain = zero_model();
  const RetrainResult with_ridge =
      retrain_and_compare(stopped, ridge, data, to_convergence(Penalty::ridge(r.coefficient())), data);
  const RetrainResult without = retrain_and_compare(stopped, plain, data, to_convergence(Penalty::none()), data);
  std::printf("GD early-stopped at t = 15 (lr 0.01), fitted ridge lambda-hat = %.6g\n", r.coefficient());
  print("retrained with lambda-hat", with_ridge.comparison);
  print("retrained without penalty", without.comparison);
  // Full-batch GD on the mean squared error with lr eta is core/ols.hpp's GD
  // with epsilon = 2 eta, whose endpoint satisfies -grad L = 2 Lambda(t) theta
  // (Ali et al.): the scalar ridge fit is theta^T Lambda(15) theta / ||theta||^2.
  const Matrix x = to_matrix(data.x);
  const ols::Moments moments = ols::moments(x, std::vector<double>(static_cast<std::size_t>(x.rows()), 0.0));
  const Matrix lambda = ols::ali_lambda(ols::spectrum(moments.gram), 2.0 * 0.01, 15);
  const std::vector<double> theta = to_vector(flat_parameters(stopped));
  ASSERT_EQ(theta.size(), 10u);
  double quadratic = 0.0, norm2 = 0.0;
  for (std::size_t a = 0; a < 10; ++a) {
    norm2 += theta[a] * theta[a];
    for (std::size_t b = 0; b < 10; ++b)
      quadratic += theta[a] * lambda(static_cast<std::int64_t>(a), static_cast<std::int64_t>(b)) * theta[b];
  }
  EXPECT_NEAR(r.coefficient(), quadratic / norm2, 1e-9 * quadratic / norm2);
  EXPECT_LT(with_ridge.comparison.relative_parameter_distance, 0.5 * without.comparison.relative_parameter_distance);
  EXPECT_GT(with_ridge.comparison.prediction_agreement, without.comparison.prediction_agreement);
}

TEST(Retrain, DropoutIsCloserToItsFittedRidgeThanToNoPenalty) {
  // Appendix H.4 in miniature: an MLP classifier with dropout on a slice of
  // Fashion-MNIST; retrain from the same start and batch order without dropout,
  // with the fitted ridge and with nothing.
  GRADMATCH_NEEDS_FASHION_MNIST();
  const Dataset all = load_idx(kFashionMnistDir, IdxPart::train);
  const Dataset data = all.slice(0, 2000);
  const std::int64_t depth = 2, width = 32;
  const double rate = 0.3;
  TrainOptions sgd;
  sgd.loss = LossKind::cross_entropy;
  sgd.optimizer.learning_rate = 0.05;
  sgd.optimizer.momentum = 0.9;
  sgd.batch_size = 100;
  sgd.max_epochs = 15;
  sgd.seed = 3;
  const auto model = [&](double dropout) {
    Mlp m = make_mlp(classifier_options(784, depth, width, 10, dropout), 7, 0, kCpu, at::kFloat);
    m->seed_dropout(5);
    return make_handle(m);
  };
  const ModelHandle original = model(rate);
  const TrainResult t = train(original, data, Dataset{}, sgd);
  ASSERT_NE(t.status, TrainStatus::diverged);
  const FitResult r = fit_family(original, data, LossKind::cross_entropy, "ridge");
  TrainOptions explicit_ridge = sgd;
  explicit_ridge.penalty = Penalty::ridge(std::max(0.0, r.coefficient()));
  const RetrainResult with_ridge = retrain_and_compare(original, model(0.0), data, explicit_ridge, data);
  const RetrainResult without = retrain_and_compare(original, model(0.0), data, sgd, data);
  std::printf("dropout %.2f, depth %lld, width %lld, 2000 Fashion-MNIST images: lambda-hat = %.6g (cosine %.3f)\n", rate,
              static_cast<long long>(depth), static_cast<long long>(width), r.coefficient(), r.cosine);
  print("retrained with lambda-hat", with_ridge.comparison);
  print("retrained without penalty", without.comparison);
  EXPECT_GT(r.coefficient(), 0.0);
  // Parameter distances are large either way (SGD paths of a non-convex model
  // part quickly); the predictions are what the explicit penalty brings back.
  EXPECT_GT(with_ridge.comparison.prediction_agreement, without.comparison.prediction_agreement);
}

}  // namespace
}  // namespace gradmatch::training
