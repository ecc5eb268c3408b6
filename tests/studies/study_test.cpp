// The study runner: a study is configure/prepare/tables/compute/write, and
// the runner does the store, the farm, resume and run_info.json. A small
// study whose answers are known (task i returns i^2) checks the runner itself.
#include "studies/study.hpp"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <set>

#include <torch/cuda.h>

#include "core/errors.hpp"
#include "io/config.hpp"
#include "io/json_output.hpp"
#include "io/run_store.hpp"
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
    if (knows_extra) extra_ = reader.get_bool("extra", false);
    if (knows_fix) {  // a fix that changed results: its default is not what the earlier build did
      fix = reader.get_bool("fix", true);
      reader.key_existed_since("fix", false);
    }
    labels_ = reader.get_int("labels", n_, 0, 1000);
  }
  std::vector<std::string> task_labels() const override {
    std::vector<std::string> labels;
    for (std::int64_t i = 0; i < labels_; ++i) labels.push_back("the square of " + std::to_string(i));
    return labels;
  }
  void prepare(const StudyContext& context) override { device_ = context.device; }
  bool uses_libtorch() const override { return libtorch; }
  std::vector<TaskTable> tables() const override {
    TaskTable t{"squares", 1, {}, costs};
    for (std::int64_t i = 0; i < n_; ++i) t.ids.push_back(static_cast<std::uint64_t>(i));
    return {t};
  }
  std::vector<double> compute(std::size_t, std::int64_t row) override {
    ++computed;
    order.push_back(row);
    return {static_cast<double>(row * row + (fix ? 0 : 1))};
  }
  nlohmann::json write(const std::vector<std::vector<double>>& rows, OutputDir& out) override {
    ++writes;
    io::write_json_file(out.path("squares.json"), nlohmann::json(rows.front()));
    if (extra_) io::write_json_file(out.path("extra.json"), nlohmann::json::object());
    return {{"n", n_}};
  }

  int computed = 0, writes = 0;
  std::vector<std::int64_t> order;  ///< the rows this rank computed, in turn
  std::vector<double> costs;        ///< the table's task costs (empty: row order)
  bool knows_fix = false;  ///< false: as a gradmatch from before the key `fix` existed
  bool fix = true;         ///< the earlier build computed without the fix
  bool knows_extra = true;  ///< false: as a gradmatch from before the key `extra` existed
  torch::Device device_ = torch::Device(torch::kCPU);
  bool libtorch = true;  ///< false: as a study whose numerics are the core's alone

 private:
  std::int64_t n_ = 0;
  bool extra_ = false;
  std::int64_t labels_ = 0;  ///< how many task labels it gives (n unless the config says)
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
  run_study(s, "squares", config("device = \"cpu\"\nn = 5\n"), (root_ / "out").string(), world_);
  EXPECT_EQ(s.computed, 5);
  EXPECT_EQ(json_of(root_ / "out" / "squares.json"), nlohmann::json({0.0, 1.0, 4.0, 9.0, 16.0}));
  const nlohmann::json info = json_of(root_ / "out" / "run_info.json");
  EXPECT_EQ(info.at("outputs"), nlohmann::json({"squares.json"}));
  EXPECT_EQ(info.at("tasks").at("total"), 5);
  EXPECT_EQ(info.at("n"), 5);
  EXPECT_EQ(s.device_, torch::Device(torch::kCPU));
}

