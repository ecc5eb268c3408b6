#include "training/losses.hpp"

#include <ATen/ATen.h>

#include "core/errors.hpp"

namespace gradmatch::training {
namespace {

// Brings a float target to the output's shape ([n] against [n, 1] is allowed).
at::Tensor float_target(const at::Tensor& output, const at::Tensor& target, const char* where) {
  at::Tensor t = target;
  if (t.dim() == 1 && output.dim() == 2 && output.size(1) == 1) t = t.unsqueeze(1);
  if (t.sizes() != output.sizes()) {
    const auto shape = [](at::IntArrayRef sizes) {
      std::string s = "[";
      for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
      return s + "]";
    };
    std::string msg = where;
    msg += ": the target's shape ";
    msg += shape(target.sizes());
    msg += " does not match the model output's ";
    msg += shape(output.sizes());
    msg += "; give targets with one column per model output";
    throw InputError(msg);
  }
  return t.to(output.scalar_type());
}

// Number of outputs per example (1 for a [n] output).
double outputs_per_example(const at::Tensor& output) {
  return output.dim() == 0 || output.size(0) == 0 ? 1.0 : static_cast<double>(output.numel() / output.size(0));
}

}  // namespace

LossKind parse_loss(std::string_view text) {
  if (text == "mse") return LossKind::mse;
  if (text == "ce" || text == "cross-entropy") return LossKind::cross_entropy;
  if (text == "bce" || text == "bce-with-logits") return LossKind::bce_with_logits;
  std::string msg = "loss: unknown loss '";
  msg += text;
  msg += "'; use mse, ce or bce";
  throw InputError(msg);
}

std::string to_string(LossKind kind) {
  switch (kind) {
    case LossKind::mse: return "mse";
    case LossKind::cross_entropy: return "ce";
    case LossKind::bce_with_logits: return "bce";
  }
  return "?";
}

at::Tensor summed_loss(LossKind kind, const at::Tensor& output, const at::Tensor& target) {
  switch (kind) {
    case LossKind::mse: {
      const at::Tensor diff = output - float_target(output, target, "mse loss");
      return diff.square().sum() / outputs_per_example(output);
    }
    case LossKind::cross_entropy: {
      if (output.dim() != 2 || target.dim() != 1 || target.size(0) != output.size(0))
        throw InputError("ce loss: expected outputs [n, classes] and class indices [n]");
      const at::Tensor index = target.to(at::kLong).unsqueeze(1);
      return -at::log_softmax(output, 1).gather(1, index).sum();
    }
    case LossKind::bce_with_logits: {
      const at::Tensor t = float_target(output, target, "bce loss");
      return at::binary_cross_entropy_with_logits(output, t, {}, {}, at::Reduction::Sum) / outputs_per_example(output);
    }
  }
  throw InputError("loss: unknown loss kind");
}

at::Tensor mean_loss(LossKind kind, const at::Tensor& output, const at::Tensor& target) {
  const std::int64_t n = output.dim() == 0 ? 1 : output.size(0);
  return summed_loss(kind, output, target) / static_cast<double>(n);
}

}  // namespace gradmatch::training
