#include "studies/ols_early_stopping.hpp"
#include "studies/registry.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/fit.hpp"
#include "core/ols.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;

const std::string kSmokeConfig = std::string(GRADMATCH_SOURCE_DIR) + "/configs/smoke/ols_early_stopping.toml";

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The study as one MPI rank (this binary is a singleton MPI job).
void run_one_rank(const std::string& config, const std::string& out) {
  run_study(config, out, mpi::Communicator());
}

// The agreed exit code of a failing run (2: bad input); 0 when it succeeds.
template <class F>
int exit_code_of(F&& f) {
  try {
    f();
  } catch (const mpi::CollectiveFailure& e) {
    return e.exit_code();
  }
  return 0;
}

// A fresh scratch directory per test, removed afterwards.
class OlsEarlyStoppingStudy : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = "gradmatch-studies-";
    name += ::testing::UnitTest::GetInstance()->current_test_info()->name();
    name += "-";
    name += std::to_string(::getpid());
    root_ = fs::temp_directory_path() / name;
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  // The smoke config with `line` added at the top of `[table]`.
  std::string config_with(const std::string& table, const std::string& line) {
    std::string text = slurp(kSmokeConfig);
    const std::string header = "[" + table + "]\n";
    text.insert(text.find(header) + header.size(), line + "\n");
    const fs::path path = root_ / "config.toml";
    std::ofstream(path) << text;
    return path.string();
  }
  fs::path root_;
};

TEST_F(OlsEarlyStoppingStudy, SmokeRunMeetsTheExactTheoryTargetsAndWritesEveryOutput) {
  const fs::path out = root_ / "run";
  run_one_rank(kSmokeConfig, out.string());
  for (const char* name : {"results.h5", "summary.json", "run_info.json", "equations_canonical.h5",
                           "equations_fixed_iterate_pool0.h5", "equations_variable_stop_pool0.h5",
                           "equations_bootstrap_pool0.h5", "equations_lambda_trace_t1000.h5"})
    EXPECT_TRUE(fs::exists(out / name)) << name;

  const nlohmann::json s = nlohmann::json::parse(slurp(out / "summary.json"));
  EXPECT_EQ(s.at("stop_epoch").get<std::int64_t>(), 300);  // the loss falls at every step: max_steps
  EXPECT_LT(s.at("fixed_iterate_rel_error").get<double>(), 1e-8);
  EXPECT_LT(s.at("diag_retrain_max_abs_diff").get<double>(), 1e-8);

  // Fixed iterate: underdetermined below m = p = 5, exact from m = p on.
  const auto fixed = s.at("fixed_iterate_distance_by_m").at("mean").get<std::vector<double>>();
  ASSERT_EQ(fixed.size(), 20u);
  EXPECT_GT(fixed[2], 1e-3);
  EXPECT_LT(fixed[4], 1e-10);

  // Panel E: closed form and theory both decay toward 0 and track each other;
  // Adam agrees with the closed form.
  const auto& trace = s.at("lambda_trace");
  const auto closed = trace.at("closed").get<std::vector<double>>();
  const auto theory = trace.at("theory").get<std::vector<double>>();
  const auto iterative = trace.at("iterative").get<std::vector<double>>();
  ASSERT_EQ(closed.size(), 6u);
  for (std::size_t i = 0; i < closed.size(); ++i) {
    if (i > 0) {
      EXPECT_LT(closed[i], closed[i - 1]);
      EXPECT_LT(theory[i], theory[i - 1]);
    }
    EXPECT_GT(closed[i] / theory[i], 0.5);
    EXPECT_LT(closed[i] / theory[i], 2.0);
    EXPECT_NEAR(iterative[i], closed[i], 1e-3 * closed[i]);
  }
  // ... and each is its closed form: the GD iterate theta_t satisfies -grad L =
  // 2 Lambda(t) theta_t, so the scalar ridge fit is theta^T Lambda(t) theta /
  // ||theta||^2; theory is tr(Lambda(t)) / p.
  io::ConfigReader reader(kSmokeConfig);
  const OlsEarlyStoppingConfig config = read_ols_config(reader);
  const OlsShared shared = prepare_shared(config);
  const auto steps = trace.at("t").get<std::vector<std::int64_t>>();
  ASSERT_EQ(steps.size(), closed.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const std::vector<double> theta = ols::gradient_descent(shared.moments, config.learning_rate, steps[i]).theta;
    const Matrix lambda = ols::ali_lambda(shared.spectrum, config.learning_rate, steps[i]);
    const auto p = static_cast<std::int64_t>(theta.size());
    double quadratic = 0.0, norm2 = 0.0;
    for (std::int64_t a = 0; a < p; ++a) {
      norm2 += theta[static_cast<std::size_t>(a)] * theta[static_cast<std::size_t>(a)];
      for (std::int64_t b = 0; b < p; ++b)
        quadratic += theta[static_cast<std::size_t>(a)] * lambda(a, b) * theta[static_cast<std::size_t>(b)];
    }
    EXPECT_NEAR(closed[i], quadratic / norm2, 1e-9 * closed[i]) << "t = " << steps[i];
    double trace_sum = 0.0;
    for (std::int64_t a = 0; a < p; ++a) trace_sum += lambda(a, a);
    EXPECT_NEAR(theory[i], trace_sum / static_cast<double>(p), 1e-12 * theory[i]) << "t = " << steps[i];
  }
  EXPECT_LT(closed.back(), 1e-3 * closed.front());

  const auto sweep = s.at("sigma_sweep");
  EXPECT_EQ(sweep.at("distance").size(), 3u);
  EXPECT_EQ(sweep.at("zero_baseline").size(), 3u);
  EXPECT_EQ(s.at("bootstrap_distance_by_m").at("mean").size(), 20u);
}