TEST_F(StudyRunner, TasksWithCostsRunDearestFirstAndGiveTheSameOutputs) {
  Squares s;
  s.costs = {1.0, 5.0, 2.0, 5.0, 3.0};
  run_study(s, "squares", config("device = \"cpu\"\nn = 5\n"), (root_ / "out").string(), world_);
  // Each rank claims tasks in the farm's order, so its own come dearest first.
  for (std::size_t k = 1; k < s.order.size(); ++k)
    EXPECT_GE(s.costs[static_cast<std::size_t>(s.order[k - 1])], s.costs[static_cast<std::size_t>(s.order[k])]);
  if (world_.size() == 1) {
    EXPECT_EQ(s.order, (std::vector<std::int64_t>{1, 3, 4, 2, 0}));
  }
  EXPECT_EQ(json_of(root_ / "out" / "squares.json"), nlohmann::json({0.0, 1.0, 4.0, 9.0, 16.0}));
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

TEST_F(StudyRunner, AnOutputCutShortIsWrittenAgainWithoutRecomputing) {
  const std::string c = config("n = 3\n");
  Squares first;
  run_study(first, "squares", c, (root_ / "out").string(), world_);
  const nlohmann::json before = json_of(root_ / "out" / "squares.json");
  EXPECT_EQ(json_of(root_ / "out" / "run_info.json").at("output_bytes").at("squares.json"),
            fs::file_size(root_ / "out" / "squares.json"));
  fs::resize_file(root_ / "out" / "squares.json", 3);  // as a full disk or an interrupted copy leaves it
  Squares second;
  run_study(second, "squares", c, (root_ / "out").string(), world_);
  EXPECT_EQ(second.computed, 0);
  EXPECT_EQ(second.writes, 1);
  EXPECT_EQ(json_of(root_ / "out" / "squares.json"), before);
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

TEST_F(StudyRunner, AStoreFromBeforeAKeyExistedResumesWithTheKeyAtItsDefaultAndIsRefusedWithItSet) {
  const std::string out = (root_ / "older").string();
  Squares older;  // the earlier build: its config has no `extra`
  older.knows_extra = false;
  run_study(older, "squares", config("n = 4\n"), out, world_, RunOptions{"1-2"});
  EXPECT_EQ(older.computed, 2);
  Squares set;  // the newer build with the key away from its default: another config
  try {
    run_study(set, "squares", config("n = 4\nextra = true\n"), out, world_);
    FAIL() << "a store made without `extra` resumed with extra = true";
  } catch (const mpi::CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_NE(std::string(f.what()).find("extra: absent there (made before the key existed, when gradmatch did extra = "
                                         "false; write that to resume it), true now"),
              std::string::npos)
        << f.what();
  }
  EXPECT_EQ(set.computed, 0);
  Squares newer;  // spelled out at its default or left out: the same run, resumed
  run_study(newer, "squares", config("n = 4\nextra = false\n"), out, world_);
  EXPECT_EQ(newer.computed, 2);
  EXPECT_EQ(json_of(root_ / "older" / "squares.json"), nlohmann::json({0.0, 1.0, 4.0, 9.0}));
  const nlohmann::json info = json_of(root_ / "older" / "run_info.json");
  EXPECT_EQ(info.at("tasks").at("resumed"), 2);
  io::ConfigReader reader(config("n = 4\n"));  // the store's own config, as the older build read it
  Squares probe;
  probe.knows_extra = false;
  probe.configure(reader);
  EXPECT_EQ(reader.effective().find("extra"), std::string::npos);
  EXPECT_EQ(info.at("store").at("fingerprint"), io::store_fingerprint("squares", reader.effective()));
}

TEST_F(StudyRunner, AStoreFromBeforeAFixThatChangedResultsResumesOnlyWithTheFormerBehaviourWrittenOut) {
  const std::string out = (root_ / "before_fix").string();
  Squares older;  // the earlier build: no key `fix`, and it computed row^2 + 1
  older.fix = false;
  run_study(older, "squares", config("n = 4\n"), out, world_, RunOptions{"1-2"});
  EXPECT_EQ(older.computed, 2);
  Squares fixed;  // the newer build at its default (fix = true) would mix rows of both behaviours
  fixed.knows_fix = true;
  try {
    run_study(fixed, "squares", config("n = 4\n"), out, world_);
    FAIL() << "a store made before `fix` resumed with fix = true";
  } catch (const mpi::CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_NE(std::string(f.what()).find("fix: absent there (made before the key existed, when gradmatch did fix = "
                                         "false; write that to resume it), true now"),
              std::string::npos)
        << f.what();
  }
  EXPECT_EQ(fixed.computed, 0);
  Squares former;  // the former behaviour written out: the same run, resumed
  former.knows_fix = true;
  run_study(former, "squares", config("n = 4\nfix = false\n"), out, world_);
  EXPECT_EQ(former.computed, 2);
  EXPECT_EQ(json_of(root_ / "before_fix" / "squares.json"), nlohmann::json({1.0, 2.0, 5.0, 10.0}));
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

// run_info.json records the cores each rank may use, and the run warns at
// its start when a host's ranks compute with more threads than that: here
// one rank of two threads bound to one core (as `mpirun` binds a rank by
// default, whatever GRADMATCH_THREADS_PER_RANK says).
TEST_F(StudyRunner, RecordsEachRanksCoresAndWarnsWhenItsThreadsOutnumberThem) {
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  int core = -1;
  for (int c = 0; c < CPU_SETSIZE && core < 0; ++c)
    if (CPU_ISSET(c, &saved)) core = c;
  {
    Squares s;
    run_study(s, "squares", config("device = \"cpu\"\nn = 2\n"), (root_ / "free").string(), world_);
    const nlohmann::json cores = json_of(root_ / "free" / "run_info.json").at("cores");
    ASSERT_EQ(cores.size(), 1u);
    EXPECT_EQ(cores.at(0).get<std::string>().rfind(std::to_string(core), 0), 0u) << cores;
  }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(core, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  ::setenv("GRADMATCH_THREADS_PER_RANK", "2", 1);
  ::testing::internal::CaptureStderr();
  Squares s;
  run_study(s, "squares", config("device = \"cpu\"\nn = 2\n"), (root_ / "bound").string(), world_);
  const std::string err = ::testing::internal::GetCapturedStderr();
  ::unsetenv("GRADMATCH_THREADS_PER_RANK");
  ASSERT_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
  EXPECT_NE(err.find("squares: warning: host " + mpi::processor_name() + ": 1 rank computes with 2 threads in all on 1 core (" +
                     std::to_string(core) + "): their threads take turns"),
            std::string::npos)
      << err;
  EXPECT_EQ(json_of(root_ / "bound" / "run_info.json").at("cores"), nlohmann::json::array({std::to_string(core)}));
  EXPECT_EQ(json_of(root_ / "bound" / "run_info.json").at("devices").at(0), "cpu (2 threads)");
}

// A study without LibTorch (ols_early_stopping) never claims a GPU: under
// "auto" its ranks are CPU ranks on a GPU node too, and "cuda" is refused at
// the key, before anything is written.
TEST_F(StudyRunner, AStudyWithoutLibTorchRunsOnTheCpuUnderAutoAndRefusesCudaAtTheKey) {
  Squares s;
  s.libtorch = false;
  run_study(s, "squares", config("device = \"auto\"\nn = 2\n"), (root_ / "auto").string(), world_);
  EXPECT_EQ(s.device_, torch::Device(torch::kCPU));
  EXPECT_EQ(json_of(root_ / "auto" / "run_info.json").at("devices").at(0), "cpu (1 thread)");
  try {
    run_study(s, "squares", config("n = 2\ndevice = \"cuda\"\n"), (root_ / "cuda").string(), world_);
    FAIL() << "device = cuda accepted by a study without LibTorch";
  } catch (const mpi::CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    const std::string what = f.what();
    EXPECT_NE(what.find("squares.toml:3: key 'device': device = \"cuda\", but squares computes on the CPU only"),
              std::string::npos) << what;
    EXPECT_NE(what.find("write device = \"cpu\" or \"auto\""), std::string::npos) << what;
  }
  EXPECT_FALSE(fs::exists(root_ / "cuda"));
}

TEST_F(StudyRunner, SelectedTasksRunAloneAndTheRunThatFinishesTheLastWritesTheOutputs) {
  const std::string c = config("n = 5\n");
  const std::string out = (root_ / "parts").string();
  Squares first;
  run_study(first, "squares", c, out, world_, RunOptions{"2,4"});  // rows 1 and 3
  EXPECT_EQ(first.computed, 2);
  EXPECT_EQ(first.writes, 0);
  EXPECT_TRUE(fs::exists(root_ / "parts" / "store.h5"));
  EXPECT_FALSE(fs::exists(root_ / "parts" / "squares.json"));
  EXPECT_FALSE(fs::exists(root_ / "parts" / "run_info.json"));
  Squares again;  // the same selection: done already, nothing runs, still incomplete
  run_study(again, "squares", c, out, world_, RunOptions{"4,2"});
  EXPECT_EQ(again.computed, 0);
  EXPECT_EQ(again.writes, 0);
  Squares rest;  // overlapping the done ones: only the 3 pending run, then the outputs
  run_study(rest, "squares", c, out, world_, RunOptions{"1-5"});
  EXPECT_EQ(rest.computed, 3);
  EXPECT_EQ(rest.writes, 1);
  EXPECT_EQ(json_of(root_ / "parts" / "squares.json"), nlohmann::json({0.0, 1.0, 4.0, 9.0, 16.0}));
  const nlohmann::json tasks = json_of(root_ / "parts" / "run_info.json").at("tasks");
  EXPECT_EQ(tasks.at("resumed"), 2);
  EXPECT_EQ(tasks.at("run"), 3);
}

TEST_F(StudyRunner, ABadTaskSelectionIsAnInputErrorAndNothingIsWritten) {
  for (const char* bad : {"6", "0", "2-9", "x", "1,,2", "", "3-1"}) {
    if (std::string(bad).empty()) continue;  // empty means every task (the CLI never passes it)
    Squares s;
    try {
      run_study(s, "squares", config("n = 5\n"), (root_ / "out").string(), world_, RunOptions{bad});
      FAIL() << bad << " accepted";
    } catch (const mpi::CollectiveFailure& f) {
      EXPECT_EQ(f.exit_code(), 2) << bad;
      EXPECT_NE(std::string(f.what()).find("--tasks: "), std::string::npos) << f.what();
    }
    EXPECT_EQ(s.computed, 0);
    EXPECT_FALSE(fs::exists(root_ / "out")) << bad;
  }
}

TEST_F(StudyRunner, LabelsThatDoNotNumberEveryTaskAreRefusedBeforeAnythingRuns) {
  Squares s;
  EXPECT_THROW(run_study(s, "squares", config("n = 5\nlabels = 4\n"), (root_ / "out").string(), world_),
               mpi::CollectiveFailure);
  EXPECT_EQ(s.computed, 0);
  EXPECT_FALSE(fs::exists(root_ / "out"));
}

TEST(TaskSelection, NumbersAndRangesBecomeSortedDistinctZeroBasedIndices) {
  EXPECT_EQ(parse_task_selection("6", 7), (std::vector<std::int64_t>{5}));
  EXPECT_EQ(parse_task_selection(" 7, 1-3 ,2", 7), (std::vector<std::int64_t>{0, 1, 2, 6}));
  EXPECT_EQ(parse_task_selection("4-4", 4), (std::vector<std::int64_t>{3}));
  const auto message = [](const std::string& text, std::int64_t total) {
    try {
      parse_task_selection(text, total);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message("8", 7), "--tasks: task 8 does not exist: this run has 7 tasks, numbered 1-7 (--dry-run lists them)");
  EXPECT_EQ(message("2", 1), "--tasks: task 2 does not exist: this run has 1 task, number 1 (--dry-run lists them)");
  EXPECT_EQ(message("0", 7), "--tasks: task 0 does not exist: this run has 7 tasks, numbered 1-7 (--dry-run lists them)");
  EXPECT_EQ(message("5-2", 7), "--tasks: the range '5-2' runs backwards; write 2-5");
  for (const char* bad : {"a", "1-", "-3", "1-2-3", "2.5", "1;2"})
    EXPECT_EQ(message(bad, 7).rfind(std::string("--tasks: '") + bad + "' is not a task number or a range a-b", 0), 0u)
        << bad << ": " << message(bad, 7);
  EXPECT_EQ(message("1,,2", 7).rfind("--tasks: '1,,2' has an empty entry", 0), 0u) << message("1,,2", 7);
  EXPECT_EQ(message("", 7).rfind("--tasks: '' has an empty entry", 0), 0u);
}

// On a GPU, a run of models below kSmallModelParameters says that the CPU is
// likely faster; nothing on a CPU, for larger models or an unknown size.
TEST(SmallModelNote, OnAGpuAModelOfAFewHundredParametersIsPointedToTheCpuAndNothingElseIs) {
  const std::string note = small_model_note(601, true);
  EXPECT_NE(note.find("the models have 601 parameters"), std::string::npos) << note;
  EXPECT_NE(note.find("device = \"cpu\""), std::string::npos) << note;
  EXPECT_EQ(small_model_note(601, false), "");
  EXPECT_NE(small_model_note(kSmallModelParameters - 1, true), "");
  EXPECT_EQ(small_model_note(kSmallModelParameters, true), "");
  EXPECT_EQ(small_model_note(135000, true), "");  // the paper's smallest dropout classifier: the GPU pays there
  EXPECT_EQ(small_model_note(-1, true), "");      // a study that trains no model, or does not say
  EXPECT_EQ(small_model_note(0, true), "");
}

TEST(TaskSelection, TheDryRunListShowsTheEndsOfALongListAndTheCountBetween) {
  std::vector<std::string> labels;
  for (int i = 0; i < 40; ++i) labels.push_back("cell " + std::to_string(i));
  EXPECT_EQ(task_list_text({}), "");
  EXPECT_EQ(task_list_text({"a", "b"}), "  tasks by number (for --tasks):\n    1  a\n    2  b\n");
  const std::string text = task_list_text(labels, 3, 2);
  EXPECT_EQ(text,
            "  tasks by number (for --tasks):\n     1  cell 0\n     2  cell 1\n     3  cell 2\n"
            "        ... 35 more in the same order\n    39  cell 38\n    40  cell 39\n");
  const std::string whole = task_list_text(labels, 34, 5);  // one line left out would say nothing: all 40
  EXPECT_EQ(std::count(whole.begin(), whole.end(), '\n'), 41);
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
