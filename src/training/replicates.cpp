#include "training/replicates.hpp"

#include <ATen/ATen.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <memory>

#include "core/errors.hpp"
#include "core/rng.hpp"

namespace gradmatch::training {
namespace {

std::vector<std::int64_t> trailing_dims(const at::Tensor& t) {
  std::vector<std::int64_t> dims;
  for (std::int64_t d = 1; d < t.dim(); ++d) dims.push_back(d);
  return dims;
}

// Per-replicate view shape [R, 1, 1, ...] matching t's rank.
at::Tensor per_replicate(const at::Tensor& v, const at::Tensor& t) {
  std::vector<std::int64_t> shape(static_cast<std::size_t>(t.dim()), 1);
  shape[0] = v.size(0);
  return v.view(shape);
}

// Mean batch loss of each replicate [R] (losses.hpp's conventions per replicate).
at::Tensor replicate_losses(LossKind kind, const at::Tensor& out, const at::Tensor& y) {
  const auto batch = static_cast<double>(out.size(1));
  const auto outputs = static_cast<double>(out.size(2));
  switch (kind) {
    case LossKind::mse: return (out - y).square().sum({1, 2}) / outputs / batch;
    case LossKind::cross_entropy:
      return -at::log_softmax(out, 2).gather(2, y.unsqueeze(2)).sum({1, 2}) / batch;
    case LossKind::bce_with_logits:
      return at::binary_cross_entropy_with_logits(out, y, {}, {}, at::Reduction::None).sum({1, 2}) / outputs / batch;
  }
  throw InputError("train_replicates(): unknown loss");
}

// Penalty of each replicate [R]: lambda1 sum h_beta + lambda2 sum theta^2.
struct BatchedPenalty {
  at::Tensor lambda1, lambda2, beta;  // [R]
  bool any_huber = false;
  bool any = false;

