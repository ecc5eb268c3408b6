// ResultsWriter and read_doubles: the .partial/commit protocol, every
// dataset kind round-tripping, and h5py reading what a study writes.
#include "io/hdf5_file.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/errors.hpp"
#include "io/equation_file.hpp"
#include "test_dir.hpp"
#include "../required_inputs.hpp"

namespace gradmatch::io {
namespace {

using testing::TestDir;
namespace fs = std::filesystem;

TEST(ResultsWriter, WritesNothingToDiskUntilCommit) {
  TestDir dir;
  const std::string path = dir.file("results.h5");
  ResultsWriter w(path, "test");
  w.write("x", 1.5, {"", "", {}});
  EXPECT_TRUE(dir.entries().empty());  // built in memory: a full disk fails commit(), not HDF5
  w.commit();
  EXPECT_EQ(dir.entries(), std::set<std::string>{"results.h5"});
  EXPECT_EQ(read_doubles(path, "x"), std::vector<double>{1.5});
  EXPECT_THROW(w.write("y", 2.0, {"", "", {}}), std::logic_error);
}

TEST(ResultsWriter, UncommittedWriterLeavesNoFile) {
  TestDir dir;
  {
    ResultsWriter w(dir.file("results.h5"), "test");
    w.write("x", std::vector<double>{1, 2, 3}, {"", "", {"i"}});
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(ResultsWriter, RoundTripsEveryKindOfDataset) {
  TestDir dir;
  const std::string path = dir.file("results.h5");
  ResultsWriter w(path, "test");
  w.write("matrix", Matrix(2, 3, {1, 2, 3, 4, 5, 6}), {"a matrix", "", {"row", "col"}});
  w.write("vector", std::vector<double>{0.1, -0.2}, {"", "", {"i"}});
  w.write("counts", std::vector<std::int64_t>{7, -8, 9}, {"", "", {"i"}});
  w.write("scalar", 3.25, {"", "", {}});
  w.write("deep/group/tensor", std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}, {"", "", {"a", "b", "c"}}, {2, 2, 2});
  w.write("empty", std::vector<double>{}, {"", "", {"i"}});
  w.write("label", std::string("dropout grid"), {"", "", {}});
  w.commit();

  std::vector<std::int64_t> shape;
  EXPECT_EQ(read_doubles(path, "matrix", &shape), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(read_doubles(path, "vector", &shape), (std::vector<double>{0.1, -0.2}));
  EXPECT_EQ(shape, std::vector<std::int64_t>{2});
  EXPECT_EQ(read_doubles(path, "counts"), (std::vector<double>{7, -8, 9}));
  EXPECT_EQ(read_doubles(path, "scalar", &shape), std::vector<double>{3.25});
  EXPECT_TRUE(shape.empty());
  EXPECT_EQ(read_doubles(path, "deep/group/tensor", &shape), (std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(shape, (std::vector<std::int64_t>{2, 2, 2}));
  EXPECT_TRUE(read_doubles(path, "empty", &shape).empty());
  EXPECT_EQ(shape, std::vector<std::int64_t>{0});
}

TEST(ResultsWriter, RejectsShapeThatDoesNotHoldTheValues) {
  TestDir dir;
  ResultsWriter w(dir.file("results.h5"), "test");
  EXPECT_THROW(w.write("t", std::vector<double>{1, 2, 3}, {"", "", {"a", "b"}}, {2, 2}), std::invalid_argument);
}

TEST(ResultsWriter, RejectsAxisNamesThatDoNotMatchTheRank) {
  TestDir dir;
  ResultsWriter w(dir.file("results.h5"), "test");
  EXPECT_THROW(w.write("t", std::vector<double>{1, 2, 3, 4}, {"", "", {"a"}}, {2, 2}), std::invalid_argument);
  EXPECT_THROW(w.write("s", 1.0, {"", "", {"a"}}), std::invalid_argument);
}

TEST(ResultsWriter, RejectsDatasetWrittenTwice) {
  TestDir dir;
  ResultsWriter w(dir.file("results.h5"), "test");
  w.write("a/x", 1.0, {"", "", {}});
  try {
    w.write("a/x", 2.0, {"", "", {}});
    FAIL() << "second write of a/x accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'a/x'"), std::string::npos) << e.what();
  }
}

TEST(ResultsWriter, ADiskThatFillsUpIsOneMessageNamingTheFileAndNothingIsLeft) {
  TestDir dir;
  const std::string path = dir.file("results.h5");
  ::setenv("GRADMATCH_FAULT_INJECT", "enospc-after:100", 1);  // the io writers fail after 100 bytes
  ResultsWriter w(path, "test");
  w.write("x", std::vector<double>(1000, 1.0), {"", "", {"i"}});
  try {
    w.commit();
    ADD_FAILURE() << "commit() succeeded on a full disk";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "disk full while writing " + path + "; free space and re-run the same command to resume");
  }
  ::unsetenv("GRADMATCH_FAULT_INJECT");
  EXPECT_TRUE(dir.entries().empty());
}

TEST(ResultsWriter, CreatingInMissingDirectoryIsAnInputError) {
  TestDir dir;
  EXPECT_THROW({ ResultsWriter w(dir.file("missing/results.h5"), "test"); }, InputError);
  EXPECT_TRUE(dir.entries().empty());
}

TEST(ResultsWriter, StringsAndAttributesReadInH5py) {
  GRADMATCH_NEEDS_PYTHON3("h5py");
  TestDir dir;
  const std::string path = dir.file("results.h5");
  ResultsWriter w(path, "test");
  w.write("curves/loss", std::vector<double>{3, 2, 1}, {"training loss", "nats", {"epoch"}});
  w.write("label", std::string("λ sweep"), {"", "", {}});
  w.set_attribute("", "note", "root");
  w.set_attribute("curves", "eta", 0.01);
  w.set_attribute("curves/loss", "unit", "nats");
  w.set_attribute("curves/loss", "unit", "bits");  // replaces
  w.set_attribute("new/group", "note", "made on demand");
  w.commit();
  std::ofstream(dir.file("check.py")) << R"(
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["study"] == "test", repr(f.attrs["study"])
    assert f.attrs["format"] == "gradmatch.results"
    assert f.attrs["gradmatch_version"] and f.attrs["libtorch_version"] and f.attrs["created_by"]
    assert f.attrs["note"] == "root"
    loss = f["curves/loss"]
    assert loss.attrs["description"] == "training loss" and loss.attrs["units"] == "nats"
    assert list(loss.attrs["dims"]) == ["epoch"], repr(loss.attrs["dims"])
    assert list(f["label"].attrs["dims"]) == []
    assert f["curves"].attrs["eta"] == 0.01
    assert f["curves/loss"].attrs["unit"] == "bits"
    assert f["new/group"].attrs["note"] == "made on demand"
    assert f["label"].asstr()[()] == "λ sweep", repr(f["label"][()])
    assert f["curves/loss"].dtype == np.float64 and list(f["curves/loss"][()]) == [3, 2, 1]
)";
  EXPECT_EQ(std::system((gradmatch::test_inputs::python_command() + dir.file("check.py") + " " + path).c_str()), 0);
}

// No object records when it was made: runs that write the same values write
// the same bytes, so an interrupted-and-resumed study compares with cmp.
TEST(ResultsWriter, SameValuesWrittenSecondsApartGiveIdenticalBytes) {
  TestDir dir;
  const auto write = [&](const std::string& name) {
    ResultsWriter w(dir.file(name), "test");
    w.write("group/x", std::vector<double>{1, 2, 3}, {"", "", {"i"}});
    w.write("label", std::string("text"), {"", "", {}});
    w.set_attribute("group", "unit", "m");
    w.commit();
    Equations eq;
    eq.theta = Matrix(2, 2, {1, 2, 3, 4});
    eq.grad_loss = Matrix(2, 2, {5, 6, 7, 8});
    eq.features.emplace_back("f", Matrix(2, 2, {0, 1, 0, 1}));
    write_equation_file(dir.file(std::string("eq-").append(name)), eq);
  };
  const auto bytes = [&](const std::string& name) {
    std::ifstream in(dir.file(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  write("a.h5");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // HDF5 times have 1 s resolution
  write("b.h5");
  EXPECT_EQ(bytes("a.h5"), bytes("b.h5"));
  EXPECT_EQ(bytes("eq-a.h5"), bytes("eq-b.h5"));
  EXPECT_FALSE(bytes("a.h5").empty());
}

TEST(ReadDoubles, RejectsMissingDatasetNamingFileAndDataset) {
  TestDir dir;
  ResultsWriter w(dir.file("results.h5"), "test");
  w.write("a/x", 1.0, {"", "", {}});
  w.commit();
  for (const char* name : {"a/y", "b/x", "x"}) {
    try {
      read_doubles(dir.file("results.h5"), name);
      FAIL() << name << " found";
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(dir.file("results.h5") + ": ", 0), 0u) << msg;
      EXPECT_NE(msg.find(std::string("'") + name + "'"), std::string::npos) << msg;
    }
  }
}

TEST(ReadDoubles, RejectsMissingAndNonHdf5Files) {
  TestDir dir;
  EXPECT_THROW(read_doubles(dir.file("none.h5"), "x"), InputError);
  std::ofstream(dir.file("text.h5")) << "not hdf5";
  EXPECT_THROW(read_doubles(dir.file("text.h5"), "x"), InputError);
}

TEST(ReadDoubles, RejectsStringDataset) {
  TestDir dir;
  ResultsWriter w(dir.file("results.h5"), "test");
  w.write("label", std::string("x"), {"", "", {}});
  w.commit();
  EXPECT_THROW(read_doubles(dir.file("results.h5"), "label"), InputError);
}

}  // namespace
}  // namespace gradmatch::io
