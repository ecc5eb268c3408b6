#include "io/json_output.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/errors.hpp"
#include "io/file_bytes.hpp"
#include "io/provenance.hpp"

namespace gradmatch::io {
namespace {

nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Values laid out by `shape` ({} scalar, {n} vector, {p, p} matrix).
nlohmann::json shaped(const std::vector<double>& values, const std::vector<std::int64_t>& shape) {
  if (values.empty()) return nullptr;
  if (shape.empty()) return number(values.at(0));
  if (shape.size() == 1) {
    nlohmann::json a = nlohmann::json::array();
    for (double v : values) a.push_back(number(v));
    return a;
  }
  nlohmann::json rows = nlohmann::json::array();
  for (std::int64_t i = 0; i < shape[0]; ++i) {
    nlohmann::json row = nlohmann::json::array();
    for (std::int64_t j = 0; j < shape[1]; ++j) row.push_back(number(values.at(static_cast<std::size_t>(i * shape[1] + j))));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

nlohmann::json fit_result_json(const FitResult& r, int ranks) {
  nlohmann::json j;
  j["gradmatch_version"] = gradmatch_version();
  j["family"] = r.family;
  j["method"] = r.method;
  j["lambda"] = shaped(r.coefficients, r.shape);
  j["standard_errors"] = shaped(r.standard_errors, r.shape);
  if (!r.names.empty()) j["names"] = r.names;
  j["m"] = r.m;
  j["p"] = r.p;
  j["n_equations"] = r.n_equations;
  j["unknowns"] = r.unknowns;
  j["rank"] = r.rank;
  j["residual_ratio"] = number(r.residual_ratio);
  j["cosine"] = number(r.cosine);
  j["condition_number"] = number(r.condition_number);
  j["sigma2"] = number(r.sigma2);
  j["rcond"] = r.rcond;
  j["normalized"] = r.normalized;
  j["nonneg"] = r.nonneg;
  j["ranks"] = ranks;
  j["warnings"] = r.warnings;
  if (!r.parameters.empty()) {
    nlohmann::json params = nlohmann::json::array();
    for (const ParameterBlock& b : r.parameters) params.push_back({{"name", b.name}, {"shape", b.shape}});
    j["parameters"] = params;
  }
  return j;
}

void write_json_file(const std::string& path, const nlohmann::json& value) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  write_file_bytes(tmp, value.dump(2) + "\n", path);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw InputError(path + ": cannot rename the finished file into place: " + ec.message());
  }
}

std::optional<std::vector<std::string>> damaged_outputs(const std::filesystem::path& dir) {
  std::ifstream in(dir / "run_info.json");
  if (!in) return std::nullopt;
  const nlohmann::json info = nlohmann::json::parse(in, nullptr, false);
  if (info.is_discarded() || !info.is_object() || !info.contains("outputs") || !info["outputs"].is_array())
    return std::nullopt;
  const nlohmann::json sizes = info.value("output_bytes", nlohmann::json::object());
  std::vector<std::string> damaged;
  for (const nlohmann::json& f : info["outputs"]) {
    if (!f.is_string()) return std::nullopt;
    const std::string name = f.get<std::string>();
    if (const std::string what = output_damage(dir, name, sizes); !what.empty()) damaged.push_back(name + " (" + what + ")");
  }
  return damaged;
}

nlohmann::json recorded_output_bytes(const std::filesystem::path& dir) {
  std::ifstream in(dir / "run_info.json");
  if (!in) return nlohmann::json::object();
  const nlohmann::json info = nlohmann::json::parse(in, nullptr, false);
  if (info.is_discarded() || !info.is_object() || !info.contains("output_bytes") || !info["output_bytes"].is_object())
    return nlohmann::json::object();
  return info["output_bytes"];
}

std::string output_damage(const std::filesystem::path& dir, const std::string& name, const nlohmann::json& sizes) {
  std::error_code ec;
  if (!std::filesystem::exists(dir / name, ec)) return "missing";
  const auto size = sizes.is_object() ? sizes.find(name) : sizes.end();
  if (size != sizes.end() && size->is_number_unsigned() &&
      std::filesystem::file_size(dir / name, ec) != size->get<std::uintmax_t>())
    return "cut short";
  return "";
}

}  // namespace gradmatch::io
