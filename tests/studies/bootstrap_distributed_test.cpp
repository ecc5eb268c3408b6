// The bootstrap study over MPI ranks (registered at 2 ranks): its sym
// fit through the distributed structured solve (ScaLAPACK above
// fit.scalapack_min_p) against a one-rank run of the same config, every other
// output byte for byte, and resume of a run whose fit output went missing.
// The config: sym_penalty_config (bootstrap_configs.hpp), whose 12 endpoints
// determine the explicit penalty Lambda they were trained with.
// Inputs from make_bootstrap_inputs.py (Debian's python3-torch; bootstrap_inputs.hpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "io/hdf5_file.hpp"
#include "mpi/mpi.hpp"
#include "studies/registry.hpp"
#include "bootstrap_configs.hpp"
#include "bootstrap_inputs.hpp"
#include "study_files.hpp"
#include "../required_inputs.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;
using mpi::Communicator;
using namespace test_support;

/// Relative Frobenius distance between two fit_sym.json lambdas.
double relative_distance(const nlohmann::json& a, const nlohmann::json& b) {
  double err = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < a[i].size(); ++j) {
      const double x = a[i][j].get<double>(), y = b[i][j].get<double>();
      err += (x - y) * (x - y);
      norm += y * y;
    }
  return std::sqrt(err / norm);
}

class BootstrapOverRanks : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = "gradmatch-bootstrap-ranks-";
    name += ::testing::UnitTest::GetInstance()->current_test_info()->name();
    name += "-" + std::to_string(::getpid());
    root_ = world_.broadcast((fs::temp_directory_path() / name).string());
    std::string skip, error;
    if (world_.is_root()) {
      fs::remove_all(root_);
      fs::create_directories(root_);
      const BootstrapInputs inputs = write_bootstrap_inputs(root_);
      skip = inputs.skip;
      error = inputs.error;
    }
    skip_ = world_.broadcast(skip);
    const std::string failed = world_.broadcast(error);
    GRADMATCH_NEEDS(skip_.empty(), skip_);
    ASSERT_TRUE(failed.empty()) << failed;
  }
  void TearDown() override {
    world_.barrier();
    std::error_code ec;
    if (world_.is_root()) fs::remove_all(root_, ec);
  }
  /// NAME.toml in the inputs directory (written by rank 0).
  std::string config(const std::string& name, const std::string& text) {
    const fs::path path = root_ / (name + ".toml");
    if (world_.is_root()) std::ofstream(path) << text;
    world_.barrier();
    return path.string();
  }
  /// The reference: rank 0 alone (MPI_COMM_SELF), as a one-rank run.
  void run_reference(const std::string& config_path, const fs::path& out) {
    if (world_.is_root()) run_study(config_path, out.string(), Communicator(MPI_COMM_SELF));
    world_.barrier();
  }

  Communicator world_;
  fs::path root_;
  std::string skip_;
};

TEST_F(BootstrapOverRanks, SymFitThroughScaLapackOnEveryRankEqualsTheOneRankFitTo1e10) {
  // scalapack_min_p = 0: p = 4 already takes the ScaLAPACK path (PDGEMM,
  // PDSYEVD) whenever the run has several ranks.
  const std::string cfg = config("scalapack", sym_penalty_config("scalapack_min_p = 0\n"));
  run_reference(cfg, root_ / "one");
  run_study(cfg, (root_ / "many").string(), world_);
  if (!world_.is_root()) return;
  const nlohmann::json one = json_of(root_ / "one" / "fit_sym.json"), many = json_of(root_ / "many" / "fit_sym.json");
  EXPECT_LT(relative_distance(many.at("lambda"), one.at("lambda")), 1e-10) << many.dump() << "\n" << one.dump();
  EXPECT_NEAR(many.at("residual_ratio").get<double>(), one.at("residual_ratio").get<double>(), 1e-10);
  EXPECT_EQ(many.at("rank"), one.at("rank"));
  EXPECT_EQ(many.at("rank"), 10);  // p (p + 1) / 2: determined
  EXPECT_EQ(many.at("ranks"), world_.size());
  EXPECT_EQ(one.at("ranks"), 1);
  EXPECT_EQ(json_of(root_ / "many" / "run_info.json").at("sym_ranks"), world_.size());
  // Both recover the explicit penalty the replicates were trained with.
  nlohmann::json truth = nlohmann::json::array();
  const std::vector<double> lambda = io::read_doubles((root_ / "sym.h5").string(), "lambda");
  for (std::size_t i = 0; i < 4; ++i) truth.push_back(std::vector<double>(lambda.begin() + 4 * i, lambda.begin() + 4 * i + 4));
  EXPECT_LT(relative_distance(many.at("lambda"), truth), 1e-6);
  // Everything but the sym fit (and its entry in summary.json) is the same bytes.
  auto a = outputs(root_ / "many"), b = outputs(root_ / "one");
  for (const char* name : {"fit_sym.json", "summary.json"}) {
    EXPECT_EQ(a.erase(name), 1u) << name;
    b.erase(name);
  }
  EXPECT_EQ(a, b);
}

TEST_F(BootstrapOverRanks, SymFitBelowTheCrossoverIsTheSameBytesForAnyNumberOfRanks) {
  // Default crossover (p >= 256): p = 4 is fitted on rank 0 alone.
  const std::string cfg = config("serial", sym_penalty_config(""));
  run_reference(cfg, root_ / "one");
  run_study(cfg, (root_ / "many").string(), world_);
  if (!world_.is_root()) return;
  EXPECT_EQ(outputs(root_ / "many"), outputs(root_ / "one"));
  EXPECT_EQ(json_of(root_ / "many" / "run_info.json").at("sym_ranks"), 1);
  EXPECT_EQ(json_of(root_ / "many" / "fit_sym.json").at("ranks"), 1);
}

TEST_F(BootstrapOverRanks, AMissingFitOutputIsRewrittenAndACompleteRunDoesNothing) {
  const std::string cfg = config("resume", sym_penalty_config("scalapack_min_p = 0\n"));
  const fs::path out = root_ / "run";
  run_study(cfg, out.string(), world_);
  std::string fit_before, info_before;
  if (world_.is_root()) {
    fit_before = slurp(out / "fit_sym.json");
    fs::remove(out / "fit_sym.json");
  }
  world_.barrier();
  run_study(cfg, out.string(), world_);  // every rank takes the collective step again
  if (world_.is_root()) {
    EXPECT_EQ(slurp(out / "fit_sym.json"), fit_before);
    const nlohmann::json tasks = json_of(out / "run_info.json").at("tasks");
    EXPECT_EQ(tasks.at("run"), 0);  // no replicate trained again
    EXPECT_EQ(tasks.at("resumed"), 12);
    info_before = slurp(out / "run_info.json");
  }
  world_.barrier();
  run_study(cfg, out.string(), world_);  // nothing to do: run_info.json is not rewritten
  if (world_.is_root()) {
    EXPECT_EQ(slurp(out / "run_info.json"), info_before);
  }
}

}  // namespace
}  // namespace gradmatch::studies
