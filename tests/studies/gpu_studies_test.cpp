// Every LibTorch study on the GPU gives the CPU's results (label gpu; skipped
// where LibTorch sees no GPU): the dropout and bootstrap smoke studies whole,
// and the first task of the elastic-net, igr_synthetic, long_horizon and
// igr_calibration smoke studies (whose smoke configs say device = "cpu", so
// that the rest of the suite runs them on the CPU). Both runs compute in
// float64 so that the only differences are the devices' summation orders:
// every median or stored number agrees to 1e-6 relative, accuracies and
// epoch counts exactly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <hdf5.h>

#include "../required_inputs.hpp"
#include "io/hdf5_file.hpp"
#include "io/run_store.hpp"
#include "study_files.hpp"
#include "mpi/mpi.hpp"
#include "studies/registry.hpp"
#include "training/device.hpp"

namespace gradmatch::studies {
namespace {

using namespace test_support;

/// TEXT with the first `from` replaced by `to`; a failure when TEXT lacks it
/// (a smoke config that changed must not silently run otherwise, e.g. on
/// the wrong device).
void replace_once(std::string& text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "the smoke config lacks: " << from;
  text.replace(at, from.size(), to);
}

std::string with_device(const fs::path& dir, const std::string& device) {
  std::string text = slurp(smoke("dropout"));
  replace_once(text, "device = \"auto\"", "device = \"" + device + "\"");
  replace_once(text, "float64 = false", "float64 = true");
  replace_once(text, "save_equations = true", "save_equations = false");
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
  replace_once(text, "stop = \"early_stopping\"", "stop = \"epochs\"");
  for (const char* device : {"cpu", "cuda"}) {
    std::string config = text;
    replace_once(config, "device = \"cpu\"", "device = \"" + std::string(device) + "\"");
    std::ofstream(root / "in" / (std::string(device) + ".toml")) << config;
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

/// The run store's `compute` attribute: the version and device that made it
/// ("gradmatch <commit>, cuda:0 (NVIDIA H200)"); a run of selected tasks
/// writes no run_info.json.
std::string store_compute(const fs::path& store) {
  std::string out;
  const hid_t file = H5Fopen(store.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return out;
  if (H5Aexists(file, "compute") > 0) {
    const hid_t attr = H5Aopen(file, "compute", H5P_DEFAULT);
    const hid_t type = H5Aget_type(attr);
    if (H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) == 0) {
      out.assign(H5Tget_size(type), '\0');
      if (H5Aread(attr, type, out.data()) < 0) out.clear();
      out.resize(std::min(out.find('\0'), out.size()));
    }
    H5Tclose(type);
    H5Aclose(attr);
  }
  H5Fclose(file);
  return out;
}

TEST(GpuStudies, TheFirstTaskOfEachSmallModelStudyOnCudaStoresTheCpusNumbers) {
  if (training::cuda_device_count() == 0) GTEST_SKIP() << "LibTorch sees no GPU";
  const mpi::Communicator self(MPI_COMM_SELF);
  const fs::path root = fs::temp_directory_path() / ("gradmatch-gpu-tasks-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  // float64 wherever a smoke config trains in float32.
  const std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> studies = {
      {"elastic_net", {{"dtype = \"float32\"", "dtype = \"float64\""}}},
      {"igr_synthetic", {}},
      {"long_horizon", {}},
      {"igr_calibration", {{"dtype = \"float32\"", "dtype = \"float64\""}}},
  };
  for (const auto& [study, edits] : studies) {
    SCOPED_TRACE(study);
    if (study == "igr_calibration" && !fs::exists("/usr/share/datasets/fashion-mnist")) continue;
    for (const char* device : {"cpu", "cuda"}) {
      std::string text = slurp(smoke(study));
      for (const auto& [from, to] : edits) replace_once(text, from, to);
      replace_once(text, "device = \"cpu\"", "device = \"" + std::string(device) + "\"");
      const fs::path config = root / (study + "-" + device + ".toml");
      std::ofstream(config) << text;
      run_study(config.string(), (root / study / device).string(), self, RunOptions{"1"});
    }
    const fs::path a = root / study / "cpu" / "store.h5", b = root / study / "cuda" / "store.h5";
    const io::RunStoreProgress on_cpu = io::inspect_run_store(a.string()), on_cuda = io::inspect_run_store(b.string());
    ASSERT_FALSE(on_cpu.tables.empty());
    ASSERT_EQ(on_cuda.tables.size(), on_cpu.tables.size());
    EXPECT_EQ(on_cpu.finished(), 1);
    EXPECT_EQ(on_cuda.finished(), 1);
    std::size_t compared = 0;
    for (const io::RunStoreProgress::Table& t : on_cpu.tables) {
      const std::string& table = t.name;
      const std::vector<double> x = io::read_doubles(a.string(), "tables/" + table + "/data");
      const std::vector<double> y = io::read_doubles(b.string(), "tables/" + table + "/data");
      ASSERT_EQ(x.size(), y.size()) << table;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (std::isnan(x[i]) && std::isnan(y[i])) continue;
        EXPECT_NEAR(y[i], x[i], 1e-6 * std::abs(x[i]) + 1e-9) << table << " element " << i;
        compared += x[i] != 0.0;
      }
    }
    EXPECT_GT(compared, 0u) << "task 1 stored nothing to compare";
    EXPECT_NE(store_compute(b).find(", cuda:0 ("), std::string::npos) << store_compute(b);
    EXPECT_NE(store_compute(a).find(", cpu ("), std::string::npos) << store_compute(a);
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace gradmatch::studies
