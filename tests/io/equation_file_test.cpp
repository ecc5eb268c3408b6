// Equation files: bit-exact round trips, row blocks, h5py interchange, and
// one test per malformed file (built with the HDF5 C API directly), each
// rejected with an InputError that starts with the path and names the problem.
#include "io/equation_file.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <sys/stat.h>

#include "core/errors.hpp"
#include "io/hdf5_handle.hpp"
#include "test_dir.hpp"
#include "../required_inputs.hpp"

namespace gradmatch::io {
namespace {

using namespace detail;
using testing::TestDir;

Matrix filled(std::int64_t m, std::int64_t p, double scale, double shift = 0.0) {
  Matrix a(m, p);
  for (std::int64_t i = 0; i < a.size(); ++i) a.values()[static_cast<std::size_t>(i)] = scale * static_cast<double>(i) + shift;
  return a;
}

/// Equations whose values exercise every bit: subnormals, -0, huge, 1/3.
Equations sample(std::int64_t m = 5, std::int64_t p = 3) {
  Equations eq;
  eq.theta = filled(m, p, 1.0 / 3.0, -1.0);
  eq.theta(0, 0) = std::numeric_limits<double>::denorm_min();
  eq.theta(0, 1) = -0.0;
  eq.theta(m - 1, p - 1) = 1e300;
  eq.grad_loss = filled(m, p, -0.1, 0.7);
  eq.target = filled(m, p, 1e-12, std::acos(-1.0));
  eq.features = {{"alpha", filled(m, p, 2.5)}, {"beta", filled(m, p, -1.0 / 7.0)}};
  for (std::int64_t k = 0; k < m; ++k) eq.weights.push_back(0.1 * static_cast<double>(k));
  return eq;
}

bool bit_equal(const Matrix& a, const Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}

void expect_bit_equal(const Equations& a, const Equations& b) {
  EXPECT_TRUE(bit_equal(a.theta, b.theta));
  EXPECT_TRUE(bit_equal(a.grad_loss, b.grad_loss));
  ASSERT_EQ(a.target.has_value(), b.target.has_value());
  if (a.target) {
    EXPECT_TRUE(bit_equal(*a.target, *b.target));
  }
  ASSERT_EQ(a.features.size(), b.features.size());
  for (std::size_t i = 0; i < a.features.size(); ++i) {
    EXPECT_EQ(a.features[i].first, b.features[i].first);
    EXPECT_TRUE(bit_equal(a.features[i].second, b.features[i].second)) << a.features[i].first;
  }
  ASSERT_EQ(a.weights.size(), b.weights.size());
  EXPECT_EQ(std::memcmp(a.weights.data(), b.weights.data(), sizeof(double) * a.weights.size()), 0);
  ASSERT_EQ(a.parameters.size(), b.parameters.size());
  for (std::size_t i = 0; i < a.parameters.size(); ++i) {
    EXPECT_EQ(a.parameters[i].name, b.parameters[i].name);
    EXPECT_EQ(a.parameters[i].shape, b.parameters[i].shape);
  }
}

/// Builds equation files by hand, valid or not.
class RawFile {
 public:
  explicit RawFile(const std::string& path)
      : file_(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "H5Fcreate") {}