TEST_F(OlsEarlyStoppingStudy, EquationFilesReproduceTheStoredLambdaHat) {
  const fs::path out = root_ / "run";
  run_one_rank(kSmokeConfig, out.string());
  const struct {
    const char* file;
    const char* dataset;
  } pairs[] = {{"equations_fixed_iterate_pool0.h5", "fixed_iterate/lambda_hat_pool0"},
               {"equations_variable_stop_pool0.h5", "variable_stop/lambda_hat_pool0"},
               {"equations_bootstrap_pool0.h5", "bootstrap/lambda_hat_pool0"}};
  FitOptions sym;
  sym.family = FamilySpec::parse("sym");
  for (const auto& pr : pairs) {
    const Equations eq = io::read_equation_file((out / pr.file).string());
    EXPECT_EQ(eq.m(), 20);
    const Matrix fitted = fit(eq, sym).lambda_matrix();
    const Matrix stored(5, 5, io::read_doubles((out / "results.h5").string(), pr.dataset));
    EXPECT_LT(frobenius_distance(fitted, stored), 1e-10 * frobenius_norm(stored)) << pr.file;
  }
  FitOptions diag;
  diag.family = FamilySpec::parse("diag");
  const std::vector<double> q = fit(io::read_equation_file((out / "equations_canonical.h5").string()), diag).coefficients;
  const std::vector<double> stored = io::read_doubles((out / "results.h5").string(), "canonical/q_hat");
  ASSERT_EQ(q.size(), stored.size());
  for (std::size_t j = 0; j < q.size(); ++j) EXPECT_NEAR(q[j], stored[j], 1e-12 * std::abs(stored[j]));
}

