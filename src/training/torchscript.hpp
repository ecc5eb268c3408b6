#pragma once
// A user's TorchScript module (torch.jit.script or torch.jit.trace, then
// .save()) as a ModelHandle: the way `gradmatch fit --model` builds gradient
// equations from a model trained in any PyTorch code.
//
// The module is moved to `device` and, by default, converted to float64 so
// that the equations are accurate to double precision (float32 parameters
// convert exactly). Its forward must take one tensor [n, d] and return one
// tensor. Parameters are its named_parameters() in registration order.
#include <c10/core/Device.h>

#include <string>

#include "training/model_handle.hpp"

namespace gradmatch::training {

/// Loads `path`; InputError naming the file when it is missing or not a TorchScript archive.
ModelHandle load_torchscript(const std::string& path, const c10::Device& device, bool to_double = true);

}  // namespace gradmatch::training
