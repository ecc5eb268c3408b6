#include "training/endpoint.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <charconv>
#include <cmath>
#include <map>

#include "core/errors.hpp"
#include "core/regularizers.hpp"
#include "training/tensor_bridge.hpp"

namespace gradmatch::training {
namespace {

double parse_beta(std::string_view text, std::string_view prefix) {
  const std::string_view rest = text.substr(prefix.size());
  double beta = 0.0;
  const auto r = std::from_chars(rest.data(), rest.data() + rest.size(), beta);
  if (r.ec != std::errc() || r.ptr != rest.data() + rest.size() || !(beta > 0.0)) {
    std::string msg = "candidate '";
    msg += text;
    msg += "': beta must be a positive number";
    throw InputError(msg);
  }
  return beta;
}

// A batch in the parameters' dtype and device: data may stay float32 (60000
// Fashion-MNIST images) while the equations are computed in float64.
at::Tensor as_model_input(const ModelHandle& model, const at::Tensor& x) {
  if (model.parameters.empty()) return x;
  const at::Tensor& p = model.parameters.front();
  return x.to(p.device(), p.scalar_type());
}

// The module prefix of a parameter name ("layer0.weight" -> "layer0"; "w" -> "w").
std::string layer_of(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}

}  // namespace

Candidate Candidate::parse(std::string_view text) {
  if (text == "ridge") return {Kind::ridge, 0.0};
  if (text == "layerwise-ridge") return {Kind::layerwise_ridge, 0.0};
  if (text == "activation-quadratic") return {Kind::activation_quadratic, 0.0};
  if (text == "nuclear") return {Kind::nuclear, 0.0};
  if (text.starts_with("huber:beta=")) return {Kind::huber, parse_beta(text, "huber:beta=")};
  if (text.starts_with("elastic-net:beta=")) return {Kind::elastic_net, parse_beta(text, "elastic-net:beta=")};
  std::string msg = "candidate: unknown regularizer '";
  msg += text;
  msg += "'; use ridge, huber:beta=B, elastic-net:beta=B, layerwise-ridge, activation-quadratic or nuclear";
  throw InputError(msg);
}

at::Tensor full_batch_gradient(const ModelHandle& model, const Dataset& data, LossKind loss, std::int64_t batch_size,
                               ForwardMode mode, double* mean_loss) {
  validate_dataset(data, "full_batch_gradient()");
  EvalModeGuard eval(model);
  if (mode == ForwardMode::train) model.set_training(true);  // the guard restores the caller's mode
  const std::int64_t n = data.size();
  const std::int64_t b = batch_size <= 0 ? n : batch_size;
  std::vector<at::Tensor> total;
  double loss_sum = 0.0;
  for (const auto& p : model.parameters) total.push_back(at::zeros(p.sizes(), p.options().dtype(at::kDouble)));
  for (std::int64_t begin = 0; begin < n; begin += b) {
    const Dataset batch = data.slice(begin, std::min(n, begin + b));
    const at::Tensor s = summed_loss(loss, model.forward(as_model_input(model, batch.x)), batch.y);
    if (mean_loss) loss_sum += s.item<double>();
    const auto grads = torch::autograd::grad({s}, model.parameters, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                             /*create_graph=*/false, /*allow_unused=*/true);
    for (std::size_t i = 0; i < grads.size(); ++i)
      if (grads[i].defined()) total[i] += grads[i].to(at::kDouble);
  }
  if (mean_loss) *mean_loss = loss_sum / static_cast<double>(n);
  std::vector<at::Tensor> flat;
  for (auto& t : total) flat.push_back(t.reshape({-1}).cpu());
  return (flat.empty() ? at::zeros({0}, at::kDouble) : at::cat(flat)) / static_cast<double>(n);
}

std::vector<at::Tensor> input_second_moments(const ModelHandle& model, const Dataset& data, std::int64_t batch_size) {
  if (!model.weight_inputs)
    throw InputError("activation-quadratic: this model does not expose its layer inputs (built-in MLPs do)");
  at::NoGradGuard no_grad;
  EvalModeGuard eval(model);
  const std::int64_t n = data.size();
  const std::int64_t b = batch_size <= 0 ? n : batch_size;
  std::vector<at::Tensor> sums;
  for (std::int64_t begin = 0; begin < n; begin += b) {
    const std::vector<at::Tensor> inputs =
        model.weight_inputs(as_model_input(model, data.x.slice(0, begin, std::min(n, begin + b))));
    if (sums.empty()) sums.resize(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i].defined()) continue;
      const at::Tensor s = inputs[i].to(at::kDouble).square().sum(0);
      sums[i] = sums[i].defined() ? sums[i] + s : s;
    }
  }
  for (auto& s : sums)
    if (s.defined()) s = s / static_cast<double>(n);
  return sums;
}

