#pragma once
// A user's TorchScript module (torch.jit.script or torch.jit.trace, then
// .save()) as a ModelHandle: the way `gradmatch fit --model` builds gradient
// equations from a model trained in any PyTorch code.
//
// The module is moved to `device` and, by default, converted to float64 so
// that the equations are accurate to double precision (float32 parameters
// convert exactly). Its forward must take one tensor [n, d] and return one
// tensor. Parameters are its named_parameters() in registration order,
// restricted by a ParameterSelection: by default every parameter with
// requires_grad set (frozen ones stay fixed and are left out of theta).
#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "training/data.hpp"
#include "training/losses.hpp"
#include "training/model_handle.hpp"

namespace gradmatch::training {

/// Which of a module's parameters make up theta.
struct ParameterSelection {
  /// Shell-style name globs (fnmatch: "out.*", "layers.[12].weight"); a
  /// parameter is kept when any glob matches its name. Empty: every name.
  std::vector<std::string> globs;
  /// Keep parameters whose requires_grad is false (frozen) as well.
  bool include_frozen = false;
};

/// Shell-style match of a parameter name against a glob (fnmatch, no flags).
bool name_matches(const std::string& glob, const std::string& name);

/// Loads `path`; InputError naming the file when it is missing or not a
/// TorchScript archive, or when the selection keeps no parameter.
ModelHandle load_torchscript(const std::string& path, const c10::Device& device, bool to_double = true,
                             const ParameterSelection& select = {});

/// Tries `model` on the first example of `data` (in eval mode, no grad) and
/// checks its output against y and `loss`: a model that does not take the
/// data's width, an output that does not match y's shape, or a class index
/// at or above the model's outputs is an InputError that starts with `where`
/// (e.g. "model.pt with --data data.h5") and gives both shapes and what to
/// change -- before any training or gradient, rather than deep in LibTorch.
void check_model_fits_data(const ModelHandle& model, const Dataset& data, LossKind loss, const std::string& where);

}  // namespace gradmatch::training
