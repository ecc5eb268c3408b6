#include "training/dropout_diagnostics.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/errors.hpp"
#include "core/statistics.hpp"
#include "training/dropout_masks.hpp"
#include "training/endpoint.hpp"
#include "training/tensor_bridge.hpp"

namespace gradmatch::training {

MinibatchGradients minibatch_gradients(const ModelHandle& model, const Dataset& data, LossKind loss,
                                       std::int64_t batch_size, const std::vector<std::int64_t>& order) {
  validate_dataset(data, "minibatch_gradients()");
  if (batch_size < 1) throw InputError("minibatch_gradients(): the batch size must be positive");
  if (static_cast<std::int64_t>(order.size()) > data.size())
    throw InputError("minibatch_gradients(): the order lists more rows than the data has");
  const at::Tensor theta = flat_parameters(model);
  MinibatchGradients out;
  out.parameters = theta.numel();
  out.theta_squared = theta.dot(theta).item<double>();
  const std::int64_t n = order.empty() ? data.size() : static_cast<std::int64_t>(order.size());
  for (std::int64_t begin = 0; begin < n; begin += batch_size) {
    const std::int64_t end = std::min(n, begin + batch_size);
    const Dataset batch =
        order.empty() ? data.slice(begin, end)
                      : data.take(std::vector<std::int64_t>(order.begin() + begin, order.begin() + end));
    const at::Tensor g = full_batch_gradient(model, batch, loss);
    out.theta_dot_grad.push_back(theta.dot(g).item<double>());
    out.grad_squared.push_back(g.dot(g).item<double>());
  }
  return out;
}

MinibatchGradients minibatch_gradients_batched(const Mlp& mlp, const Dataset& data, LossKind loss,
                                               std::span<const std::vector<std::int64_t>> batches,
                                               std::int64_t max_rows) {
  validate_dataset(data, "minibatch_gradients_batched()");
  // ||theta||^2 on the parameters' device: the gradients' passes below never
  // copy theta to the host (minibatch_gradients does, once a call).
  MinibatchGradients out;
  at::Tensor theta_squared;
  for (const auto& param : mlp->parameters()) {
    out.parameters += param.numel();
    const at::Tensor s = param.detach().to(at::kDouble).square().sum();
    theta_squared = theta_squared.defined() ? theta_squared + s : s;
  }
  out.theta_squared = theta_squared.defined() ? theta_squared.item<double>() : 0.0;
  if (batches.empty()) return out;
  const auto b = static_cast<std::int64_t>(batches.front().size());
  if (b < 1) throw InputError("minibatch_gradients_batched(): a batch must have rows");
  for (const auto& batch : batches)
    if (static_cast<std::int64_t>(batch.size()) != b)
      throw InputError("minibatch_gradients_batched(): the batches must be of equal size");
  const std::int64_t per_pass = std::max<std::int64_t>(1, max_rows / b);
  const auto& layers = mlp->layers();
  const at::Device device = layers.front()->weight.device();
  const at::ScalarType dtype = layers.front()->weight.scalar_type();
  out.theta_dot_grad.reserve(batches.size());
  out.grad_squared.reserve(batches.size());
  for (std::size_t first = 0; first < batches.size(); first += static_cast<std::size_t>(per_pass)) {
    const std::size_t count = std::min(batches.size() - first, static_cast<std::size_t>(per_pass));
    const auto r = static_cast<std::int64_t>(count);
    std::vector<std::int64_t> rows;
    rows.reserve(count * static_cast<std::size_t>(b));
    for (std::size_t k = first; k < first + count; ++k) rows.insert(rows.end(), batches[k].begin(), batches[k].end());
    const Dataset pass = data.take(rows);
    // The parameters once per batch, as a BatchedMlp holds them (weights
    // [r, out, in], biases [r, 1, out]): batch k's gradient lands in copy k.
    std::vector<at::Tensor> leaves;
    for (const auto& layer : layers) {
      leaves.push_back(layer->weight.detach().unsqueeze(0).repeat({r, 1, 1}).requires_grad_(true));
      if (layer->bias.defined()) leaves.push_back(layer->bias.detach().view({1, 1, -1}).repeat({r, 1, 1}).requires_grad_(true));
    }
    const at::Tensor h = batched_mlp_forward(mlp->options(), leaves, pass.x.to(device, dtype).reshape({r, b, -1}));
    // The sum over the batches of each batch's mean loss.
    const at::Tensor total = summed_loss(loss, h.reshape({r * b, h.size(2)}), pass.y.to(device)) / static_cast<double>(b);
    const auto grads = torch::autograd::grad({total}, leaves);
    at::Tensor dot = at::zeros({r}, at::TensorOptions().dtype(at::kDouble).device(device));
    at::Tensor squared = at::zeros({r}, at::TensorOptions().dtype(at::kDouble).device(device));
    for (std::size_t i = 0; i < leaves.size(); ++i) {
      const at::Tensor g = grads[i].to(at::kDouble).reshape({r, -1});
      const at::Tensor value = leaves[i].detach()[0].to(at::kDouble).reshape({1, -1});
      dot += (g * value).sum(1);
      squared += g.square().sum(1);
    }
    const at::Tensor dot_host = dot.cpu(), squared_host = squared.cpu();
    for (std::int64_t k = 0; k < r; ++k) {
      out.theta_dot_grad.push_back(dot_host[k].item<double>());
      out.grad_squared.push_back(squared_host[k].item<double>());
    }
  }
  return out;
}

at::Tensor DropoutObjectiveGradient::mean() const { return 0.5 * (half_a + half_b); }
double DropoutObjectiveGradient::unbiased_squared_norm() const { return half_a.dot(half_b).item<double>(); }
double DropoutObjectiveGradient::plugin_squared_norm() const {
  const at::Tensor m = mean();
  return m.dot(m).item<double>();
}

DropoutObjectiveGradient dropout_objective_gradient(const Mlp& mlp, const Dataset& data, LossKind loss,
                                                    std::int64_t draws, std::uint64_t key, std::int64_t batch_size) {
  if (draws < 2 || draws % 2 != 0) throw InputError("dropout_objective_gradient(): the mask draws must be even and >= 2");
  Mlp model = mlp;  // shares the module
  const ModelHandle h = make_handle(model);
  DropoutObjectiveGradient out;
  out.draws = draws;
  // No masks (rate 0, or no hidden block but the last): every draw is the
  // same pass, so one pass gives both halves.
  if (!(model->options().dropout > 0.0 && model->layers().size() > 2)) {
    out.half_a = full_batch_gradient(h, data, loss, batch_size, ForwardMode::train);
    out.half_b = out.half_a.clone();
    model->seed_dropout(key);
    return out;
  }
  for (std::int64_t d = 0; d < draws; ++d) {
    model->seed_dropout(splitmix64_mix(key + static_cast<std::uint64_t>(d) + 1));
    const at::Tensor g = full_batch_gradient(h, data, loss, batch_size, ForwardMode::train);
    at::Tensor& half = d < draws / 2 ? out.half_a : out.half_b;
    half = half.defined() ? half + g : g;
  }
  out.half_a /= static_cast<double>(draws / 2);
  out.half_b /= static_cast<double>(draws / 2);
  model->seed_dropout(key);
  return out;
}

DropoutObjectiveGradient dropout_objective_gradient_batched(const Mlp& mlp, const Dataset& data, LossKind loss,
                                                            std::int64_t draws, std::uint64_t key,
                                                            std::int64_t batch_size, std::int64_t max_rows) {
  if (draws < 2 || draws % 2 != 0)
    throw InputError("dropout_objective_gradient_batched(): the mask draws must be even and >= 2");
  validate_dataset(data, "dropout_objective_gradient_batched()");
  const double rate = mlp->options().dropout;
  const auto& layers = mlp->layers();
  const std::size_t hidden = layers.size() - 1;
  if (!(rate > 0.0 && hidden > 1)) return dropout_objective_gradient(mlp, data, loss, draws, key, batch_size);
  Mlp model = mlp;  // shares the module
  const ModelHandle handle = make_handle(model);
  const at::Device device = layers.front()->weight.device();
  const at::ScalarType dtype = layers.front()->weight.scalar_type();
  const Activation activation = model->options().activation;
  const std::int64_t n = data.size();
  const std::int64_t b = batch_size <= 0 ? n : std::min(batch_size, n);
  const std::int64_t half = draws / 2;
  const std::int64_t per_pass = std::min(half, std::max<std::int64_t>(1, max_rows / b));
  DropoutObjectiveGradient out;
  out.draws = draws;
  for (std::int64_t which = 0; which < 2; ++which) {
    std::vector<at::Tensor> total;
    for (const auto& p : handle.parameters) total.push_back(at::zeros(p.sizes(), p.options().dtype(at::kDouble)));
    for (std::int64_t first = 0; first < half; first += per_pass) {
      const std::int64_t count = std::min(per_pass, half - first);
      // Draw d's masks: the stream dropout_objective_gradient() seeds for it.
      std::vector<std::uint64_t> keys;
      for (std::int64_t d = which * half + first; d < which * half + first + count; ++d)
        keys.push_back(splitmix64_mix(key + static_cast<std::uint64_t>(d) + 1));
      const std::vector<double> rates(keys.size(), rate);
      const DropoutStreams streams(keys, rates, at::TensorOptions().dtype(dtype).device(device));
      // Batch c is the c-th training forward pass of each draw: its masks are step c's.
      std::int64_t step = 0;
      for (std::int64_t begin = 0; begin < n; begin += b, ++step) {
        const Dataset batch = data.slice(begin, std::min(n, begin + b));
        const std::int64_t rows = batch.size();
        // MlpImpl::forward with the draws along a leading dimension: the first
        // layer's output is the same for every draw and is computed once.
        at::Tensor h = batch.x.to(device, dtype);
        for (std::size_t l = 0; l < layers.size(); ++l) {
          h = at::linear(h, layers[l]->weight, layers[l]->bias);
          if (l + 1 < layers.size()) {
            h = activate(activation, h);
            if (l + 1 < hidden) {
              const std::int64_t cols = h.size(-1);
              h = h * streams.multipliers(step, static_cast<std::int64_t>(l), rows, cols);  // [count, rows, cols]
            }
          }
        }
        const at::Tensor y = batch.y.to(device);
        std::vector<std::int64_t> repeat(static_cast<std::size_t>(y.dim()), 1);
        repeat.front() = count;
        const at::Tensor s = summed_loss(loss, h.reshape({count * rows, h.size(-1)}), y.repeat(repeat));
        const auto grads = torch::autograd::grad({s}, handle.parameters, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                                 /*create_graph=*/false, /*allow_unused=*/true);
        for (std::size_t i = 0; i < grads.size(); ++i)
          if (grads[i].defined()) total[i] += grads[i].to(at::kDouble);
      }
    }
    std::vector<at::Tensor> flat;
    for (auto& t : total) flat.push_back(t.reshape({-1}).cpu());
    (which == 0 ? out.half_a : out.half_b) = at::cat(flat) / (static_cast<double>(n) * static_cast<double>(half));
  }
  model->seed_dropout(key);
  return out;
}

double dropout_relative_grad_norm(const DropoutObjectiveGradient& g, double theta_norm) {
  return std::sqrt(std::max(g.unbiased_squared_norm(), 0.0)) / theta_norm;
}

MarginIdentity margin_identity(const Mlp& mlp, const Dataset& data, std::span<const double> grad_loss,
                               std::int64_t batch_size) {
  const Activation a = mlp->options().activation;
  if (a != Activation::relu && a != Activation::identity)
    throw InputError("margin_identity(): the network must be positively homogeneous (relu or identity activation)");
  validate_dataset(data, "margin_identity()");
  Mlp model = mlp;
  const ModelHandle h = make_handle(model);
  const at::Tensor theta = flat_parameters(h);
  if (static_cast<std::int64_t>(grad_loss.size()) != theta.numel())
    throw InputError("margin_identity(): the gradient has " + std::to_string(grad_loss.size()) + " entries, the model " +
                     std::to_string(theta.numel()) + " parameters");
  const double* g = grad_loss.data();
  const double* t = theta.data_ptr<double>();
  MarginIdentity out;
  out.linear_layers = static_cast<std::int64_t>(model->layers().size());
  for (std::int64_t j = 0; j < theta.numel(); ++j) out.lhs -= g[j] * t[j];
  // Bias terms: walk the flat theta (per layer: weight, then bias).
  std::int64_t offset = 0;
  for (std::size_t l = 0; l < model->layers().size(); ++l) {
    const auto& layer = model->layers()[l];
    offset += layer->weight.numel();
    if (layer->bias.defined()) {
      double s = 0.0;
      for (std::int64_t j = 0; j < layer->bias.numel(); ++j) s += g[offset + j] * t[offset + j];
      out.bias_terms += static_cast<double>(l) * s;  // (k - 1) with k = l + 1
      offset += layer->bias.numel();
    }
  }
  // M = mean_i <e_y - softmax(z_i), z_i>, in float64, eval mode.
  {
    at::NoGradGuard no_grad;
    EvalModeGuard eval(h);
    const at::ScalarType dtype = model->layers().front()->weight.scalar_type();
    const at::Device device = model->layers().front()->weight.device();
    const std::int64_t n = data.size();
    const std::int64_t b = batch_size <= 0 ? n : batch_size;
    double sum = 0.0;
    for (std::int64_t begin = 0; begin < n; begin += b) {
      const Dataset batch = data.slice(begin, std::min(n, begin + b));
      const at::Tensor z = model->forward(batch.x.to(device, dtype)).to(at::kDouble);
      const at::Tensor zy = z.gather(1, batch.y.to(device).view({-1, 1})).squeeze(1);
      const at::Tensor expected = (at::softmax(z, 1) * z).sum(1);
      sum += (zy - expected).sum().item<double>();
    }
    out.margin_mean = sum / static_cast<double>(n);
  }
  out.rhs = static_cast<double>(out.linear_layers) * out.margin_mean + out.bias_terms;
  const double scale = static_cast<double>(out.linear_layers) * std::abs(out.margin_mean) + std::abs(out.bias_terms);
  out.relative_error = scale > 0.0 ? std::abs(out.lhs - out.rhs) / scale : std::abs(out.lhs - out.rhs);
  return out;
}

namespace {

void check_target(const StationarityTarget& target, const char* who) {
  if (!(target.target > 0.0) || !(target.start_learning_rate > 0.0) || !(target.decay > 0.0 && target.decay <= 1.0) ||
      target.round_epochs < 1 || target.max_rounds < 0)
    throw InputError(std::string(who) + ": need target > 0, a positive rate, decay in (0, 1], rounds >= 0");
}

// The measurement before round `round`: the unbiased ||g_p|| / ||theta||.
double stationarity_measure(Mlp& mlp, const Dataset& train_data, LossKind loss, const StationarityTarget& target,
                            std::uint64_t mask_key, std::int64_t round) {
  const DropoutObjectiveGradient g =
      dropout_objective_gradient(mlp, train_data, loss, target.draws,
                                 splitmix64_mix(mask_key + 1024 + static_cast<std::uint64_t>(round)), target.gradient_batch_size);
  const double theta_norm = std::sqrt(flat_parameters(make_handle(mlp)).square().sum().item<double>());
  return dropout_relative_grad_norm(g, theta_norm);
}

// Round `round`'s batch order stream: (seed, stream + round + 1).
std::uint64_t round_stream(std::uint64_t stream, std::int64_t round) { return stream + static_cast<std::uint64_t>(round) + 1; }

// Round `round`'s training options: a constant rate, round_epochs epochs, no
// early stopping or keep-best, batch order keyed by round_stream(base.stream, round).
TrainOptions round_options(const TrainOptions& base, const StationarityTarget& target, double lr, std::int64_t round) {
  TrainOptions o = base;
  o.optimizer.learning_rate = lr;
  o.optimizer.milestones.clear();
  o.optimizer.step_size = 0;
  o.max_epochs = target.round_epochs;
  o.early_stopping.reset();
  o.keep_best = false;
  o.stream = round_stream(base.stream, round);
  return o;
}

std::uint64_t round_mask_key(std::uint64_t mask_key, std::int64_t round) {
  return splitmix64_mix(mask_key + static_cast<std::uint64_t>(round) + 1);
}

}  // namespace

StationarityMatch train_to_dropout_stationarity(Mlp& mlp, const Dataset& train_data, const TrainOptions& base,
                                                const StationarityTarget& target, std::uint64_t mask_key) {
  check_target(target, "train_to_dropout_stationarity()");
  const ModelHandle h = make_handle(mlp);
  StationarityMatch out;
  double lr = target.start_learning_rate;
  for (std::int64_t round = 0;; ++round) {
    out.relative_grad_norm = stationarity_measure(mlp, train_data, base.loss, target, mask_key, round);
    if (!std::isfinite(out.relative_grad_norm)) {
      out.diverged = true;
      return out;
    }
    if (out.relative_grad_norm <= target.target) {
      out.reached = true;
      return out;
    }
    if (round >= target.max_rounds) return out;
    mlp->seed_dropout(round_mask_key(mask_key, round));
    const TrainResult r = train(h, train_data, Dataset{}, round_options(base, target, lr, round));
    ++out.rounds;
    out.epochs += r.epochs;
    if (r.status == TrainStatus::diverged) {
      out.diverged = true;
      return out;
    }
    lr *= target.decay;
  }
}

std::vector<StationarityMatch> train_replicates_to_dropout_stationarity(
    BatchedMlp& model, const ReplicateData& data, const TrainOptions& base, std::span<const std::uint64_t> order_streams,
    const StationarityTarget& target, std::span<const std::uint64_t> mask_keys, std::span<const char> skip,
    const std::function<void(std::int64_t round, std::int64_t above, double median)>& on_round) {
  check_target(target, "train_replicates_to_dropout_stationarity()");
  const std::int64_t R = model->replicates();
  const auto sz = [](std::int64_t i) { return static_cast<std::size_t>(i); };
  if (static_cast<std::int64_t>(order_streams.size()) != R || static_cast<std::int64_t>(mask_keys.size()) != R ||
      static_cast<std::int64_t>(skip.size()) != R || !data.train.defined() || data.train.dim() != 2 ||
      data.train.size(0) != R)
    throw InputError("train_replicates_to_dropout_stationarity(): need one row of training indices, order stream, "
                     "mask key and skip flag per replicate");
  const at::Tensor& first = model->batched_parameters().front();
  const at::Device device = first.device();
  const at::Tensor pool_x = data.pool.x.to(device, first.scalar_type()), pool_y = data.pool.y.to(device);
  const at::Tensor rows = data.train.to(device, at::kLong);
  const auto training_set = [&](std::int64_t r) {
    const at::Tensor index = rows[r];
    return Dataset{pool_x.index_select(0, index), pool_y.index_select(0, index)};
  };

  std::vector<StationarityMatch> out(sz(R));
  std::vector<std::int64_t> active;
  for (std::int64_t r = 0; r < R; ++r)
    if (!skip[sz(r)]) active.push_back(r);
  double lr = target.start_learning_rate;
  for (std::int64_t round = 0; !active.empty(); ++round) {
    std::vector<std::int64_t> above;
    for (const std::int64_t r : active) {
      Mlp m = model->replicate(r);
      StationarityMatch& o = out[sz(r)];
      o.relative_grad_norm = stationarity_measure(m, training_set(r), base.loss, target, mask_keys[sz(r)], round);
      if (!std::isfinite(o.relative_grad_norm))
        o.diverged = true;
      else if (o.relative_grad_norm <= target.target)
        o.reached = true;
      else if (round < target.max_rounds)
        above.push_back(r);
    }
    if (above.empty()) break;
    if (on_round) {
      std::vector<double> norms;
      for (const std::int64_t r : above) norms.push_back(out[sz(r)].relative_grad_norm);
      on_round(round, static_cast<std::int64_t>(above.size()), stats::finite_median(std::move(norms)));
    }

    // One round for the replicates above the target, as one batch.
    std::vector<ReplicateSpec> specs;
    std::vector<at::Tensor> index;
    for (const std::int64_t r : above) {
      ReplicateSpec s;
      s.order_seed = base.seed;
      s.order_stream = round_stream(order_streams[sz(r)], round);  // the specs carry each replicate's order
      s.dropout = model->dropout_rate(r);
      s.dropout_key = round_mask_key(mask_keys[sz(r)], round);
      s.penalty = base.penalty;
      specs.push_back(s);
      index.push_back(rows[r]);
    }
    BatchedMlp batch(model->options(), specs, first.scalar_type());
    batch->to(device);
    for (std::size_t k = 0; k < above.size(); ++k) batch->set_replicate(static_cast<std::int64_t>(k), model->replicate(above[k]));
    ReplicateData round_data{data.pool, at::stack(index), {}};
    const std::vector<TrainResult> trained = train_replicates(batch, round_data, round_options(base, target, lr, round), specs);
    active.clear();
    for (std::size_t k = 0; k < above.size(); ++k) {
      const std::int64_t r = above[k];
      model->set_replicate(r, batch->replicate(static_cast<std::int64_t>(k)));
      StationarityMatch& m = out[sz(r)];
      ++m.rounds;
      m.epochs += trained[k].epochs;
      if (trained[k].status == TrainStatus::diverged)
        m.diverged = true;
      else
        active.push_back(r);
    }
    lr *= target.decay;
  }
  return out;
}

}  // namespace gradmatch::training
