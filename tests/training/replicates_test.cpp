// Replicate batching: R replicates trained at once follow, to float64
// rounding, the trajectories they follow trained one at a time with train():
// own data, initial weights, batch order and penalty; early stopping,
// keep-best and the NaN guard per replicate.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/errors.hpp"
#include "training/data.hpp"
#include "training/models.hpp"
#include "training/replicates.hpp"
#include "training/trainer.hpp"

namespace gradmatch::training {
namespace {

const torch::Device kCpu(torch::kCPU);

std::vector<ReplicateSpec> specs() {
  std::vector<ReplicateSpec> s(4);
  const std::vector<Penalty> penalties = {Penalty::none(), Penalty::ridge(0.02), Penalty::huber(0.01, 0.05),
                                          Penalty::elastic_net(0.01, 0.005, 0.05)};
  for (std::size_t r = 0; r < s.size(); ++r) {
    s[r].init_seed = 100 + r;
    s[r].init_stream = 1;
    s[r].order_seed = 200 + r;
    s[r].order_stream = 2;
    s[r].penalty = penalties[r];
  }
  return s;
}

std::vector<TrainResult> expect_same_training(const TrainOptions& options, double tolerance) {
  MlpOptions mo = regression_net_options(3, 16);
  const std::vector<ReplicateSpec> sp = specs();
  std::vector<Dataset> data, val;
  for (std::size_t r = 0; r < sp.size(); ++r) {
    const Split s = split(linear_regression({60, 3, 2.0, 0.5, {}}, 7, r).data, 0.25, 7, r);
    data.push_back(s.train);
    val.push_back(s.validation);
  }
  BatchedMlp batched(mo, sp, at::kDouble);
  const std::vector<TrainResult> together = train_replicates(batched, data, val, options, sp);
  for (std::size_t r = 0; r < sp.size(); ++r) {
    SCOPED_TRACE(r);
    Mlp single = make_mlp(mo, sp[r].init_seed, sp[r].init_stream, kCpu, at::kDouble);
    TrainOptions o = options;
    o.seed = sp[r].order_seed;
    o.stream = sp[r].order_stream;
    o.penalty = sp[r].penalty;
    const TrainResult alone = train(make_handle(single), data[r], val[r], o);
    EXPECT_EQ(together[r].status, alone.status);
    EXPECT_EQ(together[r].epochs, alone.epochs);
    EXPECT_EQ(together[r].steps, alone.steps);
    EXPECT_EQ(together[r].best_epoch, alone.best_epoch);
    EXPECT_EQ(together[r].history.size(), alone.history.size());
    for (std::size_t e = 0; e < std::min(alone.history.size(), together[r].history.size()); ++e) {
      EXPECT_NEAR(together[r].history[e].train_loss, alone.history[e].train_loss, tolerance * alone.history[e].train_loss);
      EXPECT_NEAR(together[r].history[e].validation_loss, alone.history[e].validation_loss,
                  tolerance * alone.history[e].validation_loss);
      EXPECT_NEAR(together[r].history[e].penalty, alone.history[e].penalty, tolerance * (1.0 + alone.history[e].penalty));
    }
    const at::Tensor a = flat_parameters(make_handle(single));
    const at::Tensor b = flat_parameters(make_handle(batched->replicate(static_cast<std::int64_t>(r))));
    EXPECT_LT((a - b).abs().max().item<double>(), tolerance * (1.0 + a.abs().max().item<double>()));
  }
  return together;
}

TEST(Replicates, SgdWithMomentumMatchesOneAtATime) {
  TrainOptions o;
  o.optimizer.learning_rate = 0.01;
  o.optimizer.momentum = 0.9;
  o.optimizer.step_size = 3;
  o.optimizer.gamma = 0.5;
  o.batch_size = 8;
  o.max_epochs = 6;
  expect_same_training(o, 1e-11);
}

TEST(Replicates, AdamWithPerReplicateEarlyStoppingAndKeepBestMatchesOneAtATime) {
  TrainOptions o;
  o.optimizer.kind = OptimizerKind::adam;
  o.optimizer.learning_rate = 0.05;
  o.batch_size = 10;
  o.max_epochs = 40;
  o.early_stopping = EarlyStoppingOptions{2, 0.01, Monitor::validation};
  o.keep_best = true;
  const std::vector<TrainResult> r = expect_same_training(o, 1e-10);
  // The replicates stop at different epochs, before the limit, and keep an earlier best.
  std::set<std::int64_t> stops;
  for (const auto& t : r) {
    EXPECT_EQ(t.status, TrainStatus::stopped_early);
    EXPECT_LT(t.best_epoch, t.epochs);
    stops.insert(t.epochs);
  }
  EXPECT_GE(stops.size(), 2u);
}

TEST(Replicates, ADivergedReplicateIsFrozenAndTheOthersGoOn) {
  MlpOptions mo = regression_net_options(3, 8);
  std::vector<ReplicateSpec> sp = specs();
  std::vector<Dataset> data;
  for (std::size_t r = 0; r < sp.size(); ++r) data.push_back(linear_regression({40, 3, 2.0, 0.5, {}}, 9, r).data);
  data[2].y = data[2].y * 1e30;  // overflows float32 at once
  BatchedMlp batched(mo, sp, at::kFloat);
  TrainOptions o;
  o.optimizer.learning_rate = 0.01;
  o.batch_size = 10;
  o.max_epochs = 3;
  const std::vector<TrainResult> res = train_replicates(batched, data, {}, o, sp);
  EXPECT_EQ(res[2].status, TrainStatus::diverged);
  EXPECT_EQ(res[2].epochs, 1);
  for (std::size_t r : {0u, 1u, 3u}) {
    EXPECT_EQ(res[r].status, TrainStatus::completed) << r;
    EXPECT_EQ(res[r].epochs, 3);
    EXPECT_TRUE(at::isfinite(flat_parameters(make_handle(batched->replicate(static_cast<std::int64_t>(r))))).all().item<bool>());
  }
}

TEST(Replicates, RejectsWhatCannotBeBatched) {
  MlpOptions mo = regression_net_options(3, 8);
  const std::vector<ReplicateSpec> sp = specs();
  mo.dropout = 0.2;
  EXPECT_THROW(BatchedMlp(mo, sp), InputError);
  mo.dropout = 0.0;
  BatchedMlp batched(mo, sp);
  std::vector<Dataset> data;
  for (std::size_t r = 0; r < sp.size(); ++r) data.push_back(linear_regression({40 + static_cast<std::int64_t>(r), 3, 2.0, 0.5, {}}, 9, r).data);
  EXPECT_THROW(train_replicates(batched, data, {}, TrainOptions{}, sp), InputError);  // unequal sizes
  TrainOptions lbfgs;
  lbfgs.optimizer.kind = OptimizerKind::lbfgs;
  EXPECT_THROW(train_replicates(batched, std::span<const Dataset>(data.data(), 4), {}, lbfgs, sp), InputError);
}

}  // namespace
}  // namespace gradmatch::training
