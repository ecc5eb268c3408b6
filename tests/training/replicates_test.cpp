// Replicate batching: R replicates trained at once follow, to float64
// rounding, the trajectories they follow trained one at a time with train():
// own data, initial weights, batch order and penalty; early stopping,
// keep-best and the NaN guard per replicate.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "core/errors.hpp"
#include "core/rng.hpp"
#include "training/data.hpp"
#include "training/models.hpp"
#include "training/replicates.hpp"
#include "training/trainer.hpp"
#include "test_support.hpp"

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

// Adam with early stopping on the validation loss: specs()' replicates stop at different epochs.
TrainOptions adam_with_early_stopping() {
  TrainOptions o;
  o.optimizer.kind = OptimizerKind::adam;
  o.optimizer.learning_rate = 0.05;
  o.batch_size = 10;
  o.max_epochs = 40;
  o.early_stopping = EarlyStoppingOptions{2, 0.01, Monitor::validation};
  return o;
}

TEST(Replicates, AdamWithPerReplicateEarlyStoppingAndKeepBestMatchesOneAtATime) {
  TrainOptions o = adam_with_early_stopping();
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

TEST(Replicates, WithoutKeepBestEachReplicateReportsItsStoppingRulesBestEpochAsOneAtATime) {
  const std::vector<TrainResult> r = expect_same_training(adam_with_early_stopping(), 1e-10);
  for (const auto& t : r) {
    EXPECT_EQ(t.status, TrainStatus::stopped_early);
    // patience 2: the rule stops two epochs after its best.
    EXPECT_EQ(t.best_epoch, t.epochs - 2);
  }
}

// The hook that progress lines hang on: called once per epoch, in order,
// with the replicates that have not stopped by the end of it.
TEST(Replicates, TheEpochHookCountsTheReplicatesStillTrainingAfterEachEpoch) {
  const MlpOptions mo = regression_net_options(3, 16);
  const std::vector<ReplicateSpec> sp = specs();
  std::vector<at::Tensor> xs, ys;
  std::vector<at::Tensor> train_rows, validation_rows;
  std::int64_t first = 0;
  for (std::size_t r = 0; r < sp.size(); ++r) {
    const Split s = split(linear_regression({60, 3, 2.0, 0.5, {}}, 7, r).data, 0.25, 7, r);
    xs.insert(xs.end(), {s.train.x, s.validation.x});
    ys.insert(ys.end(), {s.train.y, s.validation.y});
    train_rows.push_back(at::arange(first, first + s.train.size(), at::kLong));
    first += s.train.size();
    validation_rows.push_back(at::arange(first, first + s.validation.size(), at::kLong));
    first += s.validation.size();
  }
  ReplicateData data{{at::cat(xs), at::cat(ys)}, at::stack(train_rows), at::stack(validation_rows)};
  const TrainOptions o = adam_with_early_stopping();
  BatchedMlp batched(mo, sp, at::kDouble);
  std::vector<std::pair<std::int64_t, std::int64_t>> heard;
  const std::vector<TrainResult> res = train_replicates(
      batched, data, o, sp, nullptr, [&](std::int64_t epoch, std::int64_t training) { heard.emplace_back(epoch, training); });
  std::int64_t last = 0;
  for (const TrainResult& t : res) last = std::max(last, t.epochs);
  ASSERT_EQ(static_cast<std::int64_t>(heard.size()), last);
  std::set<std::int64_t> counts;
  for (std::size_t i = 0; i < heard.size(); ++i) {
    const std::int64_t epoch = static_cast<std::int64_t>(i) + 1;
    EXPECT_EQ(heard[i].first, epoch);
    const auto going_on = std::count_if(res.begin(), res.end(), [&](const TrainResult& t) { return t.epochs > epoch; });
    EXPECT_EQ(heard[i].second, going_on) << "epoch " << epoch;
    counts.insert(heard[i].second);
  }
  EXPECT_EQ(heard.back().second, 0);  // all stopped early, before the limit
  EXPECT_GE(counts.size(), 3u);       // 4, ..., 0: they stop at different epochs
}

TEST(Replicates, ADivergedReplicateIsFrozenAndTheOthersGoOn) {
  MlpOptions mo = regression_net_options(3, 8);
  std::vector<ReplicateSpec> sp = specs();
  std::vector<Dataset> data;
  for (std::size_t r = 0; r < sp.size(); ++r) data.push_back(linear_regression({40, 3, 2.0, 0.5, {}}, 9, r).data);
  data[2].y = data[2].y * 1e200;  // its squared loss overflows float64 at once
  BatchedMlp batched(mo, sp, at::kDouble);
  TrainOptions o;
  o.optimizer.learning_rate = 0.01;
  o.batch_size = 10;
  o.max_epochs = 3;
  const std::vector<TrainResult> res = train_replicates(batched, data, {}, o, sp);
  EXPECT_EQ(res[2].status, TrainStatus::diverged);
  EXPECT_EQ(res[2].epochs, 1);
  // The others train as if it were not there: each equals train() alone.
  for (std::size_t r : {0u, 1u, 3u}) {
    SCOPED_TRACE(r);
    EXPECT_EQ(res[r].status, TrainStatus::completed);
    EXPECT_EQ(res[r].epochs, 3);
    Mlp single = make_mlp(mo, sp[r].init_seed, sp[r].init_stream, kCpu, at::kDouble);
    TrainOptions alone_options = o;
    alone_options.seed = sp[r].order_seed;
    alone_options.stream = sp[r].order_stream;
    alone_options.penalty = sp[r].penalty;
    const TrainResult alone = train(make_handle(single), data[r], Dataset{}, alone_options);
    ASSERT_EQ(res[r].history.size(), alone.history.size());
    for (std::size_t e = 0; e < alone.history.size(); ++e)
      EXPECT_NEAR(res[r].history[e].train_loss, alone.history[e].train_loss, 1e-11 * alone.history[e].train_loss);
    const at::Tensor a = flat_parameters(make_handle(single));
    const at::Tensor b = flat_parameters(make_handle(batched->replicate(static_cast<std::int64_t>(r))));
    EXPECT_LT((a - b).abs().max().item<double>(), 1e-11 * (1.0 + a.abs().max().item<double>()));
  }
}

// Classifiers with per-replicate dropout rates and mask keys, trained in
// float64 with early stopping on the validation loss: each replicate follows
// its own train() trajectory (masks included) while stopped replicates
// leave the working batch, whose cost is then the replicates' own steps.
TEST(Replicates, DropoutClassifiersMatchOneAtATimeAndStoppedOnesLeaveTheBatch) {
  const MlpOptions mo = classifier_options(6, 3, 12, 4, 0.0);
  const std::vector<double> rates{0.0, 0.2, 0.5, 0.3};
  std::vector<ReplicateSpec> sp(rates.size());
  for (std::size_t r = 0; r < sp.size(); ++r) {
    sp[r].init_seed = 7;
    sp[r].init_stream = 30 + r;
    sp[r].order_seed = 8;
    sp[r].order_stream = 40 + r;
    sp[r].dropout = rates[r];
    sp[r].dropout_key = 1000 + r;
  }
  // Pool: Gaussian inputs, labels from a fixed linear map; replicate r
  // trains on a keyed split of 60 and validates on the other 30.
  Rng rng(5, 6);
  std::vector<double> xv(90 * 6);
  for (double& v : xv) v = rng.normal();
  const at::Tensor x = at::tensor(xv, at::kDouble).view({90, 6});
  const at::Tensor y = x.matmul(at::tensor(std::vector<double>{1, -2, 0.5, 3, -1, 2, 0, 1, -1, 2, 1, -3, 2, 2, -2, 0.5,
                                                                1, 1, -1, 0, 0.3, -0.7, 1.5, 2},
                                           at::kDouble)
                                    .view({6, 4}))
                           .argmax(1);
  const Dataset pool{x, y};
  ReplicateData rd;
  rd.pool = pool;
  std::vector<at::Tensor> tr, va;
  std::vector<Split> splits;
  for (std::size_t r = 0; r < sp.size(); ++r) {
    splits.push_back(split(pool, 1.0 / 3.0, 9, r));
    const SplitIndices rows = split_indices(90, 1.0 / 3.0, 9, r);
    tr.push_back(at::tensor(rows.train, at::kLong));
    va.push_back(at::tensor(rows.validation, at::kLong));
  }
  rd.train = at::stack(tr);
  rd.validation = at::stack(va);
  TrainOptions o;
  o.loss = LossKind::cross_entropy;
  o.optimizer.learning_rate = 0.1;
  o.optimizer.momentum = 0.9;
  o.batch_size = 16;
  o.max_epochs = 60;
  o.early_stopping = EarlyStoppingOptions{3, 0.0, Monitor::validation};
  BatchedMlp batched(mo, sp, at::kDouble);
  BatchStats stats;
  const std::vector<TrainResult> together = train_replicates(batched, rd, o, sp, &stats);
  std::int64_t own_steps = 0, most = 0;
  std::set<std::int64_t> stops;
  for (std::size_t r = 0; r < sp.size(); ++r) {
    SCOPED_TRACE(r);
    MlpOptions single_options = mo;
    single_options.dropout = rates[r];
    Mlp single = make_mlp(single_options, sp[r].init_seed, sp[r].init_stream, kCpu, at::kDouble);
    single->seed_dropout(sp[r].dropout_key);
    TrainOptions so = o;
    so.seed = sp[r].order_seed;
    so.stream = sp[r].order_stream;
    const TrainResult alone = train(make_handle(single), splits[r].train, splits[r].validation, so);
    EXPECT_EQ(together[r].status, alone.status);
    EXPECT_EQ(together[r].epochs, alone.epochs);
    ASSERT_EQ(together[r].history.size(), alone.history.size());
    for (std::size_t e = 0; e < alone.history.size(); ++e) {
      EXPECT_NEAR(together[r].history[e].train_loss, alone.history[e].train_loss, 1e-12 * alone.history[e].train_loss);
      EXPECT_NEAR(together[r].history[e].validation_loss, alone.history[e].validation_loss,
                  1e-12 * alone.history[e].validation_loss);
    }
    const at::Tensor a = flat_parameters(make_handle(single));
    const at::Tensor b = flat_parameters(make_handle(batched->replicate(static_cast<std::int64_t>(r))));
    EXPECT_LT((a - b).abs().max().item<double>(), 1e-12 * (1.0 + a.abs().max().item<double>()));
    own_steps += together[r].steps;
    most = std::max(most, together[r].steps);
    stops.insert(together[r].epochs);
  }
  EXPECT_GE(stops.size(), 2u);  // they stop at different epochs ...
  EXPECT_EQ(stats.replicate_steps, own_steps);  // ... and each costs only its own steps
  EXPECT_LT(stats.replicate_steps, static_cast<std::int64_t>(sp.size()) * most);
}

// Phase timing synchronizes and reads clocks between the parts of a step; it
// must leave every number as it was, and its parts must add up to (nearly)
// the call's own wall time, none of them empty.
TEST(Replicates, TimingThePhasesChangesNoResultAndTheirSumIsTheCallsTime) {
  const MlpOptions mo = classifier_options(5, 3, 10, 3, 0.0);
  const std::vector<ReplicateSpec> sp = testing::keyed_dropout_specs({0.0, 0.3, 0.5}, 11, 300);
  const at::Tensor x = at::randn({120, 5}, at::TensorOptions().dtype(at::kDouble));
  ReplicateData rd;
  rd.pool = {x, x.narrow(1, 0, 3).argmax(1)};
  rd.train = at::arange(90, at::kLong).unsqueeze(0).expand({3, 90}).contiguous();
  rd.validation = at::arange(90, 120, at::kLong).unsqueeze(0).expand({3, 30}).contiguous();
  TrainOptions o;
  o.loss = LossKind::cross_entropy;
  o.optimizer.learning_rate = 0.2;
  o.optimizer.momentum = 0.9;
  o.batch_size = 16;
  o.max_epochs = 40;
  o.early_stopping = EarlyStoppingOptions{4, 0.0, Monitor::validation};
  BatchedMlp plain(mo, sp, at::kDouble), timed(mo, sp, at::kDouble);
  const std::vector<TrainResult> a = train_replicates(plain, rd, o, sp);
  BatchStats stats;
  stats.time_phases = true;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<TrainResult> b = train_replicates(timed, rd, o, sp, &stats);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (std::size_t r = 0; r < sp.size(); ++r) {
    SCOPED_TRACE(r);
    ASSERT_EQ(a[r].history.size(), b[r].history.size());
    for (std::size_t e = 0; e < a[r].history.size(); ++e) {
      EXPECT_EQ(a[r].history[e].train_loss, b[r].history[e].train_loss);
      EXPECT_EQ(a[r].history[e].validation_loss, b[r].history[e].validation_loss);
    }
    EXPECT_TRUE(at::equal(flat_parameters(make_handle(plain->replicate(static_cast<std::int64_t>(r)))),
                          flat_parameters(make_handle(timed->replicate(static_cast<std::int64_t>(r))))));
  }
  const BatchStats::Phases& p = stats.phases;
  for (const double part : {p.setup, p.orders, p.batch, p.forward, p.backward, p.optimizer, p.epoch_end}) EXPECT_GT(part, 0.0);
  EXPECT_LE(p.total(), wall);
  EXPECT_GT(p.total(), 0.5 * wall);  // what is not timed: checking the inputs, writing the weights back
}

// TF32 is a GPU matrix-product precision: on the CPU float32 training with
// and without it is the same to the bit, and LibTorch's switch is left as it was.
TEST(Replicates, Tf32ChangesNothingOnTheCpuAndLeavesTheSwitchAsItWas) {
  const MlpOptions mo = classifier_options(5, 2, 16, 3, 0.0);
  const std::vector<ReplicateSpec> sp = testing::keyed_dropout_specs({0.0, 0.25}, 21, 400);
  const at::Tensor x = at::randn({64, 5}, at::TensorOptions().dtype(at::kDouble));
  ReplicateData rd;
  rd.pool = Dataset{x, x.narrow(1, 0, 3).argmax(1)}.to(kCpu, at::kFloat);
  rd.train = at::arange(64, at::kLong).unsqueeze(0).expand({2, 64}).contiguous();
  TrainOptions o;
  o.loss = LossKind::cross_entropy;
  o.optimizer.learning_rate = 0.1;
  o.optimizer.momentum = 0.9;
  o.batch_size = 16;
  o.max_epochs = 5;
  const bool before = at::globalContext().allowTF32CuBLAS();
  std::vector<at::Tensor> theta;
  for (const bool tf32 : {false, true}) {
    BatchedMlp m(mo, sp, at::kFloat);
    o.tf32 = tf32;
    train_replicates(m, rd, o, sp);
    EXPECT_EQ(at::globalContext().allowTF32CuBLAS(), before);
    std::vector<at::Tensor> parts;
    for (const auto& p : m->batched_parameters()) parts.push_back(p.detach().reshape({-1}));
    theta.push_back(at::cat(parts));
  }
  EXPECT_TRUE(at::equal(theta[0], theta[1]));
}

TEST(Replicates, RejectsWhatCannotBeBatched) {
  MlpOptions mo = regression_net_options(3, 8);
  std::vector<ReplicateSpec> sp = specs();
  sp[1].dropout = 1.0;
  EXPECT_THROW(BatchedMlp(mo, sp), InputError);
  sp[1].dropout.reset();
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
