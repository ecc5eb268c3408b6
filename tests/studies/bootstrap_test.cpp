// The bootstrap study's known answers, in-process on one rank: TorchScript
// models written by make_bootstrap_inputs.py (Debian's python3-torch), trained
// by the study on bootstrap resamples, the pooled endpoint equations fitted.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/family.hpp"
#include "core/fit.hpp"
#include "core/ols.hpp"
#include "core/resources.hpp"
#include "core/rng.hpp"
#include "mpi/mpi.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "studies/bootstrap.hpp"
#include "studies/registry.hpp"
#include "bootstrap_configs.hpp"
#include "bootstrap_inputs.hpp"
#include "study_files.hpp"
#include "../required_inputs.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;
using namespace test_support;

class BootstrapStudy : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("gradmatch_bootstrap_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const BootstrapInputs inputs = write_bootstrap_inputs(dir_);
    skip_ = inputs.skip;
    error_ = inputs.error;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override {
    GRADMATCH_NEEDS(skip_.empty(), skip_);
    ASSERT_TRUE(error_.empty()) << error_;
  }
  /// Writes NAME.toml into the inputs directory and runs it into NAME/.
  static fs::path run(const std::string& name, const std::string& toml) {
    const fs::path config = dir_ / (name + ".toml");
    std::ofstream(config) << toml;
    const fs::path out = dir_ / name;
    run_study(config.string(), out.string(), mpi::Communicator());
    return out;
  }
  static inline fs::path dir_;
  static inline std::string skip_;
  static inline std::string error_;  // the inputs script failed
};

// ---- the replicates' samples (Algorithm 1) ------------------------------------

BootstrapConfig sampling_config(const std::string& stop, const std::string& split = "rows") {
  BootstrapConfig c;
  c.seed = 17;
  c.stop = stop;
  c.validation_fraction = 0.1;
  c.validation_split = split;
  return c;
}

