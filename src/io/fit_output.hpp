#pragma once
// `gradmatch fit --output FILE`: the fit result as JSON or HDF5, chosen by
// the file name's extension.
//
//   .json  the fit_result_json document (indented, trailing newline)
//   .h5    dataset `lambda` (the coefficients, shaped like the JSON's lambda;
//          a scalar dataset for ridge/huber), dataset `standard_errors`
//          (same shape, NaN where not identified), dataset `names` (column
//          families), group parameters/{names, shapes, offsets} when the
//          equations record them, and every other scalar of the JSON document
//          as a root attribute (numbers as float64 or int64, null as NaN,
//          booleans as int64 0/1, strings as strings); `warnings` is a string
//          array attribute.
// Both are written to a temporary file beside the target and renamed.
#include <string>

#include <nlohmann/json.hpp>

#include "core/fit.hpp"

namespace gradmatch::io {

enum class FitOutputFormat { json, hdf5 };

/// The format for `path` by its extension; InputError (naming `flag` and the
/// accepted extensions) for anything else.
FitOutputFormat fit_output_format(const std::string& path, const std::string& flag = "--output");

/// Writes `result` (with the JSON document `doc` built from it, which may
/// carry extra keys) to `path` in the format its extension selects.
void write_fit_output(const std::string& path, const FitResult& result, const nlohmann::json& doc);

}  // namespace gradmatch::io
