// Built-in models and losses: layer layout, registration order of the flat
// theta, deterministic Philox initialisation, dropout placement, and the
// reduction conventions of the losses.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.hpp"
#include "training/losses.hpp"
#include "training/models.hpp"
#include "training/tensor_bridge.hpp"

namespace gradmatch::training {
namespace {

const torch::Device kCpu(torch::kCPU);

TEST(Mlp, FlatThetaFollowsRegistrationOrder) {
  MlpOptions o;
  o.inputs = 3;
  o.hidden = {4, 2};
  o.outputs = 2;
  Mlp mlp = make_mlp(o, 7, 1, kCpu, at::kDouble);
  const ModelHandle h = make_handle(mlp);
  const std::vector<std::string> names = {"layer0.weight", "layer0.bias", "layer1.weight",
                                          "layer1.bias",   "layer2.weight", "layer2.bias"};
  EXPECT_EQ(h.parameter_names, names);
  EXPECT_EQ(h.parameter_count(), 3 * 4 + 4 + 4 * 2 + 2 + 2 * 2 + 2);
  // theta is the concatenation of the flattened tensors, in that order.
  const std::vector<double> theta = to_vector(flat_parameters(h));
  std::size_t k = 0;
  for (const auto& layer : mlp->layers())
    for (const at::Tensor& p : {layer->weight, layer->bias})
      for (double v : to_vector(p)) EXPECT_EQ(theta[k++], v);
  EXPECT_EQ(k, theta.size());
  // set_flat_parameters is the inverse.
  const at::Tensor shifted = flat_parameters(h) + 1.0;
  set_flat_parameters(h, shifted);
  EXPECT_TRUE(at::equal(flat_parameters(h), shifted));
}

TEST(Mlp, HiddenBiasesCanBeSwitchedOff) {
  MlpOptions o;
  o.inputs = 3;
  o.hidden = {4, 4};
  o.hidden_bias = false;
  const ModelHandle h = make_handle(make_mlp(o, 1, 0, kCpu));
  const std::vector<std::string> names = {"layer0.weight", "layer1.weight", "layer2.weight", "layer2.bias"};
  EXPECT_EQ(h.parameter_names, names);
}

TEST(Mlp, InitialisationIsKeyedBySeedAndStreamOnly) {
  const MlpOptions o = regression_net_options();
  const at::Tensor a = flat_parameters(make_handle(make_mlp(o, 5, 3, kCpu, at::kDouble)));
  const at::Tensor b = flat_parameters(make_handle(make_mlp(o, 5, 3, kCpu, at::kDouble)));
  const at::Tensor c = flat_parameters(make_handle(make_mlp(o, 5, 4, kCpu, at::kDouble)));
  const at::Tensor f = flat_parameters(make_handle(make_mlp(o, 5, 3, kCpu, at::kFloat)));
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, c));
  EXPECT_LT((a - f).abs().max().item<double>(), 1e-7);  // float32 is the float64 draw rounded
  EXPECT_EQ(a.numel(), 10 * 200 + 200 + 200 + 1);       // appendix H.2: 10 -> 200 -> 1
  // PyTorch's default bounds: layer0 entries within 1/sqrt(10), layer1 within 1/sqrt(200).
  EXPECT_LE(a.slice(0, 0, 2200).abs().max().item<double>(), 1.0 / std::sqrt(10.0));
  EXPECT_LE(a.slice(0, 2200).abs().max().item<double>(), 1.0 / std::sqrt(200.0));
}

TEST(Mlp, DropoutActsAfterEveryHiddenBlockButTheLast) {
  const at::Tensor x = at::randn({16, 6}, at::kDouble);
  // One hidden block: it is the last one, so no dropout anywhere.
  Mlp one = make_mlp(classifier_options(6, 1, 32, 3, 0.9), 1, 0, kCpu, at::kDouble);
  one->train();
  const at::Tensor train_out = one->forward(x);
  one->eval();
  EXPECT_TRUE(at::allclose(train_out, one->forward(x)));
  // Two hidden blocks: dropout after the first changes training-mode outputs only.
  Mlp two = make_mlp(classifier_options(6, 2, 32, 3, 0.5), 1, 0, kCpu, at::kDouble);
  two->seed_dropout(11);
  two->train();
  const at::Tensor t1 = two->forward(x);
  two->eval();
  const at::Tensor e1 = two->forward(x);
  const at::Tensor e2 = two->forward(x);
  EXPECT_FALSE(at::allclose(t1, e1));
  EXPECT_TRUE(at::equal(e1, e2));
  // Seeded masks repeat.
  two->train();
  two->seed_dropout(11);
  EXPECT_TRUE(at::equal(two->forward(x), t1));
}

