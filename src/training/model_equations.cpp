#include "training/model_equations.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.hpp"
#include "training/endpoint.hpp"
#include "training/host_data.hpp"
#include "training/idx.hpp"
#include "training/losses.hpp"
#include "training/tensor_bridge.hpp"
#include "training/torchscript.hpp"

namespace gradmatch::training {
namespace {

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

Dataset dataset_from_arrays(const HostArray& x, const HostArray& y, LossKind loss) {
  if (x.shape.size() != 2) throw InputError("data: X must be a matrix [n, d]");
  if (y.shape.empty() || y.shape.size() > 2 || y.shape[0] != x.shape[0])
    throw InputError("data: y must be [n] or [n, k] with the same n as X");
  Dataset data;
  data.x = to_tensor(x.values, x.shape);
  data.y = to_tensor(y.values, y.shape);
  if (loss == LossKind::cross_entropy) {
    if (y.shape.size() != 1) throw InputError("data: the ce loss needs y as class indices [n]");
    for (double v : y.values)
      if (!(v >= 0.0) || v != std::floor(v)) throw InputError("data: class indices in y must be non-negative integers");
    data.y = data.y.to(at::kLong);
  }
  return data;
}

ModelEquations torchscript_equations(const std::vector<std::string>& model_paths, const HostArray& x,
                                     const HostArray& y, const ModelEquationsOptions& options) {
  return equations_for(model_paths, dataset_from_arrays(x, y, parse_loss(options.loss)), options);
}

ModelEquations torchscript_equations(const std::vector<std::string>& model_paths, const std::string& idx_dir,
                                     const ModelEquationsOptions& options) {
  const LossKind loss = parse_loss(options.loss);
  Dataset data = load_idx(idx_dir, IdxPart::train);
  if (loss != LossKind::cross_entropy) throw InputError("data: an IDX directory holds class labels; use --loss ce");
  return equations_for(model_paths, data, options);
}

}  // namespace gradmatch::training
