#include "training/objective.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include "core/errors.hpp"

namespace gradmatch::training {
namespace {

// Flat concatenation of per-parameter gradients; an unused parameter (no
// path to the loss) contributes zeros.
at::Tensor flatten(const std::vector<at::Tensor>& parts, const std::vector<at::Tensor>& like) {
  std::vector<at::Tensor> flat;
  flat.reserve(parts.size());
  for (std::size_t i = 0; i < parts.size(); ++i)
    flat.push_back(parts[i].defined() ? parts[i].reshape({-1}) : at::zeros({like[i].numel()}, like[i].options()));
  return flat.empty() ? at::zeros({0}, at::kDouble) : at::cat(flat);
}

// <flat, v> as a sum over the parameter pieces (no concatenation in the graph).
at::Tensor dot_pieces(const std::vector<at::Tensor>& pieces, const at::Tensor& v) {
  at::Tensor total;
  std::int64_t offset = 0;
  for (const auto& piece : pieces) {
    const std::int64_t n = piece.numel();
    if (piece.defined()) {
      const at::Tensor term = (piece.reshape({-1}) * v.slice(0, offset, offset + n)).sum();
      total = total.defined() ? total + term : term;
    }
    offset += n;
  }
  return total;
}

std::vector<at::Tensor> grads(const at::Tensor& out, const std::vector<at::Tensor>& params, bool create_graph) {
  return torch::autograd::grad({out}, params, /*grad_outputs=*/{}, /*retain_graph=*/create_graph, create_graph,
                               /*allow_unused=*/true);
}

}  // namespace

// ---- ParameterScope ---------------------------------------------------------

ParameterScope::ParameterScope(const ModelHandle& model)
    : model_(model), saved_(snapshot_parameters(model)), eval_(model) {}

ParameterScope::~ParameterScope() { restore_parameters(model_, saved_); }

void ParameterScope::set(const at::Tensor& theta) { set_flat_parameters(model_, theta); }

// ---- Objective --------------------------------------------------------------

Objective::Objective(ModelHandle model, const Dataset& data, LossKind loss, Penalty penalty, std::int64_t batch_size)
    : model_(std::move(model)), loss_(loss), penalty_(penalty), batch_size_(batch_size) {
  validate_dataset(data, "objective");
  penalty_.validate();
  if (model_.parameters.empty()) throw InputError("objective: the model has no parameters");
  p_ = model_.parameter_count();
  const at::Tensor& first = model_.parameters.front();
  data_ = data.to(first.device(), first.scalar_type());
  const std::int64_t n = data_.size();
  if (batch_size_ <= 0 || batch_size_ > n) batch_size_ = n;
}

at::TensorOptions Objective::options() const {
  return model_.parameters.front().options().requires_grad(false);
}

at::Tensor Objective::current() const { return flat_parameters(model_, /*keep_dtype=*/true); }

at::Tensor Objective::batch_objective(std::int64_t begin, std::int64_t end) const {
  const Dataset batch = data_.slice(begin, end);
  at::Tensor f = summed_loss(loss_, model_.forward(batch.x), batch.y) / static_cast<double>(data_.size());
  if (begin == 0 && penalty_.active()) f = f + penalty_value(penalty_, model_.parameters);
  return f;
}

double Objective::value(const at::Tensor& theta) const {
  ParameterScope scope(model_);
  scope.set(theta);
  ++counts_.values;
  at::NoGradGuard no_grad;
  const std::int64_t n = data_.size();
  double total = 0.0;
  for (std::int64_t begin = 0; begin < n; begin += batch_size_)
    total += batch_objective(begin, std::min(n, begin + batch_size_)).item<double>();
  return total;
}

at::Tensor Objective::gradient_here() const {
  ++counts_.gradients;
  const std::int64_t n = data_.size();
  at::Tensor g;
  for (std::int64_t begin = 0; begin < n; begin += batch_size_) {
    const at::Tensor part = flatten(grads(batch_objective(begin, std::min(n, begin + batch_size_)),
                                          model_.parameters, /*create_graph=*/false),
                                    model_.parameters);
    g = g.defined() ? g + part : part;
  }
  return g;
}

at::Tensor Objective::hvp_here(const at::Tensor& v_in) const {
  ++counts_.hvps;
  const at::Tensor v = v_in.to(options());
  const std::int64_t n = data_.size();
  at::Tensor hv;
  for (std::int64_t begin = 0; begin < n; begin += batch_size_) {
    const auto first = grads(batch_objective(begin, std::min(n, begin + batch_size_)), model_.parameters, true);
    const at::Tensor gv = dot_pieces(first, v);
    if (!gv.defined() || !gv.requires_grad()) continue;  // F is linear in theta on this batch
    const at::Tensor part = flatten(grads(gv, model_.parameters, false), model_.parameters);
    hv = hv.defined() ? hv + part : part;
  }
  return hv.defined() ? hv : at::zeros({p_}, options());
}

GradientAndHvp Objective::gradient_and_hvp_here() const {
  const std::int64_t n = data_.size();
  if (batch_size_ < n) {
    // H g needs the full-batch g before any batch's double backward.
    GradientAndHvp out;
    out.gradient = gradient_here();
    --counts_.gradients;  // counted as one HVP below
    out.hvp = hvp_here(out.gradient);
    return out;
  }
  ++counts_.hvps;
  const auto first = grads(batch_objective(0, n), model_.parameters, true);
  GradientAndHvp out;
  out.gradient = flatten(first, model_.parameters).detach();
  const at::Tensor gg = dot_pieces(first, out.gradient);
  out.hvp = gg.defined() && gg.requires_grad() ? flatten(grads(gg, model_.parameters, false), model_.parameters)
                                               : at::zeros({p_}, options());
  return out;
}

at::Tensor Objective::gradient(const at::Tensor& theta) const {
  ParameterScope scope(model_);
  return gradient_in(scope, theta);
}

at::Tensor Objective::hvp(const at::Tensor& theta, const at::Tensor& v) const {
  if (v.numel() != p_) throw InputError("objective: hvp(): v must have p entries");
  ParameterScope scope(model_);
  scope.set(theta);
  return hvp_here(v.reshape({-1}));
}

GradientAndHvp Objective::gradient_and_hvp(const at::Tensor& theta) const {
  ParameterScope scope(model_);
  return gradient_and_hvp_in(scope, theta);
}

at::Tensor Objective::gradient_in(ParameterScope& scope, const at::Tensor& theta) const {
  scope.set(theta);
  return gradient_here();
}

GradientAndHvp Objective::gradient_and_hvp_in(ParameterScope& scope, const at::Tensor& theta) const {
  scope.set(theta);
  return gradient_and_hvp_here();
}

}  // namespace gradmatch::training