std::vector<std::int64_t> sorted(std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::size_t distinct(const std::vector<std::int64_t>& v) {
  std::vector<std::int64_t> s = sorted(v);
  return static_cast<std::size_t>(std::unique(s.begin(), s.end()) - s.begin());
}

std::vector<std::int64_t> all_rows(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}

TEST(ReplicateSample, ReplicateZeroTrainsOnTheDataSetItselfAndTheOthersOnResamples) {
  BootstrapConfig c = sampling_config("epochs");
  const ReplicateSample original = replicate_sample(c, 500, 0);
  EXPECT_TRUE(original.whole);
  EXPECT_EQ(original.train, all_rows(500));
  EXPECT_TRUE(original.validation.empty());
  for (std::int64_t r : {1, 2}) {
    const ReplicateSample resample = replicate_sample(c, 500, r);
    EXPECT_FALSE(resample.whole);
    ASSERT_EQ(resample.train.size(), 500u);
    // n draws with replacement hold about (1 - 1/e) n = 316 distinct rows.
    EXPECT_GT(distinct(resample.train), 280u);
    EXPECT_LT(distinct(resample.train), 350u);
  }
  c.include_original = false;  // every replicate a resample, as gradmatch did before the key existed
  EXPECT_FALSE(replicate_sample(c, 500, 0).whole);
  EXPECT_LT(distinct(replicate_sample(c, 500, 0).train), 350u);
  c.resample = "none";  // every replicate trains on the data set
  for (std::int64_t r : {0, 3}) EXPECT_TRUE(replicate_sample(c, 500, r).whole);
}

TEST(ReplicateSample, WithEarlyStoppingNoHeldOutRowIsTrainedOnAndTheRestIsResampled) {
  const BootstrapConfig c = sampling_config("early_stopping");
  for (std::int64_t r : {0, 1, 5}) {
    const ReplicateSample s = replicate_sample(c, 1000, r);
    ASSERT_EQ(s.validation.size(), 100u) << "r = " << r;
    EXPECT_EQ(distinct(s.validation), 100u);
    ASSERT_EQ(s.train.size(), 900u);
    std::vector<bool> held(1000, false);
    for (std::int64_t i : s.validation) held[static_cast<std::size_t>(i)] = true;
    for (std::int64_t i : s.train) EXPECT_FALSE(held[static_cast<std::size_t>(i)]) << "row " << i << ", r = " << r;
    if (r == 0) {  // the data set itself: every kept row once
      EXPECT_EQ(distinct(s.train), 900u);
    } else {  // 900 draws from the 900 kept rows: about 569 distinct
      EXPECT_GT(distinct(s.train), 520u);
      EXPECT_LT(distinct(s.train), 620u);
    }
  }
}

TEST(ReplicateSample, TheDrawsSplitIsTheFormerSampleBitForBitAndSharesRowsBetweenTheSides) {
  BootstrapConfig c = sampling_config("early_stopping", "draws");
  c.include_original = false;
  const std::int64_t n = 5000;
  double shared = 0.0, held = 0.0;
  for (std::int64_t r : {0, 1, 2}) {
    // The former sample: n keyed draws, shuffled by the split stream, the last tenth held out.
    Rng draw(17, (std::uint64_t{2} << 40) | static_cast<std::uint64_t>(r));
    std::vector<std::int64_t> sample(static_cast<std::size_t>(n));
    for (auto& i : sample) i = static_cast<std::int64_t>(draw.below(static_cast<std::uint64_t>(n)));
    Rng split(17, (std::uint64_t{3} << 40) | static_cast<std::uint64_t>(r));
    for (std::int64_t i = n - 1; i > 0; --i)
      std::swap(sample[static_cast<std::size_t>(i)], sample[split.below(static_cast<std::uint64_t>(i + 1))]);
    const ReplicateSample s = replicate_sample(c, n, r);
    EXPECT_EQ(s.train, std::vector<std::int64_t>(sample.begin(), sample.end() - 500));
    EXPECT_EQ(s.validation, std::vector<std::int64_t>(sample.end() - 500, sample.end()));
    std::vector<bool> trained(static_cast<std::size_t>(n), false);
    for (std::int64_t i : s.train) trained[static_cast<std::size_t>(i)] = true;
    for (std::int64_t i : s.validation) shared += trained[static_cast<std::size_t>(i)] ? 1.0 : 0.0;
    held += 500.0;
  }
  // A held-out draw's row is among the 0.9 n training draws with probability 1 - e^{-0.9} = 0.593.
  EXPECT_NEAR(shared / held, 1.0 - std::exp(-0.9), 0.03);
}

TEST_F(BootstrapStudy, ExplicitSymmetricPenaltyOnBootstrapResamplesIsRecoveredTo1e6) {
  // Linear model (p = 4), L_r = mse on resample r, trained by full-batch L-BFGS
  // to a stationary point of L_r + theta^T Lambda theta: grad L_r = -2 Lambda theta_r
  // exactly, and 12 endpoints determine Lambda.
  const fs::path out = run("sym", sym_penalty_config());
  std::vector<std::int64_t> shape;
  const std::vector<double> truth = io::read_doubles((dir_ / "sym.h5").string(), "lambda", &shape);
  const nlohmann::json fit = json_of(out / "fit_sym.json");
  double err = 0.0, norm = 0.0;
  for (std::size_t a = 0; a < 4; ++a)
    for (std::size_t b = 0; b < 4; ++b) {
      const double d = fit.at("lambda")[a][b].get<double>() - truth[a * 4 + b];
      err += d * d;
      norm += truth[a * 4 + b] * truth[a * 4 + b];
    }
  EXPECT_LT(std::sqrt(err / norm), 1e-6) << fit.dump();
  EXPECT_TRUE(fit.at("warnings").empty()) << fit.at("warnings");
  // The equation file records the scope's name and shape; ridge explains less.
  const Equations eq = io::read_equation_file((out / "equations.h5").string());
  EXPECT_EQ(eq.m(), 12);
  ASSERT_EQ(eq.parameters.size(), 1u);
  EXPECT_EQ(eq.parameters[0].name, "weight");
  EXPECT_EQ(eq.parameters[0].shape, (std::vector<std::int64_t>{1, 4}));
  const nlohmann::json summary = json_of(out / "summary.json");
  EXPECT_EQ(summary.at("diverged"), 0);
  EXPECT_EQ(summary.at("p_scope"), 4);
  EXPECT_TRUE(fs::exists(out / "fit_ridge.json"));
  EXPECT_TRUE(fs::exists(out / "results.h5"));
}

TEST_F(BootstrapStudy, RidgeOnTheLastLayerOnlyIsRecoveredOverThatScope) {
  // A tanh MLP trained to stationarity with ridge 0.05 on out.* only; the
  // hidden layer is trained without penalty. Over scope = out.*, the
  // equations are grad L = -2 lambda theta_out.
  const fs::path out = run("mlp", R"(study = "bootstrap"
seed = 5
loss = "mse"
replicates = 3
scope = ["out.*"]
[model]
file = "mlp.pt"
[data]
file = "linear.h5"
[training]
optimizer = "lbfgs"
learning_rate = 1.0
epochs = 30
stop = "gradient_norm"
gradient_tolerance = 1e-10
[penalty]
family = "ridge"
file = "ridge.h5"
[fit]
families = ["ridge"]
)");
  const nlohmann::json fit = json_of(out / "fit_ridge.json");
  // With a = 2 theta_out and b = grad L over the scope (every replicate's rows
  // stacked), the fit is lambda-hat = -<a, b> / <a, a>, and with r = b + 0.05 a
  // (the training objective's gradient over the scope, zero at an exactly
  // stationary endpoint) lambda-hat - 0.05 = -<r, a> / <a, a> exactly: the
  // estimate is off by no more than where training stopped, |r| / |a|
  // (Cauchy-Schwarz).
  const std::string results = (out / "results.h5").string();
  const std::vector<double> theta = io::read_doubles(results, "theta"), grad = io::read_doubles(results, "grad_loss");
  ASSERT_EQ(theta.size(), 3u * 6u);
  double aa = 0.0, ab = 0.0, rr = 0.0;
  for (std::size_t i = 0; i < theta.size(); ++i) {
    const double a = 2.0 * theta[i], r = grad[i] + 0.05 * a;
    aa += a * a;
    ab += a * grad[i];
    rr += r * r;
  }
  const double lambda = fit.at("lambda").get<double>();
  EXPECT_NEAR(lambda, -ab / aa, 1e-12 * 0.05) << fit.dump();
  EXPECT_LE(std::abs(lambda - 0.05), std::sqrt(rr / aa) * (1.0 + 1e-9) + 1e-15) << fit.dump();  // = |<r, a>| / <a, a>
  // L-BFGS stops near stationarity: measured on the CPU (Debian's LibTorch
  // 1.13) lambda off by 2.7e-8 relative, residual ratio 5.4e-8; on an NVIDIA
  // H200 (LibTorch 2.11, float64 on cuda, device = "auto") 2.8e-6 and 5.7e-6
  // after all 30 epochs: how close it gets depends on the path rounding
  // takes. The CPU keeps the tight bounds.
  const std::string device = json_of(out / "run_info.json").at("devices").at(0).get<std::string>();
  const bool cuda = device.rfind("cuda", 0) == 0;
  const double tolerance = cuda ? 1e-4 : 1e-6;
  EXPECT_LT(std::sqrt(rr / aa), tolerance * 0.05) << device << ": " << fit.dump();
  EXPECT_LT(fit.at("residual_ratio").get<double>(), tolerance) << device << ": " << fit.dump();
  EXPECT_GT(fit.at("cosine").get<double>(), 1.0 - (cuda ? 1e-8 : 1e-12)) << device << ": " << fit.dump();
  EXPECT_EQ(fit.at("p"), 6);
}

TEST_F(BootstrapStudy, FixedStepGradientDescentOnFreshDataSetsGivesAliEtAlsLambdaTo1e8) {
  // Six fresh responses for one design X, full-batch SGD (lr eta = 0.05, no
  // momentum) from theta = 0 for t = 25 steps: theta <- theta - eta grad L =
  // theta - 2 eta (S theta - r), i.e. core/ols.hpp's gradient descent with
  // epsilon = 2 eta, whose endpoints satisfy grad L = -2 Lambda(t) theta_t.
  const std::int64_t t = 25;
  const double eta = 0.05;
  const fs::path out = run("ali", R"(study = "bootstrap"
replicates = 6
resample = "none"
init = "file"
loss = "mse"
[model]
file = "zero.pt"
[data]
files = ["fresh0.h5", "fresh1.h5", "fresh2.h5", "fresh3.h5", "fresh4.h5", "fresh5.h5"]
[training]
optimizer = "sgd"
learning_rate = 0.05
batch_size = 0
epochs = 25
[fit]
families = ["sym"]
)");
  std::vector<std::int64_t> xs;
  const std::vector<double> xv = io::read_doubles((dir_ / "fresh0.h5").string(), "X", &xs);
  const Matrix x(xs[0], xs[1], xv);
  const ols::Moments mo = ols::moments(x, std::vector<double>(static_cast<std::size_t>(xs[0]), 0.0));
  const Matrix expected = ols::ali_lambda(ols::spectrum(mo.gram), 2.0 * eta, t);
  const nlohmann::json fit = json_of(out / "fit_sym.json");
  double err = 0.0, norm = 0.0;
  for (std::int64_t a = 0; a < 4; ++a)
    for (std::int64_t b = 0; b < 4; ++b) {
      const double d = fit.at("lambda")[a][b].get<double>() - expected(a, b);
      err += d * d;
      norm += expected(a, b) * expected(a, b);
    }
  EXPECT_LT(std::sqrt(err / norm), 1e-8) << fit.dump();
}

TEST_F(BootstrapStudy, SmokeConfigWithEveryKeyWritesEveryOutput) {
  const fs::path config = dir_ / "bootstrap.toml";
  fs::copy_file(smoke("bootstrap"), config, fs::copy_options::overwrite_existing);
  const fs::path out = dir_ / "smoke";
  run_study(config.string(), out.string(), mpi::Communicator());
  const nlohmann::json summary = json_of(out / "summary.json");
  EXPECT_EQ(summary.at("replicates"), 4);
  EXPECT_EQ(summary.at("p_scope"), 6);
  for (const char* family : {"ridge", "diag", "layerwise-ridge", "features"}) {
    EXPECT_TRUE(summary.at("fits").contains(family)) << family;
    EXPECT_TRUE(fs::exists(out / (std::string("fit_") + family + ".json"))) << family;
  }
  // features: one coefficient per candidate column (ridge, nuclear).
  EXPECT_EQ(json_of(out / "fit_features.json").at("lambda").size(), 2u);
  const Equations eq = io::read_equation_file((out / "equations.h5").string());
  EXPECT_EQ(eq.features.size(), 3u);  // ridge, nuclear.*, layerwise_ridge.out
  // Both column fits refit from equations.h5 with the columns they name
  // (`gradmatch fit equations.h5 --family features --columns ...`).
  for (const char* family : {"features", "layerwise-ridge"}) {
    const nlohmann::json stored = json_of(out / (std::string("fit_") + family + ".json"));
    std::vector<std::string> names = stored.at("names").get<std::vector<std::string>>();
    Equations selected = eq;
    selected.keep_features(names);
    FitOptions o;
    o.family = FamilySpec::parse("features");
    const FitResult refit = fit(selected, o);
    ASSERT_EQ(refit.names.size(), names.size()) << family;
    for (std::size_t i = 0; i < names.size(); ++i) {
      const auto at = std::find(refit.names.begin(), refit.names.end(), names[i]) - refit.names.begin();
      const double want = stored.at("lambda")[i].get<double>();
      EXPECT_NEAR(refit.coefficients[static_cast<std::size_t>(at)], want, 1e-9 * std::abs(want)) << family << " " << names[i];
    }
  }
}

TEST_F(BootstrapStudy, ResultsH5HoldsEveryReplicateFieldTypedAndDescribedAndEqualToTheEquations) {
  const fs::path config = dir_ / "bootstrap.toml";
  fs::copy_file(smoke("bootstrap"), config, fs::copy_options::overwrite_existing);
  const fs::path out = dir_ / "smoke_results";
  run_study(config.string(), out.string(), mpi::Communicator());
  // Counts and flags are int64, every dataset names its axes (one per
  // dimension) and carries description and units; no replicate of the smoke
  // config diverges, so results.h5 holds the equation rows in replicate order.
  std::ofstream(dir_ / "check_results.py") << R"(
import sys, h5py, numpy as np
out = sys.argv[1]
with h5py.File(out + "/results.h5", "r") as f, h5py.File(out + "/equations.h5", "r") as e:
    for name in ["theta", "grad_loss", "features", "loss", "relative_gradient_norm", "epochs", "stopped", "diverged"]:
        d = f[name]
        assert len(d.attrs["dims"]) == d.ndim and d.attrs["dims"][0] == "replicate", (name, d.attrs["dims"])
        assert len(d.attrs["description"]) > 0 and "units" in d.attrs, name
    for name in ["epochs", "stopped", "diverged"]:
        assert f[name].dtype == np.int64, (name, f[name].dtype)
    assert f["theta"].shape == (4, 6) and f["features"].shape == (4, 3, 6), f["features"].shape
    assert list(f["features"].attrs["dims"]) == ["replicate", "candidate", "parameter"]
    assert not f["diverged"][:].any()
    assert (f["epochs"][:] >= 1).all() and (f["epochs"][:] <= 40).all()
    assert np.array_equal(f["stopped"][:] == 1, f["epochs"][:] < 40)
    assert np.array_equal(f["theta"][:], e["theta"][:]) and np.array_equal(f["grad_loss"][:], e["grad_loss"][:])
    names = f["candidates"][()].decode().split(", ")
    assert sorted(names) == sorted(e["features"].keys()), names
    for k, name in enumerate(names):
        assert np.array_equal(f["features"][:, k, :], e["features"][name][:]), name
)";
  EXPECT_EQ(std::system((gradmatch::test_inputs::python_command() + (dir_ / "check_results.py").string() + " " + out.string()).c_str()), 0);
}

