#pragma once
// A fixture for MPI tests whose ranks share one scratch directory: rank 0
// names it (a prefix, the test's name, its pid), makes it empty before each
// test and removes it after; every rank holds its path in root_.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "mpi/mpi.hpp"

namespace gradmatch::mpi::testing {

class SharedScratchTest : public ::testing::Test {
 protected:
  explicit SharedScratchTest(std::string prefix) : prefix_(std::move(prefix)) {}
  void SetUp() override {
    const std::string name = prefix_ + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" +
                             std::to_string(::getpid());
    root_ = world_.broadcast((std::filesystem::temp_directory_path() / name).string());
    if (world_.is_root()) {
      std::filesystem::remove_all(root_);
      std::filesystem::create_directories(root_);
    }
    world_.barrier();
  }
  void TearDown() override {
    world_.barrier();
    std::error_code ec;
    if (world_.is_root()) std::filesystem::remove_all(root_, ec);
  }

  Communicator world_;
  std::filesystem::path root_;

 private:
  std::string prefix_;
};

}  // namespace gradmatch::mpi::testing
