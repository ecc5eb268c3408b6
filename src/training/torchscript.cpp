#include "training/torchscript.hpp"

#include <fnmatch.h>
#include <torch/script.h>

#include <filesystem>
#include <memory>

#include "core/errors.hpp"

namespace gradmatch::training {

bool name_matches(const std::string& glob, const std::string& name) {
  return ::fnmatch(glob.c_str(), name.c_str(), 0) == 0;
}

ModelHandle load_torchscript(const std::string& path, const c10::Device& device, bool to_double,
                             const ParameterSelection& select) {
  const auto bad = [&](const std::string& what) {
    std::string msg = path;
    msg += ": ";
    msg += what;
    return InputError(msg);
  };
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw bad("does not exist or is not a file");
  auto module = std::make_shared<torch::jit::Module>();
  try {
    *module = torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    std::string what = "is not a TorchScript module saved by torch.jit.save (";
    what += e.what_without_backtrace();
    what += ")";
    throw bad(what);
  }
  if (to_double) module->to(at::kDouble);
  if (!module->find_method("forward")) throw bad("the TorchScript module has no forward method");

  ModelHandle h;
  h.forward = [module, path](const at::Tensor& x) {
    c10::IValue out;
    try {
      out = module->forward({x});
    } catch (const c10::Error& e) {
      std::string msg = path;
      msg += ": forward failed on an input of shape [";
      for (std::int64_t d = 0; d < x.dim(); ++d) {
        if (d) msg += ", ";
        msg += std::to_string(x.size(d));
      }
      msg += "] (";
      msg += e.what_without_backtrace();
      msg += ")";
      throw InputError(msg);
    }
    if (!out.isTensor()) {
      std::string msg = path;
      msg += ": forward must return a single tensor";
      throw InputError(msg);
    }
    return out.toTensor();
  };
  h.set_training = [module](bool on) { module->train(on); };
  h.is_training = [module] { return module->is_training(); };
  std::string all_names;
  std::size_t frozen = 0;
  for (const auto& item : module->named_parameters(/*recurse=*/true)) {
    at::Tensor p = item.value;
    all_names += (all_names.empty() ? "" : ", ") + item.name + (p.requires_grad() ? "" : " (frozen)");
    bool chosen = select.globs.empty();
    for (const std::string& g : select.globs) chosen = chosen || name_matches(g, item.name);
    if (!chosen) continue;
    if (!p.requires_grad()) {
      ++frozen;
      if (!select.include_frozen) continue;
      p.requires_grad_(true);
    }
    h.parameter_names.push_back(item.name);
    h.parameters.push_back(p);
  }
  if (all_names.empty()) throw bad("the TorchScript module has no parameters");
  if (h.parameters.empty()) {
    std::string what = "no parameter is selected";
    if (!select.globs.empty()) {
      what += " by the name glob(s)";
      for (const std::string& g : select.globs) what += " '" + g + "'";
    }
    if (frozen > 0 && !select.include_frozen) what += " among the trainable ones (frozen parameters are left out unless included)";
    what += "; its parameters are: " + all_names;
    throw bad(what);
  }
  return h;
}

}  // namespace gradmatch::training
