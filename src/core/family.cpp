#include "core/family.hpp"

#include <charconv>
#include <cmath>
#include <sstream>

#include "core/errors.hpp"
#include "core/regularizers.hpp"

namespace gradmatch {
namespace {

constexpr const char* kAccepted =
    "accepted families: ridge, diag, sym, features, huber:beta=B, elastic-net:beta=B (B > 0, e.g. huber:beta=1e-3)";

double parse_beta(std::string_view name, std::string_view rest) {
  const std::string_view key = "beta=";
  if (rest.substr(0, key.size()) != key)
    throw InputError("--family " + std::string(name) + ":" + std::string(rest) + ": expected '" + std::string(name) +
                     ":beta=B'; " + kAccepted);
  const std::string value(rest.substr(key.size()));
  double beta = 0.0;
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), beta);
  if (ec != std::errc() || ptr != value.data() + value.size() || !std::isfinite(beta) || beta <= 0.0)
    throw InputError("--family " + std::string(name) + ":beta=" + value +
                     ": beta must be a positive finite number (e.g. 1e-3)");
  return beta;
}

}  // namespace

FamilySpec FamilySpec::parse(std::string_view text) {
  const auto colon = text.find(':');
  const std::string_view name = text.substr(0, colon);
  const std::string_view rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  FamilySpec spec;
  if (name == "ridge") spec.kind = FamilyKind::ridge;
  else if (name == "diag") spec.kind = FamilyKind::diag;
  else if (name == "sym") spec.kind = FamilyKind::sym;
  else if (name == "features") spec.kind = FamilyKind::features;
  else if (name == "huber") spec.kind = FamilyKind::huber;
  else if (name == "elastic-net") spec.kind = FamilyKind::elastic_net;
  else if (name == "layerwise-ridge")
    throw InputError("--family layerwise-ridge names the bootstrap study's per-layer ridge fit; on its equation file "
                     "fit the same columns with --family features --columns 'layerwise_ridge.*'");
  else throw InputError("--family '" + std::string(text) + "' is not a family; " + kAccepted);

  const bool needs_beta = spec.kind == FamilyKind::huber || spec.kind == FamilyKind::elastic_net;
  if (needs_beta) {
    if (colon == std::string_view::npos)
      throw InputError("--family " + std::string(name) + " needs a smoothing width: write " + std::string(name) +
                       ":beta=B (e.g. " + std::string(name) + ":beta=1e-3)");
    spec.beta = parse_beta(name, rest);
  } else if (colon != std::string_view::npos) {
    throw InputError("--family " + std::string(text) + ": family '" + std::string(name) + "' takes no options; " +
                     kAccepted);
  }
  return spec;
}

std::string FamilySpec::to_string() const {
  std::ostringstream os;
  os.precision(17);
  switch (kind) {
    case FamilyKind::ridge: return "ridge";
    case FamilyKind::diag: return "diag";
    case FamilyKind::sym: return "sym";
    case FamilyKind::features: return "features";
    case FamilyKind::huber: os << "huber:beta=" << beta; return os.str();
    case FamilyKind::elastic_net: os << "elastic-net:beta=" << beta; return os.str();
  }
  return "?";
}

std::int64_t column_count(const FamilySpec& family, const Equations& eq) {
  switch (family.kind) {
    case FamilyKind::ridge:
    case FamilyKind::huber: return 1;
    case FamilyKind::elastic_net: return 2;
    case FamilyKind::features: return static_cast<std::int64_t>(eq.features.size());
    default: throw std::logic_error("column_count: not a column family");
  }
}

std::vector<std::string> column_names(const FamilySpec& family, const Equations& eq) {
  switch (family.kind) {
    case FamilyKind::ridge:
    case FamilyKind::huber: return {"lambda"};
    case FamilyKind::elastic_net: return {"lambda1", "lambda2"};
    case FamilyKind::features: {
      std::vector<std::string> names;
      for (const auto& f : eq.features) names.push_back(f.first);
      return names;
    }
    default: throw std::logic_error("column_names: not a column family");
  }
}

void fill_columns(const FamilySpec& family, const Equations& eq, std::int64_t k, double* out) {
  const std::int64_t p = eq.p();
  const auto theta = eq.theta.row(k);
  switch (family.kind) {
    case FamilyKind::ridge:
      for (std::int64_t j = 0; j < p; ++j) out[j] = 2.0 * theta[static_cast<std::size_t>(j)];
      return;
    case FamilyKind::huber:
      for (std::int64_t j = 0; j < p; ++j) out[j] = reg::huber_derivative(theta[static_cast<std::size_t>(j)], family.beta);
      return;
    case FamilyKind::elastic_net:
      for (std::int64_t j = 0; j < p; ++j) {
        out[2 * j] = reg::huber_derivative(theta[static_cast<std::size_t>(j)], family.beta);
        out[2 * j + 1] = 2.0 * theta[static_cast<std::size_t>(j)];
      }
      return;
    case FamilyKind::features: {
      const auto r = static_cast<std::int64_t>(eq.features.size());
      for (std::int64_t c = 0; c < r; ++c) {
        const auto col = eq.features[static_cast<std::size_t>(c)].second.row(k);
        for (std::int64_t j = 0; j < p; ++j) out[j * r + c] = col[static_cast<std::size_t>(j)];
      }
      return;
    }
    default: throw std::logic_error("fill_columns: not a column family");
  }
}

}  // namespace gradmatch