TEST(Mlp, ActivationsAreReluTanhAndIdentity) {
  const at::Tensor x = at::randn({5, 2}, at::kDouble);
  for (Activation a : {Activation::relu, Activation::tanh, Activation::identity}) {
    MlpOptions o;
    o.inputs = 2;
    o.hidden = {3};
    o.activation = a;
    Mlp m = make_mlp(o, 2, 0, kCpu, at::kDouble);
    const auto& l = m->layers();
    at::Tensor h = at::matmul(x, l[0]->weight.t()) + l[0]->bias;
    h = a == Activation::relu ? at::relu(h) : a == Activation::tanh ? at::tanh(h) : h;
    const at::Tensor expected = at::matmul(h, l[1]->weight.t()) + l[1]->bias;
    EXPECT_TRUE(at::allclose(m->forward(x), expected, 1e-14, 1e-14)) << to_string(a);
  }
  EXPECT_EQ(parse_activation("tanh"), Activation::tanh);
  EXPECT_THROW(parse_activation("gelu"), InputError);
  MlpOptions bad;
  bad.inputs = 2;
  bad.dropout = 1.0;
  EXPECT_THROW(Mlp{bad}, InputError);
}

TEST(Losses, MseAveragesOverExamplesAndOutputs) {
  const at::Tensor out = to_tensor(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2});
  const at::Tensor y = to_tensor(std::vector<double>{0, 2, 3, 1, 5, 8}, {3, 2});
  // squared errors 1, 0, 0, 9, 0, 4: sum 14 over n k = 6.
  EXPECT_DOUBLE_EQ(mean_loss(LossKind::mse, out, y).item<double>(), 14.0 / 6.0);
  EXPECT_DOUBLE_EQ(summed_loss(LossKind::mse, out, y).item<double>(), 14.0 / 2.0);
  // A [n] target against an [n, 1] output.
  const at::Tensor o1 = to_tensor(std::vector<double>{1, 2}, {2, 1});
  const at::Tensor y1 = to_tensor(std::vector<double>{0, 0}, {2});
  EXPECT_DOUBLE_EQ(mean_loss(LossKind::mse, o1, y1).item<double>(), 2.5);
  EXPECT_THROW(mean_loss(LossKind::mse, out, y1), InputError);
}

TEST(Losses, CrossEntropyAndBceMatchTheirDefinitions) {
  const at::Tensor logits = to_tensor(std::vector<double>{2.0, -1.0, 0.5, 0.0, 0.0, 3.0}, {2, 3});
  const at::Tensor labels = at::tensor(std::vector<std::int64_t>{0, 2}, at::kLong);
  const double l0 = -2.0 + std::log(std::exp(2.0) + std::exp(-1.0) + std::exp(0.5));
  const double l1 = -3.0 + std::log(2.0 + std::exp(3.0));
  EXPECT_NEAR(mean_loss(LossKind::cross_entropy, logits, labels).item<double>(), (l0 + l1) / 2.0, 1e-14);

  const at::Tensor z = to_tensor(std::vector<double>{1.0, -2.0, 0.5, 3.0}, {2, 2});
  const at::Tensor t = to_tensor(std::vector<double>{1.0, 0.0, 0.0, 1.0}, {2, 2});
  const auto softplus = [](double v) { return std::log1p(std::exp(v)); };
  const double b = (softplus(1.0) - 1.0) + softplus(-2.0) + softplus(0.5) + (softplus(3.0) - 3.0);
  EXPECT_NEAR(mean_loss(LossKind::bce_with_logits, z, t).item<double>(), b / 4.0, 1e-14);
  EXPECT_EQ(parse_loss("ce"), LossKind::cross_entropy);
  EXPECT_THROW(parse_loss("hinge"), InputError);
}

}  // namespace
}  // namespace gradmatch::training
