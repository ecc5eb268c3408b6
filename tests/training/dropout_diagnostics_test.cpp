// What a dropout endpoint's ridge estimate measures: Euler's margin identity
// holds to rounding, the split-half estimate of ||g_p||^2 is unbiased where
// the plug-in one is biased by tr Sigma / K, rate 0 reduces g_p to the
// eval-mode gradient, and matched stationarity trains until its target.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/errors.hpp"
#include "training/data.hpp"
#include "training/dropout_diagnostics.hpp"
#include "training/endpoint.hpp"
#include "training/models.hpp"
#include "training/replicates.hpp"
#include "training/tensor_bridge.hpp"

namespace gradmatch::training {
namespace {

// n examples of `inputs` features with labels in [0, classes), float64.
Dataset classification_data(std::int64_t n, std::int64_t inputs, std::int64_t classes, std::uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor x = at::randn({n, inputs}, at::kDouble);
  const at::Tensor y = at::randint(0, classes, {n}, at::kLong);
  return {x, y};
}

Mlp classifier(std::int64_t depth, std::int64_t width, double rate, std::uint64_t stream = 1) {
  return make_mlp(classifier_options(6, depth, width, 4, rate), 2605, stream, torch::Device(torch::kCPU), at::kDouble);
}

TEST(DropoutDiagnostics, MarginIdentityHoldsToRoundingForAReluClassifierWithBiases) {
  const Dataset data = classification_data(200, 6, 4, 1);
  for (std::int64_t depth : {1, 3}) {
    Mlp mlp = classifier(depth, 16, 0.0, static_cast<std::uint64_t>(depth));
    const ModelHandle h = make_handle(mlp);
    const std::vector<double> g = to_vector(full_batch_gradient(h, data, LossKind::cross_entropy, 64));
    const MarginIdentity m = margin_identity(mlp, data, g, 64);
    EXPECT_EQ(m.linear_layers, depth + 1);
    EXPECT_LT(m.relative_error, 1e-12) << "depth " << depth << ": lhs " << m.lhs << " rhs " << m.rhs;
    // The bias terms matter: dropping them would break the identity.
    EXPECT_GT(std::abs(m.bias_terms), 1e-3 * std::abs(m.lhs)) << "depth " << depth;
    EXPECT_GT(std::abs(m.lhs - static_cast<double>(m.linear_layers) * m.margin_mean), 1e-6);
  }
  // A tanh network is not homogeneous: refused.
  MlpOptions o = classifier_options(6, 2, 8, 4, 0.0);
  o.activation = Activation::tanh;
  Mlp t = make_mlp(o, 1, 1, torch::Device(torch::kCPU), at::kDouble);
  const std::vector<double> g = to_vector(full_batch_gradient(make_handle(t), data, LossKind::cross_entropy));
  EXPECT_THROW(margin_identity(t, data, g, 0), InputError);
}

TEST(DropoutDiagnostics, AtRateZeroTheDropoutObjectiveGradientIsTheEvalGradient) {
  const Dataset data = classification_data(100, 6, 4, 2);
  Mlp mlp = classifier(3, 12, 0.0);
  const at::Tensor eval = full_batch_gradient(make_handle(mlp), data, LossKind::cross_entropy, 32);
  const DropoutObjectiveGradient g = dropout_objective_gradient(mlp, data, LossKind::cross_entropy, 4, 7, 32);
  EXPECT_TRUE(at::equal(g.half_a, eval));
  EXPECT_TRUE(at::equal(g.half_b, eval));
  EXPECT_DOUBLE_EQ(g.unbiased_squared_norm(), eval.dot(eval).item<double>());
  EXPECT_TRUE(mlp->is_training());  // the caller's mode is kept
}

TEST(DropoutDiagnostics, SplitHalfEstimateOfTheSquaredNormIsUnbiasedWherePlugInIsBiasedByTraceSigmaOverK) {
  // 200 single-draw gradients g_d at rate 0.5 (100 calls with K = 2):
  // E<g_A, g_B> = ||g_p||^2, and plug-in - split-half = ||g_A - g_B||^2 / 4,
  // whose mean is tr Sigma / 2 = tr Sigma / K.
  const Dataset data = classification_data(16, 6, 4, 3);  // few examples: a large mask variance
  Mlp mlp = classifier(3, 32, 0.5);
  std::vector<at::Tensor> single;
  std::vector<double> unbiased, bias;
  for (std::uint64_t key = 0; key < 100; ++key) {
    const DropoutObjectiveGradient g = dropout_objective_gradient(mlp, data, LossKind::cross_entropy, 2, key * 977, 0);
    single.push_back(g.half_a);
    single.push_back(g.half_b);
    unbiased.push_back(g.unbiased_squared_norm());
    bias.push_back(g.plugin_squared_norm() - g.unbiased_squared_norm());
    EXPECT_NEAR(bias.back(), (g.half_a - g.half_b).square().sum().item<double>() / 4.0, 1e-12);
  }
  const at::Tensor all = at::stack(single);
  const at::Tensor mean = all.mean(0);
  const double n = static_cast<double>(single.size());
  const double trace_sigma = (all - mean).square().sum().item<double>() / (n - 1.0);
  ASSERT_GT(trace_sigma, 0.0);
  const double gp2 = mean.dot(mean).item<double>() - trace_sigma / n;  // unbiased from all 200 draws
  const auto mean_se = [](const std::vector<double>& v) {
    double m = 0.0, s = 0.0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (double x : v) s += (x - m) * (x - m);
    return std::pair{m, std::sqrt(s / static_cast<double>(v.size() - 1) / static_cast<double>(v.size()))};
  };
  const auto [u, u_se] = mean_se(unbiased);
  const auto [b, b_se] = mean_se(bias);
  EXPECT_NEAR(u, gp2, 4.0 * u_se);
  EXPECT_NEAR(b, trace_sigma / 2.0, 4.0 * b_se);
  // The plug-in estimate misses ||g_p||^2 by many standard errors.
  EXPECT_GT(u + b - gp2, 8.0 * u_se);
}

TEST(DropoutDiagnostics, DrawsComputedTogetherGiveTheHalvesOfTheDrawsOneAtATime) {
  // 70 rows in batches of 32 (a short last batch: three mask steps), K = 6
  // draws, 1, 2 (an uneven last pass) and 3 draws a pass, depths 2 and 3.
  const Dataset data = classification_data(70, 6, 4, 6);
  for (std::int64_t depth : {2, 3}) {
    Mlp mlp = classifier(depth, 12, 0.3, static_cast<std::uint64_t>(depth) + 10);
    const at::Tensor theta = flat_parameters(make_handle(mlp));
    const DropoutObjectiveGradient one = dropout_objective_gradient(mlp, data, LossKind::cross_entropy, 6, 41, 32);
    for (std::int64_t max_rows : {32, 64, 96, 100000}) {
      const DropoutObjectiveGradient together =
          dropout_objective_gradient_batched(mlp, data, LossKind::cross_entropy, 6, 41, 32, max_rows);
      EXPECT_EQ(together.draws, 6);
      const double scale = one.half_a.abs().max().item<double>();
      EXPECT_LT((together.half_a - one.half_a).abs().max().item<double>(), 1e-12 * scale)
          << "depth " << depth << ", max_rows " << max_rows;
      EXPECT_LT((together.half_b - one.half_b).abs().max().item<double>(), 1e-12 * scale)
          << "depth " << depth << ", max_rows " << max_rows;
      EXPECT_NEAR(together.unbiased_squared_norm(), one.unbiased_squared_norm(), 1e-10 * one.plugin_squared_norm());
    }
    // The halves differ (their masks do), so the comparison is not of one number.
    EXPECT_GT((one.half_a - one.half_b).abs().max().item<double>(), 1e-6 * one.half_a.abs().max().item<double>());
    // Another key draws other masks, which the comparison would see.
    const DropoutObjectiveGradient other =
        dropout_objective_gradient_batched(mlp, data, LossKind::cross_entropy, 6, 42, 32, 100000);
    EXPECT_GT((other.half_a - one.half_a).abs().max().item<double>(), 1e-6 * one.half_a.abs().max().item<double>());
    // The parameters are left as they were, the stream reseeded to the key.
    EXPECT_TRUE(flat_parameters(make_handle(mlp)).equal(theta));
    EXPECT_EQ(mlp->dropout_step(), 0);
  }
  // Without masks (rate 0) it is the eval-mode gradient, as one at a time.
  Mlp plain = classifier(3, 12, 0.0);
  const at::Tensor eval = full_batch_gradient(make_handle(plain), data, LossKind::cross_entropy, 32);
  const DropoutObjectiveGradient g = dropout_objective_gradient_batched(plain, data, LossKind::cross_entropy, 4, 7, 32, 64);
  EXPECT_TRUE(at::equal(g.half_a, eval));
  EXPECT_THROW(dropout_objective_gradient_batched(plain, data, LossKind::cross_entropy, 3, 7, 32, 64), InputError);
}

TEST(DropoutDiagnostics, MinibatchGradientsAverageToTheFullBatchGradient) {
  const Dataset data = classification_data(70, 6, 4, 4);
  Mlp mlp = classifier(2, 10, 0.0);
  const ModelHandle h = make_handle(mlp);
  const MinibatchGradients m = minibatch_gradients(h, data, LossKind::cross_entropy, 32);
  ASSERT_EQ(m.theta_dot_grad.size(), 3u);  // 32 + 32 + 6
  const at::Tensor theta = flat_parameters(h);
  const at::Tensor full = full_batch_gradient(h, data, LossKind::cross_entropy);
  const double weighted = (32.0 * m.theta_dot_grad[0] + 32.0 * m.theta_dot_grad[1] + 6.0 * m.theta_dot_grad[2]) / 70.0;
  EXPECT_NEAR(weighted, theta.dot(full).item<double>(), 1e-12);
  EXPECT_NEAR(m.theta_squared, theta.dot(theta).item<double>(), 1e-12);
  EXPECT_EQ(m.parameters, theta.numel());
}

TEST(DropoutDiagnostics, ShuffledMinibatchGradientsAreThoseOfTheRowsInThatOrderAndStillAverageToTheFullGradient) {
  const Dataset data = classification_data(70, 6, 4, 4);
  Mlp mlp = classifier(2, 10, 0.0);
  const ModelHandle h = make_handle(mlp);
  const std::vector<std::int64_t> order = permutation(70, 11, 3);
  const MinibatchGradients m = minibatch_gradients(h, data, LossKind::cross_entropy, 32, order);
  ASSERT_EQ(m.theta_dot_grad.size(), 3u);
  const at::Tensor theta = flat_parameters(h);
  // The last batch is the permutation's last 6 rows.
  const Dataset last = data.take(std::vector<std::int64_t>(order.begin() + 64, order.end()));
  const at::Tensor g_last = full_batch_gradient(h, last, LossKind::cross_entropy);
  EXPECT_NEAR(m.theta_dot_grad[2], theta.dot(g_last).item<double>(), 1e-13);
  EXPECT_NEAR(m.grad_squared[2], g_last.dot(g_last).item<double>(), 1e-13);
  const MinibatchGradients plain = minibatch_gradients(h, data, LossKind::cross_entropy, 32);
  EXPECT_GT(std::abs(m.grad_squared[2] - plain.grad_squared[2]), 1e-6);  // other rows than rows 64-69
  const at::Tensor full = full_batch_gradient(h, data, LossKind::cross_entropy);
  const double weighted = (32.0 * m.theta_dot_grad[0] + 32.0 * m.theta_dot_grad[1] + 6.0 * m.theta_dot_grad[2]) / 70.0;
  EXPECT_NEAR(weighted, theta.dot(full).item<double>(), 1e-12);
  // Part of a permutation: the batches of just those rows.
  const MinibatchGradients part =
      minibatch_gradients(h, data, LossKind::cross_entropy, 32, std::vector<std::int64_t>(order.begin() + 64, order.end()));
  ASSERT_EQ(part.grad_squared.size(), 1u);
  EXPECT_EQ(part.grad_squared[0], m.grad_squared[2]);
  EXPECT_THROW(minibatch_gradients(h, data, LossKind::cross_entropy, 32, std::vector<std::int64_t>(71, 0)), InputError);
}

TEST(DropoutDiagnostics, BatchedMinibatchGradientsEqualTheBatchesOneAtATimeWhateverThePassSize) {
  // Batches drawn as the dropout study's parity fit draws them (the first
  // rows of shuffles), a network with a rate (eval mode: no masks), and pass
  // sizes of one batch, three batches (a short last pass) and all of them.
  const Dataset data = classification_data(90, 6, 4, 5);
  Mlp mlp = classifier(3, 12, 0.3);
  const ModelHandle h = make_handle(mlp);
  std::vector<std::vector<std::int64_t>> batches;
  for (std::uint64_t k = 0; k < 7; ++k) {
    std::vector<std::int64_t> rows = permutation(90, 17, k);
    rows.resize(13);
    batches.push_back(rows);
  }
  std::vector<double> dot, squared;
  for (const auto& rows : batches) {
    const MinibatchGradients one = minibatch_gradients(h, data, LossKind::cross_entropy, 13, rows);
    ASSERT_EQ(one.theta_dot_grad.size(), 1u);
    dot.push_back(one.theta_dot_grad[0]);
    squared.push_back(one.grad_squared[0]);
  }
  const at::Tensor theta = flat_parameters(h);
  for (std::int64_t max_rows : {1, 13, 39, 1000}) {
    const MinibatchGradients all = minibatch_gradients_batched(mlp, data, LossKind::cross_entropy, batches, max_rows);
    ASSERT_EQ(all.theta_dot_grad.size(), batches.size());
    EXPECT_NEAR(all.theta_squared, theta.dot(theta).item<double>(), 1e-12);
    EXPECT_EQ(all.parameters, theta.numel());
    for (std::size_t k = 0; k < batches.size(); ++k) {
      EXPECT_NEAR(all.theta_dot_grad[k], dot[k], 1e-12 * std::abs(dot[k])) << "batch " << k << ", max_rows " << max_rows;
      EXPECT_NEAR(all.grad_squared[k], squared[k], 1e-12 * squared[k]) << "batch " << k << ", max_rows " << max_rows;
    }
  }
  // The batches differ, so the comparison above is not of one number.
  EXPECT_GT(std::abs(squared[0] - squared[1]), 1e-6 * squared[0]);
  // The parameters are left as they were.
  EXPECT_TRUE(flat_parameters(h).equal(theta));
  std::vector<std::vector<std::int64_t>> uneven = batches;
  uneven.back().pop_back();
  EXPECT_THROW(minibatch_gradients_batched(mlp, data, LossKind::cross_entropy, uneven, 100), InputError);
}

TEST(DropoutDiagnostics, MatchedStationarityTrainsUntilTheUnbiasedNormReachesTheTarget) {
  // Rate 0, full batch: the measurement is ||grad L|| / ||theta|| exactly.
  const Dataset data = classification_data(80, 6, 4, 5);
  Mlp mlp = classifier(2, 8, 0.0);
  const ModelHandle h = make_handle(mlp);
  const auto relative = [&] {
    const at::Tensor g = full_batch_gradient(h, data, LossKind::cross_entropy);
    return std::sqrt(g.dot(g).item<double>() / flat_parameters(h).square().sum().item<double>());
  };
  const double before = relative();
  TrainOptions base;
  base.loss = LossKind::cross_entropy;
  base.optimizer.momentum = 0.9;
  base.batch_size = 0;
  StationarityTarget t;
  t.target = 0.3 * before;
  t.start_learning_rate = 0.1;
  t.decay = 0.9;
  t.round_epochs = 25;
  t.max_rounds = 40;
  t.draws = 2;
  const StationarityMatch m = train_to_dropout_stationarity(mlp, data, base, t, 11);
  ASSERT_TRUE(m.reached) << "last " << m.relative_grad_norm << " target " << t.target;
  EXPECT_GE(m.rounds, 1);
  EXPECT_EQ(m.epochs, 25 * m.rounds);
  EXPECT_NEAR(m.relative_grad_norm, relative(), 1e-12);
  EXPECT_LE(relative(), t.target);
  // A target out of reach within the rounds is reported as not reached.
  StationarityTarget hard = t;
  hard.target = 1e-12;
  hard.max_rounds = 1;
  const StationarityMatch not_reached = train_to_dropout_stationarity(mlp, data, base, hard, 12);
  EXPECT_FALSE(not_reached.reached);
  EXPECT_EQ(not_reached.rounds, 1);
}

// Matched stationarity batched: every replicate goes through the rounds it
// goes through alone (same measurements, batch orders and masks), to
// float64 rounding, while those that reached the target leave the batch and
// a skipped one is left as it was.
TEST(DropoutDiagnostics, BatchedMatchedStationarityFollowsEachNetworkMatchedAlone) {
  const std::vector<double> rates{0.0, 0.3, 0.5, 0.2};
  const std::int64_t R = static_cast<std::int64_t>(rates.size()), n = 48;
  const Dataset pool = classification_data(R * n, 6, 4, 9);
  std::vector<ReplicateSpec> specs(rates.size());
  std::vector<at::Tensor> rows;
  std::vector<std::uint64_t> streams, keys;
  for (std::int64_t r = 0; r < R; ++r) {
    specs[r].init_seed = 2605;
    specs[r].init_stream = 40 + r;
    specs[r].dropout = rates[r];
    specs[r].dropout_key = 500 + r;
    rows.push_back(at::arange(r * n, (r + 1) * n, at::kLong).flip(0));  // not in pool order
    streams.push_back(900 + r);
    keys.push_back(70 + r);
  }
  TrainOptions base;
  base.loss = LossKind::cross_entropy;
  base.optimizer.momentum = 0.9;
  base.batch_size = 16;
  base.seed = 31;
  StationarityTarget t;
  t.target = 0.04;
  t.start_learning_rate = 0.2;
  t.decay = 0.7;
  t.round_epochs = 6;
  t.max_rounds = 5;
  t.draws = 4;
  const std::vector<char> skip{0, 0, 0, 1};

  BatchedMlp batched(classifier_options(6, 2, 8, 4, 0.0), specs, at::kDouble);
  std::vector<Mlp> alone;
  for (std::int64_t r = 0; r < R; ++r) alone.push_back(batched->replicate(r));
  const ReplicateData data{pool, at::stack(rows), {}};
  std::vector<std::int64_t> heard;
  const std::vector<StationarityMatch> together = train_replicates_to_dropout_stationarity(
      batched, data, base, streams, t, keys, skip, [&](std::int64_t round, std::int64_t above, double median) {
        EXPECT_EQ(round, static_cast<std::int64_t>(heard.size()));
        EXPECT_GT(median, t.target);  // the median of those above the target
        heard.push_back(above);
      });

  std::vector<std::int64_t> rounds;
  for (std::int64_t r = 0; r < R; ++r) {
    SCOPED_TRACE(r);
    const at::Tensor before = flat_parameters(make_handle(alone[r]));
    const at::Tensor after = flat_parameters(make_handle(batched->replicate(r)));
    if (skip[r]) {
      EXPECT_EQ(together[r].rounds, 0);
      EXPECT_FALSE(together[r].reached);
      EXPECT_TRUE(after.equal(before));
      continue;
    }
    TrainOptions o = base;
    o.stream = streams[r];
    const Dataset own{pool.x.index_select(0, rows[r]), pool.y.index_select(0, rows[r])};
    const StationarityMatch single = train_to_dropout_stationarity(alone[r], own, o, t, keys[r]);
    EXPECT_EQ(together[r].reached, single.reached);
    EXPECT_EQ(together[r].diverged, single.diverged);
    EXPECT_EQ(together[r].rounds, single.rounds);
    EXPECT_EQ(together[r].epochs, single.epochs);
    EXPECT_NEAR(together[r].relative_grad_norm, single.relative_grad_norm, 1e-10 * single.relative_grad_norm);
    const at::Tensor reference = flat_parameters(make_handle(alone[r]));
    EXPECT_LT((after - reference).abs().max().item<double>(), 1e-10 * (1.0 + reference.abs().max().item<double>()));
    if (single.rounds > 0)
      EXPECT_GT((after - before).abs().max().item<double>(), 0.0);
    else
      EXPECT_TRUE(after.equal(before));  // at the target from the start
    rounds.push_back(single.rounds);
  }
  // They need different numbers of rounds (here 3, 0 and 1), and round k trains those that need more than k.
  EXPECT_GT(*std::max_element(rounds.begin(), rounds.end()), *std::min_element(rounds.begin(), rounds.end()));
  ASSERT_EQ(static_cast<std::int64_t>(heard.size()), *std::max_element(rounds.begin(), rounds.end()));
  for (std::size_t k = 0; k < heard.size(); ++k)
    EXPECT_EQ(heard[k], std::count_if(rounds.begin(), rounds.end(), [&](std::int64_t needed) { return needed > static_cast<std::int64_t>(k); }))
        << "round " << k;
}

}  // namespace
}  // namespace gradmatch::training
