#pragma once
// JSON outputs: fit results and study summaries.
//
// Non-finite numbers (an infinite condition number, an undefined standard
// error) are written as null, which every JSON reader accepts. Files are
// written to a temporary name and renamed, so a reader never sees half a file.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fit.hpp"

namespace gradmatch::io {

/// The `gradmatch fit --output` document. Keys (docs/design.md): family, lambda,
/// m, p, residual_ratio, cosine, condition_number, method, ranks; plus
/// standard_errors (shaped like lambda), names, rank, unknowns, n_equations,
/// sigma2, rcond, normalized, nonneg, warnings (list of sentences, maybe
/// empty) and, when the equations record them, parameters ([{name, shape}]
/// in theta's column order).
nlohmann::json fit_result_json(const FitResult& result, int ranks);

/// Writes `value` (indented, trailing newline) to `path` atomically.
void write_json_file(const std::string& path, const nlohmann::json& value);

/// A finished study directory's outputs that are not as its run_info.json
/// recorded them: "results.h5 (missing)", "summary.json (cut short)" (size
/// differs from `output_bytes`, where recorded). std::nullopt when DIR has no
/// readable run_info.json listing `outputs`.
std::optional<std::vector<std::string>> damaged_outputs(const std::filesystem::path& dir);

/// run_info.json's `output_bytes` ({file: size}); an empty object when DIR
/// has no readable run_info.json or it records none.
nlohmann::json recorded_output_bytes(const std::filesystem::path& dir);

/// What is wrong with DIR/name: "missing", "cut short" (its size differs
/// from `sizes[name]`, where recorded), or "" when nothing.
std::string output_damage(const std::filesystem::path& dir, const std::string& name, const nlohmann::json& sizes);

}  // namespace gradmatch::io