  RawFile& string_attr(const char* name, const std::string& value, bool variable = true) {
    if (variable) {
      write_string_attribute(file_, name, value);
      return *this;
    }
    DatatypeHandle type(H5Tcopy(H5T_C_S1), "H5Tcopy");
    checked(H5Tset_size(type, value.size()), "H5Tset_size");
    checked(H5Tset_strpad(type, H5T_STR_NULLPAD), "H5Tset_strpad");
    DataspaceHandle space(H5Screate(H5S_SCALAR), "H5Screate");
    AttributeHandle attr(H5Acreate2(file_, name, type, space, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2");
    checked(H5Awrite(attr, type, value.data()), "H5Awrite");
    return *this;
  }
  RawFile& number_attr(const char* name, double value, hid_t type = H5T_STD_I64LE) {
    DataspaceHandle space(H5Screate(H5S_SCALAR), "H5Screate");
    AttributeHandle attr(H5Acreate2(file_, name, type, space, H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2");
    checked(H5Awrite(attr, H5T_NATIVE_DOUBLE, &value), "H5Awrite");
    return *this;
  }
  RawFile& header(std::int64_t version = 1) {
    return string_attr("format", kEquationFormat).number_attr("version", static_cast<double>(version));
  }
  /// A dataset of `type` holding `values` (default: 0, 0.5, 1, ...).
  RawFile& dataset(const std::string& name, std::vector<hsize_t> dims, hid_t type = H5T_IEEE_F64LE,
                   std::vector<double> values = {}) {
    hsize_t n = 1;
    for (hsize_t d : dims) n *= d;
    if (values.empty())
      for (hsize_t i = 0; i < n; ++i) values.push_back(0.5 * static_cast<double>(i));
    DataspaceHandle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "H5Screate_simple");
    PropListHandle lcpl(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate");
    checked(H5Pset_create_intermediate_group(lcpl, 1), "H5Pset_create_intermediate_group");
    DatasetHandle d(H5Dcreate2(file_, name.c_str(), type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT), "H5Dcreate2");
    checked(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "H5Dwrite");
    return *this;
  }
  /// A valid file's header, theta and grad_loss, both [m, p].
  RawFile& valid(hsize_t m = 3, hsize_t p = 4) { return header().dataset("theta", {m, p}).dataset("grad_loss", {m, p}); }

 private:
  FileHandle file_;
};

/// Asserts that reading `path` throws an InputError that starts with the
/// path and mentions every word; with `structural` inspection must fail too.
void expect_rejected(const std::string& path, std::initializer_list<const char*> words, bool structural = true) {
  const auto check = [&](auto&& read, const char* what) {
    try {
      read();
      ADD_FAILURE() << what << " accepted " << path;
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
      for (const char* w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
    }
  };
  check([&] { read_equation_file(path); }, "read_equation_file");
  // Bad values lie beyond point 0: a value check reads every point.
  check([&] { read_equation_rows(path, 0, structural ? 1 : inspect_equation_file(path).m); }, "read_equation_rows");
  if (structural) check([&] { inspect_equation_file(path); }, "inspect_equation_file");
}

TEST(EquationFile, RoundTripsEveryDatasetExactly) {
  TestDir dir;
  const Equations eq = sample();
  write_equation_file(dir.file("eq.h5"), eq);
  expect_bit_equal(read_equation_file(dir.file("eq.h5")), eq);
  EXPECT_EQ(dir.entries(), std::set<std::string>{"eq.h5"});
}

TEST(EquationFile, RoundTripsMinimalEquationsWithoutOptionalDatasets) {
  TestDir dir;
  Equations eq;
  eq.theta = filled(1, 1, 0.0, 2.0);
  eq.grad_loss = filled(1, 1, 0.0, -3.0);
  write_equation_file(dir.file("eq.h5"), eq);
  const Equations back = read_equation_file(dir.file("eq.h5"));
  expect_bit_equal(back, eq);
  EXPECT_FALSE(back.target.has_value());
  EXPECT_TRUE(back.weights.empty());
}

TEST(EquationFile, InspectReportsShapeAndOptionalDatasets) {
  TestDir dir;
  Equations eq = sample(4, 2);
  std::swap(eq.features[0], eq.features[1]);  // written unsorted, listed sorted
  write_equation_file(dir.file("eq.h5"), eq);
  const EquationFileInfo info = inspect_equation_file(dir.file("eq.h5"));
  EXPECT_EQ(info.m, 4);
  EXPECT_EQ(info.p, 2);
  EXPECT_TRUE(info.has_target);
  EXPECT_TRUE(info.has_weights);
  EXPECT_EQ(info.features, (std::vector<std::string>{"alpha", "beta"}));
  EXPECT_EQ(read_equation_file(dir.file("eq.h5")).features[0].first, "alpha");
}

TEST(EquationFile, ReadRowsEqualsTheCorrespondingBlock) {
  TestDir dir;
  const Equations eq = sample(7, 3);
  write_equation_file(dir.file("eq.h5"), eq);
  expect_bit_equal(read_equation_rows(dir.file("eq.h5"), 2, 5), eq.rows(2, 5));
  expect_bit_equal(read_equation_rows(dir.file("eq.h5"), 0, 7), eq);
  const Equations none = read_equation_rows(dir.file("eq.h5"), 7, 7);  // a rank with no share
  EXPECT_EQ(none.m(), 0);
  EXPECT_EQ(none.p(), 3);
  EXPECT_EQ(none.features.size(), 2u);
}

TEST(EquationFile, ReadRowsRejectsRangeOutsideTheFile) {
  TestDir dir;
  write_equation_file(dir.file("eq.h5"), sample(4, 2));
  EXPECT_THROW(read_equation_rows(dir.file("eq.h5"), 3, 5), InputError);
  EXPECT_THROW(read_equation_rows(dir.file("eq.h5"), 2, 1), InputError);
  EXPECT_THROW(read_equation_rows(dir.file("eq.h5"), -1, 1), InputError);
}

TEST(EquationFile, ReadRowsReportsNonFiniteValueAtItsFilePoint) {
  TestDir dir;
  std::vector<double> target(12, 1.0);
  target[4 * 2 + 1] = std::numeric_limits<double>::quiet_NaN();
  RawFile(dir.file("nan.h5")).valid(6, 2).dataset("target", {6, 2}, H5T_IEEE_F64LE, target);
  EXPECT_NO_THROW(read_equation_rows(dir.file("nan.h5"), 0, 4));
  try {
    read_equation_rows(dir.file("nan.h5"), 3, 6);
    FAIL() << "NaN accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("point 4, parameter 1"), std::string::npos) << e.what();
  }
}

TEST(EquationFile, AcceptsFixedLengthFormatAndInt32Version) {
  TestDir dir;
  RawFile(dir.file("eq.h5"))
      .string_attr("format", kEquationFormat, false)
      .number_attr("version", 1, H5T_STD_I32BE)
      .dataset("theta", {2, 3})
      .dataset("grad_loss", {2, 3});
  const Equations eq = read_equation_file(dir.file("eq.h5"));
  EXPECT_EQ(eq.m(), 2);
  EXPECT_EQ(eq.theta(1, 2), 2.5);
}

TEST(EquationFile, RejectsMissingFile) { expect_rejected("/nonexistent/eq.h5", {"does not exist"}); }

TEST(EquationFile, RejectsAPipeRatherThanWaitForAWriter) {
  TestDir dir;
  ASSERT_EQ(::mkfifo(dir.file("pipe.h5").c_str(), 0600), 0);
  expect_rejected(dir.file("pipe.h5"), {"is not a regular file (a pipe, socket or device)"});
}

TEST(EquationFile, RejectsMissingTheta) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).header().dataset("grad_loss", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"missing", "'theta'"});
}

TEST(EquationFile, RejectsMissingGradLoss) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).header().dataset("theta", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"missing", "'grad_loss'"});
}

TEST(EquationFile, RejectsMismatchedShapes) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).header().dataset("theta", {3, 4}).dataset("grad_loss", {3, 5});
  expect_rejected(dir.file("eq.h5"), {"'grad_loss'", "shape [3, 5]", "[3, 4]"});
}

