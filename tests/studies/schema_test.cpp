// Result schemas: one description gives the store row, the results.h5
// datasets (shapes, integer types, attributes) and the summary JSON.
#include "studies/schema.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include <unistd.h>

#include "io/hdf5_file.hpp"
#include "../required_inputs.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;

enum class Outcome : std::int8_t { ok = 0, diverged = 2 };

struct Inner {
  double lambda = 0.0;
};

struct RunRecord {
  std::int64_t width = 0;
  double eta = 0.0;
  bool trusted = false;
  Outcome outcome = Outcome::ok;
  Inner fit;
  std::vector<double> curve;
  Matrix theta;
};

Schema<RunRecord> run_schema(std::int64_t points) {
  return {scalar("width", &RunRecord::width, "units", "hidden width"),
          scalar("eta", &RunRecord::eta, "", "step size"),
          scalar("trusted", &RunRecord::trusted, "", "passes the trust rule"),
          scalar("outcome", &RunRecord::outcome, "", "0 ok, 2 diverged"),
          scalar("lambda", &RunRecord::fit, &Inner::lambda, "", "fitted ridge"),
          vector("curve", &RunRecord::curve, "step", points, "", "loss curve"),
          matrix<RunRecord>("theta", [](RunRecord& r) -> Matrix& { return r.theta; }, {"row", "col"}, 2, 2, "", "a matrix")};
}

RunRecord example(std::int64_t width, double eta) {
  return {width, eta, width % 2 == 0, Outcome::diverged, {0.25 * eta}, {1.0, 0.5, 0.25}, Matrix(2, 2, {1, 2, 3, 4})};
}

TEST(Schema, RowWidthIsTheSumOfFieldLengths) { EXPECT_EQ(run_schema(3).width(), 1 + 1 + 1 + 1 + 1 + 3 + 4); }

TEST(Schema, DecodeInvertsEncodeForEveryFieldKind) {
  const Schema<RunRecord> schema = run_schema(3);
  const RunRecord r = example(128, 0.05);
  const std::vector<double> row = schema.encode(r);
  ASSERT_EQ(static_cast<std::int64_t>(row.size()), schema.width());
  const RunRecord back = schema.decode(row);
  EXPECT_EQ(back.width, 128);
  EXPECT_EQ(back.eta, 0.05);
  EXPECT_TRUE(back.trusted);
  EXPECT_EQ(back.outcome, Outcome::diverged);
  EXPECT_EQ(back.fit.lambda, 0.25 * 0.05);
  EXPECT_EQ(back.curve, r.curve);
  EXPECT_EQ(back.theta.values(), r.theta.values());
  EXPECT_EQ(schema.decode_all(std::vector<double>{row.begin(), row.end()}).size(), 1u);
}

TEST(Schema, AFinishedRecordsNonFiniteScalarsAreStoredFiniteAndReadBackAsTheyWere) {
  // The run store marks a row that is not all finite as diverged: a record
  // that did not diverge keeps its NaN and inf scalars through sentinels.
  const Schema<RunRecord> schema = run_schema(3);
  for (const double v : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                         -std::numeric_limits<double>::infinity()}) {
    RunRecord r = example(64, v);
    r.fit.lambda = -v;
    const std::vector<double> stored = schema.encode_finished(r);
    for (const double x : stored) EXPECT_TRUE(std::isfinite(x)) << x;
    const RunRecord back = schema.decode(stored);
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(back.eta));
      EXPECT_TRUE(std::isnan(back.fit.lambda));
    } else {
      EXPECT_EQ(back.eta, v);
      EXPECT_EQ(back.fit.lambda, -v);
    }
    EXPECT_EQ(back.width, 64);
    EXPECT_EQ(back.curve, r.curve);
    // encode() keeps them: how a diverged record marks its row.
    const std::vector<double> plain = schema.encode(r);
    EXPECT_FALSE(std::all_of(plain.begin(), plain.end(), [](double x) { return std::isfinite(x); }));
  }
  // A vector field's NaN is not a scalar's: it still marks the row.
  RunRecord r = example(64, 0.1);
  r.curve[1] = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> stored = schema.encode_finished(r);
  EXPECT_FALSE(std::all_of(stored.begin(), stored.end(), [](double x) { return std::isfinite(x); }));
  // Finite values are stored as they are.
  r = example(64, std::numeric_limits<double>::max() / 2);
  EXPECT_EQ(schema.encode_finished(r), schema.encode(r));
  EXPECT_EQ(schema.decode(schema.encode_finished(r)).eta, std::numeric_limits<double>::max() / 2);
}

