#include "training/trainer.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/optim/adam.h>
#include <torch/optim/lbfgs.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <memory>

#include "core/errors.hpp"
#include "core/rng.hpp"
#include "training/device.hpp"

namespace gradmatch::training {
namespace {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& o, const std::vector<at::Tensor>& params) {
  switch (o.kind) {
    case OptimizerKind::sgd:
      return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(o.learning_rate).momentum(o.momentum));
    case OptimizerKind::adam:
      return std::make_unique<torch::optim::Adam>(
          params, torch::optim::AdamOptions(o.learning_rate).betas({o.beta1, o.beta2}).eps(o.eps));
    case OptimizerKind::lbfgs:
      return std::make_unique<torch::optim::LBFGS>(params, torch::optim::LBFGSOptions(o.learning_rate)
                                                               .max_iter(o.lbfgs_max_iter)
                                                               .tolerance_grad(o.lbfgs_tolerance_grad)
                                                               .tolerance_change(o.lbfgs_tolerance_change)
                                                               .history_size(o.lbfgs_history)
                                                               .line_search_fn("strong_wolfe"));
  }
  throw InputError("train(): unknown optimizer");
}

void validate(const TrainOptions& o, const Dataset& train_data, const Dataset& validation) {
  const auto fail = [](const char* what) {
    std::string msg = "train(): ";
    msg += what;
    throw InputError(msg);
  };
  validate_dataset(train_data, "train(): training data");
  if (validation.size() > 0) validate_dataset(validation, "train(): validation data");
  if (o.max_epochs < 0) fail("max_epochs must be non-negative");
  if (!(o.optimizer.learning_rate > 0.0)) fail("the learning rate must be positive");
  if (!(o.optimizer.momentum >= 0.0 && o.optimizer.momentum < 1.0)) fail("momentum must lie in [0, 1)");
  if (const std::string problem = schedule_problem(o.optimizer); !problem.empty()) fail(problem.c_str());
  if (o.early_stopping) {
    if (o.early_stopping->patience < 1) fail("early-stopping patience must be at least 1");
    if (!(o.early_stopping->min_delta >= 0.0)) fail("early-stopping min_delta must be non-negative");
    if (o.early_stopping->monitor == Monitor::validation && validation.size() == 0)
      fail("early stopping on the validation loss needs validation data");
  }
  o.penalty.validate();
}

bool all_finite(const std::vector<at::Tensor>& params) {
  for (const auto& p : params)
    if (!at::isfinite(p.detach()).all().item<bool>()) return false;
  return true;
}

}  // namespace

OptimizerKind parse_optimizer(std::string_view text) {
  if (text == "sgd") return OptimizerKind::sgd;
  if (text == "adam") return OptimizerKind::adam;
  if (text == "lbfgs") return OptimizerKind::lbfgs;
  std::string msg = "optimizer: unknown optimizer '";
  msg += text;
  msg += "'; use sgd, adam or lbfgs";
  throw InputError(msg);
}

double scheduled_learning_rate(const OptimizerOptions& options, std::int64_t epoch) {
  std::int64_t decays = options.step_size > 0 ? (epoch - 1) / options.step_size : 0;
  for (std::int64_t m : options.milestones) decays += m <= epoch - 1;
  return options.learning_rate * std::pow(options.gamma, static_cast<double>(decays));
}

std::string schedule_problem(const OptimizerOptions& options) {
  if (options.step_size < 0) return "the step schedule needs step_size >= 0";
  if (!(options.gamma > 0.0)) return "the step schedule needs gamma > 0";
  for (std::size_t i = 0; i < options.milestones.size(); ++i)
    if (options.milestones[i] < 1 || (i > 0 && options.milestones[i] <= options.milestones[i - 1]))
      return "the milestones must be strictly increasing epochs >= 1";
  return {};
}

Monitor parse_monitor(std::string_view text) {
  if (text == "train") return Monitor::train;
  if (text == "validation" || text == "val") return Monitor::validation;
  std::string msg = "early stopping: unknown monitor '";
  msg += text;
  msg += "'; use train or validation";
  throw InputError(msg);
}

std::string to_string(TrainStatus status) {
  switch (status) {
    case TrainStatus::completed: return "completed";
    case TrainStatus::stopped_early: return "stopped_early";
    case TrainStatus::diverged: return "diverged";
  }
  return "?";
}

void EarlyStopping::begin() {
  rule_.reset();
  best_epoch_ = 0;
}

bool EarlyStopping::update(double value, std::int64_t epoch) {
  const bool stop = rule_.update(value);
  if (rule_.improved()) best_epoch_ = epoch;
  return stop;
}

bool EarlyStopping::end_epoch(const EpochRecord& record) { return update(record.monitored(options_.monitor), record.epoch); }

double evaluate_loss(const ModelHandle& model, const Dataset& data, LossKind loss, std::int64_t batch_size) {
  at::NoGradGuard no_grad;
  EvalModeGuard eval(model);
  const std::int64_t n = data.size();
  const std::int64_t b = batch_size <= 0 ? n : batch_size;
  at::Tensor total = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(data.x.device()));
  for (std::int64_t begin = 0; begin < n; begin += b) {
    const Dataset batch = data.slice(begin, std::min(n, begin + b));
    total += summed_loss(loss, model.forward(batch.x), batch.y).to(at::kDouble);
  }
  return total.item<double>() / static_cast<double>(n);
}