TEST(EquationFile, RejectsFeatureOfWrongShape) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).valid(3, 4).dataset("features/l1", {4, 3});
  expect_rejected(dir.file("eq.h5"), {"'features/l1'", "shape"});
}

TEST(EquationFile, RejectsIntegerDataset) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).header().dataset("theta", {3, 4}, H5T_STD_I32LE).dataset("grad_loss", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"'theta'", "int32", "float64"});
}

TEST(EquationFile, RejectsFloat32Dataset) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).header().dataset("theta", {3, 4}).dataset("grad_loss", {3, 4}, H5T_IEEE_F32LE);
  expect_rejected(dir.file("eq.h5"), {"'grad_loss'", "float32", "float64"});
}

TEST(EquationFile, RejectsNaN) {
  TestDir dir;
  RawFile(dir.file("eq.h5"))
      .header()
      .dataset("theta", {2, 2}, H5T_IEEE_F64LE, {1, 2, std::numeric_limits<double>::quiet_NaN(), 4})
      .dataset("grad_loss", {2, 2});
  expect_rejected(dir.file("eq.h5"), {"'theta'", "non-finite", "nan", "point 1, parameter 0"}, false);
  EXPECT_NO_THROW(inspect_equation_file(dir.file("eq.h5")));  // inspection reads no values
}

