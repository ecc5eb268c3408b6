#pragma once
// The bootstrap tests' inputs (make_bootstrap_inputs.py: TorchScript models
// and HDF5 data sets): written once per ctest run by the fixture test
// bootstrap_inputs into the directory GRADMATCH_BOOTSTRAP_INPUTS names, and
// copied from there into each test's own directory; a test binary run without
// that variable runs the script itself. Each run of the script imports torch,
// which takes seconds with a CUDA PyTorch: once per ctest run instead of twice
// per test.
#include <cstdlib>
#include <filesystem>
#include <string>

#include "../required_inputs.hpp"

namespace gradmatch::studies::test_support {

/// What preparing the inputs found: `skip` (python3-torch or -h5py missing,
/// for GRADMATCH_NEEDS) or `error` (the script failed), both empty when the
/// inputs are in place.
struct BootstrapInputs {
  std::string skip, error;
};

/// Puts make_bootstrap_inputs.py's files into `dir` (which exists).
inline BootstrapInputs write_bootstrap_inputs(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  BootstrapInputs out;
  const char* cached = std::getenv("GRADMATCH_BOOTSTRAP_INPUTS");
  if (cached != nullptr && fs::is_directory(cached)) {
    std::error_code ec;
    fs::copy(cached, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
    if (ec) out.error = "copying the inputs from " + std::string(cached) + ": " + ec.message();
    return out;
  }
  if (!test_inputs::python3_imports("torch, h5py")) {
    out.skip = "Debian's python3-torch and python3-h5py are needed";
    return out;
  }
  const std::string cmd =
      test_inputs::python_command() + GRADMATCH_SOURCE_DIR + "/tests/studies/make_bootstrap_inputs.py " + dir.string();
  if (std::system(cmd.c_str()) != 0) out.error = "make_bootstrap_inputs.py failed (its output is above)";
  return out;
}

}  // namespace gradmatch::studies::test_support
