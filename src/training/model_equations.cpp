#include "training/model_equations.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <string>

#include "core/errors.hpp"
#include "training/endpoint.hpp"
#include "training/host_data.hpp"
#include "training/idx.hpp"
#include "training/losses.hpp"
#include "training/tensor_bridge.hpp"
#include "training/torchscript.hpp"

namespace gradmatch::training {
namespace {

std::string shape_text(at::IntArrayRef sizes) {
  std::string s = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

/// The last non-empty line of a LibTorch message (TorchScript prefixes the
/// interpreter's traceback; the last line says what went wrong).
std::string last_line(const std::string& text) {
  std::size_t end = text.find_last_not_of(" \n\r");
  if (end == std::string::npos) return text;
  const std::size_t begin = text.rfind('\n', end);
  return text.substr(begin == std::string::npos ? 0 : begin + 1, end - (begin == std::string::npos ? 0 : begin + 1) + 1);
}

ModelEquations equations_for(const std::vector<std::string>& model_paths, const Dataset& data,
                             const ModelEquationsOptions& options) {
  if (model_paths.empty()) throw InputError("no model file given");
  EndpointOptions eo;
  eo.loss = parse_loss(options.loss);
  eo.batch_size = options.batch_size;
  for (const auto& c : options.candidates) eo.candidates.push_back(Candidate::parse(c));
  ParameterSelection select;
  select.globs = options.params;
  select.include_frozen = options.include_frozen;
  ModelEquations out;
  std::vector<Endpoint> endpoints;
  for (const std::string& path : model_paths) {
    const ModelHandle model = load_torchscript(path, at::Device(at::kCPU), /*to_double=*/true, select);
    check_model_fits_data(model, data, eo.loss, path + " with --data " + options.data_name);
    std::vector<ParameterBlock> blocks;
    for (std::size_t i = 0; i < model.parameters.size(); ++i)
      blocks.push_back({model.parameter_names[i], model.parameters[i].sizes().vec()});
    if (endpoints.empty()) {
      out.equations.parameters = blocks;
    } else {
      const auto& first = out.equations.parameters;
      bool same = blocks.size() == first.size();
      for (std::size_t i = 0; same && i < blocks.size(); ++i)
        same = blocks[i].name == first[i].name && blocks[i].shape == first[i].shape;
      if (!same)
        throw InputError(path + ": its selected parameters (names and shapes) differ from those of " +
                         model_paths.front() + "; pooled models must be the same architecture");
    }
    // Batches are converted to the model's float64 as they are used.
    endpoints.push_back(extract_endpoint(model, data, eo));
    out.losses.push_back(endpoints.back().loss);
    out.relative_gradient_norms.push_back(endpoints.back().relative_gradient_norm);
  }
  std::vector<ParameterBlock> blocks = std::move(out.equations.parameters);
  out.equations = to_equations(endpoints);
  out.equations.parameters = std::move(blocks);
  out.n = data.size();
  return out;
}

}  // namespace

// A mismatch between a model and its data is named here rather than deep
// inside LibTorch (torchscript.hpp).
void check_model_fits_data(const ModelHandle& model, const Dataset& data, LossKind loss, const std::string& where) {
  const std::int64_t n = data.x.size(0);
  // The first weight matrix says how many inputs the model takes (a hint only).
  std::string expects;
  for (std::size_t i = 0; i < model.parameters.size(); ++i)
    if (model.parameters[i].dim() == 2) {
      expects = "; its first weight matrix '" + model.parameter_names[i] + "' is " +
                shape_text(model.parameters[i].sizes()) + ", i.e. " + std::to_string(model.parameters[i].size(1)) +
                " inputs per example";
      break;
    }
  at::Tensor out;
  try {
    const EvalModeGuard eval(model);
    at::NoGradGuard no_grad;
    // On the model's device and in its precision (the studies train float32 too).
    const at::Tensor& like = model.parameters.front();
    out = model.forward(data.x.slice(0, 0, 1).to(like.device(), like.scalar_type()));
  } catch (const std::exception& e) {  // InputError from the handle, or the TorchScript interpreter's own
    throw InputError(where + ": the model does not take the data's examples: x is " + shape_text(data.x.sizes()) +
                     " (" + std::to_string(data.x.size(1)) + " values per example)" + expects + " (LibTorch: " +
                     last_line(e.what()) + "); give data with the width the model expects, or a model built for it");
  }
  const std::int64_t outputs = out.dim() == 0 ? 1 : out.numel();
  if (loss == LossKind::cross_entropy) {
    if (out.dim() != 2)
      throw InputError(where + ": --loss ce needs an output [n, classes] but the model returns " +
                       shape_text(out.sizes()) + " for one example; return one logit per class");
    const at::Tensor labels = data.y.to(at::kLong);
    const std::int64_t top = labels.max().item<std::int64_t>();
    if (top >= outputs) {
      const std::int64_t row = (labels >= outputs).nonzero()[0][0].item<std::int64_t>();
      throw InputError(where + ": y[" + std::to_string(row) + "] is the class index " +
                       std::to_string(labels[row].item<std::int64_t>()) +
                       " but the model outputs " + std::to_string(outputs) + " classes (indices 0.." +
                       std::to_string(outputs - 1) + "); use a model with at least " + std::to_string(top + 1) +
                       " outputs or relabel the data");
    }
    return;
  }
  // mse, bce: one example's output against one row of y ([n] is [n, 1]).
  const std::int64_t per_row = data.y.dim() == 1 ? 1 : data.y.size(1);
  if (outputs != per_row)
    throw InputError(where + ": the model returns " + shape_text(out.sizes()) + " for one example but y is " +
                     shape_text(data.y.sizes()) + " (" + std::to_string(per_row) + " target value(s) per example, n = " +
                     std::to_string(n) + "); give y with one column per model output");
}

Dataset dataset_from_arrays(const HostArray& x, const HostArray& y, LossKind loss, const std::string& name) {
  if (x.shape.size() != 2) throw InputError(name + ": X must be a matrix [n, d]");
  if (y.shape.empty() || y.shape.size() > 2 || y.shape[0] != x.shape[0])
    throw InputError(name + ": y must be [n] or [n, k] with the same n as X [" + std::to_string(x.shape[0]) + ", " +
                     std::to_string(x.shape[1]) + "]");
  if (x.shape[0] == 0) throw InputError(name + ": the data set has no examples (X is [0, d]); give at least one row");
  // The first non-finite value, by row: named here, not as a NaN in grad_loss.
  for (const auto& [array, label] : {std::pair{&x, "X"}, std::pair{&y, "y"}}) {
    const std::size_t width = array->values.size() / static_cast<std::size_t>(x.shape[0]);
    for (std::size_t i = 0; i < array->values.size(); ++i)
      if (!std::isfinite(array->values[i]))
        throw InputError(name + ": " + label + " row " + std::to_string(i / width) + " (0-based) holds " +
                         (std::isnan(array->values[i]) ? "nan" : "inf") +
                         "; remove or repair the non-finite values before fitting");
  }
  Dataset data;
  data.x = to_tensor(x.values, x.shape);
  data.y = to_tensor(y.values, y.shape);
  if (loss == LossKind::cross_entropy) {
    if (y.shape.size() != 1) throw InputError(name + ": the ce loss needs y as class indices [n]");
    for (std::size_t i = 0; i < y.values.size(); ++i)
      if (!(y.values[i] >= 0.0) || y.values[i] != std::floor(y.values[i]))
        throw InputError(name + ": y[" + std::to_string(i) + "] = " + std::to_string(y.values[i]) +
                         ": class indices must be non-negative integers");
    data.y = data.y.to(at::kLong);
  }
  return data;
}

ModelEquations torchscript_equations(const std::vector<std::string>& model_paths, const HostArray& x,
                                     const HostArray& y, const ModelEquationsOptions& options) {
  return equations_for(model_paths, dataset_from_arrays(x, y, parse_loss(options.loss), options.data_name), options);
}

ModelEquations torchscript_equations(const std::vector<std::string>& model_paths, const std::string& idx_dir,
                                     const ModelEquationsOptions& options) {
  const LossKind loss = parse_loss(options.loss);
  Dataset data = load_idx(idx_dir, IdxPart::train);
  if (loss != LossKind::cross_entropy) throw InputError("data: an IDX directory holds class labels; use --loss ce");
  return equations_for(model_paths, data, options);
}

}  // namespace gradmatch::training
