#include "training/replicates.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <limits>
#include <memory>

#include "core/errors.hpp"
#include "core/rng.hpp"
#include "training/device.hpp"
#include "training/dropout_masks.hpp"

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
  at::Tensor two_lambda2;             // [R]: 2 lambda2, rounded as penalty_gradient's scalar
  bool any_huber = false;
  bool any_ridge = false;
  bool any = false;

  /// The penalty's gradient at each parameter tensor (each replicate with
  /// its weights), outside autograd: penalty_gradient's operations in its
  /// order, so a replicate gets the bits it would get trained alone.
  at::Tensor gradient(const at::Tensor& parameter) const {
    const at::Tensor x = parameter.detach();
    if (!any_huber) return x * per_replicate(two_lambda2, x);
    const at::Tensor huber = (x / per_replicate(beta, x)).clamp_(-1.0, 1.0) * per_replicate(lambda1, x);
    return any_ridge ? x * per_replicate(two_lambda2, x) + huber : huber;
  }

  void keep_rows(const at::Tensor& rows) {
    lambda1 = lambda1.index_select(0, rows);
    lambda2 = lambda2.index_select(0, rows);
    two_lambda2 = two_lambda2.index_select(0, rows);
    beta = beta.index_select(0, rows);
  }

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
    bp.any_ridge = bp.any_ridge || l2.back() != 0.0;
    bp.any = bp.any || l1.back() != 0.0 || l2.back() != 0.0;
  }
  const auto cpu = at::TensorOptions().dtype(at::kDouble);
  bp.lambda1 = at::tensor(l1, cpu).to(opts.device(), opts.dtype().toScalarType());
  bp.lambda2 = at::tensor(l2, cpu).to(opts.device(), opts.dtype().toScalarType());
  bp.beta = at::tensor(beta, cpu).to(opts.device(), opts.dtype().toScalarType());
  for (double& v : l2) v *= 2.0;
  bp.two_lambda2 = at::tensor(l2, cpu).to(opts.device(), opts.dtype().toScalarType());
  return bp;
}

}  // namespace

