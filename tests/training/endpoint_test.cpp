// Endpoint extraction: the full-batch mean loss gradient (batched = one
// batch = closed form), eval mode, and the candidate regularizer columns.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.hpp"
#include "training/data.hpp"
#include "training/endpoint.hpp"
#include "training/trainer.hpp"
#include "training/models.hpp"
#include "training/tensor_bridge.hpp"

namespace gradmatch::training {
namespace {

const torch::Device kCpu(torch::kCPU);

Dataset regression_data(std::int64_t n, std::int64_t d, std::int64_t k, std::uint64_t seed) {
  const SyntheticData s = linear_regression({n, d * k, 1.0, 0.3, {}}, seed, 0);
  // k outputs: reuse the generator's columns as targets.
  Dataset out;
  out.x = s.data.x.slice(1, 0, d).contiguous();
  out.y = at::matmul(s.data.x, at::ones({d * k, k}, at::kDouble)) * 0.1 + s.data.y;
  return out;
}

TEST(Endpoint, BatchedGradientEqualsOneBatch) {
  MlpOptions o;
  o.inputs = 4;
  o.hidden = {6, 5};
  o.outputs = 2;
  o.activation = Activation::tanh;
  o.dropout = 0.4;  // eval mode: no dropout in the equations
  const ModelHandle h = make_handle(make_mlp(o, 3, 0, kCpu, at::kDouble));
  const Dataset data = regression_data(103, 4, 2, 9);
  const at::Tensor one = full_batch_gradient(h, data, LossKind::mse);
  for (std::int64_t b : {1, 7, 32, 102}) {
    const at::Tensor batched = full_batch_gradient(h, data, LossKind::mse, b);
    EXPECT_LT((batched - one).abs().max().item<double>(), 1e-15 * (1.0 + one.abs().max().item<double>())) << b;
  }
  EXPECT_TRUE(h.is_training());  // restored after the eval-mode computation
}

TEST(Endpoint, LinearMseGradientHasTheClosedForm) {
  // f(x) = W x + c, L = (1/(n k)) sum_i ||W x_i + c - y_i||^2:
  //   grad_W = (2/(n k)) R^T X,  grad_c = (2/(n k)) R^T 1,  R = X W^T + 1 c^T - Y.
  const std::int64_t n = 57, d = 3, k = 2;
  MlpOptions o;
  o.inputs = d;
  o.outputs = k;
  Mlp mlp = make_mlp(o, 4, 0, kCpu, at::kDouble);
  const ModelHandle h = make_handle(mlp);
  const Dataset data = regression_data(n, d, k, 2);
  const at::Tensor w = mlp->layers()[0]->weight.detach();
  const at::Tensor c = mlp->layers()[0]->bias.detach();
  const at::Tensor r = at::matmul(data.x, w.t()) + c - data.y;
  const double scale = 2.0 / static_cast<double>(n * k);
  const at::Tensor expected = at::cat({(scale * at::matmul(r.t(), data.x)).reshape({-1}), scale * r.sum(0)});
  double loss = 0.0;
  const at::Tensor got = full_batch_gradient(h, data, LossKind::mse, 10, ForwardMode::eval, &loss);
  EXPECT_LT((got - expected).abs().max().item<double>(), 1e-14);
  // The mean loss of the same forward passes: ||R||_F^2 / (n k).
  EXPECT_NEAR(loss, r.square().sum().item<double>() / static_cast<double>(n * k), 1e-14);
}

TEST(Endpoint, CandidateColumnsHaveTheirDefinitions) {
  MlpOptions o;
  o.inputs = 3;
  o.hidden = {4};
  o.outputs = 2;
  o.hidden_bias = false;
  Mlp mlp = make_mlp(o, 8, 0, kCpu, at::kDouble);
  const ModelHandle h = make_handle(mlp);
  const Dataset data = regression_data(40, 3, 2, 5);
  const std::vector<Candidate> cands = {Candidate::parse("ridge"), Candidate::parse("huber:beta=0.2"),
                                        Candidate::parse("layerwise-ridge"), Candidate::parse("activation-quadratic"),
                                        Candidate::parse("nuclear")};
  const std::vector<Column> cols = candidate_columns(h, cands, data, 16);
  std::vector<std::string> names;
  for (const auto& c : cols) names.push_back(c.first);
  const std::vector<std::string> expected_names = {"ridge", "huber", "layerwise_ridge.layer0", "layerwise_ridge.layer1",
                                                   "activation_quadratic", "nuclear"};
  ASSERT_EQ(names, expected_names);
  const std::vector<double> theta = to_vector(flat_parameters(h));
  const std::size_t p = theta.size();  // 12 + 8 + 2
  ASSERT_EQ(p, 22u);
  for (std::size_t j = 0; j < p; ++j) {
    EXPECT_DOUBLE_EQ(cols[0].second[j], 2.0 * theta[j]);
    const double hub = std::abs(theta[j]) < 0.2 ? theta[j] / 0.2 : (theta[j] > 0 ? 1.0 : -1.0);
    EXPECT_DOUBLE_EQ(cols[1].second[j], hub);
    // The layerwise columns split the ridge column.
    EXPECT_DOUBLE_EQ(cols[2].second[j] + cols[3].second[j], cols[0].second[j]);
    EXPECT_EQ(cols[2].second[j] == 0.0, j >= 12);
  }
  // Activation quadratic: 2 W_ij m_j with m the input second moments; 0 on the output bias.
  const at::Tensor m0 = data.x.square().mean(0);
  const at::Tensor a1 = at::relu(at::matmul(data.x, mlp->layers()[0]->weight.detach().t()));
  const at::Tensor m1 = a1.square().mean(0);
  const std::vector<double> q0 = to_vector(2.0 * mlp->layers()[0]->weight.detach() * m0);
  const std::vector<double> q1 = to_vector(2.0 * mlp->layers()[1]->weight.detach() * m1);
  for (std::size_t j = 0; j < 12; ++j) EXPECT_NEAR(cols[4].second[j], q0[j], 1e-14);
  for (std::size_t j = 0; j < 8; ++j) EXPECT_NEAR(cols[4].second[12 + j], q1[j], 1e-14);
  EXPECT_EQ(cols[4].second[20], 0.0);
  EXPECT_EQ(cols[4].second[21], 0.0);
  // Nuclear: <U V^T, W> = ||W||_* per layer, and U V^T has unit singular values.
  double inner = 0.0, nuclear = 0.0;
  for (std::size_t j = 0; j < p; ++j) inner += cols[5].second[j] * theta[j];
  for (const auto& layer : mlp->layers()) nuclear += at::linalg_svdvals(layer->weight.detach()).sum().item<double>();
  EXPECT_NEAR(inner, nuclear, 1e-12);
  const at::Tensor g0 = to_tensor(std::vector<double>(cols[5].second.begin(), cols[5].second.begin() + 12), {4, 3});
  EXPECT_LT((at::linalg_svdvals(g0) - 1.0).abs().max().item<double>(), 1e-12);

  EXPECT_THROW(Candidate::parse("lasso"), InputError);
  EXPECT_THROW(Candidate::parse("huber:beta=-1"), InputError);
  const std::vector<Candidate> twice = {Candidate::parse("ridge"), Candidate::parse("elastic-net:beta=0.1")};
  EXPECT_THROW(candidate_columns(h, twice, data), InputError);
}

TEST(Endpoint, ExtractsEquationsAndTheStationarityDiagnostic) {
  MlpOptions o;
  o.inputs = 3;
  o.hidden = {4};
  const ModelHandle h = make_handle(make_mlp(o, 1, 0, kCpu, at::kDouble));
  const Dataset data = regression_data(30, 3, 1, 4);
  EndpointOptions eo;
  eo.candidates = {Candidate::parse("elastic-net:beta=0.01")};
  const Endpoint e = extract_endpoint(h, data, eo);
  const at::Tensor g = full_batch_gradient(h, data, LossKind::mse);
  EXPECT_NEAR(e.relative_gradient_norm, g.norm().item<double>() / flat_parameters(h).norm().item<double>(), 1e-15);
  EXPECT_DOUBLE_EQ(e.loss, evaluate_loss(h, data, LossKind::mse, 0));  // one batch: the same sum
  const std::vector<Endpoint> two = {e, e};
  const Equations eq = to_equations(two);
  EXPECT_EQ(eq.m(), 2);
  EXPECT_EQ(eq.p(), h.parameter_count());
  ASSERT_EQ(eq.features.size(), 2u);
  EXPECT_EQ(eq.features[0].first, "huber");
  EXPECT_EQ(eq.features[1].first, "ridge");
  EXPECT_EQ(eq.grad_loss(1, 3), e.grad_loss[3]);
  EXPECT_NO_THROW(eq.validate("test"));
}

}  // namespace
}  // namespace gradmatch::training
