// The OLS study through the task farm and the run store at 1, 2 and 4 ranks:
// byte-identical outputs to a one-rank reference, resume of exactly the
// unfinished tasks, "nothing to do" on a complete directory, and refusal of
// a directory made by another config.
#include <gtest/gtest.h>

#include "study_files.hpp"
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "mpi/mpi.hpp"
#include "io/hdf5_file.hpp"
#include "studies/ols_early_stopping.hpp"
#include "studies/registry.hpp"
#include "../mpi/shared_scratch.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;
using mpi::Communicator;

const std::string kSmokeConfig = std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/ols_early_stopping.toml";
constexpr std::int64_t kSmokeTasks = 2 * 20 + 2 * 20 + 2 * 19 + 3 * 2 * 19;  // fixed, variable, bootstrap, sweep
const char* const kTables[] = {"fixed_iterate", "variable_stop", "bootstrap", "sigma_sweep"};

using test_support::outputs;
using test_support::slurp;

nlohmann::json run_info(const fs::path& dir) { return nlohmann::json::parse(slurp(dir / "run_info.json")); }

/// Sets the status of every `stride`-th row of every table back to pending
/// and scribbles over its data, as a run killed before those tasks finished
/// (or while writing them) would leave it. Returns how many rows it reset.
std::int64_t forget_tasks(const fs::path& store, std::int64_t stride) {
  std::int64_t reset = 0;
  const hid_t file = H5Fopen(store.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  EXPECT_GE(file, 0);
  for (const char* table : kTables) {
    const std::string base = std::string("tables/") + table;
    const hid_t status = H5Dopen2(file, (base + "/status").c_str(), H5P_DEFAULT);
    const hid_t data = H5Dopen2(file, (base + "/data").c_str(), H5P_DEFAULT);
    const hid_t space = H5Dget_space(data);
    hsize_t dims[2] = {0, 0};
    H5Sget_simple_extent_dims(space, dims, nullptr);
    std::vector<std::int8_t> codes(dims[0]);
    std::vector<double> values(dims[0] * dims[1]);
    H5Dread(status, H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, codes.data());
    H5Dread(data, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    for (hsize_t row = 0; row < dims[0]; row += static_cast<hsize_t>(stride)) {
      codes[row] = 0;
      for (hsize_t j = 0; j < dims[1]; ++j) values[row * dims[1] + j] = -12345.0;  // a half-written row
      ++reset;
    }
    H5Dwrite(status, H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, codes.data());
    H5Dwrite(data, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    H5Sclose(space);
    H5Dclose(data);
    H5Dclose(status);
  }
  H5Fclose(file);
  return reset;
}

class OlsStudyOverRanks : public mpi::testing::SharedScratchTest {
 protected:
  OlsStudyOverRanks() : SharedScratchTest("gradmatch-ols-ranks-") {}
  /// The reference: rank 0 alone (MPI_COMM_SELF), as a one-rank run.
  void run_reference(const fs::path& out) {
    if (world_.is_root()) run_study(kSmokeConfig, out.string(), Communicator(MPI_COMM_SELF));
    world_.barrier();
  }
};

TEST_F(OlsStudyOverRanks, GivesByteIdenticalOutputsAndTaskTablesToOneRank) {
  run_reference(root_ / "one");
  run_study(kSmokeConfig, (root_ / "all").string(), world_);
  if (!world_.is_root()) return;

  const auto reference = outputs(root_ / "one");
  EXPECT_EQ(reference.size(), 2u + 4u + 6u);     // results, summary, 4 pool equations, 6 trace equations
  EXPECT_EQ(outputs(root_ / "all"), reference);  // byte for byte
  for (const char* table : kTables) {
    const std::string name = std::string("tables/") + table + "/data";
    const auto one = io::read_doubles((root_ / "one" / "store.h5").string(), name);
    EXPECT_EQ(io::read_doubles((root_ / "all" / "store.h5").string(), name), one) << table;
    for (double v : one) EXPECT_TRUE(std::isfinite(v)) << table;
  }

  const nlohmann::json info = run_info(root_ / "all");
  EXPECT_EQ(info.at("ranks").get<int>(), world_.size());
  EXPECT_EQ(info.at("hosts").size(), static_cast<std::size_t>(world_.size()));
  // The smoke config says device "auto", and the OLS study computes without
  // LibTorch: every rank is a CPU rank, on a GPU node too.
  EXPECT_EQ(info.at("devices"), nlohmann::json(std::vector<std::string>(static_cast<std::size_t>(world_.size()), "cpu (1 thread)")));
  EXPECT_EQ(info.at("tasks").at("total").get<std::int64_t>(), kSmokeTasks);
  EXPECT_EQ(info.at("tasks").at("run").get<std::int64_t>(), kSmokeTasks);
  EXPECT_EQ(info.at("tasks").at("resumed").get<std::int64_t>(), 0);
  EXPECT_EQ(info.at("tasks").at("by_attempt"), nlohmann::json({{"1", kSmokeTasks}}));
  std::int64_t farmed = 0;
  for (const char* table : kTables)
    for (const auto& n : info.at("stages").at(table).at("tasks_per_rank")) farmed += n.get<std::int64_t>();
  EXPECT_EQ(farmed, kSmokeTasks);
}

TEST_F(OlsStudyOverRanks, ResumesExactlyTheUnfinishedTasksToTheSameFiles) {
  run_reference(root_ / "one");
  const fs::path out = root_ / "resumed";
  run_study(kSmokeConfig, out.string(), world_);
  std::int64_t reset = 0;
  if (world_.is_root()) {
    // As if killed: some tasks never finished, and no output was written yet.
    reset = forget_tasks(out / "store.h5", 3);
    for (const auto& [name, bytes] : outputs(out)) fs::remove(out / name);
    fs::remove(out / "run_info.json");
  }
  world_.barrier();
  run_study(kSmokeConfig, out.string(), world_);
  if (!world_.is_root()) return;
  EXPECT_EQ(outputs(out), outputs(root_ / "one"));
  EXPECT_EQ(reset, 14 + 14 + 13 + 38);  // rows 0, 3, 6, ... of tables of 40, 40, 38 and 114 rows
  const nlohmann::json tasks = run_info(out).at("tasks");
  EXPECT_EQ(tasks.at("resumed").get<std::int64_t>(), kSmokeTasks - reset);
  EXPECT_EQ(tasks.at("run").get<std::int64_t>(), reset);  // none lost, none twice
  EXPECT_EQ(tasks.at("by_attempt"), nlohmann::json({{"1", kSmokeTasks - reset}, {"2", reset}}));
}

TEST_F(OlsStudyOverRanks, ASecondRunOnACompleteDirectoryChangesNothing) {
  const fs::path out = root_ / "done";
  run_study(kSmokeConfig, out.string(), world_);
  std::map<std::string, std::pair<std::string, std::int64_t>> before;  // name -> bytes, mtime (ns)
  const auto snapshot = [&] {
    std::map<std::string, std::pair<std::string, std::int64_t>> s;
    for (const auto& e : fs::directory_iterator(out)) {
      struct stat st {};
      ::stat(e.path().c_str(), &st);
      s[e.path().filename().string()] = {slurp(e.path()), st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
    }
    return s;
  };
  if (world_.is_root()) before = snapshot();
  world_.barrier();
  run_study(kSmokeConfig, out.string(), world_);
  if (world_.is_root()) {
    EXPECT_EQ(before.size(), 15u);  // 12 outputs, run_info.json, store.h5, store.lock
    EXPECT_EQ(snapshot(), before);
  }
}

TEST_F(OlsStudyOverRanks, ADifferentConfigOnAnExistingDirectoryIsRefusedWithExitCode2) {
  const fs::path out = root_ / "run";
  run_study(kSmokeConfig, out.string(), world_);
  const fs::path other = root_ / "other.toml";
  if (world_.is_root()) {
    std::string text = slurp(kSmokeConfig);
    text.replace(text.find("n = 200"), 7, "n = 201");
    std::ofstream(other) << text;
  }
  world_.barrier();
  const std::string summary = world_.is_root() ? slurp(out / "summary.json") : "";
  try {
    run_study(other.string(), out.string(), world_);
    ADD_FAILURE() << "the run was not refused";
  } catch (const mpi::CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_EQ(std::string(f.what()), out.string() +
                                         ": was made by a different config (data.n: 200 there, 201 now); "
                                         "use a new --out or delete " + out.string());
  }
  if (world_.is_root()) {
    EXPECT_EQ(slurp(out / "summary.json"), summary);
  }
}

}  // namespace
}  // namespace gradmatch::studies