TEST_F(OlsEarlyStoppingStudy, ThePanelsTargetsAreAliEtAlsLambdaAtTheStepsTheResultsRecord) {
  // Each panel's distance is ||Lambda-hat - target||_F with its own target:
  // variable stop, the elementwise median over a pool of Lambda(t_k) at the
  // endpoints' own stop steps; the bootstrap, Lambda at the canonical
  // endpoint's step; the sweep, Lambda at sweep_steps. Recomputed here from the
  // steps results.h5 records, so an off-by-one step or a wrong median fails.
  const fs::path out = root_ / "run";
  run_one_rank(kSmokeConfig, out.string());
  const std::string results = (out / "results.h5").string();
  const auto read = [&](const char* name) { return io::read_doubles(results, name); };
  io::ConfigReader reader(kSmokeConfig);
  const OlsEarlyStoppingConfig config = read_ols_config(reader);
  const OlsShared shared = prepare_shared(config);
  const double lr = config.learning_rate;
  constexpr std::int64_t p = 5, endpoints = 20;
  const auto lambda_at = [&](double steps) { return ols::ali_lambda(shared.spectrum, lr, std::llround(steps)); };
  const auto close = [](const Matrix& a, const Matrix& b, const char* what) {
    EXPECT_LT(frobenius_distance(a, b), 1e-12 * frobenius_norm(b)) << what;
  };

  // Variable stop, pool 0: the median (of 20: the mean of the 10th and 11th) entry by entry.
  const std::vector<double> stop_steps = read("variable_stop/stop_steps");
  ASSERT_EQ(stop_steps.size(), 2u * endpoints);
  std::vector<Matrix> lambdas;
  for (std::int64_t e = 0; e < endpoints; ++e) lambdas.push_back(lambda_at(stop_steps[static_cast<std::size_t>(e)]));
  Matrix median(p, p);
  for (std::int64_t i = 0; i < p * p; ++i) {
    std::vector<double> v;
    for (const Matrix& l : lambdas) v.push_back(l.data()[i]);
    std::sort(v.begin(), v.end());
    median.data()[i] = 0.5 * (v[9] + v[10]);
  }
  const std::vector<double> medians = read("variable_stop/lambda_median");
  close(Matrix(p, p, std::vector<double>(medians.begin(), medians.begin() + p * p)), median, "variable_stop target");
  const Matrix variable_hat(p, p, read("variable_stop/lambda_hat_pool0"));
  EXPECT_NEAR(read("variable_stop/distance")[endpoints - 1], frobenius_distance(variable_hat, median),
              1e-10 * frobenius_norm(median));

  // Bootstrap: Lambda at the canonical endpoint's step; zero baseline its norm; the full pool beats zero.
  const double bootstrap_steps = read("bootstrap/steps").at(0);
  EXPECT_EQ(bootstrap_steps, static_cast<double>(shared.bootstrap_canonical.steps));
  const Matrix theory = lambda_at(bootstrap_steps);
  close(Matrix(p, p, read("bootstrap/lambda_theory")), theory, "bootstrap target");
  EXPECT_NEAR(read("bootstrap/zero_baseline").at(0), frobenius_norm(theory), 1e-12 * frobenius_norm(theory));
  const double full_pool = frobenius_distance(Matrix(p, p, read("bootstrap/lambda_hat_pool0")), theory);
  EXPECT_NEAR(read("bootstrap/distance")[endpoints - 1], full_pool, 1e-10 * frobenius_norm(theory));
  EXPECT_LT(full_pool, frobenius_norm(theory));

  // Sigma sweep: one target for every sigma, at sweep_steps.
  EXPECT_EQ(read("sigma_sweep/steps").at(0), static_cast<double>(config.sweep_steps));
  const double sweep_norm = frobenius_norm(lambda_at(static_cast<double>(config.sweep_steps)));
  for (const double z : read("sigma_sweep/zero_baseline")) EXPECT_NEAR(z, sweep_norm, 1e-12 * sweep_norm);
}

TEST_F(OlsEarlyStoppingStudy, SummaryIsByteIdenticalAcrossRuns) {
  run_one_rank(kSmokeConfig, (root_ / "a").string());
  run_one_rank(kSmokeConfig, (root_ / "b").string());
  const std::string a = slurp(root_ / "a" / "summary.json");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, slurp(root_ / "b" / "summary.json"));
}

// A task's draws are keyed by (seed, task id): the same task gives the same
// endpoint whatever else the config asks for and in whatever order it runs.
TEST_F(OlsEarlyStoppingStudy, TaskResultsDependOnTheTaskIdNotOnOrderOrCounts) {
  io::ConfigReader reader(kSmokeConfig);
  const OlsEarlyStoppingConfig small = read_ols_config(reader);
  OlsEarlyStoppingConfig large = small;
  large.fixed_iterate.pools += 3;
  large.sweep_sigmas.push_back(30.0);
  const OlsShared shared_small = prepare_shared(small), shared_large = prepare_shared(large);
  const std::vector<OlsTask> tasks = enumerate_tasks(small);
  for (std::size_t i : {tasks.size() - 1, std::size_t{7}, std::size_t{0}}) {  // out of order
    const OlsTaskResult a = run_task(small, shared_small, tasks[i]);
    const OlsTaskResult b = run_task(large, shared_large, tasks[i]);
    EXPECT_EQ(a.theta, b.theta);
    EXPECT_EQ(a.grad_loss, b.grad_loss);
  }
  EXPECT_NE(tasks[0].id(), tasks[1].id());
}