TEST(EquationFile, RejectsInf) {
  TestDir dir;
  RawFile(dir.file("eq.h5"))
      .header()
      .dataset("theta", {2, 2})
      .dataset("grad_loss", {2, 2}, H5T_IEEE_F64LE, {-std::numeric_limits<double>::infinity(), 2, 3, 4});
  expect_rejected(dir.file("eq.h5"), {"'grad_loss'", "non-finite", "-inf"}, false);
}

TEST(EquationFile, RejectsWrongFormatAttribute) {
  TestDir dir;
  RawFile(dir.file("eq.h5"))
      .string_attr("format", "something.else")
      .number_attr("version", 1)
      .dataset("theta", {3, 4})
      .dataset("grad_loss", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"format", "something.else", "not a gradmatch equation file"});
}

TEST(EquationFile, AStudysResultsFileOrRunStoreIsRefusedPointingAtTheStudysDirectory) {
  TestDir dir;
  for (const char* format : {"gradmatch.results", "gradmatch.run_store"}) {
    RawFile(dir.file("out.h5")).string_attr("format", format).number_attr("version", 1);
    expect_rejected(dir.file("out.h5"),
                    {std::string(format) == "gradmatch.results" ? "is a study's results file" : "is a study's run store",
                     "not an equation file", "`gradmatch report DIR` reads the study's directory",
                     "DIR/equations_*.h5"});
  }
}

TEST(EquationFile, RejectsMissingFormatAttribute) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).number_attr("version", 1).dataset("theta", {3, 4}).dataset("grad_loss", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"no root attribute 'format'"});
}

TEST(EquationFile, RejectsNumericFormatAttribute) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).number_attr("format", 1).number_attr("version", 1).dataset("theta", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"'format'", "not a single string"});
}

TEST(EquationFile, RejectsVersion2) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).header(2).dataset("theta", {3, 4}).dataset("grad_loss", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"version = 2", "version 1 only"});
}

TEST(EquationFile, RejectsMissingVersion) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).string_attr("format", kEquationFormat).dataset("theta", {3, 4}).dataset("grad_loss", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"no root attribute 'version'"});
}

TEST(EquationFile, RejectsFloatingPointVersion) {
  TestDir dir;
  RawFile(dir.file("eq.h5"))
      .string_attr("format", kEquationFormat)
      .number_attr("version", 1, H5T_IEEE_F64LE)
      .dataset("theta", {3, 4})
      .dataset("grad_loss", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"'version'", "not a single integer", "float64"});
}

TEST(EquationFile, RejectsEmptyFile) {
  TestDir dir;
  std::ofstream(dir.file("eq.h5")).close();
  expect_rejected(dir.file("eq.h5"), {"empty", "0 bytes"});
}

TEST(EquationFile, RejectsTruncatedFile) {
  TestDir dir;
  write_equation_file(dir.file("eq.h5"), sample(50, 20));
  std::filesystem::resize_file(dir.file("eq.h5"), std::filesystem::file_size(dir.file("eq.h5")) / 2);
  expect_rejected(dir.file("eq.h5"), {"truncated"});
}

TEST(EquationFile, RejectsTextFileThatIsNotHdf5) {
  TestDir dir;
  std::ofstream(dir.file("eq.h5")) << "theta,grad_loss\n1,2\n";
  expect_rejected(dir.file("eq.h5"), {"not an HDF5 file"});
}

TEST(EquationFile, RejectsNegativeWeight) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).valid(3, 4).dataset("weights", {3}, H5T_IEEE_F64LE, {1, -0.5, 2});
  expect_rejected(dir.file("eq.h5"), {"'weights'", "negative", "-0.5", "point 1"}, false);
}

