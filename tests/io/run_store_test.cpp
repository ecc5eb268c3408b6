// RunStore under mpirun at 1, 2 and 4 ranks: collective creation, rows
// written independently by whichever rank ran the task, resume of exactly
// the unfinished rows, and every way a directory is refused.
#include "io/run_store.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/errors.hpp"
#include "mpi/mpi.hpp"
#include "io/config.hpp"
#include "../mpi/shared_scratch.hpp"

namespace gradmatch::io {
namespace {

namespace fs = std::filesystem;
using mpi::Communicator;

/// One scratch directory for all ranks (rank 0 names it), removed afterwards.
class RunStoreTest : public mpi::testing::SharedScratchTest {
 protected:
  RunStoreTest() : SharedScratchTest("gradmatch-run-store-") {}
  std::string dir(const std::string& name = "run") const { return (root_ / name).string(); }
};

const std::string kConfig = "data.n = 200\nseed = 56\nstudy = \"toy\"\n";

RunStoreSpec toy_spec(const std::string& config = kConfig) {
  RunStoreSpec s;
  s.study = "toy";
  s.config = config;
  s.tables.push_back({"alpha", 3, {11, 12, 13, 14, 15}});
  s.tables.push_back({"empty", 2, {}});
  s.tables.push_back({"beta", 1, {21, 22, 23, 24, 25, 26, 27}});
  return s;
}

std::vector<double> row_values(std::int64_t row, std::int64_t width) {
  std::vector<double> v;
  for (std::int64_t j = 0; j < width; ++j)
    v.push_back(100.0 * static_cast<double>(row) + static_cast<double>(j) + 0.25);
  return v;
}

/// The InputError the constructor throws, the same on every rank.
std::string open_error(MPI_Comm comm, const std::string& dir, const RunStoreSpec& spec) {
  try {
    RunStore store(comm, dir, spec);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST_F(RunStoreTest, ANewStoreHasEveryTaskPendingInTheFirstAttempt) {
  RunStore store(world_.get(), dir(), toy_spec());
  EXPECT_TRUE(store.created());
  EXPECT_EQ(store.attempt(), 1);
  ASSERT_EQ(store.table_count(), 3u);
  EXPECT_EQ(store.table_index("beta"), 2u);
  EXPECT_EQ(store.rows(0), 5);
  EXPECT_EQ(store.width(0), 3);
  EXPECT_EQ(store.rows(1), 0);
  EXPECT_EQ(store.pending(0), (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(store.pending(1).empty());
  EXPECT_EQ(store.pending(2).size(), 7u);
  EXPECT_EQ(store.total_rows(), 12);
  EXPECT_EQ(store.finished_at_open(), 0);
  EXPECT_FALSE(store.complete_at_open());
  const std::vector<double> data = store.read_data(0);
  ASSERT_EQ(data.size(), 15u);
  for (double v : data) EXPECT_TRUE(std::isnan(v));  // unfinished rows read as NaN
  EXPECT_EQ(store.read_status(2), std::vector<TaskStatus>(7, TaskStatus::pending));
  store.close();
  EXPECT_TRUE(fs::exists(fs::path(dir()) / "store.h5"));
  EXPECT_FALSE(fs::exists(fs::path(dir()) / "store.h5.partial"));
}

TEST_F(RunStoreTest, ReopeningResumesExactlyTheRowsThatNoRankFinished) {
  {
    RunStore store(world_.get(), dir(), toy_spec());
    // Rows 0, 2, 4 of alpha and 6 of beta, each written by one rank alone.
    for (std::int64_t row : {0, 2, 4})
      if (row % world_.size() == world_.rank()) {
        EXPECT_EQ(store.write(0, row, row_values(row, 3)), TaskStatus::done);
      }
    if (world_.rank() == world_.size() - 1) store.write(2, 6, row_values(6, 1));
    world_.barrier();
  }
  RunStore store(world_.get(), dir(), toy_spec());
  EXPECT_FALSE(store.created());
  EXPECT_EQ(store.attempt(), 2);
  EXPECT_EQ(store.pending(0), (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(store.pending(2), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(store.finished_at_open(), 4);
  const std::vector<double> data = store.read_data(0);
  for (std::int64_t row : {0, 2, 4})
    for (std::int64_t j = 0; j < 3; ++j) EXPECT_EQ(data[static_cast<std::size_t>(row * 3 + j)], row_values(row, 3)[j]);
  EXPECT_TRUE(std::isnan(data[3]));
  EXPECT_EQ(store.read_attempts(0), (std::vector<std::int32_t>{1, 0, 1, 0, 1}));

  // The second attempt finishes the rest and records itself.
  world_.barrier();  // every rank has read the file above
  if (world_.is_root()) store.write(0, 1, row_values(1, 3));
  world_.barrier();
  EXPECT_EQ(store.read_attempts(0), (std::vector<std::int32_t>{1, 2, 1, 0, 1}));
  EXPECT_EQ(store.read_status(0)[1], TaskStatus::done);
}

TEST_F(RunStoreTest, ANonFiniteResultIsRecordedAsDivergedAndNotRunAgain) {
  {
    RunStore store(world_.get(), dir(), toy_spec());
    if (world_.is_root()) {
      EXPECT_EQ(store.write(0, 3, std::vector<double>{1.0, std::nan(""), 2.0}), TaskStatus::diverged);
      EXPECT_EQ(store.write(0, 4, std::vector<double>{1.0, INFINITY, 2.0}), TaskStatus::diverged);
    }
    world_.barrier();
  }
  RunStore store(world_.get(), dir(), toy_spec());
  EXPECT_EQ(store.pending(0), (std::vector<std::int64_t>{0, 1, 2}));
  const auto status = store.read_status(0);
  EXPECT_EQ(status[3], TaskStatus::diverged);
  EXPECT_EQ(status[4], TaskStatus::diverged);
  EXPECT_EQ(store.read_data(0)[3 * 3 + 2], 2.0);
}

TEST_F(RunStoreTest, ACompleteStoreOpensReadOnlyAndLeavesTheFileByteForByteUntouched) {
  {
    RunStore store(world_.get(), dir(), toy_spec());
    for (std::size_t t = 0; t < store.table_count(); ++t)
      for (std::int64_t row : store.pending(t))
        if (row % world_.size() == world_.rank()) store.write(t, row, row_values(row, store.width(t)));
    world_.barrier();
  }
  const std::string path = (fs::path(dir()) / "store.h5").string();
  const std::string before = slurp(path);
  struct stat st_before {};
  ::stat(path.c_str(), &st_before);
  world_.barrier();
  {
    RunStore store(world_.get(), dir(), toy_spec());
    EXPECT_TRUE(store.complete_at_open());
    EXPECT_EQ(store.finished_at_open(), 12);
    EXPECT_EQ(store.attempt(), 2);
    EXPECT_THROW(store.write(0, 0, row_values(0, 3)), std::runtime_error);  // read-only now
  }
  world_.barrier();
  struct stat st_after {};
  ::stat(path.c_str(), &st_after);
  EXPECT_EQ(slurp(path), before);
  EXPECT_EQ(st_after.st_mtim.tv_sec, st_before.st_mtim.tv_sec);
  EXPECT_EQ(st_after.st_mtim.tv_nsec, st_before.st_mtim.tv_nsec);
}

TEST_F(RunStoreTest, ADifferentConfigIsRefusedNamingTheKeysThatDiffer) {
  { RunStore store(world_.get(), dir(), toy_spec()); }
  const std::string msg = open_error(world_.get(), dir(), toy_spec("data.n = 300\nseed = 56\nstudy = \"toy\"\n"));
  EXPECT_EQ(msg,
            dir() + ": was made by a different config (data.n: 200 there, 300 now); use a new --out or delete " + dir());
  // The refused run wrote nothing: the first config still resumes.
  RunStore store(world_.get(), dir(), toy_spec());
  EXPECT_EQ(store.pending(0).size(), 5u);
}

TEST_F(RunStoreTest, AStoreMadeBeforeAKeyExistedResumesItsRowsWhenTheKeyIsAtItsDefault) {
  {
    RunStore store(world_.get(), dir(), toy_spec());
    if (world_.is_root()) store.write(0, 1, row_values(1, 3));
  }
  RunStoreSpec newer = toy_spec(kConfig + "training.tf32 = false\n");
  newer.defaults = "data.n = 100\ntraining.tf32 = false\n";  // data.n set away from its default: unchanged, fine
  RunStore store(world_.get(), dir(), newer);
  EXPECT_FALSE(store.created());
  EXPECT_EQ(store.keys_added(), std::vector<std::string>{"training.tf32"});
  EXPECT_EQ(store.finished_at_open(), 1);
  EXPECT_EQ(store.pending(0), (std::vector<std::int64_t>{0, 2, 3, 4}));
  EXPECT_EQ(store.attempt(), 2);
  EXPECT_EQ(store.fingerprint(), store_fingerprint("toy", kConfig));  // the store keeps the config it was made with
  EXPECT_EQ(store.read_data(0)[3], row_values(1, 3)[0]);
}

TEST_F(RunStoreTest, AStoreMadeBeforeAKeyExistedIsRefusedWhenTheKeyIsAwayFromItsDefaultOrAnotherKeyChanged) {
  { RunStore store(world_.get(), dir(), toy_spec()); }
  RunStoreSpec set = toy_spec(kConfig + "training.tf32 = true\n");
  set.defaults = "training.tf32 = false\n";
  EXPECT_EQ(open_error(world_.get(), dir(), set),
            dir() + ": was made by a different config (training.tf32: absent there (made before the key existed, when "
                    "gradmatch did training.tf32 = false; write that to resume it), true now); use a new --out or "
                    "delete " + dir());
  RunStoreSpec changed = toy_spec("data.n = 300\nseed = 56\nstudy = \"toy\"\ntraining.tf32 = false\n");
  changed.defaults = "training.tf32 = false\n";
  EXPECT_NE(open_error(world_.get(), dir(), changed).find("(data.n: 200 there, 300 now; training.tf32: absent there"),
            std::string::npos);
  RunStoreSpec no_default = toy_spec(kConfig + "training.tf32 = false\n");  // a required key is never "at its default"
  EXPECT_NE(open_error(world_.get(), dir(), no_default).find("training.tf32: absent there, false now"),
            std::string::npos);
  RunStore store(world_.get(), dir(), toy_spec());  // nothing was written: the store opens as made
  EXPECT_TRUE(store.keys_added().empty());
  EXPECT_EQ(store.attempt(), 1);
}

TEST_F(RunStoreTest, AnotherStudyOrTaskLayoutIsRefused) {
  { RunStore store(world_.get(), dir(), toy_spec()); }
  RunStoreSpec other = toy_spec();
  other.study = "other";
  EXPECT_EQ(open_error(world_.get(), dir(), other),
            dir() + ": was made by study 'toy', not 'other'; use a new --out or delete " + dir());
  RunStoreSpec ids = toy_spec();
  ids.tables[2].ids[3] = 99;
  EXPECT_NE(open_error(world_.get(), dir(), ids).find("table 'beta' lists other task ids"), std::string::npos);
  RunStoreSpec width = toy_spec();
  width.tables[0].width = 4;
  EXPECT_NE(open_error(world_.get(), dir(), width).find("table 'alpha' is 5 x 3, expected 5 x 4"), std::string::npos);
}

TEST_F(RunStoreTest, AStoreThatRecordedItsInputsRefusesToResumeWhenOneChangedAndReportsHowItComputed) {
  RunStoreSpec made = toy_spec();
  made.inputs = "data.file = \"fnv1a64:0000000000000001, 10 bytes\"\nmodel.file = \"fnv1a64:0000000000000002, 5 bytes\"\n";
  made.compute = "gradmatch abc, cpu (1 thread)";
  {
    RunStore store(world_.get(), dir(), made);
    EXPECT_EQ(store.made_with(), "gradmatch abc, cpu (1 thread)");
  }
  RunStoreSpec changed = made;
  changed.inputs = "data.file = \"fnv1a64:00000000000000ff, 10 bytes\"\nmodel.file = \"fnv1a64:0000000000000002, 5 bytes\"\n";
  EXPECT_EQ(open_error(world_.get(), dir(), changed),
            dir() + ": an input file changed since the store was made (data.file: \"fnv1a64:0000000000000001, 10 "
                    "bytes\" there, \"fnv1a64:00000000000000ff, 10 bytes\" now); its rows so far come from the former "
                    "file: restore it, or use a new --out or delete " + dir());
  RunStoreSpec elsewhere = made;  // the same inputs, computed another way: opens, and says how it was made
  elsewhere.compute = "gradmatch def, cpu (2 threads)";
  RunStore store(world_.get(), dir(), elsewhere);
  EXPECT_EQ(store.made_with(), "gradmatch abc, cpu (1 thread)");
}

TEST_F(RunStoreTest, AStoreFromBeforeInputsWereRecordedResumesUnchecked) {
  { RunStore store(world_.get(), dir(), toy_spec()); }
  RunStoreSpec now = toy_spec();
  now.inputs = "data.file = \"fnv1a64:0000000000000001, 10 bytes\"\n";
  RunStore store(world_.get(), dir(), now);
  EXPECT_FALSE(store.created());
  EXPECT_EQ(store.made_with(), "");
}

TEST_F(RunStoreTest, ADoneTaskWhoseFilesAreDamagedIsPendingAgainAndSaysWhy) {
  {
    RunStore store(world_.get(), dir(), toy_spec());
    if (world_.is_root()) {
      for (std::int64_t r = 0; r < 5; ++r) store.write(0, r, row_values(r, 3));
      for (std::int64_t r = 0; r < 7; ++r) store.write(2, r, row_values(r, 1));
    }
  }
  RunStoreSpec spec = toy_spec();
  spec.redo = {{0, 3, "its file eq_3.h5 is missing"}, {2, 6, "its file eq_b6.h5 is cut short"}};
  {
    RunStore store(world_.get(), dir(), spec);
    EXPECT_EQ(store.reopened(), (std::vector<std::string>{"task 4 (table 'alpha'): its file eq_3.h5 is missing",
                                                          "task 12 (table 'beta'): its file eq_b6.h5 is cut short"}));
    EXPECT_EQ(store.pending(0), std::vector<std::int64_t>{3});
    EXPECT_EQ(store.pending(2), std::vector<std::int64_t>{6});
    EXPECT_EQ(store.finished_at_open(), 10);
    if (world_.is_root()) store.write(0, 3, row_values(3, 3));
  }
  RunStoreSpec pending_already = toy_spec();  // a redo of a pending row changes nothing
  pending_already.redo = {{2, 6, "its file eq_b6.h5 is missing"}};
  RunStore store(world_.get(), dir(), pending_already);
  EXPECT_TRUE(store.reopened().empty());
  EXPECT_EQ(store.pending(2), std::vector<std::int64_t>{6});
  EXPECT_EQ(store.read_data(0)[3 * 3], row_values(3, 3)[0]);
}

TEST_F(RunStoreTest, ARunThatRedoesEveryDoneTaskIsStillTheNextAttempt) {
  {
    RunStore store(world_.get(), dir(), toy_spec());
    EXPECT_EQ(store.attempt(), 1);
    if (world_.is_root()) store.write(0, 3, row_values(3, 3));  // the only task done
  }
  RunStoreSpec spec = toy_spec();
  spec.redo = {{0, 3, "its file eq_3.h5 is missing"}};
  {
    RunStore store(world_.get(), dir(), spec);
    EXPECT_EQ(store.finished_at_open(), 0);
    EXPECT_EQ(store.attempt(), 2);
    if (world_.is_root()) store.write(0, 3, row_values(3, 3));
  }
  RunStore store(world_.get(), dir(), toy_spec());
  EXPECT_EQ(store.read_attempts(0)[3], 2);
  EXPECT_EQ(store.attempt(), 3);
}

TEST_F(RunStoreTest, ARowMarkedDoneWhoseValuesNeverReachedTheFileIsPendingAgain) {
  {
    RunStore store(world_.get(), dir(), toy_spec());
    if (world_.is_root()) store.write(0, 1, row_values(1, 3));
  }
  if (world_.is_root()) {  // the status byte of row 2 on disk, its data not (a node crash between the writes)
    const hid_t file = H5Fopen((fs::path(dir()) / "store.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t status = H5Dopen2(file, "tables/alpha/status", H5P_DEFAULT);
    const hid_t space = H5Dget_space(status);
    const hsize_t start = 2, count = 1;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &count, nullptr);
    const hid_t one = H5Screate_simple(1, &count, nullptr);
    const std::int8_t done = 1;
    EXPECT_GE(H5Dwrite(status, H5T_NATIVE_INT8, one, space, H5P_DEFAULT, &done), 0);
    H5Sclose(one);
    H5Sclose(space);
    H5Dclose(status);
    H5Fclose(file);
  }
  world_.barrier();
  RunStore store(world_.get(), dir(), toy_spec());
  EXPECT_EQ(store.reopened(),
            std::vector<std::string>{"task 3 (table 'alpha'): it was marked done but its values never reached the "
                                     "store (a crash between the writes?)"});
  EXPECT_EQ(store.pending(0), (std::vector<std::int64_t>{0, 2, 3, 4}));
  EXPECT_EQ(store.finished_at_open(), 1);
}

TEST(FileDigest, IsTheFnv1a64OfTheBytesAndTheirCount) {
  const fs::path file = fs::temp_directory_path() / ("gradmatch_digest_" + std::to_string(::getpid()));
  std::ofstream(file, std::ios::binary) << "abc";
  EXPECT_EQ(file_digest(file.string()), "fnv1a64:e71fa2190541574b, 3 bytes");
  std::ofstream(file, std::ios::binary) << "";
  EXPECT_EQ(file_digest(file.string()), "fnv1a64:cbf29ce484222325, 0 bytes");  // the offset basis
  fs::remove(file);
  EXPECT_THROW(file_digest(file.string()), std::runtime_error);
}

TEST_F(RunStoreTest, ADirectoryWithResultsButNoStoreIsRefusedUntouched) {
  if (world_.is_root()) {
    fs::create_directories(dir());
    std::ofstream(fs::path(dir()) / "summary.json") << "{}\n";
  }
  world_.barrier();
  const std::string msg = open_error(world_.get(), dir(), toy_spec());
  EXPECT_EQ(msg, dir() +
                     ": holds summary.json but no run store (store.h5): it is not a resumable gradmatch run; "
                     "use a new --out or delete " + dir());
  EXPECT_FALSE(fs::exists(fs::path(dir()) / "store.h5"));
}

TEST_F(RunStoreTest, AStoreThatIsNotHdf5IsBadInputSayingToDeleteTheDirectory) {
  if (world_.is_root()) {
    fs::create_directories(dir());
    std::ofstream(fs::path(dir()) / "store.h5") << "not an HDF5 file";
  }
  world_.barrier();
  const std::string msg = open_error(world_.get(), dir(), toy_spec());
  EXPECT_EQ(msg.rfind((fs::path(dir()) / "store.h5").string() + ": the run store cannot be opened (", 0), 0u) << msg;
  EXPECT_NE(msg.find("); if it is damaged, delete " + dir() + " and run again"), std::string::npos) << msg;
  EXPECT_EQ(slurp((fs::path(dir()) / "store.h5").string()), "not an HDF5 file");
}

TEST_F(RunStoreTest, ASecondRunOnTheSameDirectoryAtTheSameTimeIsRefused) {
  RunStore first(world_.get(), dir(), toy_spec());
  const std::string msg = open_error(world_.get(), dir(), toy_spec());
  EXPECT_NE(msg.find("is in use by another gradmatch run"), std::string::npos) << msg;
  // The dry run's check says the same while the first run holds the directory.
  try {
    check_run_store(dir(), toy_spec(), [] { return std::string(); });
    ADD_FAILURE() << "the check did not see the run holding " << dir();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), dir() + ": is in use by another gradmatch run (it holds " +
                                         (fs::path(dir()) / "store.lock").string() +
                                         "); wait for it to finish or use a new --out");
  }
  world_.barrier();
  first.close();
  world_.barrier();
  EXPECT_NO_THROW(check_run_store(dir(), toy_spec(), [] { return std::string(); }));
  world_.barrier();  // every rank's check has let its shared lock go
  RunStore second(world_.get(), dir(), toy_spec());  // the lock went with the first run
  EXPECT_EQ(second.attempt(), 1);
}

TEST_F(RunStoreTest, AStoreLeftHalfCreatedIsCreatedAgain) {
  if (world_.is_root()) {
    fs::create_directories(dir());
    std::ofstream(fs::path(dir()) / "store.h5.partial") << "garbage";
  }
  world_.barrier();
  RunStore store(world_.get(), dir(), toy_spec());
  EXPECT_TRUE(store.created());
  EXPECT_EQ(store.pending(0).size(), 5u);
}

TEST(RunStoreFingerprint, DependsOnStudyAndConfigOnly) {
  const std::string a = store_fingerprint("toy", kConfig);
  EXPECT_EQ(a, store_fingerprint("toy", kConfig));
  EXPECT_EQ(a.rfind("fnv1a64:", 0), 0u);
  EXPECT_EQ(a.size(), 8u + 16u);
  EXPECT_NE(a, store_fingerprint("toy2", kConfig));
  EXPECT_NE(a, store_fingerprint("toy", "data.n = 201\n"));
  EXPECT_NE(store_fingerprint("ab", "c"), store_fingerprint("a", "bc"));
}

TEST(RunStoreFingerprint, OnlyKeysAddedAtTheirDefaultLetAStoreResumeUnderAnotherConfig) {
  const std::string there = "a = 1\nb = 2\n";
  const std::string defaults = "b = 7\nc = 3\nd = \"x\"\n";
  EXPECT_EQ(keys_added_at_default(there, there, defaults), std::vector<std::string>{});
  EXPECT_EQ(keys_added_at_default(there, "a = 1\nb = 2\nc = 3\nd = \"x\"\n", defaults),
            (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(keys_added_at_default(there, "a = 1\nb = 2\nc = 4\n", defaults), std::nullopt);  // away from default
  EXPECT_EQ(keys_added_at_default(there, "a = 1\nb = 2\ne = 3\n", defaults), std::nullopt);  // no default
  EXPECT_EQ(keys_added_at_default(there, "a = 1\nb = 7\nc = 3\n", defaults), std::nullopt);  // b changed
  EXPECT_EQ(keys_added_at_default(there, "a = 1\n", defaults), std::nullopt);                  // b removed
  EXPECT_EQ(keys_added_at_default(there, "a = 1\nb = 2\nc = 3\n", ""), std::nullopt);       // no defaults given
}

TEST(RunStoreFingerprint, ConfigDifferencesListAddedRemovedAndChangedKeys) {
  EXPECT_EQ(describe_config_difference("a = 1\nb = 2\nc = 3\n", "a = 1\nb = 5\nd = 4\n"),
            "b: 2 there, 5 now; c: 3 there, absent now; d: absent there, 4 now");
  EXPECT_EQ(describe_config_difference("a = 1\nb = 2\nc = 3\n", "a = 2\nb = 3\nc = 4\n", 2),
            "a: 1 there, 2 now; b: 2 there, 3 now; and 1 more");
}

TEST_F(RunStoreTest, TheEffectiveConfigIgnoresCommentsLayoutAndSpelledOutDefaults) {
  const auto effective = [&](const std::string& name, const std::string& text) {
    const std::string path = (root_ / name).string();
    if (world_.is_root()) std::ofstream(path) << text;
    world_.barrier();
    ConfigReader r(path);
    r.get_string("study");
    r.get_int("data.n", 100, 1, 1000);
    r.get_double("data.lr", 0.5, 0.0, 1.0);
    r.get_doubles("data.sigmas", {1.0, 2.0}, 0.0, 10.0);
    r.finish();
    return r.effective();
  };
  const std::string plain = effective("a.toml", "study = \"toy\"\n[data]\nn = 200\n");
  EXPECT_EQ(plain, "data.lr = 0.5\ndata.n = 200\ndata.sigmas = [1, 2]\nstudy = \"toy\"\n");
  EXPECT_EQ(effective("b.toml",
                      "# a comment\nstudy = 'toy'\n[data]\nlr = 0.5  # the default, spelled out\n"
                      "sigmas = [1.0, 2]\nn = 200\n"),
            plain);
  EXPECT_NE(effective("c.toml", "study = \"toy\"\n[data]\nn = 201\n"), plain);
}

}  // namespace
}  // namespace gradmatch::io
