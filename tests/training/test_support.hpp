#pragma once
// Shared by the training tests: one compute thread, a fresh temporary
// directory per test, and small data/model helpers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "training/replicates.hpp"

namespace gradmatch::training::testing {

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "gradmatch-training-";
    if (info) {
      name += info->test_suite_name();
      name += ".";
      name += info->name();
    }
    name += "-";
    name += std::to_string(::getpid());
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// One replicate per rate: initial weights (seed, r), batch order (seed + 1, r), masks keyed first_key + r.
inline std::vector<ReplicateSpec> keyed_dropout_specs(const std::vector<double>& rates, std::uint64_t seed,
                                                      std::uint64_t first_key) {
  std::vector<ReplicateSpec> specs(rates.size());
  for (std::size_t r = 0; r < specs.size(); ++r) {
    specs[r].init_seed = seed;
    specs[r].init_stream = r;
    specs[r].order_seed = seed + 1;
    specs[r].order_stream = r;
    specs[r].dropout = rates[r];
    specs[r].dropout_key = first_key + r;
  }
  return specs;
}

}  // namespace gradmatch::training::testing