TEST_F(BootstrapStudy, DryRunEstimateBoundsTheStoreAndOutputsOfTheSmokeRun) {
  const fs::path config = dir_ / "bootstrap.toml";
  fs::copy_file(smoke("bootstrap"), config, fs::copy_options::overwrite_existing);
  const std::unique_ptr<Study> study = make_bootstrap_study();
  io::ConfigReader reader(config.string());
  study->configure(reader);
  const ResourceEstimate e = study->estimate();
  EXPECT_EQ(e.tasks, 4);
  EXPECT_NE(e.tasks_text.find("a scope of 6"), std::string::npos) << e.tasks_text;
  // The whole model's size, as the task line gives it (the GPU note's size).
  EXPECT_NE(e.tasks_text.find("(" + resources::count_text(e.model_parameters) + " parameters"), std::string::npos)
      << e.tasks_text;
  EXPECT_EQ(e.outputs.back(), "fit_features.json");
  EXPECT_LT(e.seconds_per_task, 0.0);  // unknown: it depends on the model
  const fs::path out = dir_ / "estimated";
  run_study(config.string(), out.string(), mpi::Communicator());
  EXPECT_GE(e.store_bytes, static_cast<double>(fs::file_size(out / "store.h5")));
  double outputs = 0.0;
  for (const std::string& f : e.outputs) outputs += static_cast<double>(fs::file_size(out / f));
  EXPECT_GE(e.output_bytes, outputs);
  EXPECT_GE(e.memory_bytes, 2.0 * static_cast<double>(fs::file_size(dir_ / "linear.h5")));
}

