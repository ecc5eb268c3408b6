#include "io/fit_output.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/errors.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_handle.hpp"
#include "io/json_output.hpp"

namespace gradmatch::io {
namespace {

using namespace detail;
namespace fs = std::filesystem;

void write_doubles(hid_t file, const char* name, const std::vector<double>& values,
                   const std::vector<std::int64_t>& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  DataspaceHandle space(dims.empty() ? H5Screate(H5S_SCALAR)
                                     : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                        "H5Screate");
  DatasetHandle d(
      H5Dcreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, untimed_create_plist(H5P_DATASET_CREATE), H5P_DEFAULT),
      "H5Dcreate2");
  checked(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "H5Dwrite");
}

void write_strings(hid_t file, const char* name, const std::vector<std::string>& values, bool attribute) {
  std::vector<const char*> ptrs;
  for (const std::string& v : values) ptrs.push_back(v.c_str());
  const hsize_t n = ptrs.size();
  DatatypeHandle type = utf8_string_type();
  DataspaceHandle space(H5Screate_simple(1, &n, nullptr), "H5Screate_simple");
  if (attribute) {
    AttributeHandle a(H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2");
    if (n) checked(H5Awrite(a, type, ptrs.data()), "H5Awrite");
    return;
  }
  DatasetHandle d(H5Dcreate2(file, name, type, space, H5P_DEFAULT, untimed_create_plist(H5P_DATASET_CREATE), H5P_DEFAULT),
                  "H5Dcreate2");
  if (n) checked(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "H5Dwrite");
}

template <class T>
void write_scalar_attribute(hid_t file, const std::string& key, hid_t file_type, hid_t mem_type, T value) {
  DataspaceHandle space(H5Screate(H5S_SCALAR), "H5Screate(SCALAR)");
  AttributeHandle a(H5Acreate2(file, key.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2");
  checked(H5Awrite(a, mem_type, &value), "H5Awrite");
}

void write_hdf5(const std::string& path, const FitResult& r, const nlohmann::json& doc) {
  write_hdf5_atomically(path, "the fit result", [&](std::int64_t file) {
    write_doubles(file, "lambda", r.coefficients, r.shape);
    if (!r.standard_errors.empty()) write_doubles(file, "standard_errors", r.standard_errors, r.shape);
    if (!r.names.empty()) write_strings(file, "names", r.names, false);
    if (!r.parameters.empty()) write_parameter_group(file, r.parameters);
    write_strings(file, "warnings", r.warnings, true);
    for (const auto& [key, value] : doc.items()) {
      if (key == "lambda" || key == "standard_errors" || key == "names" || key == "parameters" || key == "warnings")
        continue;
      if (value.is_string()) write_string_attribute(file, key, value.get<std::string>());
      else if (value.is_boolean())
        write_scalar_attribute<std::int64_t>(file, key, H5T_STD_I64LE, H5T_NATIVE_INT64, value.get<bool>() ? 1 : 0);
      else if (value.is_number_integer())
        write_scalar_attribute<std::int64_t>(file, key, H5T_STD_I64LE, H5T_NATIVE_INT64, value.get<std::int64_t>());
      else if (value.is_number())
        write_scalar_attribute<double>(file, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, value.get<double>());
      else if (value.is_null())
        write_scalar_attribute<double>(file, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                       std::numeric_limits<double>::quiet_NaN());
      else if (value.is_array() && std::all_of(value.begin(), value.end(), [](const auto& v) { return v.is_string(); }))
        write_strings(file, key.c_str(), value.get<std::vector<std::string>>(), true);
      else
        write_string_attribute(file, key, value.dump());
    }
  });
}

}  // namespace

FitOutputFormat fit_output_format(const std::string& path, const std::string& flag) {
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".json") return FitOutputFormat::json;
  if (ext == ".h5") return FitOutputFormat::hdf5;
  throw InputError(cat(flag, " ", path, ": unknown output format '", ext.empty() ? std::string("(no extension)") : ext,
                       "'; name the file *.json (JSON) or *.h5 (HDF5: dataset lambda, statistics as attributes)"));
}

void write_fit_output(const std::string& path, const FitResult& result, const nlohmann::json& doc) {
  if (fit_output_format(path) == FitOutputFormat::json) write_json_file(path, doc);
  else write_hdf5(path, result, doc);
}

}  // namespace gradmatch::io
