#include "training/model_equations.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.hpp"
#include "training/endpoint.hpp"
#include "training/idx.hpp"
#include "training/losses.hpp"
#include "training/tensor_bridge.hpp"
#include "training/torchscript.hpp"

namespace gradmatch::training {
namespace {

ModelEquations equations_for(const std::string& model_path, const Dataset& data, const ModelEquationsOptions& options) {
  EndpointOptions eo;
  eo.loss = parse_loss(options.loss);
  eo.batch_size = options.batch_size;
  for (const auto& c : options.candidates) eo.candidates.push_back(Candidate::parse(c));
  const ModelHandle model = load_torchscript(model_path, at::Device(at::kCPU), /*to_double=*/true);
  const Dataset& d = data;  // batches are converted to the model's float64 as they are used
  const Endpoint e = extract_endpoint(model, d, eo);
  ModelEquations out;
  out.equations = to_equations(std::span<const Endpoint>(&e, 1));
  out.n = d.size();
  out.loss = e.loss;
  out.relative_gradient_norm = e.relative_gradient_norm;
  return out;
}

}  // namespace

ModelEquations torchscript_equations(const std::string& model_path, const HostArray& x, const HostArray& y,
                                     const ModelEquationsOptions& options) {
  const LossKind loss = parse_loss(options.loss);
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
  return equations_for(model_path, data, options);
}

ModelEquations torchscript_equations(const std::string& model_path, const std::string& idx_dir,
                                     const ModelEquationsOptions& options) {
  const LossKind loss = parse_loss(options.loss);
  Dataset data = load_idx(idx_dir, IdxPart::train);
  if (loss != LossKind::cross_entropy) throw InputError("data: an IDX directory holds class labels; use --loss ce");
  return equations_for(model_path, data, options);
}

}  // namespace gradmatch::training