BatchedMlpImpl::BatchedMlpImpl(MlpOptions options, std::span<const ReplicateSpec> specs, at::ScalarType dtype)
    : options_(std::move(options)), replicates_(static_cast<std::int64_t>(specs.size())) {
  options_.validate();
  if (specs.empty()) throw InputError("batched replicates: need at least one replicate");
  std::vector<Mlp> singles;
  for (const auto& s : specs) {
    rates_.push_back(s.dropout.value_or(options_.dropout));
    keys_.push_back(s.dropout_key);
    if (!(rates_.back() >= 0.0 && rates_.back() < 1.0))
      throw InputError("batched replicates: every dropout rate must lie in [0, 1)");
    singles.push_back(make_mlp(options_, s.init_seed, s.init_stream, torch::Device(torch::kCPU), dtype));
  }
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

namespace {

// The layers of a batched MLP as positions in its parameter list.
struct Layout {
  std::vector<std::size_t> weight;
  std::vector<std::ptrdiff_t> bias;  // -1: no bias
};

Layout layout_of(const MlpOptions& o) {
  Layout out;
  std::size_t k = 0;
  const std::size_t hidden = o.hidden.size();
  for (std::size_t l = 0; l <= hidden; ++l) {
    out.weight.push_back(k++);
    const bool bias = l == hidden ? o.output_bias : o.hidden_bias;
    out.bias.push_back(bias ? static_cast<std::ptrdiff_t>(k++) : -1);
  }
  return out;
}

// x [R, B, in] -> [R, B, out] with parameters `p` (layout `lay`); masks at
// `step` from `streams` after every hidden block but the last (MlpImpl::forward).
at::Tensor batched_forward(const MlpOptions& o, const Layout& lay, const std::vector<at::Tensor>& p, const at::Tensor& x,
                           const DropoutStreams* streams, std::int64_t step) {
  at::Tensor h = x;
  const std::size_t layers = lay.weight.size();
  const std::size_t hidden = layers - 1;
  for (std::size_t l = 0; l < layers; ++l) {
    const at::Tensor wt = p[lay.weight[l]].transpose(1, 2);
    h = lay.bias[l] >= 0 ? at::baddbmm(p[static_cast<std::size_t>(lay.bias[l])], h, wt) : at::bmm(h, wt);
    if (l + 1 < layers) {
      h = activate(o.activation, h);
      if (streams && l + 1 < hidden)
        h = h * streams->multipliers(step, static_cast<std::int64_t>(l), h.size(1), h.size(2));
    }
  }
  return h;
}

}  // namespace

at::Tensor batched_mlp_forward(const MlpOptions& options, const std::vector<at::Tensor>& params, const at::Tensor& x) {
  return batched_forward(options, layout_of(options), params, x, nullptr, 0);
}

at::Tensor BatchedMlpImpl::forward(const at::Tensor& x) { return batched_mlp_forward(options_, params_, x); }

Mlp BatchedMlpImpl::replicate(std::int64_t r) const {
  MlpOptions o = options_;
  o.dropout = rates_.at(static_cast<std::size_t>(r));
  Mlp m(o);
  m->seed_dropout(keys_.at(static_cast<std::size_t>(r)));
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
  // One pool: the training sets, then the validation sets; rows by offsets.
  const auto rows = [](std::span<const Dataset> sets, std::int64_t first, const char* what) {
    std::vector<at::Tensor> index;
    for (const Dataset& s : sets) {
      validate_dataset(s, what);
      if (s.size() != sets.front().size())
        throw InputError("batched replicates: every replicate needs the same number of examples");
      index.push_back(at::arange(first, first + s.size(), at::kLong));
      first += s.size();
    }
    return at::stack(index);
  };
  std::vector<Dataset> all(train_sets.begin(), train_sets.end());
  all.insert(all.end(), validation_sets.begin(), validation_sets.end());
  ReplicateData data;
  data.train = rows(train_sets, 0, "train_replicates(): training data");
  if (!validation_sets.empty())
    data.validation = rows(validation_sets, R * train_sets.front().size(), "train_replicates(): validation data");
  std::vector<at::Tensor> xs, ys;
  for (const Dataset& s : all) {
    xs.push_back(s.x);
    ys.push_back(s.y);
  }
  data.pool = {at::cat(xs), at::cat(ys)};
  return train_replicates(model, data, options, specs);
}

namespace {

// torch::optim's SGD (momentum, no dampening, weight decay or Nesterov) and
// Adam (no weight decay or amsgrad), step for step, on the working rows.
struct ElementwiseOptimizer {
  OptimizerOptions o;
  std::vector<at::Tensor> buffer, exp_avg, exp_avg_sq;  // per parameter, [R_active, ...]
  std::int64_t steps = 0;

  void step(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads, double lr) {
    at::NoGradGuard no_grad;
    ++steps;
    const bool first = steps == 1;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const at::Tensor& g = grads[i];
      if (o.kind == OptimizerKind::sgd) {
        at::Tensor d = g;
        if (o.momentum != 0.0) {
          if (first) buffer.push_back(g.clone().detach());
          else buffer[i].mul_(o.momentum).add_(g, 1.0);
          d = buffer[i];
        }
        params[i].add_(d, -1 * lr);
      } else {
        if (first) {
          exp_avg.push_back(at::zeros_like(params[i]));
          exp_avg_sq.push_back(at::zeros_like(params[i]));
        }
        const double bias1 = 1 - std::pow(o.beta1, static_cast<double>(steps));
        const double bias2 = 1 - std::pow(o.beta2, static_cast<double>(steps));
        exp_avg[i].mul_(o.beta1).add_(g, 1 - o.beta1);
        exp_avg_sq[i].mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
        const at::Tensor denom = (exp_avg_sq[i].sqrt() / std::sqrt(bias2)).add_(o.eps);
        params[i].addcdiv_(exp_avg[i], denom, -(lr / bias1));
      }
    }
  }

  void keep_rows(const at::Tensor& index) {
    for (auto* v : {&buffer, &exp_avg, &exp_avg_sq})
      for (auto& t : *v) t = t.index_select(0, index);
  }
};

}  // namespace

