#include "training/models.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "core/errors.hpp"
#include "core/rng.hpp"
#include "training/dropout_masks.hpp"

namespace gradmatch::training {

Activation parse_activation(std::string_view text) {
  if (text == "relu") return Activation::relu;
  if (text == "tanh") return Activation::tanh;
  if (text == "identity" || text == "linear") return Activation::identity;
  std::string msg = "mlp: unknown activation '";
  msg += text;
  msg += "'; use relu, tanh or identity";
  throw InputError(msg);
}

std::string to_string(Activation a) {
  switch (a) {
    case Activation::relu: return "relu";
    case Activation::tanh: return "tanh";
    case Activation::identity: return "identity";
  }
  return "?";
}

at::Tensor activate(Activation a, const at::Tensor& x) {
  switch (a) {
    case Activation::relu: return at::relu(x);
    case Activation::tanh: return at::tanh(x);
    case Activation::identity: return x;
  }
  return x;
}

void MlpOptions::validate() const {
  if (inputs <= 0 || outputs <= 0) throw InputError("mlp: inputs and outputs must be positive");
  for (const std::int64_t w : hidden)
    if (w <= 0) throw InputError("mlp: every hidden width must be positive");
  if (!(dropout >= 0.0 && dropout < 1.0)) throw InputError("mlp: dropout must lie in [0, 1)");
}

MlpOptions regression_net_options(std::int64_t inputs, std::int64_t hidden) {
  MlpOptions o;
  o.inputs = inputs;
  o.hidden = {hidden};
  o.outputs = 1;
  o.activation = Activation::relu;
  return o;
}

MlpOptions classifier_options(std::int64_t inputs, std::int64_t depth, std::int64_t width, std::int64_t classes,
                              double rate) {
  MlpOptions o;
  o.inputs = inputs;
  o.hidden.assign(static_cast<std::size_t>(depth), width);
  o.outputs = classes;
  o.activation = Activation::relu;
  o.dropout = rate;
  return o;
}

MlpImpl::MlpImpl(MlpOptions options) : options_(std::move(options)) {
  options_.validate();
  std::int64_t in = options_.inputs;
  const std::size_t n_hidden = options_.hidden.size();
  for (std::size_t l = 0; l <= n_hidden; ++l) {
    const bool output = l == n_hidden;
    const std::int64_t out = output ? options_.outputs : options_.hidden[l];
    const bool bias = output ? options_.output_bias : options_.hidden_bias;
    std::string name = "layer";
    name += std::to_string(l);
    layers_.push_back(register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias))));
    in = out;
  }
  reset_parameters(0, 0);
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  at::Tensor h = x;
  const std::size_t n_hidden = layers_.size() - 1;
  const double rate = options_.dropout;
  const bool masked = rate > 0.0 && is_training() && n_hidden > 1;
  DropoutStreams streams;
  if (masked) streams = DropoutStreams(std::span<const std::uint64_t>(&dropout_key_, 1), std::span<const double>(&rate, 1),
                                       x.options().dtype(layers_.front()->weight.scalar_type()));
  for (std::size_t l = 0; l < n_hidden; ++l) {
    h = activate(options_.activation, layers_[l]->forward(h));
    if (masked && l + 1 < n_hidden) {
      // Inverted dropout: keep with probability 1 - rate, scale by 1 / (1 - rate).
      const std::int64_t cols = h.size(-1);
      h = h * streams.multipliers(dropout_step_, static_cast<std::int64_t>(l), h.numel() / cols, cols).view(h.sizes());
    }
  }
  if (masked) ++dropout_step_;
  return layers_.back()->forward(h);
}

std::vector<at::Tensor> MlpImpl::layer_inputs(const at::Tensor& x) {
  std::vector<at::Tensor> inputs;
  at::Tensor h = x;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    inputs.push_back(h);
    if (l + 1 < layers_.size()) h = activate(options_.activation, layers_[l]->forward(h));
  }
  return inputs;
}

void MlpImpl::reset_parameters(std::uint64_t seed, std::uint64_t stream) {
  Rng rng(seed, stream);
  at::NoGradGuard no_grad;
  for (auto& layer : layers_) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(layer->options.in_features()));
    for (at::Tensor p : layer->parameters()) {
      at::Tensor values = at::empty({p.numel()}, at::TensorOptions().dtype(at::kDouble));
      double* v = values.data_ptr<double>();
      for (std::int64_t i = 0; i < p.numel(); ++i) v[i] = bound * (2.0 * rng.uniform() - 1.0);
      p.copy_(values.view(p.sizes()));
    }
  }
}

void MlpImpl::seed_dropout(std::uint64_t key) {
  dropout_key_ = key;
  dropout_step_ = 0;
}

Mlp make_mlp(const MlpOptions& options, std::uint64_t seed, std::uint64_t stream, torch::Device device,
             at::ScalarType dtype) {
  Mlp mlp(options);
  mlp->to(dtype);
  mlp->reset_parameters(seed, stream);
  mlp->to(device);
  return mlp;
}

std::int64_t ModelHandle::parameter_count() const {
  std::int64_t p = 0;
  for (const auto& t : parameters) p += t.numel();
  return p;
}

ModelHandle make_handle(std::shared_ptr<torch::nn::Module> module,
                        std::function<at::Tensor(const at::Tensor&)> forward) {
  ModelHandle h;
  h.forward = std::move(forward);
  h.set_training = [module](bool on) { module->train(on); };
  h.is_training = [module] { return module->is_training(); };
  for (const auto& item : module->named_parameters(/*recurse=*/true)) {
    h.parameter_names.push_back(item.key());
    h.parameters.push_back(item.value());
  }
  return h;
}

ModelHandle make_handle(Mlp mlp) {
  ModelHandle h = make_handle(mlp.ptr(), [mlp](const at::Tensor& x) mutable { return mlp->forward(x); });
  h.weight_inputs = [mlp](const at::Tensor& x) mutable {
    const std::vector<at::Tensor> inputs = mlp->layer_inputs(x);
    std::vector<at::Tensor> out;
    for (std::size_t l = 0; l < inputs.size(); ++l) {
      out.push_back(inputs[l]);  // weight
      if (mlp->layers()[l]->options.bias()) out.emplace_back();  // bias: not a linear map of an input
    }
    return out;
  };
  return h;
}

at::Tensor flat_parameters(const ModelHandle& model, bool keep_dtype) {
  std::vector<at::Tensor> parts;
  for (const auto& p : model.parameters) parts.push_back(p.detach().reshape({-1}));
  at::Tensor theta = parts.empty() ? at::empty({0}, at::kDouble) : at::cat(parts);
  return keep_dtype ? theta.clone() : theta.to(at::kCPU, at::kDouble).clone();
}

void set_flat_parameters(const ModelHandle& model, const at::Tensor& theta) {
  if (theta.numel() != model.parameter_count())
    throw InputError("set_flat_parameters(): theta has the wrong number of entries");
  at::NoGradGuard no_grad;
  std::int64_t offset = 0;
  for (const auto& p : model.parameters) {
    p.copy_(theta.slice(0, offset, offset + p.numel()).view(p.sizes()));
    offset += p.numel();
  }
}

std::vector<at::Tensor> snapshot_parameters(const ModelHandle& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.parameters) out.push_back(p.detach().clone());
  return out;
}

void restore_parameters(const ModelHandle& model, const std::vector<at::Tensor>& values) {
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < model.parameters.size(); ++i) model.parameters[i].copy_(values.at(i));
}

}  // namespace gradmatch::training
