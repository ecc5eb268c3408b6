#pragma once
// Built-in models: multi-layer perceptrons in the layouts of the paper.
//
//   classifier (section 3 "Dropout", appendix H.4):
//     in -> [Linear -> act -> Dropout] x (depth-1) -> Linear -> act -> Linear -> out
//     i.e. dropout after every hidden block but the last, with keyed masks
//     (training/dropout_masks.hpp) that the batched replicates reproduce.
//   regression network (appendix H.2): 10 -> 200 (ReLU) -> 1.
//
// Layers are registered as "layer0", "layer1", ..., so the flat theta is
// layer0.weight, layer0.bias, layer1.weight, ... (biases absent when
// disabled). Initialisation is PyTorch's default for Linear (weights and
// biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))) but drawn from the core's
// Philox stream keyed by (seed, stream), so a task's initial weights depend
// on (study seed, task id) only, identically on every rank and in the
// batched replicate trainer.
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "training/model_handle.hpp"

namespace gradmatch::training {

enum class Activation { relu, tanh, identity };
/// "relu", "tanh", "identity" (alias "linear"); InputError otherwise.
Activation parse_activation(std::string_view text);
std::string to_string(Activation a);
/// The activation applied to a tensor.
at::Tensor activate(Activation a, const at::Tensor& x);

struct MlpOptions {
  std::int64_t inputs = 0;
  std::vector<std::int64_t> hidden;  ///< widths of the hidden layers (may be empty: a linear model)
  std::int64_t outputs = 1;
  Activation activation = Activation::relu;
  bool hidden_bias = true;  ///< biases of the hidden layers
  bool output_bias = true;  ///< bias of the output layer
  double dropout = 0.0;     ///< rate after every hidden block but the last, in [0, 1)

  /// Throws InputError (prefixed "mlp: ") on non-positive sizes or a rate outside [0, 1).
  void validate() const;
};

/// Appendix H.2: inputs -> hidden (ReLU) -> 1.
MlpOptions regression_net_options(std::int64_t inputs = 10, std::int64_t hidden = 200);
/// Appendix H.4: `depth` hidden ReLU layers of `width` units, dropout `rate`.
MlpOptions classifier_options(std::int64_t inputs, std::int64_t depth, std::int64_t width, std::int64_t classes,
                              double rate);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(MlpOptions options);

  /// x [n, inputs] -> [n, outputs]. Dropout acts in training mode only.
  at::Tensor forward(const at::Tensor& x);
  /// The inputs of every Linear layer for x (eval semantics: no dropout), in layer order.
  std::vector<at::Tensor> layer_inputs(const at::Tensor& x);

  /// Re-draws all parameters from the Philox stream (seed, stream); see the top.
  void reset_parameters(std::uint64_t seed, std::uint64_t stream);
  /// Keys the dropout masks (training/dropout_masks.hpp) and restarts their
  /// step count: training forward pass t draws the masks of (key, t).
  /// Unseeded models use key 0.
  void seed_dropout(std::uint64_t key);
  std::uint64_t dropout_key() const { return dropout_key_; }
  std::int64_t dropout_step() const { return dropout_step_; }

  const MlpOptions& options() const { return options_; }
  const std::vector<torch::nn::Linear>& layers() const { return layers_; }

 private:
  MlpOptions options_;
  std::vector<torch::nn::Linear> layers_;
  std::uint64_t dropout_key_ = 0;
  std::int64_t dropout_step_ = 0;  // training forward passes so far
};
TORCH_MODULE(Mlp);

/// An Mlp of the given dtype on the given device, initialised from (seed, stream).
Mlp make_mlp(const MlpOptions& options, std::uint64_t seed, std::uint64_t stream, torch::Device device,
             at::ScalarType dtype = at::kFloat);

/// A handle on any torch::nn::Module whose forward is `forward`.
ModelHandle make_handle(std::shared_ptr<torch::nn::Module> module,
                        std::function<at::Tensor(const at::Tensor&)> forward);
/// A handle on an Mlp (with weight_inputs for the activation-weighted quadratic).
ModelHandle make_handle(Mlp mlp);

}  // namespace gradmatch::training