std::vector<TrainResult> train_replicates(BatchedMlp& model, const ReplicateData& data, const TrainOptions& options,
                                          std::span<const ReplicateSpec> specs, BatchStats* stats,
                                          const EpochHook& on_epoch) {
  const std::int64_t R = model->replicates();
  const bool has_validation = data.validation.defined();
  if (static_cast<std::int64_t>(specs.size()) != R || !data.train.defined() || data.train.dim() != 2 ||
      data.train.size(0) != R || (has_validation && (data.validation.dim() != 2 || data.validation.size(0) != R)))
    throw InputError("train_replicates(): need one row of training indices (and of validation indices, if any) and one "
                     "spec per replicate");
  validate_dataset(data.pool, "train_replicates(): data");
  const OptimizerOptions& oo = options.optimizer;
  if (oo.kind == OptimizerKind::lbfgs) throw InputError("train_replicates(): L-BFGS is not element-wise; use sgd or adam");
  if (!(oo.learning_rate > 0.0) || !(oo.momentum >= 0.0 && oo.momentum < 1.0))
    throw InputError("train_replicates(): bad optimizer options");
  if (const std::string problem = schedule_problem(oo); !problem.empty())
    throw InputError("train_replicates(): " + problem);
  if (options.early_stopping &&
      (options.early_stopping->patience < 1 || (options.early_stopping->monitor == Monitor::validation && !has_validation)))
    throw InputError("train_replicates(): bad early-stopping options");
  const Tf32Scope matmul_precision(options.tf32);

  const std::vector<at::Tensor>& model_params = model->batched_parameters();
  const at::TensorOptions popts = model_params.front().options();
  const at::Device device = model_params.front().device();
  // Phase timing (BatchStats::time_phases): `phase(slot)` charges the time
  // since the last boundary to `slot`, after the device has caught up.
  const bool timing = stats && stats->time_phases;
  auto last_mark = std::chrono::steady_clock::now();
  const auto phase = [&](double BatchStats::Phases::*slot) {
    if (!timing) return;
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
    const auto now = std::chrono::steady_clock::now();
    stats->phases.*slot += std::chrono::duration<double>(now - last_mark).count();
    last_mark = now;
  };
  const at::ScalarType dtype = model_params.front().scalar_type();
  const bool classes = options.loss == LossKind::cross_entropy;
  const Layout lay = layout_of(model->options());

  const Dataset pool = data.pool.to(device, dtype);
  const std::int64_t n = data.train.size(1);
  const std::int64_t d = pool.x.size(1);
  std::vector<std::int64_t> y_tail = pool.y.sizes().vec();
  y_tail.erase(y_tail.begin());
  // Gathers pool rows `index` [Ra, k] into x [Ra, k, d] and y [Ra, k, ...] (regression y gets an output dim).
  const auto gather = [&](const at::Tensor& index) {
    const std::int64_t ra = index.size(0), k = index.size(1);
    const at::Tensor flat = index.reshape({-1});
    std::vector<std::int64_t> yshape{ra, k};
    yshape.insert(yshape.end(), y_tail.begin(), y_tail.end());
    Dataset out{pool.x.index_select(0, flat).view({ra, k, d}), pool.y.index_select(0, flat).view(yshape)};
    if (!classes && out.y.dim() == 2) out.y = out.y.unsqueeze(2);
    return out;
  };
  const std::int64_t batch = options.batch_size <= 0 || options.batch_size >= n ? n : options.batch_size;
  const bool full_batch = batch == n;

  // The working batch: rows of the active replicates, compacted as they stop.
  std::vector<std::int64_t> active;  // working row -> replicate
  for (std::int64_t r = 0; r < R; ++r) active.push_back(r);
  std::vector<at::Tensor> work;
  for (const auto& p : model_params) work.push_back(p.detach().clone().requires_grad_(true));
  at::Tensor train_index = data.train.to(device, at::kLong);
  Dataset val_all;
  if (has_validation) val_all = gather(data.validation.to(device, at::kLong));
  BatchedPenalty penalty = batched_penalty(specs, popts);
  std::vector<std::uint64_t> keys;
  std::vector<double> rates;
  for (std::int64_t r = 0; r < R; ++r) {
    keys.push_back(model->dropout_key(r));
    rates.push_back(model->dropout_rate(r));
  }
  DropoutStreams streams(keys, rates, popts);
  ElementwiseOptimizer optimizer{oo, {}, {}, {}, 0};

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
  std::vector<at::Tensor> best;
  if (options.keep_best)
    for (const auto& p : model_params) best.push_back(p.detach().clone());
  std::vector<char> has_best(static_cast<std::size_t>(R), 0);
  const auto device_index = [&](const std::vector<std::int64_t>& v) { return at::tensor(v, at::kLong).to(device); };
  // Working rows `rows` back into the model's replicates `reps`.
  const auto write_back = [&](const std::vector<std::int64_t>& rows, const std::vector<std::int64_t>& reps) {
    if (rows.empty()) return;
    at::NoGradGuard no_grad;
    const at::Tensor from = device_index(rows), to = device_index(reps);
    for (std::size_t i = 0; i < work.size(); ++i) model_params[i].index_copy_(0, to, work[i].detach().index_select(0, from));
  };

  // Batch orders: replicate r's permutation for each epoch from its own Rng,
  // as train() draws it; drawn one epoch ahead on a host thread, straight
  // into a [replicates, n] host tensor -- page-locked for a CUDA device, so
  // that its copy to the device does not stall the host. (Two vector copies
  // and a synchronous copy of 80 x 54,000 indices, as before, took ~40 ms an
  // epoch on the host, time in which the GPU waited.)
  const bool shuffled = options.shuffle && !full_batch;
  struct Orders {
    std::vector<std::int64_t> replicates;
    at::Tensor perms;  // [replicates.size(), n] int64, host
  };
  // With a GPU the host's cores are otherwise idle, so the replicates' draws
  // are split over up to 8 threads (each replicate has its own Rng: the same
  // orders); on the CPU one thread, beside the rank's compute.
  const bool pinned = device.is_cuda();
  const std::size_t draw_threads = pinned ? 8 : 1;
  const auto draw_orders = [&order, n, pinned, draw_threads](std::vector<std::int64_t> reps) {
    return std::async(std::launch::async, [&order, n, pinned, draw_threads, reps = std::move(reps)] {
      Orders o{reps, at::empty({static_cast<std::int64_t>(reps.size()), n},
                               at::TensorOptions().dtype(at::kLong).pinned_memory(pinned))};
      std::int64_t* const out = o.perms.data_ptr<std::int64_t>();
      const auto draw_rows = [&](std::size_t first, std::size_t last) {
        for (std::size_t k = first; k < last; ++k) {
          const std::vector<std::int64_t> perm = permutation(n, order[static_cast<std::size_t>(reps[k])]);
          std::copy(perm.begin(), perm.end(), out + static_cast<std::ptrdiff_t>(k) * n);
        }
      };
      const std::size_t chunks = std::max<std::size_t>(1, std::min(draw_threads, reps.size()));
      std::vector<std::future<void>> helpers;
      for (std::size_t c = 1; c < chunks; ++c)
        helpers.push_back(std::async(std::launch::async, draw_rows, c * reps.size() / chunks, (c + 1) * reps.size() / chunks));
      draw_rows(0, reps.size() / chunks);
      for (auto& h : helpers) h.get();
      return o;
    });
  };
  std::future<Orders> next_orders;
  if (shuffled) next_orders = draw_orders(active);
  phase(&BatchStats::Phases::setup);

  std::int64_t step = 0;  // training steps so far: the masks' step count
  for (std::int64_t epoch = 1; epoch <= options.max_epochs && !active.empty(); ++epoch) {
    const auto ra = static_cast<std::int64_t>(active.size());
    const double lr = scheduled_learning_rate(oo, epoch);

    at::Tensor epoch_index = train_index;
    if (shuffled) {
      const Orders drawn = next_orders.get();  // drawn before the loop or at the end of the last epoch
      // Drawn for the replicates active when the draw began; some may have stopped since.
      at::Tensor perms = drawn.perms;
      if (drawn.replicates != active) {
        std::vector<std::int64_t> rows;
        std::size_t k = 0;
        for (const std::int64_t r : active) {
          while (drawn.replicates[k] != r) ++k;
          rows.push_back(static_cast<std::int64_t>(k));
        }
        perms = perms.index_select(0, at::tensor(rows, at::kLong));
      }
      epoch_index = train_index.gather(1, perms.to(device, /*non_blocking=*/true));
      // The next epoch's orders are drawn on the host while the device trains this one.
      if (epoch < options.max_epochs) next_orders = draw_orders(active);
    }
    at::Tensor loss_sum = at::zeros({ra}, at::TensorOptions().dtype(at::kDouble).device(device));
    phase(&BatchStats::Phases::orders);
    std::int64_t steps = 0;
    for (std::int64_t begin = 0; begin < n; begin += batch) {
      const std::int64_t end = std::min(n, begin + batch);
      const Dataset b = gather(epoch_index.slice(1, begin, end));
      phase(&BatchStats::Phases::batch);
      const at::Tensor out = batched_forward(model->options(), lay, work, b.x, streams.active() ? &streams : nullptr, step);
      const at::Tensor data_loss = replicate_losses(options.loss, out, b.y);
      phase(&BatchStats::Phases::forward);
      std::vector<at::Tensor> grads = torch::autograd::grad({data_loss.sum()}, work);
      if (penalty.any) {
        at::NoGradGuard no_grad;
        for (std::size_t i = 0; i < work.size(); ++i) grads[i] = grads[i] + penalty.gradient(work[i]);
      }
      phase(&BatchStats::Phases::backward);
      optimizer.step(work, grads, lr);
      loss_sum += data_loss.detach().to(at::kDouble) * static_cast<double>(end - begin);
      phase(&BatchStats::Phases::optimizer);
      ++steps;
      ++step;
      if (stats) stats->replicate_steps += ra;
    }

    // Per-replicate records (one host transfer per quantity).
    const at::Tensor train_loss = (loss_sum / static_cast<double>(n)).cpu().contiguous();
    at::Tensor pen_t, finite_t, val_t;
    {
      at::NoGradGuard no_grad;
      pen_t = (penalty.any ? penalty.value(work) : at::zeros({ra}, popts)).to(at::kDouble).cpu().contiguous();
      at::Tensor finite = at::ones({ra}, at::TensorOptions().dtype(at::kBool).device(device));
      for (const auto& p : work) finite = finite & at::isfinite(p).flatten(1).all(1);
      finite_t = finite.cpu().contiguous();
      if (has_validation)
        val_t = replicate_losses(options.loss, batched_forward(model->options(), lay, work, val_all.x, nullptr, 0), val_all.y)
                    .to(at::kDouble)
                    .cpu()
                    .contiguous();
    }
    std::vector<std::int64_t> keep, stop_rows, stop_reps, improved_rows, improved_reps;
    for (std::int64_t row = 0; row < ra; ++row) {
      const std::int64_t r = active[static_cast<std::size_t>(row)];
      TrainResult& res = results[static_cast<std::size_t>(r)];
      res.epochs = epoch;
      res.steps += steps;
      EpochRecord rec;
      rec.epoch = epoch;
      rec.train_loss = train_loss.data_ptr<double>()[row];
      rec.learning_rate = lr;
      rec.penalty = pen_t.data_ptr<double>()[row];
      const auto stop = [&](TrainStatus status, const char* why) {
        res.status = status;
        if (why) res.message = "epoch " + std::to_string(epoch) + ": " + why;
        stop_rows.push_back(row);
        stop_reps.push_back(r);
      };
      if (!std::isfinite(rec.train_loss)) {
        stop(TrainStatus::diverged, "the training loss is not finite");
        continue;
      }
      if (!std::isfinite(rec.penalty) || !finite_t.data_ptr<bool>()[row]) {
        stop(TrainStatus::diverged, "the parameters are not finite");
        continue;
      }
      if (has_validation) {
        rec.validation_loss = val_t.data_ptr<double>()[row];
        if (!std::isfinite(rec.validation_loss)) {
          stop(TrainStatus::diverged, "the validation loss is not finite");
          continue;
        }
      }
      res.history.push_back(rec);
      if (options.keep_best) {
        EarlyStopping& t = trackers[static_cast<std::size_t>(r)];
        t.end_epoch(rec);
        if (t.improved()) {
          improved_rows.push_back(row);
          improved_reps.push_back(r);
          has_best[static_cast<std::size_t>(r)] = 1;
        }
      }
      if (options.early_stopping && stoppers[static_cast<std::size_t>(r)].end_epoch(rec)) {
        stop(TrainStatus::stopped_early, nullptr);
        continue;
      }
      keep.push_back(row);
    }
    if (!improved_rows.empty()) {
      at::NoGradGuard no_grad;
      const at::Tensor from = device_index(improved_rows), to = device_index(improved_reps);
      for (std::size_t i = 0; i < work.size(); ++i) best[i].index_copy_(0, to, work[i].detach().index_select(0, from));
    }
    if (stop_rows.empty()) {
      phase(&BatchStats::Phases::epoch_end);
      if (on_epoch) on_epoch(epoch, ra);
      continue;
    }
    // Stopped and diverged replicates keep their current weights; the rest go on, compacted.
    write_back(stop_rows, stop_reps);
    std::vector<std::int64_t> still;
    for (const std::int64_t row : keep) still.push_back(active[static_cast<std::size_t>(row)]);
    active = std::move(still);
    if (on_epoch) on_epoch(epoch, static_cast<std::int64_t>(active.size()));
    if (active.empty()) {
      phase(&BatchStats::Phases::epoch_end);
      break;
    }
    const at::Tensor rows_kept = device_index(keep);
    for (auto& p : work) p = p.detach().index_select(0, rows_kept).requires_grad_(true);
    optimizer.keep_rows(rows_kept);
    train_index = train_index.index_select(0, rows_kept);
    if (has_validation) val_all = {val_all.x.index_select(0, rows_kept), val_all.y.index_select(0, rows_kept)};
    penalty.keep_rows(rows_kept);
    streams = streams.select(rows_kept);
    phase(&BatchStats::Phases::epoch_end);
  }
  std::vector<std::int64_t> rows(active.size());
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<std::int64_t>(i);
  write_back(rows, active);

  if (options.keep_best) {
    at::NoGradGuard no_grad;
    for (std::int64_t r = 0; r < R; ++r) {
      TrainResult& res = results[static_cast<std::size_t>(r)];
      if (!has_best[static_cast<std::size_t>(r)] || res.status == TrainStatus::diverged) continue;
      for (std::size_t i = 0; i < model_params.size(); ++i) model_params[i][r].copy_(best[i][r]);
      res.best_epoch = trackers[static_cast<std::size_t>(r)].best_epoch();
    }
  } else if (options.early_stopping) {  // as train(): the rule's best epoch, the parameters the last epoch's
    for (std::int64_t r = 0; r < R; ++r) {
      TrainResult& res = results[static_cast<std::size_t>(r)];
      if (res.status != TrainStatus::diverged) res.best_epoch = stoppers[static_cast<std::size_t>(r)].best_epoch();
    }
  }
  return results;
}

}  // namespace gradmatch::training
