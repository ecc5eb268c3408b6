// The study runner: a study is configure/prepare/tables/compute/write, and
// the runner does the store, the farm, resume and run_info.json. A small
// study whose answers are known (task i returns i^2) checks the runner itself.
#include "studies/study.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <torch/cuda.h>

#include "core/errors.hpp"
#include "io/config.hpp"
#include "io/json_output.hpp"
#include "studies/catalog.hpp"
#include "studies/registry.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;

class Squares final : public Study {
 public:
  void configure(io::ConfigReader& reader) override {
    read_study_seed(reader, "squares", 0);
    n_ = reader.get_int("n", 1, 1000);
    extra_ = reader.get_bool("extra", false);
  }
  void prepare(const StudyContext& context) override { device_ = context.device; }
  std::vector<TaskTable> tables() const override {
    TaskTable t{"squares", 1, {}};
    for (std::int64_t i = 0; i < n_; ++i) t.ids.push_back(static_cast<std::uint64_t>(i));
    return {t};
  }
  std::vector<double> compute(std::size_t, std::int64_t row) override {
    ++computed;
    return {static_cast<double>(row * row)};
  }
  nlohmann::json write(const std::vector<std::vector<double>>& rows, OutputDir& out) override {
    ++writes;
    io::write_json_file(out.path("squares.json"), nlohmann::json(rows.front()));
    if (extra_) io::write_json_file(out.path("extra.json"), nlohmann::json::object());
    return {{"n", n_}};
  }

  int computed = 0, writes = 0;
  torch::Device device_ = torch::Device(torch::kCPU);

 private:
  std::int64_t n_ = 0;
  bool extra_ = false;
};

class StudyRunner : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("gradmatch-runner-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string config(const std::string& body) {
    const fs::path p = root_ / "squares.toml";
    std::ofstream(p) << "study = \"squares\"\n" << body;
    return p.string();
  }
  static nlohmann::json json_of(const fs::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(in);
  }
  fs::path root_;
  mpi::Communicator world_;
};

TEST_F(StudyRunner, RunsEveryTaskOnceAndRecordsWhatWriteWrote) {
  Squares s;
  run_study(s, "squares", config("n = 5\n"), (root_ / "out").string(), world_);
  EXPECT_EQ(s.computed, 5);
  EXPECT_EQ(json_of(root_ / "out" / "squares.json"), nlohmann::json({0.0, 1.0, 4.0, 9.0, 16.0}));
  const nlohmann::json info = json_of(root_ / "out" / "run_info.json");
  EXPECT_EQ(info.at("outputs"), nlohmann::json({"squares.json"}));
  EXPECT_EQ(info.at("tasks").at("total"), 5);
  EXPECT_EQ(info.at("n"), 5);
  EXPECT_EQ(s.device_, torch::Device(torch::kCPU));
}

TEST_F(StudyRunner, AFinishedRunIsNothingToDoWhateverFilesItWrote) {
  // Only the files write() actually wrote decide "complete": a study that
  // writes fewer files than some list would name is still complete.
  const std::string c = config("n = 3\n");
  Squares first;
  run_study(first, "squares", c, (root_ / "out").string(), world_);
  Squares second;
  run_study(second, "squares", c, (root_ / "out").string(), world_);
  EXPECT_EQ(second.computed, 0);
  EXPECT_EQ(second.writes, 0);
}

TEST_F(StudyRunner, AMissingRecordedOutputIsWrittenAgainWithoutRecomputing) {
  const std::string c = config("n = 3\nextra = true\n");
  Squares first;
  run_study(first, "squares", c, (root_ / "out").string(), world_);
  fs::remove(root_ / "out" / "extra.json");
  Squares second;
  run_study(second, "squares", c, (root_ / "out").string(), world_);
  EXPECT_EQ(second.computed, 0);
  EXPECT_EQ(second.writes, 1);
  EXPECT_TRUE(fs::exists(root_ / "out" / "extra.json"));
}

