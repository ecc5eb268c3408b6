#pragma once
// What some tests need beyond the build, which scripts/setup.sh installs:
// Debian's dataset-fashion-mnist and a python3 with h5py and torch
// (python3-h5py, python3-torch): Debian's /usr/bin/python3 unless CMake's
// GRADMATCH_TEST_PYTHON names another (a GPU host's PyTorch venv, say). A test that needs a missing one is skipped,
// saying what is missing -- except where GRADMATCH_TESTS_REQUIRE_INPUTS=1,
// which scripts/test.sh (the README's test command, CI) sets: there the test
// fails, so a broken install cannot pass as a row of skipped tests. Other
// machines (a GPU host running ctest by hand, say) keep the skip.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#ifndef GRADMATCH_TEST_PYTHON
#define GRADMATCH_TEST_PYTHON "/usr/bin/python3"
#endif

namespace gradmatch::test_inputs {

/// The python3 the tests run, followed by a space: the start of a command line.
inline std::string python_command() { return std::string(GRADMATCH_TEST_PYTHON) + " "; }

inline bool required() {
  const char* v = std::getenv("GRADMATCH_TESTS_REQUIRE_INPUTS");
  return v != nullptr && std::string(v) == "1";
}

/// Whether the tests' python3 imports every module of `modules` ("torch, h5py").
inline bool python3_imports(const std::string& modules) {
  return std::system((python_command() + "-c 'import " + modules + "' > /dev/null 2>&1").c_str()) == 0;
}

inline constexpr const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

/// Debian's dataset-fashion-mnist: the training and test IDX files.
inline bool fashion_mnist_installed() {
  const std::filesystem::path d = kFashionMnist;
  return std::filesystem::exists(d / "train-images-idx3-ubyte.gz") &&
         std::filesystem::exists(d / "t10k-images-idx3-ubyte.gz");
}

inline std::string missing_message(const std::string& what) {
  return "missing: " + what + " (scripts/setup.sh installs it)";
}

}  // namespace gradmatch::test_inputs

/// Skips the test (or, under GRADMATCH_TESTS_REQUIRE_INPUTS=1, fails it)
/// unless `available`; `what` names the missing input. Use in a test body or
/// SetUp().
#define GRADMATCH_NEEDS(available, what)                                                       \
  do {                                                                                         \
    if (!(available)) {                                                                        \
      if (::gradmatch::test_inputs::required()) FAIL() << ::gradmatch::test_inputs::missing_message(what); \
      GTEST_SKIP() << ::gradmatch::test_inputs::missing_message(what);                         \
    }                                                                                          \
  } while (0)

#define GRADMATCH_NEEDS_FASHION_MNIST() \
  GRADMATCH_NEEDS(::gradmatch::test_inputs::fashion_mnist_installed(), "Debian's dataset-fashion-mnist")
#define GRADMATCH_NEEDS_PYTHON3(modules) \
  GRADMATCH_NEEDS(::gradmatch::test_inputs::python3_imports(modules), std::string("python3 with ") + (modules))