/// The smoke config with `from` replaced by `to` (each once).
std::string smoke_with(std::initializer_list<std::pair<std::string, std::string>> edits) {
  std::ifstream in(smoke("bootstrap"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& [from, to] : edits) {
    const auto at = text.find(from);
    if (at == std::string::npos) ADD_FAILURE() << "'" << from << "' is not in the smoke config";
    else text.replace(at, from.size(), to);
  }
  return text;
}

/// The message of the run's refusal (exit 2 on every rank); "" when it ran.
std::string refusal(const fs::path& config, const fs::path& out) {
  try {
    run_study(config.string(), out.string(), mpi::Communicator());
  } catch (const mpi::CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2) << f.what();
    return f.what();
  }
  return "";
}

TEST_F(BootstrapStudy, AResumeAfterAnInputFileChangedIsRefusedNamingItAndGoesOnOnceItIsRestored) {
  const fs::path config = dir_ / "inputs_change.toml", out = dir_ / "inputs_change";
  std::ofstream(config) << smoke_with({{"file = \"ridge.h5\"", "file = \"ridge_copy.h5\""}});
  fs::copy_file(dir_ / "ridge.h5", dir_ / "ridge_copy.h5", fs::copy_options::overwrite_existing);
  run_study(config.string(), out.string(), mpi::Communicator(), RunOptions{"1-2"});
  // Regenerated in place with another lambda (ridge.h5's is 0.05).
  const std::string cmd = gradmatch::test_inputs::python_command() + "-c \"import h5py, numpy as np\n"
                          "h5py.File('" + (dir_ / "ridge_copy.h5").string() + "', 'w')['lambda'] = np.array([0.5])\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string msg = refusal(config, out);
  EXPECT_NE(msg.find("an input file changed since the store was made (penalty.file: "), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out / "summary.json"));
  fs::copy_file(dir_ / "ridge.h5", dir_ / "ridge_copy.h5", fs::copy_options::overwrite_existing);
  run_study(config.string(), out.string(), mpi::Communicator());
  EXPECT_TRUE(fs::exists(out / "summary.json"));
  const nlohmann::json info = nlohmann::json::parse(std::ifstream(out / "run_info.json"));
  const std::string made_with = info.at("store").at("made_with").get<std::string>();
  EXPECT_EQ(made_with.rfind("gradmatch ", 0), 0u) << made_with;
  EXPECT_EQ(made_with.substr(made_with.find(", ") + 2), info.at("devices").at(0).get<std::string>());
}