TEST(EquationFile, RejectsWeightsOfWrongLength) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).valid(3, 4).dataset("weights", {4});
  expect_rejected(dir.file("eq.h5"), {"'weights'", "4 entries", "m = 3"});
}

TEST(EquationFile, RejectsOneDimensionalTheta) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).header().dataset("theta", {12}).dataset("grad_loss", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"'theta'", "1 dimension(s) [12]", "[m, p]"});
}

TEST(EquationFile, RejectsEmptyTheta) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).header().dataset("theta", {0, 4}).dataset("grad_loss", {0, 4});
  expect_rejected(dir.file("eq.h5"), {"'theta'", "[0, 4]", "at least one point"});
}

TEST(EquationFile, RejectsUnknownRootDataset) {  // a misspelt "target" must not be ignored silently
  TestDir dir;
  RawFile(dir.file("eq.h5")).valid(3, 4).dataset("targets", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"unexpected object 'targets'"});
}

TEST(EquationFile, RejectsFeaturesThatAreNotAGroup) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).valid(3, 4).dataset("features", {3, 4});
  expect_rejected(dir.file("eq.h5"), {"'features' is not a group"});
}

/// p = 2 * 3 + 3 + 1 (a scalar) = 10 columns as three named tensors.
std::vector<ParameterBlock> three_tensors() {
  return {{"layer0.weight", {2, 3}}, {"layer0.bias", {3}}, {"temperature", {}}};
}

TEST(EquationFile, RoundTripsParameterNamesAndShapes) {
  TestDir dir;
  Equations eq = sample(4, 10);
  eq.parameters = three_tensors();
  write_equation_file(dir.file("eq.h5"), eq);
  expect_bit_equal(read_equation_file(dir.file("eq.h5")), eq);
  expect_bit_equal(read_equation_rows(dir.file("eq.h5"), 1, 3), eq.rows(1, 3));
  const EquationFileInfo info = inspect_equation_file(dir.file("eq.h5"));
  ASSERT_EQ(info.parameters.size(), 3u);
  EXPECT_EQ(info.parameters[2].name, "temperature");
  EXPECT_TRUE(info.parameters[2].shape.empty());
}

TEST(EquationFile, WriterRejectsParametersThatDoNotCoverTheta) {
  TestDir dir;
  Equations eq = sample(4, 9);
  eq.parameters = three_tensors();  // 10 scalars for p = 9
  EXPECT_THROW(write_equation_file(dir.file("eq.h5"), eq), InputError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("eq.h5")));
  eq = sample(4, 10);
  eq.parameters = three_tensors();
  eq.parameters[1].name = "layer0.weight";
  EXPECT_THROW(write_equation_file(dir.file("eq.h5"), eq), InputError);
}

/// A valid [3, 10] file with a hand-built parameters group.
RawFile& with_parameters(RawFile& f, std::vector<double> shapes, std::vector<double> offsets) {
  return f.valid(3, 10)
      .dataset("parameters/names", {3}, H5T_IEEE_F64LE, {0, 0, 0})  // replaced below by strings
      .dataset("parameters/shapes", {shapes.size()}, H5T_STD_I64LE, shapes)
      .dataset("parameters/offsets", {offsets.size()}, H5T_STD_I64LE, offsets);
}

TEST(EquationFile, RejectsParameterNamesThatAreNotStrings) {
  TestDir dir;
  RawFile f(dir.file("eq.h5"));
  with_parameters(f, {2, 3, 3}, {0, 2, 3, 3});
  expect_rejected(dir.file("eq.h5"), {"'parameters/names'", "strings"});
}

TEST(EquationFile, RejectsParametersGroupWithoutOffsets) {
  TestDir dir;
  RawFile(dir.file("eq.h5")).valid(3, 10).dataset("parameters/shapes", {3}, H5T_STD_I64LE, {2, 3, 3});
  expect_rejected(dir.file("eq.h5"), {"'parameters/names'", "offsets [k + 1]"});
}

