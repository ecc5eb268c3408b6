#pragma once
// A uniform view of a differentiable model for trainers and endpoint
// extraction: built-in modules (Mlp) and TorchScript modules loaded from a
// file look the same through it.
//
// `parameters` are the module's trainable tensors in registration order (the
// order of docs/design.md's flat theta); they are the module's own leaves, so an
// optimizer built on them trains the module. Handles share ownership of the
// module, so a handle may outlive the object it was made from.
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

namespace gradmatch::training {

struct ModelHandle {
  std::function<at::Tensor(const at::Tensor&)> forward;
  /// train(true) / eval (false): dropout and similar layers switch on this.
  std::function<void(bool)> set_training;
  std::function<bool()> is_training;
  std::vector<at::Tensor> parameters;
  std::vector<std::string> parameter_names;  ///< "layer0.weight", ...
  /// Optional: for each parameter, the input activations [n, in] of the
  /// linear map it is the weight of (an undefined tensor for biases and
  /// non-linear-layer parameters). Needed by the activation-weighted quadratic.
  std::function<std::vector<at::Tensor>(const at::Tensor&)> weight_inputs;

  /// Number of scalar parameters p.
  std::int64_t parameter_count() const;
};

/// Evaluation mode for the lifetime of the guard (restores training mode).
class EvalModeGuard {
 public:
  explicit EvalModeGuard(const ModelHandle& model) : model_(model), was_training_(model.is_training()) {
    model_.set_training(false);
  }
  ~EvalModeGuard() { model_.set_training(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  const ModelHandle& model_;
  bool was_training_;
};

/// theta: the parameters flattened and concatenated in registration order
/// (a detached copy, float64 on the CPU unless `keep_dtype`).
at::Tensor flat_parameters(const ModelHandle& model, bool keep_dtype = false);
/// Writes a flat vector back into the parameters (shapes in registration order).
void set_flat_parameters(const ModelHandle& model, const at::Tensor& theta);
/// Detached copies of the parameters (for keep-best and retraining from the same start).
std::vector<at::Tensor> snapshot_parameters(const ModelHandle& model);
void restore_parameters(const ModelHandle& model, const std::vector<at::Tensor>& values);

}  // namespace gradmatch::training
