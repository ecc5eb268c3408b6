#pragma once
// `gradmatch fit --model`: gradient equations of a user's TorchScript module
// at its current parameters, behind an interface free of LibTorch types (the
// CLI reads the data from HDF5 and writes equation files; it never includes
// torch headers).
//
// Data: x [n, d] and y -- [n] class indices (ce), or [n] / [n, k] targets
// (mse, bce) -- given as float64 arrays, or an MNIST-format IDX directory
// (its training split, pixels scaled to [0, 1]).
#include <cstdint>
#include <string>
#include <vector>

#include "core/equations.hpp"

namespace gradmatch::training {

struct HostArray {
  std::vector<double> values;  ///< row-major
  std::vector<std::int64_t> shape;
};

struct ModelEquationsOptions {
  std::string loss = "mse";             ///< mse | ce | bce
  std::int64_t batch_size = 0;          ///< batches of the full-batch sums; <= 0: one batch
  std::vector<std::string> candidates;  ///< feature columns to add (endpoint.hpp names)
  std::vector<std::string> params;      ///< parameter name globs (torchscript.hpp); empty: all
  bool include_frozen = false;          ///< also parameters with requires_grad false
  std::string data_name = "data";       ///< the data's file or directory, for messages
};

/// One row of equations per model file, pooled: every model must select the
/// same parameter names and shapes (the equations record them).
struct ModelEquations {
  Equations equations;                        ///< m = number of models: theta, grad_loss, features, parameters
  std::int64_t n = 0;                         ///< examples
  std::vector<double> losses;                 ///< per model: full-batch mean loss at theta
  std::vector<double> relative_gradient_norms;  ///< per model: ||grad L|| / ||theta||
};

/// From arrays x [n, d] and y (see the top). InputError on bad shapes, labels or models.
/// Before any gradient, each model is tried on the first example: a model
/// that does not take the data's width, an output that does not match y's
/// shape, a class index at or above the model's outputs, or a non-finite
/// value in x or y is an InputError naming the model and data files, both
/// shapes and what to change.
ModelEquations torchscript_equations(const std::vector<std::string>& model_paths, const HostArray& x,
                                     const HostArray& y, const ModelEquationsOptions& options);
/// From an IDX directory's training split.
ModelEquations torchscript_equations(const std::vector<std::string>& model_paths, const std::string& idx_dir,
                                     const ModelEquationsOptions& options);

}  // namespace gradmatch::training
