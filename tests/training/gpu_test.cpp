// The training layer on a CUDA device equals it on the CPU (float64): train(),
// batched dropout replicates, the dropout study's batched estimates, endpoint
// gradients, HVPs and flows. Labelled `gpu`; every test skips where
// LibTorch sees no GPU (CI).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <vector>

#if GRADMATCH_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "training/data.hpp"
#include "training/device.hpp"
#include "training/dropout_diagnostics.hpp"
#include "training/dropout_masks.hpp"
#include "training/endpoint.hpp"
#include "training/flow.hpp"
#include "training/models.hpp"
#include "training/objective.hpp"
#include "training/replicates.hpp"
#include "training/trainer.hpp"
#include "test_support.hpp"

namespace gradmatch::training {
namespace {

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "LibTorch sees no GPU";
    at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
    cuda_ = resolve_device(DeviceRequest::cuda, 0, 1, 0).device;
  }
  static double relative_difference(const at::Tensor& a, const at::Tensor& b) {
    const at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
    return ((x - y).abs().max() / (1.0 + x.abs().max())).item<double>();
  }
  c10::Device cuda_{c10::kCPU};
  const c10::Device cpu_{c10::kCPU};
};

Dataset regression_data() { return linear_regression({120, 5, 1.0, 0.3, {}}, 31, 0).data; }

TEST_F(Gpu, DescribesTheRanksGpuByName) {
  const ComputeDevice d = resolve_device(DeviceRequest::automatic, 0, 1, 0);
  EXPECT_TRUE(d.is_cuda());
  EXPECT_GT(d.description.size(), std::string("cuda:0 ()").size()) << d.description;
  std::printf("device: %s\n", d.description.c_str());
}

TEST_F(Gpu, DropoutMasksOnCudaAreTheCpusBitForBit) {
  const std::vector<std::uint64_t> keys{1, 0xFFFFFFFFFFFFFFFFULL, 2605};
  const std::vector<double> rates{0.0, 0.3, 0.5};
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    const DropoutStreams cpu(keys, rates, at::TensorOptions().dtype(dtype));
    const DropoutStreams cuda(keys, rates, at::TensorOptions().dtype(dtype).device(cuda_));
    for (const std::int64_t step : {0, 41}) {
      const at::Tensor expected = cpu.multipliers(step, 1, 64, 96);
      // The kernel where one was built (else the tensor arithmetic), and the tensor arithmetic itself.
      EXPECT_TRUE(at::equal(expected, cuda.multipliers(step, 1, 64, 96).cpu())) << step;
      EXPECT_TRUE(at::equal(expected, cuda.multipliers(step, 1, 64, 96, MaskPath::tensor_ops).cpu())) << step;
    }
  }
}

TEST_F(Gpu, TrainingOnCudaEqualsTrainingOnTheCpu) {
  MlpOptions mo = regression_net_options(5, 32);
  mo.hidden = {32, 16};
  mo.dropout = 0.2;
  TrainOptions o;
  o.optimizer.learning_rate = 0.02;
  o.optimizer.momentum = 0.9;
  o.batch_size = 16;
  o.max_epochs = 20;
  o.seed = 3;
  o.penalty = Penalty::ridge(1e-3);
  const Dataset data = regression_data();
  std::vector<at::Tensor> theta;
  for (const c10::Device& device : {cpu_, cuda_}) {
    Mlp m = make_mlp(mo, 11, 12, device, at::kDouble);
    m->seed_dropout(99);
    const TrainResult r = train(make_handle(m), data.to(device, at::kDouble), {}, o);
    EXPECT_EQ(r.status, TrainStatus::completed);
    theta.push_back(flat_parameters(make_handle(m)));
  }
  EXPECT_LT(relative_difference(theta[0], theta[1]), 1e-9);
}

TEST_F(Gpu, BatchedDropoutReplicatesOnCudaEqualTheCpu) {
  const MlpOptions mo = classifier_options(5, 3, 24, 3, 0.0);
  const std::vector<ReplicateSpec> sp = testing::keyed_dropout_specs({0.0, 0.1, 0.2, 0.3}, 1, 50);
  Dataset pool = regression_data();
  pool.y = pool.x.slice(1, 0, 3).argmax(1);
  ReplicateData rd;
  rd.pool = pool;
  std::vector<at::Tensor> rows;
  for (std::size_t r = 0; r < sp.size(); ++r) rows.push_back(at::tensor(permutation(120, 4, r), at::kLong).slice(0, 0, 100));
  rd.train = at::stack(rows);
  TrainOptions o;
  o.loss = LossKind::cross_entropy;
  o.optimizer.learning_rate = 0.05;
  o.optimizer.momentum = 0.9;
  o.batch_size = 25;
  o.max_epochs = 15;
  std::vector<at::Tensor> theta;
  for (const c10::Device& device : {cpu_, cuda_}) {
    BatchedMlp m(mo, sp, at::kDouble);
    m->to(device);
    ReplicateData here = rd;
    here.pool = rd.pool.to(device, at::kDouble);
    here.train = rd.train.to(device);
    train_replicates(m, here, o, sp);
    std::vector<at::Tensor> parts;
    for (const auto& p : m->batched_parameters()) parts.push_back(p.detach().reshape({-1}));
    theta.push_back(at::cat(parts));
  }
  EXPECT_LT(relative_difference(theta[0], theta[1]), 1e-9);
}