TEST(EquationFile, FailedWriteOfInvalidEquationsLeavesNoFile) {
  TestDir dir;
  Equations eq = sample();
  eq.grad_loss(1, 1) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(write_equation_file(dir.file("eq.h5"), eq), InputError);
  eq = sample();
  eq.weights[2] = -1.0;
  EXPECT_THROW(write_equation_file(dir.file("eq.h5"), eq), InputError);
  eq = sample();
  eq.features.emplace_back("alpha", eq.theta);  // duplicate name
  EXPECT_THROW(write_equation_file(dir.file("eq.h5"), eq), InputError);
  EXPECT_TRUE(dir.entries().empty());
}

TEST(EquationFile, FailedWriteIntoMissingDirectoryLeavesNothing) {
  TestDir dir;
  const std::string path = dir.file("missing/eq.h5");
  try {
    write_equation_file(path, sample());
    FAIL() << "write into a missing directory succeeded";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": cannot create", 0), 0u) << e.what();
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(EquationFile, FailedRenameRemovesTheTemporaryFile) {
  TestDir dir;
  std::filesystem::create_directories(dir.path() / "eq.h5" / "occupied");  // the target is a directory
  EXPECT_THROW(write_equation_file(dir.file("eq.h5"), sample()), std::runtime_error);
  EXPECT_EQ(dir.entries(), std::set<std::string>{"eq.h5"});
  EXPECT_TRUE(std::filesystem::is_directory(dir.file("eq.h5")));
}

TEST(EquationFile, FailedWriteKeepsThePreviousFile) {
  TestDir dir;
  const Equations good = sample();
  write_equation_file(dir.file("eq.h5"), good);
  Equations bad = sample();
  bad.theta(0, 0) = std::numeric_limits<double>::infinity();
  EXPECT_THROW(write_equation_file(dir.file("eq.h5"), bad), InputError);
  expect_bit_equal(read_equation_file(dir.file("eq.h5")), good);
}

/// Runs a Python snippet under Debian's python3; true when it exits 0.
bool run_python(const TestDir& dir, const std::string& script, const std::string& arg) {
  std::ofstream(dir.file("check.py")) << script;
  return std::system((gradmatch::test_inputs::python_command() + dir.file("check.py") + " " + arg).c_str()) == 0;
}

TEST(EquationFile, WrittenFileReadsInH5py) {
  GRADMATCH_NEEDS_PYTHON3("h5py");
  TestDir dir;
  Equations eq;
  eq.theta = filled(5, 3, 0.25);
  eq.grad_loss = filled(5, 3, -1.0);
  eq.features = {{"l1", filled(5, 3, 2.0)}};
  eq.weights = {1, 2, 3, 4, 5};
  write_equation_file(dir.file("eq.h5"), eq);
  EXPECT_TRUE(run_python(dir, R"(
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["format"] == "gradmatch.equations" and isinstance(f.attrs["format"], str), repr(f.attrs["format"])
    assert f.attrs["version"] == 1 and f.attrs["version"].dtype.kind == "i", repr(f.attrs["version"])
    for name in ("theta", "grad_loss", "features/l1"):
        assert f[name].shape == (5, 3) and f[name].dtype == np.float64, (name, f[name].shape, f[name].dtype)
    assert np.array_equal(f["theta"][()], 0.25 * np.arange(15).reshape(5, 3))
    assert np.array_equal(f["grad_loss"][()], -np.arange(15.0).reshape(5, 3))
    assert list(f["features"]) == ["l1"] and "target" not in f
    assert f["weights"].shape == (5,) and f["weights"].dtype == np.float64
    assert np.array_equal(f["weights"][()], [1, 2, 3, 4, 5])
)",
                         dir.file("eq.h5")));
}