std::vector<Column> candidate_columns(const ModelHandle& model, std::span<const Candidate> candidates,
                                      const Dataset& data, std::int64_t batch_size) {
  const at::Tensor theta_t = flat_parameters(model);
  const std::vector<double> theta = to_vector(theta_t);
  const std::size_t p = theta.size();
  std::vector<Column> out;
  const auto huber_column = [&](double beta) {
    std::vector<double> col(p);
    reg::huber_gradient(theta, 1.0, beta, col);
    return col;
  };
  const auto ridge_column = [&] {
    std::vector<double> col(p);
    reg::ridge_gradient(theta, 1.0, col);
    return col;
  };
  // Offsets of each parameter tensor in theta.
  std::vector<std::int64_t> offset{0};
  for (const auto& t : model.parameters) offset.push_back(offset.back() + t.numel());

  for (const Candidate& c : candidates) {
    switch (c.kind) {
      case Candidate::Kind::ridge: out.emplace_back("ridge", ridge_column()); break;
      case Candidate::Kind::huber: out.emplace_back("huber", huber_column(c.beta)); break;
      case Candidate::Kind::elastic_net:
        out.emplace_back("huber", huber_column(c.beta));
        out.emplace_back("ridge", ridge_column());
        break;
      case Candidate::Kind::layerwise_ridge: {
        std::vector<std::string> layers;
        std::map<std::string, std::vector<double>> cols;
        for (std::size_t i = 0; i < model.parameters.size(); ++i) {
          const std::string layer = layer_of(model.parameter_names.at(i));
          auto [it, inserted] = cols.try_emplace(layer, std::vector<double>(p, 0.0));
          if (inserted) layers.push_back(layer);
          for (std::int64_t j = offset[i]; j < offset[i + 1]; ++j) it->second[static_cast<std::size_t>(j)] = 2.0 * theta[static_cast<std::size_t>(j)];
        }
        for (const auto& layer : layers) {
          std::string name = "layerwise_ridge.";
          name += layer;
          out.emplace_back(name, std::move(cols[layer]));
        }
        break;
      }
      case Candidate::Kind::activation_quadratic: {
        const std::vector<at::Tensor> moments = input_second_moments(model, data, batch_size);
        std::vector<double> col(p, 0.0);
        for (std::size_t i = 0; i < model.parameters.size() && i < moments.size(); ++i) {
          if (!moments[i].defined()) continue;
          const at::Tensor w = model.parameters[i].detach().to(at::kCPU, at::kDouble);
          const std::vector<double> g = to_vector(2.0 * w * moments[i].cpu().unsqueeze(0));
          std::copy(g.begin(), g.end(), col.begin() + offset[i]);
        }
        out.emplace_back("activation_quadratic", std::move(col));
        break;
      }
      case Candidate::Kind::nuclear: {
        std::vector<double> col(p, 0.0);
        for (std::size_t i = 0; i < model.parameters.size(); ++i) {
          const at::Tensor& w = model.parameters[i];
          if (w.dim() != 2) continue;
          const auto [u, s, vh] = at::linalg_svd(w.detach().to(at::kCPU, at::kDouble), /*full_matrices=*/false);
          const double tol = s.numel() > 0 ? s.max().item<double>() * 1e-12 * static_cast<double>(std::max(w.size(0), w.size(1))) : 0.0;
          const std::int64_t r = (s > tol).sum().item<std::int64_t>();
          const std::vector<double> g = to_vector(at::matmul(u.slice(1, 0, r), vh.slice(0, 0, r)));
          std::copy(g.begin(), g.end(), col.begin() + offset[i]);
        }
        out.emplace_back("nuclear", std::move(col));
        break;
      }
    }
  }
  for (std::size_t i = 0; i < out.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (out[i].first == out[j].first) {
        std::string msg = "candidates: the column '";
        msg += out[i].first;
        msg += "' appears twice (elastic-net already gives 'huber' and 'ridge')";
        throw InputError(msg);
      }
  return out;
}

Endpoint extract_endpoint(const ModelHandle& model, const Dataset& data, const EndpointOptions& options) {
  Endpoint e;
  e.theta = to_vector(flat_parameters(model));
  // The loss from the gradient's own forward passes (eval mode, the same batches).
  const at::Tensor g =
      full_batch_gradient(model, data, options.loss, options.batch_size, ForwardMode::eval, &e.loss);
  e.grad_loss = to_vector(g);
  e.features = candidate_columns(model, options.candidates, data, options.batch_size);
  double gg = 0.0, tt = 0.0;
  for (double v : e.grad_loss) gg += v * v;
  for (double v : e.theta) tt += v * v;
  e.relative_gradient_norm = tt > 0.0 ? std::sqrt(gg / tt) : std::numeric_limits<double>::infinity();
  return e;
}

Equations to_equations(std::span<const Endpoint> endpoints) {
  Equations eq;
  if (endpoints.empty()) return eq;
  const auto m = static_cast<std::int64_t>(endpoints.size());
  const auto p = static_cast<std::int64_t>(endpoints.front().theta.size());
  eq.theta = Matrix(m, p);
  eq.grad_loss = Matrix(m, p);
  for (const auto& [name, col] : endpoints.front().features) eq.features.emplace_back(name, Matrix(m, p));
  for (std::int64_t k = 0; k < m; ++k) {
    const Endpoint& e = endpoints[static_cast<std::size_t>(k)];
    if (static_cast<std::int64_t>(e.theta.size()) != p || e.features.size() != eq.features.size())
      throw InputError("to_equations(): endpoints differ in parameter count or candidate columns");
    std::copy(e.theta.begin(), e.theta.end(), eq.theta.row(k).begin());
    std::copy(e.grad_loss.begin(), e.grad_loss.end(), eq.grad_loss.row(k).begin());
    for (std::size_t f = 0; f < e.features.size(); ++f) {
      if (e.features[f].first != eq.features[f].first)
        throw InputError("to_equations(): endpoints differ in candidate columns");
      std::copy(e.features[f].second.begin(), e.features[f].second.end(), eq.features[f].second.row(k).begin());
    }
  }
  return eq;
}

}  // namespace gradmatch::training
