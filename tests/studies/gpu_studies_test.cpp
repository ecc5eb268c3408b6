// The dropout and bootstrap smoke studies on the GPU give the CPU's results
// (label gpu; skipped where LibTorch sees no GPU). Both runs train in float64
// (training.float64 = true) so that the only differences are the devices'
// summation orders: every median agrees to 1e-6 relative, accuracies and
// epoch counts exactly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "../required_inputs.hpp"
#include "study_files.hpp"
#include "mpi/mpi.hpp"
#include "studies/registry.hpp"
#include "training/device.hpp"

namespace gradmatch::studies {
namespace {

using namespace test_support;

std::string with_device(const fs::path& dir, const std::string& device) {
  std::string text = slurp(smoke("dropout"));
  const auto replace = [&](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    if (at != std::string::npos) text.replace(at, from.size(), to);
  };
  replace("device = \"auto\"", "device = \"" + device + "\"");
  replace("float64 = false", "float64 = true");
  replace("save_equations = true", "save_equations = false");
  const fs::path path = dir / ("dropout-" + device + ".toml");
  std::ofstream(path) << text;
  return path.string();
}

TEST(GpuStudies, DropoutSmokeOnCudaGivesTheCpuSummary) {
  if (training::cuda_device_count() == 0) GTEST_SKIP() << "LibTorch sees no GPU";
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const mpi::Communicator self(MPI_COMM_SELF);
  const fs::path root = fs::temp_directory_path() / ("gradmatch-gpu-studies-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  run_study(with_device(root, "cpu"), (root / "cpu").string(), self);
  run_study(with_device(root, "cuda"), (root / "cuda").string(), self);
  const nlohmann::json a = json_of(root / "cpu" / "summary.json"), b = json_of(root / "cuda" / "summary.json");
  ASSERT_EQ(a.at("cells").size(), b.at("cells").size());
  for (std::size_t i = 0; i < a.at("cells").size(); ++i) {
    const auto& x = a.at("cells")[i];
    const auto& y = b.at("cells")[i];
    SCOPED_TRACE(x.dump());
    for (const char* key : {"lambda_hat_median", "cosine_median", "residual_ratio_median", "relative_grad_norm_median"}) {
      const double u = x.at(key).get<double>(), v = y.at(key).get<double>();
      EXPECT_NEAR(v, u, 1e-6 * std::abs(u) + 1e-12) << key;
    }
    EXPECT_EQ(x.at("test_accuracy_median"), y.at("test_accuracy_median"));
    EXPECT_EQ(x.at("epochs_median"), y.at("epochs_median"));
    EXPECT_EQ(x.at("trusted"), y.at("trusted"));
  }
  const std::string info = slurp(root / "cuda" / "run_info.json");
  EXPECT_NE(info.find("cuda:0"), std::string::npos);
  std::printf("cuda run devices: %s\n", json_of(root / "cuda" / "run_info.json").value("devices", nlohmann::json()).dump().c_str());
  fs::remove_all(root);
}

/// The first of the tests' python3 (GRADMATCH_TEST_PYTHON) and the python3 on
/// PATH that has torch and h5py (the bootstrap inputs' script needs both); ""
/// when neither does.
std::string python_with_torch_and_h5py() {
  for (const std::string& py : {std::string(GRADMATCH_TEST_PYTHON), std::string("python3")})
    if (std::system((py + " -c 'import torch, h5py' > /dev/null 2>&1").c_str()) == 0) return py;
  return "";
}

TEST(GpuStudies, BootstrapSmokeOnCudaGivesTheCpuFits) {
  // The smoke config's float64 models, trained a fixed number of epochs (no
  // early stopping, whose stop could move with the last bits) with its
  // explicit ridge: the fits agree to 1e-6 relative.
  if (training::cuda_device_count() == 0) GTEST_SKIP() << "LibTorch sees no GPU";
  const std::string py = python_with_torch_and_h5py();
  if (py.empty()) GTEST_SKIP() << "no python3 with torch and h5py for the bootstrap inputs";
  const mpi::Communicator self(MPI_COMM_SELF);
  const fs::path root = fs::temp_directory_path() / ("gradmatch-gpu-bootstrap-" + std::to_string(::getpid()));
  fs::remove_all(root);
  ASSERT_EQ(std::system((py + " " + GRADMATCH_SOURCE_DIR + "/tests/studies/make_bootstrap_inputs.py " +
                         (root / "in").string() + " > /dev/null")
                            .c_str()),
            0);
  std::string text = slurp(std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/bootstrap.toml");
  const auto replace = [&](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  };
  replace("stop = \"early_stopping\"", "stop = \"epochs\"");
  for (const char* device : {"cpu", "cuda"}) {
    std::ofstream(root / "in" / (std::string(device) + ".toml")) << "device = \"" << device << "\"\n" << text;
    run_study((root / "in" / (std::string(device) + ".toml")).string(), (root / device).string(), self);
  }
  const nlohmann::json summary = json_of(root / "cpu" / "summary.json");
  ASSERT_FALSE(summary.at("fits").empty());
  for (const auto& [family, fit] : summary.at("fits").items()) {
    SCOPED_TRACE(family);
    const std::string file = fit.at("file").get<std::string>();  // fit_<family>.json: lambda, a number or a list
    nlohmann::json x = json_of(root / "cpu" / file).at("lambda"), y = json_of(root / "cuda" / file).at("lambda");
    if (x.is_number()) x = nlohmann::json::array({x});
    if (y.is_number()) y = nlohmann::json::array({y});
    ASSERT_EQ(x.size(), y.size());
    for (std::size_t i = 0; i < x.size(); ++i)
      EXPECT_NEAR(y[i].get<double>(), x[i].get<double>(), 1e-6 * std::abs(x[i].get<double>()) + 1e-12) << i;
  }
  EXPECT_NE(slurp(root / "cuda" / "run_info.json").find("cuda:0"), std::string::npos);
  fs::remove_all(root);
}

}  // namespace
}  // namespace gradmatch::studies