at::Tensor predict(const ModelHandle& model, const at::Tensor& x, std::int64_t batch_size) {
  at::NoGradGuard no_grad;
  EvalModeGuard eval(model);
  const std::int64_t n = x.size(0);
  const std::int64_t b = batch_size <= 0 ? n : batch_size;
  std::vector<at::Tensor> parts;
  for (std::int64_t begin = 0; begin < n; begin += b) parts.push_back(model.forward(x.slice(0, begin, std::min(n, begin + b))));
  return at::cat(parts);
}

TrainResult train(const ModelHandle& model, const Dataset& train_data, const Dataset& validation,
                  const TrainOptions& options, std::span<Callback* const> callbacks) {
  validate(options, train_data, validation);
  const Tf32Scope matmul_precision(options.tf32);
  const OptimizerOptions& oo = options.optimizer;
  std::unique_ptr<torch::optim::Optimizer> optimizer = make_optimizer(oo, model.parameters);

  std::optional<EarlyStopping> stopper;
  if (options.early_stopping) stopper.emplace(*options.early_stopping);
  // keep-best tracks the early-stopping monitor (with its min_delta) or the training loss.
  EarlyStopping best_tracker(options.early_stopping ? *options.early_stopping
                                                    : EarlyStoppingOptions{std::numeric_limits<std::int64_t>::max(), 0.0,
                                                                           Monitor::train});
  std::vector<at::Tensor> best_state;
  if (stopper) stopper->begin();
  best_tracker.begin();
  for (Callback* c : callbacks) c->begin();

  TrainResult result;
  const std::int64_t n = train_data.size();
  const std::int64_t batch = options.batch_size <= 0 || options.batch_size >= n ? n : options.batch_size;
  const bool full_batch = batch == n;
  Rng order_rng(options.seed, options.stream);
  model.set_training(true);

  const auto diverge = [&](std::int64_t epoch, const std::string& what) {
    result.status = TrainStatus::diverged;
    result.message = "epoch ";
    result.message += std::to_string(epoch);
    result.message += ": ";
    result.message += what;
  };

  for (std::int64_t epoch = 1; epoch <= options.max_epochs; ++epoch) {
    const double lr = scheduled_learning_rate(oo, epoch);
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);

    double train_loss = 0.0;
    if (oo.kind == OptimizerKind::lbfgs) {
      auto closure = [&]() -> at::Tensor {
        optimizer->zero_grad();
        const at::Tensor objective = mean_loss(options.loss, model.forward(train_data.x), train_data.y) +
                                     penalty_value(options.penalty, model.parameters);
        objective.backward();
        return objective;
      };
      static_cast<torch::optim::LBFGS&>(*optimizer).step(closure);
      ++result.steps;
      at::NoGradGuard no_grad;
      train_loss = mean_loss(options.loss, model.forward(train_data.x), train_data.y).item<double>();
    } else {
      const Dataset epoch_data =
          options.shuffle && !full_batch ? train_data.take(permutation(n, order_rng)) : train_data;
      at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(train_data.x.device()));
      for (std::int64_t begin = 0; begin < n; begin += batch) {
        const Dataset b = epoch_data.slice(begin, std::min(n, begin + batch));
        optimizer->zero_grad();
        const at::Tensor data_loss = mean_loss(options.loss, model.forward(b.x), b.y);
        if (options.penalty.kind == Penalty::Kind::custom) {
          (data_loss + penalty_value(options.penalty, model.parameters)).backward();
        } else {
          // The penalty's gradient in closed form, added to the data loss's
          // (penalty_gradient: the same bits as a batched replicate's).
          data_loss.backward();
          if (options.penalty.active()) {
            at::NoGradGuard no_grad;
            for (auto& p : model.parameters) {
              if (!p.requires_grad()) continue;  // as autograd: a frozen tensor gets no gradient
              const at::Tensor g = penalty_gradient(options.penalty, p);
              p.mutable_grad() = p.grad().defined() ? p.grad() + g : g;
            }
          }
        }
        optimizer->step();
        ++result.steps;
        loss_sum += data_loss.detach().to(at::kDouble) * static_cast<double>(b.size());
      }
      train_loss = loss_sum.item<double>() / static_cast<double>(n);
    }

    EpochRecord record;
    record.epoch = epoch;
    record.train_loss = train_loss;
    record.learning_rate = lr;
    {
      at::NoGradGuard no_grad;
      record.penalty = penalty_value(options.penalty, model.parameters).item<double>();
    }
    result.epochs = epoch;
    if (!std::isfinite(record.train_loss)) {
      diverge(epoch, "the training loss is not finite");
      break;
    }
    if (!std::isfinite(record.penalty) || !all_finite(model.parameters)) {
      diverge(epoch, "the parameters are not finite");
      break;
    }
    if (validation.size() > 0) record.validation_loss = evaluate_loss(model, validation, options.loss);
    if (validation.size() > 0 && !std::isfinite(record.validation_loss)) {
      diverge(epoch, "the validation loss is not finite");
      break;
    }
    result.history.push_back(record);

    if (options.keep_best) {
      best_tracker.end_epoch(record);
      if (best_tracker.improved()) best_state = snapshot_parameters(model);
    }
    bool stop = false;
    if (stopper && stopper->end_epoch(record)) {
      stop = true;
      result.status = TrainStatus::stopped_early;
    }
    for (Callback* c : callbacks) stop = c->end_epoch(record) || stop;
    if (stop) break;
  }

  if (options.keep_best && !best_state.empty() && result.status != TrainStatus::diverged) {
    restore_parameters(model, best_state);
    result.best_epoch = best_tracker.best_epoch();
  } else if (!options.keep_best && stopper && result.status != TrainStatus::diverged) {
    result.best_epoch = stopper->best_epoch();
  }
  return result;
}

}  // namespace gradmatch::training