TEST(EquationFile, ReadsFileWrittenByH5py) {
  GRADMATCH_NEEDS_PYTHON3("h5py");
  TestDir dir;
  ASSERT_TRUE(run_python(dir, R"(
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["format"] = "gradmatch.equations"
    f.attrs["version"] = 1
    f["theta"] = np.arange(12.0).reshape(4, 3) / 3
    f.create_dataset("grad_loss", data=-np.arange(12.0).reshape(4, 3), chunks=(2, 3), compression="gzip")
    f["target"] = np.full((4, 3), 0.1)
    f["features/zeta"] = np.ones((4, 3))
    f["features/eta"] = np.zeros((4, 3))
    f["weights"] = np.array([0.5, 1.0, 0.0, 2.0])
)",
                         dir.file("eq.h5")));
  const Equations eq = read_equation_file(dir.file("eq.h5"));
  ASSERT_EQ(eq.m(), 4);
  ASSERT_EQ(eq.p(), 3);
  EXPECT_EQ(eq.theta(2, 1), 7.0 / 3.0);
  EXPECT_EQ(eq.grad_loss(3, 2), -11.0);
  ASSERT_TRUE(eq.target.has_value());
  EXPECT_EQ((*eq.target)(1, 1), 0.1);
  ASSERT_EQ(eq.features.size(), 2u);
  EXPECT_EQ(eq.features[0].first, "eta");
  EXPECT_EQ(eq.features[1].first, "zeta");
  EXPECT_EQ(eq.features[1].second(3, 2), 1.0);
  EXPECT_EQ(eq.weights, (std::vector<double>{0.5, 1.0, 0.0, 2.0}));
  expect_bit_equal(read_equation_rows(dir.file("eq.h5"), 1, 3), eq.rows(1, 3));
}

TEST(EquationFile, ReadsParameterNamesAndShapesWrittenByH5py) {
  GRADMATCH_NEEDS_PYTHON3("h5py");
  TestDir dir;
  // Variable-length names (h5py's str) in one file, fixed-length bytes in the other.
  for (const char* names : {"np.array(['w', 'b', 's'], dtype=h5py.string_dtype())", "np.array([b'w', b'b', b's'])"}) {
    ASSERT_TRUE(run_python(dir, std::string(R"(
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["format"] = "gradmatch.equations"
    f.attrs["version"] = 1
    f["theta"] = np.ones((2, 10))
    f["grad_loss"] = np.zeros((2, 10))
    f["parameters/names"] = )") + names + R"(
    f["parameters/shapes"] = np.array([2, 3, 3], dtype=np.int64)
    f["parameters/offsets"] = np.array([0, 2, 3, 3], dtype=np.int64)
)",
                           dir.file("eq.h5")));
    const Equations eq = read_equation_file(dir.file("eq.h5"));
    ASSERT_EQ(eq.parameters.size(), 3u);
    EXPECT_EQ(eq.parameters[0].name, "w");
    EXPECT_EQ(eq.parameters[0].shape, (std::vector<std::int64_t>{2, 3}));
    EXPECT_EQ(eq.parameters[1].shape, (std::vector<std::int64_t>{3}));
    EXPECT_EQ(eq.parameters[2].name, "s");
    EXPECT_TRUE(eq.parameters[2].shape.empty());
  }
  // Two parameters w, b over p = 10 with the dimensions `shapes` (w: the first two, b: the third).
  const auto two_parameters = [&](const std::string& shapes) {
    return run_python(dir, R"(
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["format"] = "gradmatch.equations"
    f.attrs["version"] = 1
    f["theta"] = np.ones((2, 10))
    f["grad_loss"] = np.zeros((2, 10))
    f["parameters/names"] = np.array(["w", "b"], dtype=h5py.string_dtype())
    f["parameters/shapes"] = np.array()" + shapes + R"(, dtype=np.int64)
    f["parameters/offsets"] = np.array([0, 2, 3], dtype=np.int64)
)",
                      dir.file("eq.h5"));
  };
  // Shapes that do not sum to p are rejected with the counts.
  ASSERT_TRUE(two_parameters("[2, 3, 3]"));
  expect_rejected(dir.file("eq.h5"), {"hold 9 scalars", "p = 10"});
  // A shape whose product wraps around int64 (2^62 x 4 = 2^64 = 0) is too big, not "0 scalars".
  ASSERT_TRUE(two_parameters("[2**62, 4, 10]"));
  expect_rejected(dir.file("eq.h5"), {"hold more than p = 10 scalars (at 'w')"});
}

}  // namespace
}  // namespace gradmatch::io