  at::Tensor value(const std::vector<at::Tensor>& params) const {
    const std::int64_t r = lambda1.size(0);
    at::Tensor squares = at::zeros({r}, params.front().options());
    at::Tensor hubers = at::zeros({r}, params.front().options());
    for (const auto& p : params) {
      const auto dims = trailing_dims(p);
      squares = squares + p.square().sum(dims);
      if (any_huber) {
        const at::Tensor b = per_replicate(beta, p);
        const at::Tensor a = p.abs();
        hubers = hubers + at::where(a < b, p.square() / (2.0 * b), a - 0.5 * b).sum(dims);
      }
    }
    return any_huber ? lambda1 * hubers + lambda2 * squares : lambda2 * squares;
  }
};

BatchedPenalty batched_penalty(std::span<const ReplicateSpec> specs, const at::TensorOptions& opts) {
  std::vector<double> l1, l2, beta;
  BatchedPenalty bp;
  for (const auto& s : specs) {
    s.penalty.validate();
    const Penalty& p = s.penalty;
    switch (p.kind) {
      case Penalty::Kind::none: l1.push_back(0.0); l2.push_back(0.0); beta.push_back(1.0); break;
      case Penalty::Kind::ridge: l1.push_back(0.0); l2.push_back(p.lambda1); beta.push_back(1.0); break;
      case Penalty::Kind::huber: l1.push_back(p.lambda1); l2.push_back(0.0); beta.push_back(p.beta); break;
      case Penalty::Kind::elastic_net: l1.push_back(p.lambda1); l2.push_back(p.lambda2); beta.push_back(p.beta); break;
      case Penalty::Kind::custom:
        throw InputError("replicate batching supports ridge, huber and elastic-net penalties, not " + p.to_string());
    }
    bp.any_huber = bp.any_huber || l1.back() != 0.0;
    bp.any = bp.any || l1.back() != 0.0 || l2.back() != 0.0;
  }
  const auto cpu = at::TensorOptions().dtype(at::kDouble);
  bp.lambda1 = at::tensor(l1, cpu).to(opts.device(), opts.dtype().toScalarType());
  bp.lambda2 = at::tensor(l2, cpu).to(opts.device(), opts.dtype().toScalarType());
  bp.beta = at::tensor(beta, cpu).to(opts.device(), opts.dtype().toScalarType());
  return bp;
}

}  // namespace

BatchedMlpImpl::BatchedMlpImpl(MlpOptions options, std::span<const ReplicateSpec> specs, at::ScalarType dtype)
    : options_(std::move(options)), replicates_(static_cast<std::int64_t>(specs.size())) {
  options_.validate();
  if (options_.dropout != 0.0) throw InputError("batched replicates: dropout is not supported (train one at a time)");
  if (specs.empty()) throw InputError("batched replicates: need at least one replicate");
  std::vector<Mlp> singles;
  for (const auto& s : specs) singles.push_back(make_mlp(options_, s.init_seed, s.init_stream, torch::Device(torch::kCPU), dtype));
  const std::size_t layers = singles.front()->layers().size();
  for (std::size_t l = 0; l < layers; ++l) {
    std::vector<at::Tensor> w, b;
    for (const auto& m : singles) {
      w.push_back(m->layers()[l]->weight.detach());
      if (m->layers()[l]->options.bias()) b.push_back(m->layers()[l]->bias.detach().unsqueeze(0));
    }
    weights_.push_back(register_parameter(std::string("weight") + std::to_string(l), at::stack(w)));
    params_.push_back(weights_.back());
    if (!b.empty()) {
      biases_.push_back(register_parameter(std::string("bias") + std::to_string(l), at::stack(b)));
      params_.push_back(biases_.back());
    } else {
      biases_.emplace_back();
    }
  }
}

at::Tensor BatchedMlpImpl::forward(const at::Tensor& x) {
  at::Tensor h = x;
  for (std::size_t l = 0; l < weights_.size(); ++l) {
    const at::Tensor wt = weights_[l].transpose(1, 2);
    h = biases_[l].defined() ? at::baddbmm(biases_[l], h, wt) : at::bmm(h, wt);
    if (l + 1 < weights_.size()) h = activate(options_.activation, h);
  }
  return h;
}

Mlp BatchedMlpImpl::replicate(std::int64_t r) const {
  Mlp m(options_);
  m->to(weights_.front().scalar_type());
  at::NoGradGuard no_grad;
  for (std::size_t l = 0; l < weights_.size(); ++l) {
    m->layers()[l]->weight.copy_(weights_[l][r]);
    if (biases_[l].defined()) m->layers()[l]->bias.copy_(biases_[l][r].squeeze(0));
  }
  m->to(weights_.front().device());
  return m;
}

void BatchedMlpImpl::set_replicate(std::int64_t r, const Mlp& source) {
  at::NoGradGuard no_grad;
  for (std::size_t l = 0; l < weights_.size(); ++l) {
    weights_[l][r].copy_(source->layers()[l]->weight);
    if (biases_[l].defined()) biases_[l][r].copy_(source->layers()[l]->bias.unsqueeze(0));
  }
}

Dataset stack_datasets(std::span<const Dataset> sets) {
  if (sets.empty()) return {};
  std::vector<at::Tensor> xs, ys;
  for (const auto& s : sets) {
    validate_dataset(s, "stack_datasets()");
    if (s.size() != sets.front().size()) throw InputError("batched replicates: every replicate needs the same number of examples");
    xs.push_back(s.x);
    ys.push_back(s.y);
  }
  return {at::stack(xs), at::stack(ys)};
}

std::vector<TrainResult> train_replicates(BatchedMlp& model, std::span<const Dataset> train_sets,
                                          std::span<const Dataset> validation_sets, const TrainOptions& options,
                                          std::span<const ReplicateSpec> specs) {
  const std::int64_t R = model->replicates();
  if (static_cast<std::int64_t>(train_sets.size()) != R || static_cast<std::int64_t>(specs.size()) != R)
    throw InputError("train_replicates(): need one data set and one spec per replicate");
  if (!validation_sets.empty() && static_cast<std::int64_t>(validation_sets.size()) != R)
    throw InputError("train_replicates(): give no validation sets or one per replicate");
  const OptimizerOptions& oo = options.optimizer;
  if (oo.kind == OptimizerKind::lbfgs) throw InputError("train_replicates(): L-BFGS is not element-wise; use sgd or adam");
  {
    if (!(oo.learning_rate > 0.0) || !(oo.momentum >= 0.0 && oo.momentum < 1.0) || oo.step_size < 0 || !(oo.gamma > 0.0))
      throw InputError("train_replicates(): bad optimizer options");
    if (options.early_stopping && (options.early_stopping->patience < 1 ||
                                   (options.early_stopping->monitor == Monitor::validation && validation_sets.empty())))
      throw InputError("train_replicates(): bad early-stopping options");
  }

  const std::vector<at::Tensor>& params = model->batched_parameters();
  const at::TensorOptions popts = params.front().options();
  const at::Device device = params.front().device();
  const at::ScalarType dtype = params.front().scalar_type();
  const bool classes = options.loss == LossKind::cross_entropy;

  Dataset train_all = stack_datasets(train_sets).to(device, dtype);
  if (!classes && train_all.y.dim() == 2) train_all.y = train_all.y.unsqueeze(2);
  Dataset val_all;
  if (!validation_sets.empty()) {
    val_all = stack_datasets(validation_sets).to(device, dtype);
    if (!classes && val_all.y.dim() == 2) val_all.y = val_all.y.unsqueeze(2);
  }
  const std::int64_t n = train_all.x.size(1);
  const std::int64_t d = train_all.x.size(2);
  const std::int64_t batch = options.batch_size <= 0 || options.batch_size >= n ? n : options.batch_size;
  const bool full_batch = batch == n;

  const BatchedPenalty penalty = batched_penalty(specs, popts);
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (oo.kind == OptimizerKind::sgd)
    optimizer = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(oo.learning_rate).momentum(oo.momentum));
  else
    optimizer = std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(oo.learning_rate).betas({oo.beta1, oo.beta2}).eps(oo.eps));

  std::vector<TrainResult> results(static_cast<std::size_t>(R));
  std::vector<Rng> order;
  for (const auto& s : specs) order.emplace_back(s.order_seed, s.order_stream);
  const EarlyStoppingOptions keep_rule = options.early_stopping
                                             ? *options.early_stopping
                                             : EarlyStoppingOptions{std::numeric_limits<std::int64_t>::max(), 0.0, Monitor::train};
  std::vector<EarlyStopping> stoppers, trackers;
  for (std::int64_t r = 0; r < R; ++r) {
    if (options.early_stopping) stoppers.emplace_back(*options.early_stopping);
    trackers.emplace_back(keep_rule);
  }
  std::vector<char> active(static_cast<std::size_t>(R), 1);
  std::int64_t n_active = R;
  at::Tensor active_mask = at::ones({R}, at::TensorOptions().dtype(at::kBool).device(device));
  std::vector<at::Tensor> frozen, best;
  for (const auto& p : params) frozen.push_back(p.detach().clone());
  if (options.keep_best)
    for (const auto& p : params) best.push_back(p.detach().clone());
  std::vector<char> has_best(static_cast<std::size_t>(R), 0);

  const auto freeze = [&](std::int64_t r) {
    at::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) frozen[i][r].copy_(params[i][r]);
    active[static_cast<std::size_t>(r)] = 0;
    active_mask[r] = false;
    --n_active;
  };
  const at::Tensor offsets = (at::arange(R, at::kLong) * n).unsqueeze(1).to(device);

  for (std::int64_t epoch = 1; epoch <= options.max_epochs && n_active > 0; ++epoch) {
    double lr = oo.learning_rate;
    if (oo.step_size > 0) lr *= std::pow(oo.gamma, static_cast<double>((epoch - 1) / oo.step_size));
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);

    at::Tensor xs = train_all.x, ys = train_all.y;
    if (options.shuffle && !full_batch) {
      std::vector<std::int64_t> index;
      index.reserve(static_cast<std::size_t>(R * n));
      for (std::int64_t r = 0; r < R; ++r) {
        const std::vector<std::int64_t> perm = permutation(n, order[static_cast<std::size_t>(r)]);
        index.insert(index.end(), perm.begin(), perm.end());
      }
      const at::Tensor flat = (at::tensor(index, at::kLong).view({R, n}).to(device) + offsets).view({-1});
      xs = train_all.x.reshape({R * n, d}).index_select(0, flat).view({R, n, d});
      std::vector<std::int64_t> yshape = train_all.y.sizes().vec();
      yshape.erase(yshape.begin());
      yshape[0] = R * n;
      std::vector<std::int64_t> yback = train_all.y.sizes().vec();
      ys = train_all.y.reshape(yshape).index_select(0, flat).view(yback);
    }
    at::Tensor loss_sum = at::zeros({R}, at::TensorOptions().dtype(at::kDouble).device(device));
    std::int64_t steps = 0;
    for (std::int64_t begin = 0; begin < n; begin += batch) {
      const std::int64_t end = std::min(n, begin + batch);
      const at::Tensor xb = xs.slice(1, begin, end);
      const at::Tensor yb = ys.slice(1, begin, end);
      optimizer->zero_grad();
      const at::Tensor data_loss = replicate_losses(options.loss, model->forward(xb), yb);
      at::Tensor objective = penalty.any ? data_loss + penalty.value(params) : data_loss;
      if (n_active < R) objective = at::where(active_mask, objective, at::zeros_like(objective));
      objective.sum().backward();
      optimizer->step();
      if (n_active < R) {
        at::NoGradGuard no_grad;
        for (std::size_t i = 0; i < params.size(); ++i)
          params[i].copy_(at::where(per_replicate(active_mask, params[i]), params[i], frozen[i]));
      }
      loss_sum += data_loss.detach().to(at::kDouble) * static_cast<double>(end - begin);
      ++steps;
    }

    // Per-replicate records (one host transfer per quantity).
    const std::vector<double> train_loss = [&] {
      const at::Tensor t = (loss_sum / static_cast<double>(n)).cpu();
      return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + R);
    }();
    at::Tensor pen_t, finite_t, val_t;
    {
      at::NoGradGuard no_grad;
      pen_t = (penalty.any ? penalty.value(params) : at::zeros({R}, popts)).to(at::kDouble).cpu().contiguous();
      at::Tensor finite = at::ones({R}, at::TensorOptions().dtype(at::kBool).device(device));
      for (const auto& p : params) finite = finite & at::isfinite(p).flatten(1).all(1);
      finite_t = finite.cpu().contiguous();
      if (!validation_sets.empty())
        val_t = replicate_losses(options.loss, model->forward(val_all.x), val_all.y).to(at::kDouble).cpu().contiguous();
    }
    for (std::int64_t r = 0; r < R; ++r) {
      if (!active[static_cast<std::size_t>(r)]) continue;
      TrainResult& res = results[static_cast<std::size_t>(r)];
      res.epochs = epoch;
      res.steps += steps;
      EpochRecord rec;
      rec.epoch = epoch;
      rec.train_loss = train_loss[static_cast<std::size_t>(r)];
      rec.learning_rate = lr;
      rec.penalty = pen_t.data_ptr<double>()[r];
      const auto diverge = [&](const char* what) {
        res.status = TrainStatus::diverged;
        res.message = "epoch ";
        res.message += std::to_string(epoch);
        res.message += ": ";
        res.message += what;
        freeze(r);
      };
      if (!std::isfinite(rec.train_loss)) {
        diverge("the training loss is not finite");
        continue;
      }
      if (!std::isfinite(rec.penalty) || !finite_t.data_ptr<bool>()[r]) {
        diverge("the parameters are not finite");
        continue;
      }
      if (!validation_sets.empty()) {
        rec.validation_loss = val_t.data_ptr<double>()[r];
        if (!std::isfinite(rec.validation_loss)) {
          diverge("the validation loss is not finite");
          continue;
        }
      }
      res.history.push_back(rec);
      if (options.keep_best) {
        EarlyStopping& t = trackers[static_cast<std::size_t>(r)];
        t.end_epoch(rec);
        if (t.improved()) {
          at::NoGradGuard no_grad;
          for (std::size_t i = 0; i < params.size(); ++i) best[i][r].copy_(params[i][r]);
          has_best[static_cast<std::size_t>(r)] = 1;
        }
      }
      if (options.early_stopping && stoppers[static_cast<std::size_t>(r)].end_epoch(rec)) {
        res.status = TrainStatus::stopped_early;
        freeze(r);
      }
    }
  }

  if (options.keep_best) {
    at::NoGradGuard no_grad;
    for (std::int64_t r = 0; r < R; ++r) {
      TrainResult& res = results[static_cast<std::size_t>(r)];
      if (!has_best[static_cast<std::size_t>(r)] || res.status == TrainStatus::diverged) continue;
      for (std::size_t i = 0; i < params.size(); ++i) params[i][r].copy_(best[i][r]);
      res.best_epoch = trackers[static_cast<std::size_t>(r)].best_epoch();
    }
  }
  return results;
}

}  // namespace gradmatch::training