TEST_F(BootstrapStudy, AFileTheConfigNamesIsCheckedAtItsKeyAndLineAndNothingIsWritten) {
  struct Case {
    std::string from, to, expected;
  };
  const std::vector<Case> cases{
      // Missing: found while reading the config (so --dry-run finds it too).
      {"file = \"linear.h5\"", "file = \"nope.h5\"", ":20: key 'data.file': " + (dir_ / "nope.h5").string() + " does not exist"},
      {"file = \"mlp.pt\"", "file = \"nope.pt\"", ":17: key 'model.file': " + (dir_ / "nope.pt").string() + " does not exist"},
      {"file = \"ridge.h5\"", "file = \"nope.h5\"", ":41: key 'penalty.file': " + (dir_ / "nope.h5").string() + " does not exist"},
      // There but wrong: found when read, reported at the key that named it.
      {"file = \"linear.h5\"", "file = \"mlp.pt\"", ":20: key 'data.file': " + (dir_ / "mlp.pt").string() + ": is not an HDF5 file"},
      {"file = \"mlp.pt\"", "file = \"linear.h5\"", ":17: key 'model.file': " + (dir_ / "linear.h5").string() + ": is not a TorchScript module"},
      {"loss = \"mse\"", "loss = \"ce\"", ":20: key 'data.file': " + (dir_ / "linear.h5").string() + ": data: the ce loss needs y as class indices"},
      {"candidates = [\"ridge\", \"nuclear\"]", "candidates = [\"frob\"]", ":45: key 'fit.candidates': candidate: unknown regularizer 'frob'"},
  };
  for (const Case& c : cases) {
    const fs::path config = dir_ / "bad_file.toml";
    std::ofstream(config) << smoke_with({{c.from, c.to}});
    const std::string msg = refusal(config, dir_ / "bad_file_out");
    EXPECT_EQ(msg.rfind(config.string() + c.expected, 0), 0u) << c.to << "\n" << msg;
    EXPECT_FALSE(fs::exists(dir_ / "bad_file_out")) << c.to;
  }
}