TEST(Schema, NonFiniteIntegersDecodeAsZeroNotUndefined) {
  const Schema<RunRecord> schema = run_schema(1);
  std::vector<double> row(static_cast<std::size_t>(schema.width()), std::numeric_limits<double>::quiet_NaN());
  const RunRecord r = schema.decode(row);
  EXPECT_EQ(r.width, 0);
  EXPECT_FALSE(r.trusted);
  EXPECT_TRUE(std::isnan(r.eta));
}

TEST(Schema, WithoutEstimatesBlanksEveryFloatFieldButTheKeptOnesAndKeepsCountsAndFlags) {
  const RunRecord r = run_schema(3).without_estimates(example(64, 0.1), {"eta"});
  EXPECT_EQ(r.width, 64);
  EXPECT_EQ(r.eta, 0.1);
  EXPECT_TRUE(r.trusted);  // flags are kept
  EXPECT_EQ(r.outcome, Outcome::diverged);
  EXPECT_TRUE(std::isnan(r.fit.lambda));
  for (double v : r.curve) EXPECT_TRUE(std::isnan(v));
  for (double v : r.theta.values()) EXPECT_TRUE(std::isnan(v));
}

TEST(Schema, EncodingAVectorOfTheWrongLengthIsAnError) {
  RunRecord r = example(1, 1.0);
  r.curve.pop_back();
  EXPECT_THROW(run_schema(3).encode(r), std::logic_error);
}

TEST(Schema, JsonKeepsIntegersAndFlagsAndLeavesOutArrayFields) {
  const nlohmann::json j = run_schema(3).json(example(64, 0.1));
  EXPECT_TRUE(j.at("width").is_number_integer());
  EXPECT_EQ(j.at("width"), 64);
  EXPECT_TRUE(j.at("trusted").is_boolean());
  EXPECT_EQ(j.at("outcome"), 2);
  EXPECT_DOUBLE_EQ(j.at("lambda").get<double>(), 0.025);
  EXPECT_FALSE(j.contains("curve"));
  EXPECT_FALSE(j.contains("theta"));
}

TEST(Schema, ResultsDatasetsAreShapedByTheAxesWithIntegerTypesAndAttributes) {
  const fs::path dir = fs::temp_directory_path() / ("gradmatch-schema-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "results.h5").string();
  std::vector<RunRecord> runs;
  for (std::int64_t w : {1, 2, 3})
    for (double eta : {0.1, 0.2}) runs.push_back(example(w, eta));
  {
    io::ResultsWriter w(path, "schema_test");
    run_schema(3).write(w, "runs", runs, Axes{{"width", "eta"}, {3, 2}});
    w.commit();
  }
  std::vector<std::int64_t> shape;
  EXPECT_EQ(io::read_doubles(path, "runs/width", &shape), (std::vector<double>{1, 1, 2, 2, 3, 3}));
  EXPECT_EQ(shape, (std::vector<std::int64_t>{3, 2}));
  io::read_doubles(path, "runs/curve", &shape);
  EXPECT_EQ(shape, (std::vector<std::int64_t>{3, 2, 3}));
  io::read_doubles(path, "runs/theta", &shape);
  EXPECT_EQ(shape, (std::vector<std::int64_t>{3, 2, 2, 2}));
  // The types and attributes, read as a user reads them (h5py).
  const bool h5py = test_inputs::python3_imports("h5py");
  if (h5py) {
    std::ofstream(dir / "check.py") << R"(
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["study"] == "schema_test"
    w = f["runs/width"]
    assert w.dtype == np.int64, w.dtype
    assert w.attrs["units"] == "units" and w.attrs["description"] == "hidden width"
    assert list(w.attrs["dims"]) == ["width", "eta"]
    assert f["runs/trusted"].dtype == np.int64
    assert list(f["runs/curve"].attrs["dims"]) == ["width", "eta", "step"]
    assert f["runs/eta"].dtype == np.float64
)";
    EXPECT_EQ(std::system((gradmatch::test_inputs::python_command() + (dir / "check.py").string() + " " + path).c_str()), 0);
  }
  fs::remove_all(dir);
  GRADMATCH_NEEDS(h5py, "python3 with h5py");
}

TEST(Schema, WritingRecordsThatDoNotFillTheAxesIsAnError) {
  const fs::path path = fs::temp_directory_path() / ("gradmatch-schema-fill-" + std::to_string(::getpid()) + ".h5");
  io::ResultsWriter w(path.string(), "schema_test");
  std::vector<RunRecord> runs{example(1, 0.1)};
  EXPECT_THROW(run_schema(3).write(w, "runs", runs, Axes{{"width"}, {2}}), std::logic_error);
}

}  // namespace
}  // namespace gradmatch::studies
