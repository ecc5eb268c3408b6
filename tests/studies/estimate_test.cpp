#include "studies/estimate.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/errors.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;

class CheckEstimate : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gradmatch_estimate_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    ::unsetenv("GRADMATCH_DISK_AVAILABLE");
    fs::remove_all(dir_);
  }
  /// Whether the disk check passes with `free` bytes free.
  bool fits(const ResourceEstimate& e, const char* free) {
    ::setenv("GRADMATCH_DISK_AVAILABLE", free, 1);
    try {
      check_estimate(e, "cfg.toml", dir_, 1);
      return true;
    } catch (const InputError&) {
      return false;
    }
  }
  void write_file(const fs::path& path, std::size_t bytes) { std::ofstream(path) << std::string(bytes, 'x'); }
  fs::path dir_;
};

TEST_F(CheckEstimate, ANewRunNeedsTheStoreAndEveryOutput) {
  ResourceEstimate e;
  e.store_bytes = 500;
  e.output_bytes = 1000;
  EXPECT_FALSE(fits(e, "1499"));
  EXPECT_TRUE(fits(e, "1500"));
}

TEST_F(CheckEstimate, AResumeNeedsOnlyTheOutputsStillToWritePlusTheLargestWrittenOnce) {
  // After a full disk: the store and 900 bytes of outputs are there (600 + 300,
  // one in a subfolder); 100 bytes are still to come, and rewriting the 600-byte
  // file beside itself needs its size once more.
  write_file(dir_ / "store.h5", 5000);
  write_file(dir_ / "results.h5", 600);
  fs::create_directories(dir_ / "equations");
  write_file(dir_ / "equations" / "e0.h5", 300);
  ResourceEstimate e;
  e.store_bytes = 500;
  e.output_bytes = 1000;
  EXPECT_FALSE(fits(e, "699"));
  EXPECT_TRUE(fits(e, "700"));
}

}  // namespace
}  // namespace gradmatch::studies