TEST_F(StudyRunner, AResumedRunRemovesHalfWrittenOutputsOfAnInterruptedOne) {
  const std::string c = config("n = 3\n");
  Squares first;
  run_study(first, "squares", c, (root_ / "out").string(), world_);
  // As a kill during the writing of the outputs leaves them:
  fs::remove(root_ / "out" / "squares.json");
  for (const char* f : {"squares.json.tmp-4242", "results.h5.partial", "equations_x.h5.tmp-17"})
    std::ofstream(root_ / "out" / f) << "half";
  std::ofstream(root_ / "out" / "notes.tmp-draft") << "a user's file";
  Squares second;
  run_study(second, "squares", c, (root_ / "out").string(), world_);
  EXPECT_EQ(second.computed, 0);
  for (const char* f : {"squares.json.tmp-4242", "results.h5.partial", "equations_x.h5.tmp-17"})
    EXPECT_FALSE(fs::exists(root_ / "out" / f)) << f;
  EXPECT_TRUE(fs::exists(root_ / "out" / "notes.tmp-draft"));  // not a writer's temporary name
  EXPECT_TRUE(fs::exists(root_ / "out" / "squares.json"));
}

TEST_F(StudyRunner, AnUnknownKeyIsAnInputErrorAndNothingIsWritten) {
  Squares s;
  try {
    run_study(s, "squares", config("n = 3\nm = 4\n"), (root_ / "out").string(), world_);
    FAIL() << "unknown key accepted";
  } catch (const mpi::CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_NE(std::string(f.what()).find("'m'"), std::string::npos) << f.what();
  }
  EXPECT_FALSE(fs::exists(root_ / "out"));
}

TEST_F(StudyRunner, DeviceCudaWithoutAGpuIsAnInputErrorNamingTheKey) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has a GPU";
  Squares s;
  try {
    run_study(s, "squares", config("device = \"cuda\"\nn = 3\n"), (root_ / "out").string(), world_);
    FAIL() << "device = cuda accepted without a GPU";
  } catch (const mpi::CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_NE(std::string(f.what()).find("key 'device'"), std::string::npos) << f.what();
  }
  EXPECT_FALSE(fs::exists(root_ / "out"));
}

TEST_F(StudyRunner, DeviceCpuAndAutoRunOnTheCpuHere) {
  for (const char* d : {"cpu", "auto"}) {
    if (std::string(d) == "auto" && torch::cuda::is_available()) continue;
    Squares s;
    run_study(s, "squares", config(std::string("device = \"") + d + "\"\nn = 2\n"), (root_ / d).string(), world_);
    EXPECT_EQ(s.device_, torch::Device(torch::kCPU));
    const nlohmann::json info = json_of(root_ / d / "run_info.json");
    EXPECT_EQ(info.at("devices").at(0).get<std::string>().rfind("cpu", 0), 0u) << info.at("devices");
  }
}

TEST(StudyRegistry, EveryNameIsListedOnceAndUnknownStudiesAreRefused) {
  const std::vector<std::string> names = study_names();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  // The catalog that `gradmatch studies` prints (without LibTorch) lists
  // exactly the registered studies, in the same order.
  ASSERT_EQ(names.size(), std::size(kStudyCatalog));
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(names[i], kStudyCatalog[i].name);
    EXPECT_GT(kStudyCatalog[i].summary.size(), 10u) << names[i];
    EXPECT_TRUE(fs::exists(fs::path(GRADMATCH_SOURCE_DIR) / kStudyCatalog[i].config)) << kStudyCatalog[i].config;
    EXPECT_NE(study_list().find(std::string(kStudyCatalog[i].name)), std::string::npos);
  }
  for (const StudyEntry& e : study_registry()) EXPECT_TRUE(e.make() != nullptr) << e.name;
  const fs::path p = fs::temp_directory_path() / ("gradmatch-unknown-" + std::to_string(::getpid()) + ".toml");
  std::ofstream(p) << "study = \"olsearly\"\n";
  try {
    run_study(p.string(), (fs::temp_directory_path() / "never").string(), mpi::Communicator());
    FAIL() << "unknown study ran";
  } catch (const mpi::CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_NE(std::string(f.what()).find("ols_early_stopping"), std::string::npos) << f.what();
  }
  fs::remove(p);
}

}  // namespace
}  // namespace gradmatch::studies