// The dropout study's estimates on a GPU: the mask draws a half to a pass
// and the mini-batch gradients many to a pass, on cuda, against one at a
// time on the CPU (float64).
TEST_F(Gpu, BatchedDropoutEstimatesOnCudaEqualTheCpuOneAtATime) {
  Dataset data = regression_data();
  data.y = data.x.slice(1, 0, 3).argmax(1);
  Mlp cpu = make_mlp(classifier_options(5, 3, 24, 3, 0.3), 7, 1, cpu_, at::kDouble);
  const DropoutObjectiveGradient one = dropout_objective_gradient(cpu, data, LossKind::cross_entropy, 8, 99, 50);
  std::vector<std::vector<std::int64_t>> batches;
  for (std::uint64_t k = 0; k < 5; ++k) {
    std::vector<std::int64_t> rows = permutation(120, 3, k);
    rows.resize(30);
    batches.push_back(rows);
  }
  const MinibatchGradients mb_cpu = minibatch_gradients_batched(cpu, data, LossKind::cross_entropy, batches, 1);
  Mlp cuda = make_mlp(classifier_options(5, 3, 24, 3, 0.3), 7, 1, cuda_, at::kDouble);
  const Dataset on_gpu = data.to(cuda_, at::kDouble);
  const DropoutObjectiveGradient together =
      dropout_objective_gradient_batched(cuda, on_gpu, LossKind::cross_entropy, 8, 99, 50, 1000);
  EXPECT_LT(relative_difference(one.half_a, together.half_a), 1e-9);
  EXPECT_LT(relative_difference(one.half_b, together.half_b), 1e-9);
  const MinibatchGradients mb_cuda = minibatch_gradients_batched(cuda, on_gpu, LossKind::cross_entropy, batches, 1000);
  ASSERT_EQ(mb_cuda.grad_squared.size(), batches.size());
  for (std::size_t k = 0; k < batches.size(); ++k) {
    EXPECT_NEAR(mb_cuda.grad_squared[k], mb_cpu.grad_squared[k], 1e-9 * mb_cpu.grad_squared[k]) << k;
    EXPECT_NEAR(mb_cuda.theta_dot_grad[k], mb_cpu.theta_dot_grad[k], 1e-9 * std::abs(mb_cpu.theta_dot_grad[k])) << k;
  }
}

// TrainOptions::tf32: float32 training twice without TF32 gives the same
// weights bit for bit (deterministic settings), with TF32 on an Ampere or
// later GPU it moves them, slightly; LibTorch's own setting comes back.
TEST_F(Gpu, Tf32MovesFloat32TrainingSlightlyOnAmpereAndLaterAndRestoresTheSetting) {
  const MlpOptions mo = classifier_options(64, 3, 256, 10, 0.0);
  const std::vector<ReplicateSpec> sp = testing::keyed_dropout_specs({0.0, 0.1, 0.2, 0.3}, 5, 70);
  const at::Tensor x = at::randn({512, 64}, at::TensorOptions().dtype(at::kDouble));
  ReplicateData rd;
  rd.pool = Dataset{x, x.narrow(1, 0, 10).argmax(1)}.to(cuda_, at::kFloat);
  rd.train = at::arange(512, at::kLong).unsqueeze(0).expand({4, 512}).contiguous().to(cuda_);
  TrainOptions o;
  o.loss = LossKind::cross_entropy;
  o.optimizer.learning_rate = 0.05;
  o.optimizer.momentum = 0.9;
  o.batch_size = 128;
  o.max_epochs = 3;
  const bool before = at::globalContext().allowTF32CuBLAS();
  const auto trained = [&](bool tf32) {
    BatchedMlp m(mo, sp, at::kFloat);
    m->to(cuda_);
    TrainOptions with = o;
    with.tf32 = tf32;
    train_replicates(m, rd, with, sp);
    EXPECT_EQ(at::globalContext().allowTF32CuBLAS(), before);
    std::vector<at::Tensor> parts;
    for (const auto& p : m->batched_parameters()) parts.push_back(p.detach().reshape({-1}));
    return at::cat(parts);
  };
  const at::Tensor plain = trained(false);
  EXPECT_TRUE(at::equal(plain, trained(false)));
  const double moved = relative_difference(plain, trained(true));
  std::printf("tf32: relative difference of the weights after 3 epochs %.3g\n", moved);
  EXPECT_LT(moved, 1e-2);
#if GRADMATCH_WITH_CUDA
  if (at::cuda::getDeviceProperties(cuda_.index())->major >= 8) EXPECT_GT(moved, 1e-7);
#endif
}

TEST_F(Gpu, EndpointGradientsHvpsAndFlowsOnCudaEqualTheCpu) {
  const Dataset data = regression_data();
  std::vector<at::Tensor> grad, hv, flow;
  for (const c10::Device& device : {cpu_, cuda_}) {
    Mlp m = make_mlp(regression_net_options(5, 16), 21, 22, device, at::kDouble);
    const ModelHandle h = make_handle(m);
    const Dataset d = data.to(device, at::kDouble);
    grad.push_back(full_batch_gradient(h, d, LossKind::mse, 40));
    const Objective objective(h, d, LossKind::mse, Penalty::ridge(0.01), 40);
    const at::Tensor theta = objective.current();
    hv.push_back(objective.hvp(theta, at::ones_like(theta)));
    flow.push_back(objective_flow_displacement(objective, theta, 0.5, 8, Integrator::rk4, 0.1));
  }
  EXPECT_LT(relative_difference(grad[0], grad[1]), 1e-9);
  EXPECT_LT(relative_difference(hv[0], hv[1]), 1e-9);
  EXPECT_LT(relative_difference(flow[0], flow[1]), 1e-9);
  EXPECT_TRUE(hv[1].device().is_cuda());  // computed where the parameters live
}

}  // namespace
}  // namespace gradmatch::training
