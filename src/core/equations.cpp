#include "core/equations.hpp"

#include <fnmatch.h>

#include <algorithm>

#include <cmath>
#include <set>
#include <string>

#include "core/errors.hpp"

namespace gradmatch {
namespace {

std::string shape(const Matrix& a) {
  std::string s("[");  // built step by step: GCC 12 warns (-Wrestrict) on "[" + std::string&&
  s += std::to_string(a.rows());
  s += ", ";
  s += std::to_string(a.cols());
  s += "]";
  return s;
}

void check_finite(const Matrix& a, const std::string& where, const std::string& name) {
  for (std::int64_t i = 0; i < a.rows(); ++i)
    for (std::int64_t j = 0; j < a.cols(); ++j)
      if (!std::isfinite(a(i, j)))
        throw InputError(where + ": dataset '" + name + "' holds a non-finite value (" + std::to_string(a(i, j)) +
                         ") at row " + std::to_string(i) + ", column " + std::to_string(j) +
                         "; drop that point (a diverged run?) or fix the writer");
}

void check_shape(const Matrix& a, std::int64_t m, std::int64_t p, const std::string& where, const std::string& name) {
  if (a.rows() != m || a.cols() != p)
    throw InputError(where + ": dataset '" + name + "' has shape " + shape(a) + " but 'theta' has shape [" +
                     std::to_string(m) + ", " + std::to_string(p) + "]; every [m, p] dataset must match 'theta'");
}

}  // namespace

std::int64_t ParameterBlock::size() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

void Equations::validate(const std::string& where) const {
  const std::int64_t m_ = m(), p_ = p();
  if (m_ == 0 || p_ == 0)
    throw InputError(where + ": 'theta' is empty (shape " + shape(theta) + "); at least one point with p >= 1 is needed");
  check_shape(grad_loss, m_, p_, where, "grad_loss");
  check_finite(theta, where, "theta");
  check_finite(grad_loss, where, "grad_loss");
  if (target) {
    check_shape(*target, m_, p_, where, "target");
    check_finite(*target, where, "target");
  }
  for (const auto& [name, f] : features) {
    check_shape(f, m_, p_, where, "features/" + name);
    check_finite(f, where, "features/" + name);
  }
  if (!weights.empty()) {
    if (static_cast<std::int64_t>(weights.size()) != m_)
      throw InputError(where + ": dataset 'weights' has " + std::to_string(weights.size()) +
                       " entries but there are m = " + std::to_string(m_) + " points; give one weight per point");
    for (std::size_t k = 0; k < weights.size(); ++k)
      if (!std::isfinite(weights[k]) || weights[k] < 0.0)
        throw InputError(where + ": 'weights' entry " + std::to_string(k) + " is " + std::to_string(weights[k]) +
                         "; weights must be finite and non-negative");
  }
  if (!parameters.empty()) {
    std::set<std::string> seen;
    std::int64_t total = 0;
    for (const ParameterBlock& b : parameters) {
      if (b.name.empty() || !seen.insert(b.name).second)
        throw InputError(where + ": parameter name '" + b.name +
                         "' is empty or repeats; give each parameter a unique non-empty name");
      for (std::int64_t d : b.shape)
        if (d < 0)
          throw InputError(where + ": parameter '" + b.name + "' has the negative dimension " + std::to_string(d));
      total += b.size();
    }
    if (total != p_)
      throw InputError(where + ": the recorded parameters hold " + std::to_string(total) +
                       " scalars but 'theta' has p = " + std::to_string(p_) +
                       " columns; their sizes must sum to p (or record no parameters)");
  }
}

void Equations::keep_features(const std::vector<std::string>& globs) {
  if (globs.empty()) return;
  std::string names;
  for (const auto& f : features) names += (names.empty() ? "" : ", ") + f.first;
  const auto matches = [](const std::string& glob, const std::string& name) {
    return ::fnmatch(glob.c_str(), name.c_str(), 0) == 0;
  };
  for (const std::string& glob : globs)
    if (std::none_of(features.begin(), features.end(), [&](const auto& f) { return matches(glob, f.first); }))
      throw InputError("--columns: '" + glob + "' matches none of the feature columns (" +
                       (names.empty() ? std::string("there are none") : names) + ")");
  // Kept in the order of the globs (the file's order among one glob's matches).
  const auto first_glob = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find_if(globs.begin(), globs.end(),
                                                 [&](const std::string& g) { return matches(g, name); }) -
                                    globs.begin());
  };
  std::erase_if(features, [&](const auto& f) { return first_glob(f.first) == globs.size(); });
  std::stable_sort(features.begin(), features.end(),
                   [&](const auto& a, const auto& b) { return first_glob(a.first) < first_glob(b.first); });
}

Equations Equations::rows(std::int64_t begin, std::int64_t end) const {
  Equations out;
  out.theta = theta.row_block(begin, end);
  out.grad_loss = grad_loss.row_block(begin, end);
  if (target) out.target = target->row_block(begin, end);
  for (const auto& [name, f] : features) out.features.emplace_back(name, f.row_block(begin, end));
  if (!weights.empty()) out.weights.assign(weights.begin() + begin, weights.begin() + end);
  out.parameters = parameters;
  return out;
}

}  // namespace gradmatch
