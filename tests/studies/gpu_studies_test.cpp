// The dropout smoke study on the GPU gives the CPU's summary (label gpu;
// skipped where LibTorch sees no GPU). Both runs train in float64
// (training.float64 = true) so that the only differences are the devices'
// summation orders: every median agrees to 1e-6 relative, accuracies and
// epoch counts exactly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

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

}  // namespace
}  // namespace gradmatch::studies