TEST_F(BootstrapStudy, APenaltyWithANonFiniteOrANegativeRidgeLambdaIsRefusedAtItsKey) {
  const std::string cmd = gradmatch::test_inputs::python_command() + "-c \"import h5py, numpy as np\n"
                          "for name, v in [('nan', np.nan), ('inf', np.inf), ('neg', -1.0)]:\n"
                          "    h5py.File('" + dir_.string() + "/lambda_' + name + '.h5', 'w')['lambda'] = np.array([v])\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  for (const char* name : {"nan", "inf", "neg"}) {
    const fs::path config = dir_ / "bad_penalty.toml";
    std::ofstream(config) << smoke_with({{"file = \"ridge.h5\"", std::string("file = \"lambda_") + name + ".h5\""}});
    const std::string msg = refusal(config, dir_ / "bad_penalty_out");
    EXPECT_EQ(msg.rfind(config.string() + ":41: key 'penalty.file': " + (dir_ / "lambda_").string() + name +
                            ".h5: dataset 'lambda' holds ",
                        0),
              0u)
        << msg;
    EXPECT_NE(msg.find(std::string(name) == "neg" ? "needs lambda >= 0" : "write finite values"), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(dir_ / "bad_penalty_out"));
  }
}

TEST_F(BootstrapStudy, ARunWhoseEveryReplicateDivergedSaysSoInItsSummaryAndFitsNothing) {
  const fs::path out = run("all_diverged", smoke_with({{"learning_rate = 0.05", "learning_rate = 500.0"},
                                                        {"stop = \"early_stopping\"", "stop = \"epochs\""}}));
  const nlohmann::json summary = json_of(out / "summary.json");
  EXPECT_EQ(summary.at("diverged"), 4);
  EXPECT_TRUE(summary.at("fits").empty());
  ASSERT_EQ(summary.at("warnings").size(), 1u);
  EXPECT_EQ(summary.at("warnings").at(0).get<std::string>().rfind("all 4 replicates diverged: no equations and no fits", 0),
            0u);
  EXPECT_FALSE(fs::exists(out / "equations.h5"));
  EXPECT_EQ(json_of(out / "run_info.json").at("tasks").at("diverged"), 4);
}

TEST_F(BootstrapStudy, ConfigErrorsNameTheKey) {
  const fs::path config = dir_ / "bad.toml";
  std::ofstream(config) << "study = \"bootstrap\"\n[model]\nfile = \"linear.pt\"\n[data]\nfile = \"linear.h5\"\n"
                           "[penalty]\nfamily = \"sym\"\n";
  io::ConfigReader reader(config.string());
  try {
    read_bootstrap_config(reader);
    ADD_FAILURE() << "accepted a penalty without its file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("penalty.file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gradmatch::studies