TEST_F(OlsEarlyStoppingStudy, SweepResamplesAreTheSameWhicheverOtherSigmasTheListHolds) {
  // The smoke list is [1, 4, 10]; sigma 4 alone (position 0, not 1) draws
  // the same resamples with draw_key = "value", other ones by position.
  io::ConfigReader reader(kSmokeConfig);
  const OlsEarlyStoppingConfig grid = read_ols_config(reader);
  ASSERT_EQ(grid.sweep_draw_key, "value");
  ASSERT_EQ(grid.sweep_sigmas.at(1), 4.0);
  OlsEarlyStoppingConfig alone = grid;
  alone.sweep_sigmas = {4.0};
  const OlsShared shared_grid = prepare_shared(grid), shared_alone = prepare_shared(alone);
  const OlsTask in_grid{OlsTaskKind::sigma_sweep, 1, 1, 3}, by_itself{OlsTaskKind::sigma_sweep, 0, 1, 3};
  const OlsTaskResult a = run_task(grid, shared_grid, in_grid);
  const OlsTaskResult b = run_task(alone, shared_alone, by_itself);
  EXPECT_EQ(a.theta, b.theta);
  EXPECT_EQ(a.grad_loss, b.grad_loss);
  // Other resamples of the same sigma differ (the comparison is not of one number).
  const OlsTaskResult other = run_task(grid, shared_grid, OlsTask{OlsTaskKind::sigma_sweep, 1, 1, 4});
  EXPECT_NE(other.theta, a.theta);
  // By position (the behaviour before the key) sigma 4 alone drew other resamples.
  OlsEarlyStoppingConfig grid_position = grid, alone_position = alone;
  grid_position.sweep_draw_key = alone_position.sweep_draw_key = "position";
  const OlsTaskResult c = run_task(grid_position, shared_grid, in_grid);
  const OlsTaskResult d = run_task(alone_position, shared_alone, by_itself);
  EXPECT_NE(c.theta, d.theta);
  // The other kinds keep their draws keyed by the task id either way.
  const OlsTask bootstrap{OlsTaskKind::bootstrap, 0, 0, 2};
  EXPECT_EQ(bootstrap.draw_stream(grid), bootstrap.id());
  EXPECT_EQ(in_grid.draw_stream(grid_position), in_grid.id());
  EXPECT_NE(in_grid.draw_stream(grid), in_grid.id());
}

TEST_F(OlsEarlyStoppingStudy, UnknownKeyIsAnInputErrorAndWritesNothing) {
  const std::string config = config_with("fixed_iterate", "endpoint = 20");
  EXPECT_EQ(exit_code_of([&] { run_one_rank(config, (root_ / "out").string()); }), 2);
  EXPECT_FALSE(fs::exists(root_ / "out"));
}

TEST_F(OlsEarlyStoppingStudy, OutOfRangeValueIsAnInputErrorAndWritesNothing) {
  for (const char* line : {"show_m = 21", "pools = 0"}) {
    std::string text = slurp(kSmokeConfig);
    const std::string header = "[fixed_iterate]\n";
    const auto at = text.find(header) + header.size();
    // Replace the key's existing line so that it is defined once.
    const std::string key = std::string(line).substr(0, std::string(line).find(' '));
    const auto start = text.find(key + " =", at);
    text.replace(start, text.find('\n', start) - start, line);
    const fs::path path = root_ / "bad.toml";
    std::ofstream(path) << text;
    EXPECT_EQ(exit_code_of([&] { run_one_rank(path.string(), (root_ / "out").string()); }), 2) << line;
    EXPECT_FALSE(fs::exists(root_ / "out")) << line;
  }
}

TEST_F(OlsEarlyStoppingStudy, LearningRateBeyondAliStabilityIsAnInputErrorAndWritesNothing) {
  std::string text = slurp(kSmokeConfig);
  const auto start = text.find("learning_rate = 0.01");
  text.replace(start, std::string("learning_rate = 0.01").size(), "learning_rate = 1.5");
  const fs::path path = root_ / "bad.toml";
  std::ofstream(path) << text;
  EXPECT_EQ(exit_code_of([&] { run_one_rank(path.string(), (root_ / "out").string()); }), 2);
  EXPECT_FALSE(fs::exists(root_ / "out"));
}

TEST_F(OlsEarlyStoppingStudy, TaskLabelsNumberEveryTaskInTableOrderFromTheConfigAlone) {
  const std::unique_ptr<Study> study = make_ols_early_stopping_study();
  io::ConfigReader reader(kSmokeConfig);
  study->configure(reader);
  const std::vector<std::string> labels = study->task_labels();  // what --dry-run prints: no prepare()
  StudyContext context;
  context.rank.blas = "reference";
  study->prepare(context);
  std::size_t k = 0;
  for (const TaskTable& table : study->tables())
    for (std::size_t row = 0; row < table.ids.size(); ++row, ++k) {
      ASSERT_LT(k, labels.size());
      EXPECT_EQ(labels[k].rfind(table.name + " ", 0), 0u) << k << ": " << labels[k];
    }
  EXPECT_EQ(k, labels.size());
  // Smoke: 2 pools of 20 endpoints per kind; the sweep's sigmas are 1, 4, 10.
  EXPECT_EQ(labels.front(), "fixed_iterate pool 0, endpoint 0");
  EXPECT_EQ(labels[40], "variable_stop pool 0, endpoint 0");
  EXPECT_EQ(labels.back(), "sigma_sweep sigma 10, pool 1, endpoint 19");
}

}  // namespace
}  // namespace gradmatch::studies
