// Trainers: early stopping at the epoch a hand-made loss sequence says,
// keep-best, the NaN/Inf guard, the step schedule, and SGD with momentum
// against its update rule.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/errors.hpp"
#include "training/data.hpp"
#include "training/models.hpp"
#include "training/tensor_bridge.hpp"
#include "training/trainer.hpp"

namespace gradmatch::training {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// A model whose training loss at epoch e is losses[e - 1] (one full-batch step
// per epoch, MSE against zero targets) and whose only parameter is w. SGD
// moves w by -lr * (dL/dw) where the loss depends on w through a zero-weight
// term, so w only records which epoch's state a snapshot came from when we
// set it by hand.
struct ScriptedModel {
  std::vector<double> losses;
  std::int64_t calls = 0;
  at::Tensor w = at::zeros({1}, at::kDouble).requires_grad_(true);
  bool training = true;

  ModelHandle handle() {
    ModelHandle h;
    h.forward = [this](const at::Tensor& x) {
      const double l = losses.at(static_cast<std::size_t>(std::min<std::int64_t>(calls, static_cast<std::int64_t>(losses.size()) - 1)));
      ++calls;
      {
        at::NoGradGuard g;
        w.fill_(static_cast<double>(calls));  // the state "after epoch calls"
      }
      return at::full({x.size(0), 1}, std::sqrt(l), at::kDouble) + 0.0 * w;
    };
    h.set_training = [this](bool on) { training = on; };
    h.is_training = [this] { return training; };
    h.parameters = {w};
    h.parameter_names = {"w"};
    return h;
  }
};

Dataset zeros_data(std::int64_t n = 4) { return {at::zeros({n, 1}, at::kDouble), at::zeros({n, 1}, at::kDouble)}; }

TEST(EarlyStopping, FollowsLightningsRule) {
  EarlyStopping es({/*patience=*/2, /*min_delta=*/0.1, Monitor::train});
  es.begin();
  // 1.0 improves (from +inf); 0.95 is not better by 0.1 (wait 1); 0.85 is (wait 0);
  // 0.8, 0.79 are not (wait 1, 2): stop at the fifth value.
  const std::vector<double> values = {1.0, 0.95, 0.85, 0.8, 0.79};
  const std::vector<bool> stops = {false, false, false, false, true};
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(es.update(values[i], static_cast<std::int64_t>(i + 1)), stops[i]) << i;
  EXPECT_DOUBLE_EQ(es.best(), 0.85);
  EXPECT_EQ(es.best_epoch(), 3);
}

// Training losses whose best, 2.9, is at epoch 5; epochs 6, 7, 8 do not
// improve on it, so a patience of 3 stops after epoch 8.
const std::vector<double> kBestAtFiveStopAtEight = {5.0, 4.0, 3.0, 3.5, 2.9, 3.1, 3.2, 3.3, 1.0};

TrainOptions patience_three(bool keep_best) {
  TrainOptions o;
  o.optimizer.learning_rate = 1e-3;
  o.max_epochs = 100;
  o.early_stopping = EarlyStoppingOptions{3, 0.0, Monitor::train};
  o.keep_best = keep_best;
  return o;
}

TEST(Trainer, StopsAtTheEpochTheLossSequenceSaysAndKeepsTheBest) {
  ScriptedModel model;
  model.losses = kBestAtFiveStopAtEight;
  const ModelHandle h = model.handle();
  const TrainResult r = train(h, zeros_data(), Dataset{}, patience_three(true));
  EXPECT_EQ(r.status, TrainStatus::stopped_early);
  EXPECT_EQ(r.epochs, 8);
  EXPECT_EQ(r.steps, 8);
  ASSERT_EQ(r.history.size(), 8u);
  EXPECT_DOUBLE_EQ(r.history[4].train_loss, 2.9);
  EXPECT_EQ(r.best_epoch, 5);
  EXPECT_DOUBLE_EQ(model.w.item<double>(), 5.0);  // the state after epoch 5's forward
}

TEST(Trainer, WithoutKeepBestReportsTheRulesBestEpochAndKeepsTheLastEpochsState) {
  ScriptedModel model;
  model.losses = kBestAtFiveStopAtEight;
  TrainOptions o = patience_three(false);
  const ModelHandle h = model.handle();
  const TrainResult r = train(h, zeros_data(), Dataset{}, o);
  EXPECT_EQ(r.status, TrainStatus::stopped_early);
  EXPECT_EQ(r.epochs, 8);
  EXPECT_EQ(r.best_epoch, 5);
  EXPECT_DOUBLE_EQ(model.w.item<double>(), 8.0);  // the state after epoch 8's forward: nothing restored
  // Without early stopping there is no rule to name a best epoch.
  ScriptedModel fixed;
  fixed.losses = model.losses;
  o.early_stopping.reset();
  o.max_epochs = 6;
  const TrainResult f = train(fixed.handle(), zeros_data(), Dataset{}, o);
  EXPECT_EQ(f.epochs, 6);
  EXPECT_EQ(f.best_epoch, 0);
}

TEST(Trainer, StopsOnTheValidationLoss) {
  // Validation losses come from the same scripted sequence: each epoch calls
  // forward once for training and once for validation.
  ScriptedModel model;
  model.losses = {9, 3.0, 9, 2.0, 9, 2.5, 9, 2.2, 9, 1.0};
  TrainOptions o;
  o.max_epochs = 100;
  o.early_stopping = EarlyStoppingOptions{2, 0.0, Monitor::validation};
  const ModelHandle h = model.handle();
  const TrainResult r = train(h, zeros_data(), zeros_data(2), o);
  EXPECT_EQ(r.status, TrainStatus::stopped_early);
  EXPECT_EQ(r.epochs, 4);
  EXPECT_DOUBLE_EQ(r.history[1].validation_loss, 2.0);
  EXPECT_DOUBLE_EQ(r.history[3].validation_loss, 2.2);

  TrainOptions needs_validation = o;
  EXPECT_THROW(train(h, zeros_data(), Dataset{}, needs_validation), InputError);
}

TEST(Trainer, NanGuardMarksTheTaskDiverged) {
  ScriptedModel model;
  model.losses = {2.0, 1.0, kNaN, 0.5};
  TrainOptions o;
  o.max_epochs = 10;
  const TrainResult r = train(model.handle(), zeros_data(), Dataset{}, o);
  EXPECT_EQ(r.status, TrainStatus::diverged);
  EXPECT_EQ(r.epochs, 3);
  EXPECT_EQ(r.history.size(), 2u);
  EXPECT_NE(r.message.find("epoch 3"), std::string::npos) << r.message;
}

TEST(Trainer, AStepSizeFarTooLargeDivergesWithoutThrowing) {
  const Dataset data = linear_regression({200, 5, 5.0, 0.5, {}}, 1, 0).data;
  MlpOptions mo;
  mo.inputs = 5;
  mo.hidden = {};  // linear: GD with this step size grows geometrically
  const ModelHandle h = make_handle(make_mlp(mo, 1, 0, torch::Device(torch::kCPU), at::kFloat));
  TrainOptions o;
  o.optimizer.learning_rate = 50.0;
  o.max_epochs = 50;
  o.batch_size = 20;
  TrainResult r;
  ASSERT_NO_THROW(r = train(h, data.to(torch::Device(torch::kCPU), at::kFloat), Dataset{}, o));
  EXPECT_EQ(r.status, TrainStatus::diverged);
  EXPECT_LT(r.epochs, 50);
}

TEST(Trainer, StepScheduleAndSgdMomentumFollowTheirRules) {
  // One parameter, L(w) = (w - 3)^2 (MSE of a constant model against 3),
  // grad 2 (w - 3). SGD with momentum mu: v = mu v + g, w -= lr v.
  at::Tensor w = at::zeros({1}, at::kDouble).requires_grad_(true);
  bool training = true;
  ModelHandle h;
  h.forward = [&](const at::Tensor& x) { return w.expand({x.size(0)}).unsqueeze(1); };
  h.set_training = [&](bool on) { training = on; };
  h.is_training = [&] { return training; };
  h.parameters = {w};
  h.parameter_names = {"w"};
  const Dataset data{at::zeros({2, 1}, at::kDouble), at::full({2, 1}, 3.0, at::kDouble)};
  TrainOptions o;
  o.optimizer.learning_rate = 0.1;
  o.optimizer.momentum = 0.9;
  o.optimizer.step_size = 2;
  o.optimizer.gamma = 0.5;
  o.max_epochs = 5;
  const TrainResult r = train(h, data, Dataset{}, o);
  double ww = 0.0, v = 0.0;
  const std::vector<double> lrs = {0.1, 0.1, 0.05, 0.05, 0.025};
  for (std::size_t e = 0; e < 5; ++e) {
    EXPECT_DOUBLE_EQ(r.history[e].learning_rate, lrs[e]);
    v = 0.9 * v + 2.0 * (ww - 3.0);
    ww -= lrs[e] * v;
  }
  EXPECT_NEAR(w.item<double>(), ww, 1e-14);
  EXPECT_EQ(r.status, TrainStatus::completed);
}

TEST(Trainer, MilestoneScheduleDecaysTheRateAfterEachMilestoneEpochAsMultiStepLr) {
  // PyTorch's MultiStepLR(milestones=[2, 3], gamma=0.1) stepped once per
  // epoch: epochs 1-2 at lr, epoch 3 at 0.1 lr, epochs 4-5 at 0.01 lr.
  OptimizerOptions o;
  o.learning_rate = 0.05;
  o.milestones = {2, 3};
  o.gamma = 0.1;
  const std::vector<double> expected = {0.05, 0.05, 0.005, 0.0005, 0.0005};
  for (std::int64_t e = 1; e <= 5; ++e) EXPECT_NEAR(scheduled_learning_rate(o, e), expected[static_cast<std::size_t>(e - 1)], 1e-18);
  // Combined with a step schedule, the decays multiply.
  o.step_size = 4;
  EXPECT_NEAR(scheduled_learning_rate(o, 5), 0.05 * 1e-3, 1e-18);
  EXPECT_TRUE(schedule_problem(o).empty());
  o.milestones = {3, 3};
  EXPECT_NE(schedule_problem(o).find("strictly increasing"), std::string::npos);
  o.milestones = {0};
  EXPECT_FALSE(schedule_problem(o).empty());
}

TEST(Trainer, RejectsBadOptions) {
  ScriptedModel model;
  model.losses = {1.0};
  TrainOptions o;
  o.optimizer.learning_rate = -1.0;
  EXPECT_THROW(train(model.handle(), zeros_data(), Dataset{}, o), InputError);
  o.optimizer.learning_rate = 0.1;
  o.early_stopping = EarlyStoppingOptions{0, 0.0, Monitor::train};
  EXPECT_THROW(train(model.handle(), zeros_data(), Dataset{}, o), InputError);
  EXPECT_THROW(parse_optimizer("rmsprop"), InputError);
  EXPECT_EQ(parse_monitor("val"), Monitor::validation);
}

}  // namespace
}  // namespace gradmatch::training

namespace gradmatch::training {
namespace {

// The callback is the core rule (core/early_stopping.hpp): a non-finite
// monitored value stops at once, as in the OLS simulator, and keeps the best
// epoch found before it.
TEST(EarlyStopping, ANonFiniteValueStopsAtOnceLikeTheCoreRule) {
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    EarlyStopping es({/*patience=*/100, /*min_delta=*/0.0, Monitor::validation});
    gradmatch::EarlyStoppingRule core(100, 0.0);
    es.begin();
    const std::vector<double> values{3.0, 2.0, 2.5, bad};
    for (std::size_t i = 0; i < values.size(); ++i)
      EXPECT_EQ(es.update(values[i], static_cast<std::int64_t>(i + 1)), core.update(values[i])) << i;
    EXPECT_TRUE(core.stopped_on_non_finite());
    EXPECT_FALSE(es.improved());
    EXPECT_EQ(es.best(), 2.0);
    EXPECT_EQ(es.best_epoch(), 2);
    EXPECT_EQ(es.wait(), 1);
  }
}

}  // namespace
}  // namespace gradmatch::training
