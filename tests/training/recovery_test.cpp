// End to end: train with a known explicit penalty to a stationary point
// (full-batch L-BFGS, float64), extract the endpoint's equations, and recover
// the penalty by gradient matching -- also through a version-1 equation file,
// as `gradmatch fit` would read it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/fit.hpp"
#include "io/equation_file.hpp"
#include "test_support.hpp"
#include "training/data.hpp"
#include "training/endpoint.hpp"
#include "training/models.hpp"
#include "training/stationarity.hpp"
#include "training/trainer.hpp"

namespace gradmatch::training {
namespace {

const torch::Device kCpu(torch::kCPU);

TrainOptions stationary(const Penalty& penalty) {
  TrainOptions o;
  o.optimizer.kind = OptimizerKind::lbfgs;
  o.optimizer.learning_rate = 1.0;
  o.optimizer.lbfgs_max_iter = 200;
  o.max_epochs = 2;
  o.penalty = penalty;
  return o;
}

Endpoint train_to_stationarity(const MlpOptions& mo, const Dataset& data, const Penalty& penalty,
                               std::vector<Candidate> candidates = {}) {
  const ModelHandle h = make_handle(make_mlp(mo, 11, 0, kCpu, at::kDouble));
  const TrainResult r = train(h, data, Dataset{}, stationary(penalty));
  EXPECT_NE(r.status, TrainStatus::diverged) << r.message;
  // L-BFGS stalls near a relative residual of 1e-7; Newton polishes to ~1e-15.
  EXPECT_LT(refine_stationary_point(h, data, LossKind::mse, penalty), 1e-12);
  EndpointOptions eo;
  eo.candidates = std::move(candidates);
  eo.batch_size = 64;
  return extract_endpoint(h, data, eo);
}

double relative_error(double estimate, double truth) { return std::abs(estimate / truth - 1.0); }

TEST(Recovery, RidgeOfALinearModel) {
  const Dataset data = linear_regression({200, 5, 1.0, 0.5, {}}, 21, 0).data;
  MlpOptions mo;
  mo.inputs = 5;
  const Endpoint e = train_to_stationarity(mo, data, Penalty::ridge(0.05));
  const Equations eq = to_equations(std::span<const Endpoint>(&e, 1));
  FitOptions fo;
  fo.family = FamilySpec::parse("ridge");
  const FitResult r = fit(eq, fo);
  EXPECT_LT(relative_error(r.coefficient(), 0.05), 1e-9) << r.coefficient();
  // The penalty holds theta off the loss minimum: at the refined stationary point
  // grad L = -2 (0.05) theta to 1e-12, so ||grad L|| / ||theta|| = 0.1.
  EXPECT_NEAR(e.relative_gradient_norm, 0.1, 1e-10);
}

TEST(Recovery, RidgeOfATanhMlpThroughAnEquationFile) {
  const Dataset data = linear_regression({150, 4, 1.0, 0.3, {}}, 22, 0).data;
  MlpOptions mo;
  mo.inputs = 4;
  mo.hidden = {8};
  mo.activation = Activation::tanh;
  const Endpoint e = train_to_stationarity(mo, data, Penalty::ridge(0.01), {Candidate::parse("ridge")});
  const Equations eq = to_equations(std::span<const Endpoint>(&e, 1));
  testing::TempDir dir;
  io::write_equation_file(dir.file("eq.h5"), eq);
  const Equations back = io::read_equation_file(dir.file("eq.h5"));
  FitOptions fo;
  fo.family = FamilySpec::parse("ridge");
  const FitResult r = fit(back, fo);
  EXPECT_LT(relative_error(r.coefficient(), 0.01), 1e-9) << r.coefficient();
  EXPECT_LT(r.residual_ratio, 1e-10);
  // The same estimate from the written feature column.
  fo.family = FamilySpec::parse("features");
  const FitResult f = fit(back, fo);
  EXPECT_NEAR(f.coefficient(), r.coefficient(), 1e-12 * r.coefficient());
}

TEST(Recovery, ElasticNetOfAReluMlp) {
  const Dataset data = linear_regression({150, 4, 2.0, 0.5, {}}, 23, 0).data;
  MlpOptions mo;
  mo.inputs = 4;
  mo.hidden = {10};
  const double l1 = 0.02, l2 = 0.01, beta = 0.05;
  const Endpoint e = train_to_stationarity(mo, data, Penalty::elastic_net(l1, l2, beta));
  const Equations eq = to_equations(std::span<const Endpoint>(&e, 1));
  FitOptions fo;
  fo.family = FamilySpec::parse("elastic-net:beta=0.05");
  const FitResult r = fit(eq, fo);
  EXPECT_LT(relative_error(r.coefficient(0), l1), 1e-8) << r.coefficient(0);
  EXPECT_LT(relative_error(r.coefficient(1), l2), 1e-8) << r.coefficient(1);
}

}  // namespace
}  // namespace gradmatch::training
