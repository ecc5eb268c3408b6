#pragma once
// Helpers shared by the study tests: smoke configs, output files compared
// byte for byte, and run stores edited to look like an interrupted run.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gradmatch::studies::test_support {

namespace fs = std::filesystem;

/// configs/smoke/<study>.toml of this source tree.
inline std::string smoke(const std::string& study) {
  return std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/" + study + ".toml";
}

inline std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline nlohmann::json json_of(const fs::path& path) { return nlohmann::json::parse(slurp(path)); }

/// Every output file of a run by name, except the store and run_info.json (timings).
inline std::map<std::string, std::string> outputs(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("store.", 0) == 0 || name == "run_info.json") continue;
    out[name] = slurp(e.path());
  }
  return out;
}

/// Marks every `stride`-th row of `table` pending again, as a killed run
/// leaves it. Returns how many rows it reset.
inline std::int64_t forget_rows(const fs::path& store, const std::string& table, std::int64_t stride) {
  const hid_t file = H5Fopen(store.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  EXPECT_GE(file, 0);
  const hid_t status = H5Dopen2(file, ("tables/" + table + "/status").c_str(), H5P_DEFAULT);
  const hid_t space = H5Dget_space(status);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  std::vector<std::int8_t> codes(n);
  H5Dread(status, H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, codes.data());
  std::int64_t reset = 0;
  for (hsize_t row = 0; row < n; row += static_cast<hsize_t>(stride), ++reset) codes[row] = 0;
  H5Dwrite(status, H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, codes.data());
  H5Sclose(space);
  H5Dclose(status);
  H5Fclose(file);
  return reset;
}

}  // namespace gradmatch::studies::test_support
