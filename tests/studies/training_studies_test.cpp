// The LibTorch studies (elastic_net, paper Figure 3; dropout, Figure 5) at
// smoke scale, through the task farm and the run store: byte-identical
// outputs to a one-rank reference, the numbers each smoke run must reach,
// summary keys and shapes, the equation files reproducing the stored fits,
// resume, refusal and config errors. Registered at 2 ranks (the runs are
// compared with a one-rank reference run in the same job).
#include <gtest/gtest.h>

#include "study_files.hpp"
#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/fit.hpp"
#include "mpi/mpi.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "studies/dropout.hpp"
#include "studies/task_progress.hpp"
#include "studies/elastic_net.hpp"
#include "studies/registry.hpp"
#include "training/device.hpp"
#include "../required_inputs.hpp"
#include "../mpi/shared_scratch.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;
using mpi::Communicator;

using namespace test_support;

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

const nlohmann::json& cell_of(const nlohmann::json& summary, const std::map<std::string, double>& keys) {
  for (const auto& cell : summary.at("cells")) {
    bool match = true;
    for (const auto& [key, value] : keys) match = match && std::abs(cell.at(key).get<double>() - value) < 1e-12;
    if (match) return cell;
  }
  throw std::runtime_error("no such cell in summary.json");
}

std::set<std::string> keys_of(const nlohmann::json& object) {
  std::set<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.insert(key);
  return keys;
}

class TrainingStudies : public mpi::testing::SharedScratchTest {
 protected:
  TrainingStudies() : SharedScratchTest("gradmatch-training-studies-") {}
  // The reference: rank 0 alone (MPI_COMM_SELF), as a one-rank run.
  void run_reference(const std::string& config, const fs::path& out) {
    if (world_.is_root()) run_study(config, out.string(), Communicator(MPI_COMM_SELF));
    world_.barrier();
  }
  // Runs `config` into `out` again once its outputs are removed: the store's
  // finished tasks resume; returns run_info.json's `tasks` (rank 0; {} elsewhere).
  nlohmann::json rerun_without_outputs(const std::string& config, const fs::path& out) {
    if (world_.is_root())
      for (const char* name : {"summary.json", "results.h5", "run_info.json"}) fs::remove(out / name);
    world_.barrier();
    run_study(config, out.string(), world_);
    return world_.is_root() ? json_of(out / "run_info.json").at("tasks") : nlohmann::json::object();
  }
  // The smoke config with `line` added at the top of `[table]`, written by rank 0.
  std::string config_with(const std::string& study, const std::string& table, const std::string& line) {
    const fs::path path = root_ / (study + "-edited.toml");
    if (world_.is_root()) {
      std::string text = slurp(smoke(study));
      const std::string header = "[" + table + "]\n";
      text.insert(text.find(header) + header.size(), line + "\n");
      std::ofstream(path) << text;
    }
    world_.barrier();
    return path.string();
  }

  // The smoke config with its text `from` replaced by `to`, written by rank 0.
  std::string config_replacing(const std::string& study, const std::string& from, const std::string& to) {
    const fs::path path = root_ / (study + "-replaced.toml");
    if (world_.is_root()) {
      std::string text = slurp(smoke(study));
      text.replace(text.find(from), from.size(), to);
      std::ofstream(path) << text;
    }
    world_.barrier();
    return path.string();
  }

  // The smoke config with each (from, to) replaced in turn (each `from` must occur), written by rank 0 as NAME.toml.
  std::string config_replacing_all(const std::string& study, const std::vector<std::pair<std::string, std::string>>& edits,
                                   const std::string& name) {
    const fs::path path = root_ / (name + ".toml");
    if (world_.is_root()) {
      std::string text = slurp(smoke(study));
      for (const auto& [from, to] : edits) {
        const auto at = text.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        if (at != std::string::npos) text.replace(at, from.size(), to);
      }
      std::ofstream(path) << text;
    }
    world_.barrier();
    return path.string();
  }
};

// ---- elastic_net --------------------------------------------------------------

TEST_F(TrainingStudies, ElasticNetGivesByteIdenticalOutputsToOneRankAndRecoversTheWellIdentifiedCells) {
  run_reference(smoke("elastic_net"), root_ / "one");
  run_study(smoke("elastic_net"), (root_ / "all").string(), world_);
  if (!world_.is_root()) return;

  const auto reference = outputs(root_ / "one");
  EXPECT_EQ(reference.size(), 2u + 4u);          // results, summary, one equation file per cell
  EXPECT_EQ(outputs(root_ / "all"), reference);  // byte for byte
  const nlohmann::json info = json_of(root_ / "all" / "run_info.json");
  EXPECT_EQ(info.at("ranks").get<int>(), world_.size());
  EXPECT_EQ(info.at("tasks").at("total").get<std::int64_t>(), 2);  // one task per seed: its 4 cells batched
  EXPECT_EQ(info.at("tasks").at("diverged").get<std::int64_t>(), 0);

  // Summary keys and shapes.
  const nlohmann::json s = json_of(root_ / "one" / "summary.json");
  EXPECT_EQ(s.at("study"), "elastic_net");
  EXPECT_EQ(s.at("parameters").get<std::int64_t>(), 10 * 50 + 50 + 50 + 1);
  ASSERT_EQ(s.at("cells").size(), 4u);
  for (const auto& cell : s.at("cells")) {
    for (const char* key : {"lambda1", "lambda2", "lambda1_hat_mean", "lambda1_hat_se", "lambda2_hat_mean",
                            "lambda2_hat_se", "residual_ratio_median", "cosine_median", "relative_grad_norm_median",
                            "condition_number_median", "lambda1_pooled", "lambda2_pooled", "residual_ratio_pooled"}) {
      ASSERT_TRUE(cell.contains(key)) << key;
      EXPECT_TRUE(std::isfinite(cell.at(key).get<double>())) << key;
    }
    EXPECT_EQ(cell.at("seeds").get<std::int64_t>(), 2);
    EXPECT_GT(cell.at("lambda1_hat_se").get<double>(), 0.0);
    const double rr = cell.at("residual_ratio_median").get<double>();
    EXPECT_GT(rr, 0.0);
    EXPECT_LT(rr, 1.0);
  }

  // Well-identified cells (measured: lambda2-hat 0.0995 +- 0.006 at (1e-3, 0.1);
  // lambda1-hat 0.926 +- 0.046 at (1, 1e-3)): within a factor 1.25 of the truth,
  // and far better explained than the weakly penalised cell (residual ratio
  // 0.21 and 0.29 against 0.96 at (1e-3, 1e-3)).
  const nlohmann::json& ridge = cell_of(s, {{"lambda1", 1e-3}, {"lambda2", 0.1}});
  EXPECT_GT(ridge.at("lambda2_hat_mean").get<double>(), 0.1 / 1.25);
  EXPECT_LT(ridge.at("lambda2_hat_mean").get<double>(), 0.1 * 1.25);
  EXPECT_LT(ridge.at("residual_ratio_median").get<double>(), 0.4);
  const nlohmann::json& huber = cell_of(s, {{"lambda1", 1.0}, {"lambda2", 1e-3}});
  EXPECT_GT(huber.at("lambda1_hat_mean").get<double>(), 1.0 / 1.25);
  EXPECT_LT(huber.at("lambda1_hat_mean").get<double>(), 1.0 * 1.25);
  EXPECT_LT(huber.at("residual_ratio_median").get<double>(), 0.4);
  const nlohmann::json& weak = cell_of(s, {{"lambda1", 1e-3}, {"lambda2", 1e-3}});
  EXPECT_GT(weak.at("residual_ratio_median").get<double>(), 0.8);  // little penalty, little signal

  // The cell's equation file reproduces its pooled fit with `gradmatch fit`'s code.
  const Equations eq = io::read_equation_file((root_ / "one" / "equations_l1_0_l2_1.h5").string());
  EXPECT_EQ(eq.m(), 2);
  EXPECT_EQ(eq.p(), 601);
  FitOptions o;
  o.family = FamilySpec::parse("elastic-net:beta=0.001");
  const FitResult f = fit(eq, o);
  EXPECT_NEAR(f.coefficient(0), ridge.at("lambda1_pooled").get<double>(), 1e-12);
  EXPECT_NEAR(f.coefficient(1), ridge.at("lambda2_pooled").get<double>(), 1e-12);

  // results.h5 holds the per-seed estimates [lambda1, lambda2, seeds] whose mean is the summary's.
  std::vector<std::int64_t> shape;
  const std::vector<double> l2 =
      io::read_doubles((root_ / "one" / "results.h5").string(), "endpoints/lambda2_hat", &shape);
  EXPECT_EQ(shape, (std::vector<std::int64_t>{2, 2, 2}));
  EXPECT_NEAR(0.5 * (l2[2] + l2[3]), ridge.at("lambda2_hat_mean").get<double>(), 1e-15);
  // Every cell's mean and standard error from its two seeds: se = |x0 - x1| / 2.
  const std::vector<double> l1 = io::read_doubles((root_ / "one" / "results.h5").string(), "endpoints/lambda1_hat");
  const std::vector<double> grid1{1e-3, 1.0}, grid2{1e-3, 0.1};
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 2; ++j) {
      const nlohmann::json& cell = cell_of(s, {{"lambda1", grid1[i]}, {"lambda2", grid2[j]}});
      const std::size_t at = (i * 2 + j) * 2;
      for (const auto& [values, name] : {std::pair{&l1, std::string("lambda1_hat")}, std::pair{&l2, std::string("lambda2_hat")}}) {
        const double x0 = (*values)[at], x1 = (*values)[at + 1];
        const double mean = cell.at(name + "_mean").get<double>(), se = cell.at(name + "_se").get<double>();
        EXPECT_NEAR(mean, 0.5 * (x0 + x1), 1e-12 * std::abs(mean)) << name << " " << i << j;
        EXPECT_NEAR(se, 0.5 * std::abs(x0 - x1), 1e-12 * se) << name << " " << i << j;
      }
    }
}

TEST_F(TrainingStudies, ElasticNetTaskIdsAndDrawsDoNotDependOnTheGrid) {
  ElasticNetConfig c;
  EXPECT_EQ(enumerate_elastic_net_tasks(c).size(), 10u);  // paper scale: one task per seed
  EXPECT_EQ((ElasticNetTask{3, 0}.id()), (std::uint64_t{1} << 56) | (std::uint64_t{3} << 24));
  c.cells_per_task = 5;  // 36 cells in blocks of 5: 8 blocks
  EXPECT_EQ(c.blocks(), 8);
  EXPECT_EQ(enumerate_elastic_net_tasks(c).size(), 80u);
  EXPECT_EQ(c.parameters(), 10 * 200 + 200 + 200 + 1);

  // One cell, (lambda1, lambda2) = (1e-3, 0.1), alone and inside a 2 x 2 grid
  // trained as one batch (a small float64 network, seed 1): the same data,
  // initial weights, batch order and therefore the same endpoint.
  ElasticNetConfig alone;
  alone.n = 200;
  alone.hidden = 16;
  alone.max_epochs = 4;
  alone.seeds = 2;
  alone.float64 = true;
  alone.lambda1 = {1e-3};
  alone.lambda2 = {0.1};
  ElasticNetConfig grid = alone;
  grid.lambda1 = {1e-3, 1.0};
  grid.lambda2 = {1e-3, 0.1};
  const std::vector<ElasticNetEndpoint> a = run_elastic_net_task(alone, ElasticNetTask{1, 0});
  const std::vector<ElasticNetEndpoint> g = run_elastic_net_task(grid, ElasticNetTask{1, 0});
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(g.size(), 4u);  // lambda1-major: the cell is the second
  EXPECT_EQ(g[1].theta, a[0].theta);
  EXPECT_EQ(g[1].grad_loss, a[0].grad_loss);
  EXPECT_EQ(g[1].lambda2_hat, a[0].lambda2_hat);
  EXPECT_EQ(g[1].epochs, a[0].epochs);
  // ... and in a grid cut into blocks of one cell, where it is block 1.
  grid.cells_per_task = 1;
  const std::vector<ElasticNetEndpoint> b = run_elastic_net_task(grid, ElasticNetTask{1, 1});
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].theta, a[0].theta);
  // Another seed's data and start differ.
  const std::vector<ElasticNetEndpoint> other = run_elastic_net_task(alone, ElasticNetTask{0, 0});
  EXPECT_NE(other[0].theta, a[0].theta);
}

TEST_F(TrainingStudies, ElasticNetConfigErrorsNameTheFileAndKey) {
  const std::string bad = config_with("elastic_net", "grid", "lambda3 = [1.0]");
  io::ConfigReader reader(bad);
  try {
    read_elastic_net_config(reader);
    ADD_FAILURE() << "an unknown key was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("grid.lambda3"), std::string::npos) << e.what();
  }
  const std::string decreasing = config_replacing("elastic_net", "lambda1 = [1e-3, 1.0]", "lambda1 = [1.0, 1e-3]");
  EXPECT_EQ(exit_code_of([&] { run_study(decreasing, (root_ / "never").string(), world_); }), 2);
  if (world_.is_root()) {
    EXPECT_FALSE(fs::exists(root_ / "never"));  // nothing written on bad input
  }
}

// ---- dropout ------------------------------------------------------------------

TEST_F(TrainingStudies, DropoutGivesByteIdenticalOutputsToOneRankAndItsDiagnosticsHold) {
  run_reference(smoke("dropout"), root_ / "one");
  run_study(smoke("dropout"), (root_ / "all").string(), world_);
  if (!world_.is_root()) return;

  const auto reference = outputs(root_ / "one");
  EXPECT_EQ(reference.size(), 2u + 4u);          // results, summary, one equation file per task
  EXPECT_EQ(outputs(root_ / "all"), reference);  // byte for byte
  // 4 classifiers in 2 tasks (replicates_per_task = 2).
  const nlohmann::json info = json_of(root_ / "all" / "run_info.json");
  EXPECT_EQ(info.at("tasks").at("total").get<std::int64_t>(), 2);
  EXPECT_EQ(info.at("trainings"), nlohmann::json({{"total", 4}, {"diverged", 0}}));

  const nlohmann::json s = json_of(root_ / "one" / "summary.json");
  EXPECT_EQ(s.at("study"), "dropout");
  ASSERT_EQ(s.at("cells").size(), 2u);  // 1 depth x 1 width x 2 rates
  const std::set<std::string> required{"depth",
                                       "width",
                                       "rate",
                                       "lambda_hat_median",
                                       "lambda_penalty_median",
                                       "lambda_nonstationary_median",
                                       "dropout_grad_norm_median",
                                       "cosine_median",
                                       "margin_identity_max_error",
                                       "adam_lambda_median",
                                       "residual_ratio_median",
                                       "relative_grad_norm_median",
                                       "test_accuracy_median",
                                       "best_epoch_median"};
  for (const auto& cell : s.at("cells")) {
    const std::set<std::string> keys = keys_of(cell);
    for (const std::string& key : required) EXPECT_TRUE(keys.count(key)) << key;
    EXPECT_EQ(cell.at("seeds").get<std::int64_t>(), 2);
    // A 10-class classifier after 30 epochs on 900 images: well above chance.
    EXPECT_GT(cell.at("test_accuracy_median").get<double>(), 0.5);
    EXPECT_LT(cell.at("margin_identity_max_error").get<double>(), 1e-8);
  }
  ASSERT_EQ(s.at("trends").size(), 1u);

  // Measured: lambda-hat median -7.8e-4 at rate 0 and 3.1e-3 at rate 0.5 (ratio
  // -0.26): the estimate grows with the rate and rate 0 stays near 0 against it.
  const double at0 = cell_of(s, {{"rate", 0.0}}).at("lambda_hat_median").get<double>();
  const double at5 = cell_of(s, {{"rate", 0.5}}).at("lambda_hat_median").get<double>();
  EXPECT_GT(at5, 0.0);
  EXPECT_LT(std::abs(at0), 0.5 * at5);
  // So the trend over two rates is a rise: Spearman 1 exactly, monotone, and its end points are those medians.
  const auto& trend = s.at("trends")[0];
  EXPECT_EQ(trend.at("spearman").get<double>(), 1.0);
  EXPECT_TRUE(trend.at("monotone_increasing").get<bool>());
  EXPECT_EQ(trend.at("lambda_hat_median_first_rate").get<double>(), at0);
  EXPECT_EQ(trend.at("lambda_hat_median_last_rate").get<double>(), at5);
  // ... and the stationarity diagnostics say not to trust either: the
  // unbiased ||g_p|| / ||theta|| of the dropout objective is 0.05-0.15 at
  // these endpoints (the trust rule's bound is 1e-3).
  EXPECT_EQ(s.at("untrusted_cells").get<std::int64_t>(), 2);

  // Per endpoint: the scalar-ridge identities |lambda-hat| = cosine ||grad L|| / (2 ||theta||)
  // (the cosine is between b and the fitted 2 lambda-hat theta, so never negative)
  // and residual_ratio^2 + cosine^2 = 1, and each equation file reproduces lambda-hat.
  const std::string results = (root_ / "one" / "results.h5").string();
  std::vector<std::int64_t> shape;
  const auto lambda = io::read_doubles(results, "endpoints/lambda_hat", &shape);
  EXPECT_EQ(shape, (std::vector<std::int64_t>{1, 1, 2, 2}));
  const auto cosine = io::read_doubles(results, "endpoints/cosine");
  const auto residual = io::read_doubles(results, "endpoints/residual_ratio");
  const auto relative = io::read_doubles(results, "endpoints/relative_grad_norm");
  const auto penalty = io::read_doubles(results, "endpoints/lambda_penalty");
  const auto nonstationary = io::read_doubles(results, "endpoints/lambda_nonstationary");
  const auto dropout_norm = io::read_doubles(results, "endpoints/dropout_grad_norm");
  const auto plugin_norm = io::read_doubles(results, "endpoints/dropout_grad_norm_plugin");
  const auto margin_error = io::read_doubles(results, "endpoints/margin_identity_error");
  // The epoch of the best validation loss (keep_best = false, max_epochs 30,
  // patience 10): a network stopped early stopped 10 epochs after it; one
  // that ran all 30 had it within them. Each cell's median is its seeds'.
  const auto best = io::read_doubles(results, "endpoints/best_epoch");
  const auto trained = io::read_doubles(results, "endpoints/epochs");
  ASSERT_EQ(best.size(), 4u);
  for (std::size_t k = 0; k < 4; ++k) {
    if (trained[k] < 30) {
      EXPECT_EQ(best[k], trained[k] - 10) << k;
    }
    EXPECT_GE(best[k], 1.0) << k;
    EXPECT_LE(best[k], trained[k]) << k;
  }
  EXPECT_EQ(cell_of(s, {{"rate", 0.0}}).at("best_epoch_median").get<double>(), 0.5 * (best[0] + best[1]));
  EXPECT_EQ(cell_of(s, {{"rate", 0.5}}).at("best_epoch_median").get<double>(), 0.5 * (best[2] + best[3]));
  const char* files[] = {"equations_d2_w32_r0000_s0.h5", "equations_d2_w32_r0000_s1.h5", "equations_d2_w32_r5000_s0.h5",
                         "equations_d2_w32_r5000_s1.h5"};
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_NEAR(std::abs(lambda[k]), 0.5 * cosine[k] * relative[k], 1e-10 * std::abs(lambda[k]));
    EXPECT_NEAR(residual[k] * residual[k] + cosine[k] * cosine[k], 1.0, 1e-12);
    // lambda-hat = lambda_R + lambda_ns exactly; Euler's margin identity to rounding.
    EXPECT_NEAR(penalty[k] + nonstationary[k], lambda[k], 1e-12 * std::abs(lambda[k]));
    EXPECT_LT(margin_error[k], 1e-8);
    // The split-half estimate never exceeds the plug-in one (their difference is ||g_A - g_B||^2 / 4).
    EXPECT_LE(dropout_norm[k], plugin_norm[k]);
    if (k < 2) {  // rate 0: g_p is the eval-mode gradient
      EXPECT_LT(std::abs(penalty[k]), 1e-12 * std::abs(lambda[k]));
      EXPECT_NEAR(dropout_norm[k], relative[k], 1e-12 * relative[k]);
    } else {  // rate 0.5: dropout's own penalty points along +theta (measured lambda_R 2.2e-3, 3.5e-3)
      EXPECT_GT(penalty[k], 0.0);
    }
    const Equations eq = io::read_equation_file((root_ / "one" / files[k]).string());
    FitOptions o;
    o.family = FamilySpec::parse("ridge");
    EXPECT_NEAR(fit(eq, o).coefficient(), lambda[k], 1e-15) << files[k];
  }

  // The trend within seeds, from the endpoints above (index rate * 2 + seed):
  // two rates per seed make each seed's Spearman the sign of its rise, and
  // the 2 x 2 joint orders are counted exactly.
  for (const auto& [key, values] : {std::pair{"seed_trend", lambda}, std::pair{"seed_trend_penalty", penalty}}) {
    const auto sign = [](double d) { return d > 0.0 ? 1.0 : -1.0; };
    const double rho0 = sign(values[2] - values[0]), rho1 = sign(values[3] - values[1]);
    const double t = 0.5 * (rho0 + rho1);
    int at_least = 0, at_most = 0;
    for (const double a : {rho0, -rho0})
      for (const double b : {rho1, -rho1}) {
        at_least += 0.5 * (a + b) >= t;
        at_most += 0.5 * (a + b) <= t;
      }
    const auto& within = s.at("trends")[0].at(key);
    EXPECT_EQ(within.at("statistic").get<double>(), t) << key;
    EXPECT_EQ(within.at("p_increasing").get<double>(), at_least / 4.0) << key;
    EXPECT_EQ(within.at("p_decreasing").get<double>(), at_most / 4.0) << key;
    EXPECT_EQ(within.at("seeds").get<std::int64_t>(), 2) << key;
    EXPECT_EQ(within.at("permutations").get<std::int64_t>(), 4) << key;
    EXPECT_TRUE(within.at("exact").get<bool>()) << key;
  }
}

TEST_F(TrainingStudies, DropoutAdamParityOvershootsWithTheAuthorsSettingsAndReachesTheClosedFormWithoutThem) {
  // The authors' Adam fit (mean reduction, lr 0.05, ReduceLROnPlateau(0.5,
  // 10), 2000 epochs) started near lambda = 1 stops far above the closed
  // form: Adam's second moment (beta2 = 0.999) still holds the gradients of
  // lambda ~ 1, 10^3 times larger than those near lambda-hat, and the plateau
  // rule halves the rate whenever the epoch loss -- dominated by the part no
  // ridge explains (residual ratio ~0.99) -- improves by less than 1e-4
  // relative. Measured at rate 0.5: 0.0176 and 0.0193 against 0.00178 and
  // 0.00456. With neither (no plateau cuts, 30000 epochs) it lands on lambda-hat.
  const fs::path authors = root_ / "authors", patient = root_ / "patient";
  run_study(smoke("dropout"), authors.string(), world_);
  const std::string long_fit = config_replacing_all("dropout",
                                                    {{"adam_max_epochs = 2000", "adam_max_epochs = 30000"},
                                                     {"adam_patience = 100\n", "adam_patience = 30000\n"},
                                                     {"adam_plateau_patience = 10", "adam_plateau_patience = 100000000"}},
                                                    "dropout_patient");
  run_study(long_fit, patient.string(), world_);
  if (!world_.is_root()) return;
  const auto closed = io::read_doubles((authors / "results.h5").string(), "endpoints/lambda_hat");
  const auto exact = io::read_doubles((authors / "results.h5").string(), "endpoints/lambda_adam_exact");
  const auto adam = io::read_doubles((authors / "results.h5").string(), "endpoints/lambda_adam");
  const auto epochs = io::read_doubles((authors / "results.h5").string(), "endpoints/adam_epochs");
  const auto adam_patient = io::read_doubles((patient / "results.h5").string(), "endpoints/lambda_adam");
  for (std::size_t k = 0; k < 4; ++k)  // 900 rows: one mini-batch of 2048, whose optimum is lambda-hat
    EXPECT_NEAR(exact[k], closed[k], 1e-12 * std::abs(closed[k])) << k;
  for (std::size_t k = 2; k < 4; ++k) {  // rate 0.5: lambda-hat > 0, reachable by a log-parametrised fit
    ASSERT_GT(closed[k], 0.0);
    EXPECT_GT(adam[k], 3.0 * closed[k]) << k;
    EXPECT_EQ(epochs[k], 2000.0) << k;
    EXPECT_NEAR(adam_patient[k], closed[k], 1e-6 * closed[k]) << k;
  }
}

TEST_F(TrainingStudies, DropoutMatchedStationarityTrainsEachNetworkToTheTargetNorm) {
  // Smoke endpoints have ||g_p|| / ||theta|| of 0.05-0.15; ask for 0.03.
  const std::string matched = config_replacing_all("dropout",
                                                   {{"match = false", "match = true"},
                                                    {"target = 3e-4", "target = 0.03"},
                                                    {"learning_rate = 5e-3", "learning_rate = 0.01"},
                                                    {"round_epochs = 20", "round_epochs = 5"},
                                                    {"max_rounds = 10", "max_rounds = 4"}},
                                                   "dropout_matched");
  const fs::path out = root_ / "matched";
  run_study(matched, out.string(), world_);
  if (!world_.is_root()) return;
  const std::string results = (out / "results.h5").string();
  const auto reached = io::read_doubles(results, "endpoints/matched");
  const auto rounds = io::read_doubles(results, "endpoints/match_rounds");
  const auto epochs = io::read_doubles(results, "endpoints/match_epochs");
  const auto norm = io::read_doubles(results, "endpoints/dropout_grad_norm");
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(reached[k], 1.0) << k;  // measured: 2-3 rounds each
    EXPECT_GE(rounds[k], 1.0) << k;
    EXPECT_EQ(epochs[k], 5.0 * rounds[k]) << k;
    // The endpoint's own estimate uses other mask draws than the matching's.
    EXPECT_LT(norm[k], 1.25 * 0.03) << k;
  }
  const nlohmann::json s = json_of(out / "summary.json");
  for (const auto& cell : s.at("cells")) EXPECT_EQ(cell.at("matched").get<std::int64_t>(), 2);
}

TEST_F(TrainingStudies, ElasticNetCellWithARankDeficientDesignIsNoDivergenceAndItsInfiniteConditionNumberIsKept) {
  // At (lambda1, lambda2) = (1, 10) the ridge drives every |theta_j| below
  // beta, where h'_beta(theta) = theta / beta is parallel to 2 theta: the
  // p x 2 design has rank 1, its condition number is inf and the standard
  // errors are NaN (not identified), in networks that trained. Such values
  // once marked the whole task diverged in the run store ("2 of 2 tasks
  // diverged: the outputs hold no estimate").
  const std::string cfg = config_replacing_all(
      "elastic_net", {{"lambda1 = [1e-3, 1.0]", "lambda1 = [0.01, 1.0]"}, {"lambda2 = [1e-3, 0.1]", "lambda2 = [1e-3, 10.0]"}},
      "elastic_net_rank_deficient");
  const fs::path out = root_ / "rank_deficient";
  run_study(cfg, out.string(), world_);
  if (world_.is_root()) {
    EXPECT_EQ(json_of(out / "run_info.json").at("tasks").at("diverged").get<std::int64_t>(), 0);
    const std::string h5 = (out / "results.h5").string();
    const std::vector<double> diverged = io::read_doubles(h5, "endpoints/diverged");
    const std::vector<double> condition = io::read_doubles(h5, "endpoints/condition_number");
    const std::vector<double> se1 = io::read_doubles(h5, "endpoints/lambda1_fit_se");
    const std::vector<double> lambda2 = io::read_doubles(h5, "endpoints/lambda2_hat");
    ASSERT_EQ(condition.size(), 8u);  // [lambda1, lambda2, seed]
    for (std::size_t k = 0; k < 8; ++k) {
      EXPECT_EQ(diverged[k], 0.0) << k;
      EXPECT_TRUE(std::isfinite(lambda2[k])) << k;  // lambda1 / beta + 2 lambda2 is still fitted
    }
    for (std::size_t k : {6u, 7u}) {  // the cell (1, 10), both seeds
      EXPECT_TRUE(std::isinf(condition[k]) && condition[k] > 0) << condition[k];
      EXPECT_TRUE(std::isnan(se1[k])) << se1[k];
    }
    for (std::size_t k = 0; k < 6; ++k) EXPECT_TRUE(std::isfinite(condition[k]) && condition[k] >= 1.0) << k;
  }
  // The stored rows are done, not crashed writes: with the outputs gone, a
  // second run resumes both tasks and writes them again.
  const nlohmann::json tasks = rerun_without_outputs(cfg, out);
  if (!world_.is_root()) return;
  EXPECT_EQ(tasks.at("resumed").get<std::int64_t>(), 2);
  EXPECT_EQ(tasks.at("run").get<std::int64_t>(), 0);
}

TEST_F(TrainingStudies, ElasticNetCountsDivergedNetworksNotTasksAndKeepsTheOthersEstimates) {
  // Gradient descent on the ridge term alone multiplies theta by
  // 1 - 2 eta lambda2 per step: with eta = 1e-3 and lambda2 = 1e4 that is
  // -19, so both cells with that lambda2 diverge in every seed, while the
  // cells with lambda2 = 1e-3 train. Each task (one seed, the whole grid
  // batched) holds two of each: both tasks are stored as diverged, yet the
  // outputs hold four estimates. The run once said "2 of 2 tasks diverged:
  // the outputs hold no estimate".
  const std::string cfg = config_replacing_all("elastic_net", {{"lambda2 = [1e-3, 0.1]", "lambda2 = [1e-3, 1e4]"}},
                                               "elastic_net_one_lambda2_diverges");
  const fs::path out = root_ / "half_diverged";
  run_study(cfg, out.string(), world_);
  if (!world_.is_root()) return;
  const nlohmann::json info = json_of(out / "run_info.json");
  EXPECT_EQ(info.at("tasks").at("diverged").get<std::int64_t>(), 2);  // the store's unit is the task
  EXPECT_EQ(info.at("trainings").at("total").get<std::int64_t>(), 8);
  EXPECT_EQ(info.at("trainings").at("diverged").get<std::int64_t>(), 4);
  const std::string h5 = (out / "results.h5").string();
  const std::vector<double> diverged = io::read_doubles(h5, "endpoints/diverged");
  const std::vector<double> lambda2 = io::read_doubles(h5, "endpoints/lambda2_hat");
  ASSERT_EQ(diverged.size(), 8u);  // [lambda1, lambda2, seed]: lambda2 = 1e4 at k = 2, 3, 6, 7
  for (std::size_t k = 0; k < 8; ++k) {
    const bool unstable = (k / 2) % 2 == 1;
    EXPECT_EQ(diverged[k], unstable ? 1.0 : 0.0) << k;
    EXPECT_EQ(std::isfinite(lambda2[k]), !unstable) << k << ": " << lambda2[k];
  }
}

TEST_F(TrainingStudies, DropoutWithoutTheParityFitStoresItsTasksAsDoneWithANullAdamLambda) {
  // fit.adam_parity = false leaves lambda_adam NaN in every endpoint: no fit
  // was asked for, nothing diverged.
  const std::string cfg = config_replacing_all("dropout", {{"adam_parity = true", "adam_parity = false"}}, "dropout_off");
  const fs::path out = root_ / "no_parity";
  run_study(cfg, out.string(), world_);
  const nlohmann::json tasks = rerun_without_outputs(cfg, out);  // resumes every task
  if (!world_.is_root()) return;
  EXPECT_EQ(tasks.at("diverged").get<std::int64_t>(), 0);
  EXPECT_EQ(tasks.at("resumed"), tasks.at("total"));
  const std::string h5 = (out / "results.h5").string();
  const std::vector<double> adam = io::read_doubles(h5, "endpoints/lambda_adam");
  const std::vector<double> penalty = io::read_doubles(h5, "endpoints/lambda_penalty");
  ASSERT_FALSE(adam.empty());
  for (std::size_t k = 0; k < adam.size(); ++k) {
    EXPECT_TRUE(std::isnan(adam[k])) << k;
    EXPECT_TRUE(std::isfinite(penalty[k])) << k;
  }
}

TEST_F(TrainingStudies, DropoutResumesExactlyTheUnfinishedTasksToTheSameFiles) {
  run_reference(smoke("dropout"), root_ / "one");
  const fs::path out = root_ / "resumed";
  run_study(smoke("dropout"), out.string(), world_);
  std::int64_t reset = 0;
  if (world_.is_root()) {
    reset = forget_rows(out / "store.h5", "chunks", 2);  // the first batched task never finished
    fs::remove(out / "summary.json");
    fs::remove(out / "results.h5");
    fs::remove(out / "run_info.json");
  }
  world_.barrier();
  run_study(smoke("dropout"), out.string(), world_);
  if (!world_.is_root()) return;
  EXPECT_EQ(reset, 1);
  EXPECT_EQ(outputs(out), outputs(root_ / "one"));
  const nlohmann::json tasks = json_of(out / "run_info.json").at("tasks");
  EXPECT_EQ(tasks.at("resumed").get<std::int64_t>(), 1);
  EXPECT_EQ(tasks.at("run").get<std::int64_t>(), 1);
  EXPECT_EQ(tasks.at("by_attempt"), nlohmann::json({{"1", 1}, {"2", 1}}));
}

TEST_F(TrainingStudies, DropoutRunsAgainTheTasksWhoseEquationFilesAreMissingOrCutShortToTheSameFiles) {
  run_reference(smoke("dropout"), root_ / "one");
  const fs::path out = root_ / "damaged";
  run_study(smoke("dropout"), out.string(), world_);
  if (world_.is_root()) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(out))
      if (e.path().filename().string().starts_with("equations_")) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    ASSERT_GE(files.size(), 2u);
    ASSERT_EQ(files.front().filename().string().find("_r0000_s0"), files.front().filename().string().size() - 12);
    ASSERT_EQ(files.back().filename().string().find("_r5000_s1"), files.back().filename().string().size() - 12);
    fs::remove(files.front());                          // deleted by mistake
    fs::resize_file(files.back(), fs::file_size(files.back()) / 2);  // an interrupted copy
  }
  world_.barrier();
  run_study(smoke("dropout"), out.string(), world_);
  if (!world_.is_root()) return;
  EXPECT_EQ(outputs(out), outputs(root_ / "one"));
  // The smoke grid's two tasks are its rates (2 seeds each): the deleted
  // file (rate 0, seed 0) is the first task's, the cut one (rate 0.5, seed 1)
  // the second's, so both run again and nothing is resumed.
  const nlohmann::json tasks = json_of(out / "run_info.json").at("tasks");
  EXPECT_EQ(tasks.at("run").get<std::int64_t>(), 2);
  EXPECT_EQ(tasks.at("resumed").get<std::int64_t>(), 0);
  EXPECT_EQ(tasks.at("by_attempt"), nlohmann::json({{"2", 2}}));
}

TEST_F(TrainingStudies, DropoutOnADirectoryOfAnotherConfigIsRefusedWithExitCode2) {
  const fs::path out = root_ / "run";
  run_study(smoke("dropout"), out.string(), world_);
  const std::string other = config_replacing("dropout", "seeds = 2", "seeds = 3");  // another effective config
  EXPECT_EQ(exit_code_of([&] { run_study(other, out.string(), world_); }), 2);
}

// A 2 x 2 cell of small float64 classifiers on 300 images, stopping early at
// different epochs; with_matching adds matched stationarity that takes them
// through different numbers of rounds.
DropoutConfig small_float64_cell() {
  DropoutConfig c;
  c.depths = {2};
  c.widths = {16};
  c.rates = {0.0, 0.5};
  c.seeds = 2;
  c.train_subset = 300;
  c.test_subset = 100;
  c.batch_size = 32;
  c.max_epochs = 12;
  c.patience = 2;
  c.float64 = true;
  c.adam_parity = false;
  return c;
}

DropoutConfig with_matching(DropoutConfig c) {
  c.match_stationarity = true;
  c.match_target = 0.05;
  c.match_learning_rate = 0.05;
  c.match_round_epochs = 3;
  c.match_max_rounds = 4;
  return c;
}

// The batched task equals its classifiers trained one at a time with
// train() (float64: the same masks, batches and steps, to rounding); with
// matched stationarity too, where the batch goes through the rounds together.
TEST_F(TrainingStudies, DropoutBatchedTaskAgreesWithEachClassifierTrainedAlone) {
  const DropoutConfig c = small_float64_cell();
  GRADMATCH_NEEDS_FASHION_MNIST();
  const DropoutData data = load_dropout_data(c);
  const std::vector<DropoutTask> tasks = enumerate_dropout_tasks(c);
  const std::vector<DropoutChunk> chunks = enumerate_dropout_chunks(c);
  ASSERT_EQ(chunks.size(), 1u);  // replicates_per_task = 0: the whole cell
  ASSERT_EQ(chunks[0].count, 4);
  const auto compare = [&](const DropoutConfig& config) {
    const std::vector<DropoutEndpoint> batched = run_dropout_chunk(config, data, tasks, chunks[0], at::kCPU);
    std::set<std::int64_t> epochs, rounds;
    for (std::size_t k = 0; k < tasks.size(); ++k) {
      SCOPED_TRACE(tasks[k].label());
      const DropoutEndpoint alone = run_dropout_task(config, data, tasks[k]);
      EXPECT_EQ(batched[k].epochs, alone.epochs);
      EXPECT_EQ(batched[k].matched, alone.matched);
      EXPECT_EQ(batched[k].match_rounds, alone.match_rounds);
      EXPECT_EQ(batched[k].match_epochs, alone.match_epochs);
      EXPECT_NEAR(batched[k].lambda_hat, alone.lambda_hat, 1e-8 * std::abs(alone.lambda_hat));
      EXPECT_NEAR(batched[k].cosine, alone.cosine, 1e-8);
      EXPECT_NEAR(batched[k].theta_norm, alone.theta_norm, 1e-10 * alone.theta_norm);
      EXPECT_NEAR(batched[k].dropout_grad_norm, alone.dropout_grad_norm, 1e-8 * alone.dropout_grad_norm);
      EXPECT_NEAR(batched[k].validation_loss, alone.validation_loss, 1e-10 * alone.validation_loss);
      EXPECT_EQ(batched[k].test_accuracy, alone.test_accuracy);
      epochs.insert(alone.epochs);
      rounds.insert(alone.match_rounds);
    }
    EXPECT_GE(epochs.size(), 2u);  // early stopping at different epochs: the batch was compacted
    return rounds;
  };
  EXPECT_EQ(compare(c), std::set<std::int64_t>{0});
  const std::set<std::int64_t> rounds = compare(with_matching(c));
  EXPECT_GE(rounds.size(), 2u);  // the replicates left the rounds at different times
  EXPECT_GT(*rounds.rbegin(), 0);
}

// On a CPU a task's classifiers train one after another (faster there); they
// end where the batch ends (float64, to rounding), matched stationarity too,
// and the progress lines count classifiers.
TEST_F(TrainingStudies, DropoutTaskOneClassifierAtATimeEndsWhereTheBatchEnds) {
  const DropoutConfig c = with_matching(small_float64_cell());
  GRADMATCH_NEEDS_FASHION_MNIST();
  EXPECT_EQ(chunk_training_for(at::kCPU), ChunkTraining::one_at_a_time);
  EXPECT_EQ(chunk_training_for(at::Device(at::kCUDA, 0)), ChunkTraining::batched);
  const DropoutData data = load_dropout_data(c);
  const std::vector<DropoutTask> tasks = enumerate_dropout_tasks(c);
  const std::vector<DropoutChunk> chunks = enumerate_dropout_chunks(c);
  ASSERT_EQ(chunks.size(), 1u);
  const std::vector<DropoutEndpoint> batched =
      run_dropout_chunk(c, data, tasks, chunks[0], at::kCPU, {}, nullptr, ChunkTraining::batched);
  std::FILE* lines = std::tmpfile();
  ASSERT_NE(lines, nullptr);
  TaskProgress progress("dropout", "task 1/1", 1e-9, lines);  // every line
  const std::vector<DropoutEndpoint> sequential =
      run_dropout_chunk(c, data, tasks, chunks[0], at::kCPU, {}, &progress, ChunkTraining::one_at_a_time);
  ASSERT_EQ(sequential.size(), batched.size());
  for (std::size_t k = 0; k < tasks.size(); ++k) {
    SCOPED_TRACE(tasks[k].label());
    EXPECT_EQ(sequential[k].epochs, batched[k].epochs);
    EXPECT_EQ(sequential[k].match_rounds, batched[k].match_rounds);
    EXPECT_EQ(sequential[k].match_epochs, batched[k].match_epochs);
    EXPECT_NEAR(sequential[k].lambda_hat, batched[k].lambda_hat, 1e-8 * std::abs(batched[k].lambda_hat));
    EXPECT_NEAR(sequential[k].dropout_grad_norm, batched[k].dropout_grad_norm, 1e-8 * batched[k].dropout_grad_norm);
    EXPECT_NEAR(sequential[k].theta_norm, batched[k].theta_norm, 1e-10 * batched[k].theta_norm);
    EXPECT_EQ(sequential[k].test_accuracy, batched[k].test_accuracy);
  }
  std::rewind(lines);
  std::string text;
  for (int ch = std::fgetc(lines); ch != EOF; ch = std::fgetc(lines)) text.push_back(static_cast<char>(ch));
  std::fclose(lines);
  EXPECT_NE(text.find("dropout: task 1/1: classifier 4 of 4, epoch 1 of at most 12"), std::string::npos) << text;
  EXPECT_NE(text.find(" of 4, matching stationarity: round 1 of at most 4"), std::string::npos) << text;
}

// run --dry-run's time bound: every replicate's epochs at 6 n p flops each,
// the matching rounds' epochs included when stationarity.match is on.
TEST_F(TrainingStudies, DropoutDryRunTimeBoundCountsEveryEpochTheRunMayTrainAndEveryGradientPassOfTheEstimates) {
  const auto estimate = [&](const std::string& config) {
    const std::unique_ptr<Study> study = make_dropout_study();
    io::ConfigReader reader(config);
    study->configure(reader);
    return study->estimate();
  };
  const ResourceEstimate plain = estimate(smoke("dropout"));
  // Smoke grid: depth 2, width 32, 2 rates x 2 seeds on 1,000 images (900 trained), 30 epochs;
  // then 16 mask draws + 2 float64 passes, and one for the parity fit (its
  // one batch of 2048 holds all 900 rows, the same batch in every order).
  const double p = 784.0 * 32 + 32 + (32.0 * 32 + 32) + 10.0 * 32 + 10;
  const double training = 6.0 * 900 * p * 30 * 4 / 5e10;
  const double estimates = 6.0 * 900 * p * (16 + 2 + 1) * 4 / 2.5e10;
  EXPECT_EQ(plain.tasks, 2);
  EXPECT_EQ(plain.model_parameters, p);  // the GPU note's size (small_model_note)
  EXPECT_NEAR(plain.seconds_per_task * plain.tasks, training + estimates, 1e-12);
  const ResourceEstimate matched =
      estimate(config_replacing_all("dropout", {{"match = false", "match = true"}}, "dropout-matched-estimate"));
  EXPECT_NEAR(matched.seconds_per_task * matched.tasks, training * (30.0 + 10 * 20) / 30.0 + estimates, 1e-12);
  EXPECT_NE(matched.time_basis.find("stationarity.max_rounds"), std::string::npos) << matched.time_basis;
  // Batches of 256 (3 of 256 and a last of 132 rows): the pool's 10 shuffles
  // and 2000 fresh last batches of 132/900 of a pass; fresh: a pass per epoch;
  // fixed: one; no parity fit: none.
  const auto with = [&](const std::string& batches) {
    return estimate(config_replacing_all("dropout",
                                         {{"adam_batch_size = 2048", "adam_batch_size = 256"},
                                          {"adam_batches = \"pool\"", "adam_batches = \"" + batches + "\""}},
                                         "dropout-estimate-" + batches));
  };
  const auto total = [](const ResourceEstimate& e) { return e.seconds_per_task * static_cast<double>(e.tasks); };
  EXPECT_NEAR(total(with("pool")), training + 6.0 * 900 * p * (18 + 10 + 2000.0 * 132 / 900) * 4 / 2.5e10, 1e-12);
  EXPECT_NEAR(total(with("fresh")), training + 6.0 * 900 * p * (18 + 2000) * 4 / 2.5e10, 1e-12);
  EXPECT_NEAR(total(with("fixed")), training + 6.0 * 900 * p * (18 + 1) * 4 / 2.5e10, 1e-12);
  EXPECT_NE(with("fresh").time_basis.find("fit.adam_max_epochs"), std::string::npos);
  const ResourceEstimate none =
      estimate(config_replacing_all("dropout", {{"adam_parity = true", "adam_parity = false"}}, "dropout-no-parity"));
  EXPECT_NEAR(none.seconds_per_task * none.tasks, training + 6.0 * 900 * p * (16 + 2) * 4 / 2.5e10, 1e-12);
  // Batched passes (fit.batched_gradients = on; auto where a GPU will run):
  // 8 draws x 900 rows (the gradient batch of 8192 capped at the 900 rows)
  // of activations, three float64 values per hidden unit (2 x 32), and the
  // parity fit's one copy of the parameters (7,200 rows hold 3 batches of
  // 2048; 16 bytes a parameter each).
  const auto batched = [&](const std::string& mode) {
    return estimate(config_replacing_all("dropout", {{"batched_gradients = \"auto\"", "batched_gradients = \"" + mode + "\""}},
                                         "dropout-estimate-batched-" + mode));
  };
  const double passes = 24.0 * 8 * 900 * 32 * 2 + 16.0 * p * 3;
  EXPECT_NEAR(batched("on").memory_bytes - batched("off").memory_bytes, passes, 1e-6 * passes);
  EXPECT_EQ(batched("auto").memory_bytes,
            training::cuda_device_count() > 0 ? batched("on").memory_bytes : batched("off").memory_bytes);
}

TEST_F(TrainingStudies, DropoutOnCudaWithoutAGpuIsRefusedWithExitCode2AndWritesNothing) {
  if (training::cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  const fs::path out = root_ / "cuda";
  const std::string config = config_replacing("dropout", "device = \"auto\"", "device = \"cuda\"");
  EXPECT_EQ(exit_code_of([&] { run_study(config, out.string(), world_); }), 2);
  world_.barrier();
  EXPECT_FALSE(fs::exists(out / "store.h5"));
  EXPECT_FALSE(fs::exists(out / "summary.json"));
}

TEST_F(TrainingStudies, DropoutDataDirWithoutTheTrainingAndTestFilesIsRefusedAtItsKeyAlsoByTheDryRun) {
  const std::string fmnist = "/usr/share/datasets/fashion-mnist";
  GRADMATCH_NEEDS_FASHION_MNIST();
  const fs::path half = root_ / "train-only";
  if (world_.is_root()) {
    fs::create_directories(half);
    for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"})
      fs::create_symlink(fs::path(fmnist) / f, half / f);
  }
  world_.barrier();
  const std::vector<std::pair<std::string, std::string>> cases{
      {(root_ / "absent").string(), ": is not a directory of IDX files"},
      {half.string(), ": has no t10k-images-idx3-ubyte[.gz]"}};
  for (const auto& [dir, what] : cases) {
    const std::string config = config_replacing("dropout", "dir = \"" + fmnist + "\"", "dir = \"" + dir + "\"");
    // configure() is what --dry-run runs before it estimates anything.
    const std::unique_ptr<Study> study = make_dropout_study();
    io::ConfigReader reader(config);
    try {
      study->configure(reader);
      ADD_FAILURE() << dir << " was accepted";
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(config + ":14: key 'data.dir': " + dir + what, 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).find("install Debian's dataset-fashion-mnist"), std::string::npos) << e.what();
    }
    EXPECT_EQ(exit_code_of([&] { run_study(config, (root_ / "never").string(), world_); }), 2);
    world_.barrier();
    EXPECT_FALSE(fs::exists(root_ / "never"));
  }
}

TEST_F(TrainingStudies, DropoutTf32WithFloat64TrainingIsRefusedNamingTheKeyAndWritesNothing) {
  const std::string both = config_replacing("dropout", "float64 = false\ntf32 = false", "float64 = true\ntf32 = true");
  {
    io::ConfigReader reader(both);
    try {
      read_dropout_config(reader);
      ADD_FAILURE() << "tf32 with float64 was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("training.tf32"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("set one of them to false"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(exit_code_of([&] { run_study(both, (root_ / "never").string(), world_); }), 2);
  world_.barrier();
  EXPECT_FALSE(fs::exists(root_ / "never"));
  // float32 with TF32 is a valid config (it matters only on a GPU).
  const std::string tf32 = config_replacing("dropout", "tf32 = false", "tf32 = true");
  io::ConfigReader reader(tf32);
  EXPECT_TRUE(read_dropout_config(reader).tf32);
}

TEST_F(TrainingStudies, DropoutParityFitDeclaresItsFormerMonitorAndBatchesSoThatOlderStoresResumeOnlyWithThem) {
  // Until fit.adam_monitor and fit.adam_batches existed the parity fit read
  // the epoch mean over the rows in order; a store from then must not mix
  // with rows of the Lightning reading (the runner compares defaults()).
  io::ConfigReader reader(smoke("dropout"));
  const DropoutConfig c = read_dropout_config(reader);
  EXPECT_EQ(c.adam_monitor, "last_batch");
  EXPECT_EQ(c.adam_batches, "pool");
  EXPECT_NE(reader.defaults().find("fit.adam_monitor = \"epoch_mean\"\n"), std::string::npos) << reader.defaults();
  EXPECT_NE(reader.defaults().find("fit.adam_batches = \"fixed\"\n"), std::string::npos) << reader.defaults();
  EXPECT_NE(reader.effective().find("fit.adam_monitor = \"last_batch\"\n"), std::string::npos);
  EXPECT_NE(reader.effective().find("fit.adam_shuffles = 10\n"), std::string::npos);
  // Without the parity column none of them matters, so none is asked for.
  const std::string without = config_replacing_all("dropout",
                                                   {{"adam_parity = true", "adam_parity = false"},
                                                    {"adam_monitor = \"last_batch\"", ""},
                                                    {"adam_batches = \"pool\"", ""},
                                                    {"adam_shuffles = 10", ""}},
                                                   "dropout_no_parity");
  io::ConfigReader plain(without);
  read_dropout_config(plain);
  EXPECT_EQ(plain.effective().find("adam_monitor"), std::string::npos);
  EXPECT_EQ(plain.effective().find("adam_shuffles"), std::string::npos);
}

TEST_F(TrainingStudies, DropoutParityFitWithEachKindOfBatchesGivesTheSameFitOnOneRankAndTwo) {
  // Several mini-batches per epoch (batch 256 of the 900 training rows: the
  // last has 132), so the monitor, the shuffles and the fresh last batches
  // all matter; every draw is the task's, so the rank count does not.
  std::map<std::string, std::vector<double>> fits;
  for (const std::string batches : {"fresh", "pool", "fixed"}) {
    const std::string cfg = config_replacing_all("dropout",
                                                 {{"adam_batch_size = 2048", "adam_batch_size = 256"},
                                                  {"adam_batches = \"pool\"", "adam_batches = \"" + batches + "\""},
                                                  {"adam_max_epochs = 2000", "adam_max_epochs = 150"}},
                                                 "dropout_" + batches);
    const fs::path one = root_ / ("one_" + batches), two = root_ / ("two_" + batches);
    if (world_.is_root()) run_study(cfg, one.string(), Communicator(MPI_COMM_SELF));
    run_study(cfg, two.string(), world_);
    if (!world_.is_root()) continue;
    const auto a = io::read_doubles((one / "results.h5").string(), "endpoints/lambda_adam");
    const auto b = io::read_doubles((two / "results.h5").string(), "endpoints/lambda_adam");
    const auto epochs = io::read_doubles((two / "results.h5").string(), "endpoints/adam_epochs");
    EXPECT_EQ(a, b) << batches;
    for (std::size_t k = 0; k < b.size(); ++k) {
      EXPECT_TRUE(std::isfinite(b[k]) && b[k] > 0.0) << batches << " " << k;
      EXPECT_GE(epochs[k], 1.0);
      EXPECT_LE(epochs[k], 150.0);
    }
    fits[batches] = b;
  }
  if (!world_.is_root()) return;
  EXPECT_NE(fits["fresh"], fits["pool"]);
  EXPECT_NE(fits["pool"], fits["fixed"]);
}

TEST_F(TrainingStudies, DropoutEstimatesFromBatchedGradientsEqualThoseFromOneAtATime) {
  // fit.batched_gradients = on computes the parity fit's mini-batch gradients
  // many per pass (as on a GPU) and draws the pool's last batches several at
  // a time; with 600 rows a pass (8 mask draws of a 75-row gradient batch),
  // two 256-row batches go in a pass (one short pass), and so do two of the
  // 132-row last batches. Every kind of
  // batches gives the one-at-a-time fit to rounding: the same draws, in order.
  // The mask draws of the dropout objective's gradient come a half's draws
  // to a pass: the same masks, so the same decomposition to rounding.
  const std::vector<std::string> draw_fields = {"dropout_grad_norm", "dropout_grad_norm_plugin", "lambda_penalty",
                                                "lambda_nonstationary"};
  for (const std::string batches : {"fresh", "pool", "fixed"}) {
    std::map<std::string, std::vector<double>> lambda, epochs;
    std::map<std::string, std::map<std::string, std::vector<double>>> drawn;
    for (const std::string mode : {"off", "on"}) {
      const std::string cfg = config_replacing_all(
          "dropout",
          {{"adam_batch_size = 2048", "adam_batch_size = 256"},
           {"adam_batches = \"pool\"", "adam_batches = \"" + batches + "\""},
           {"adam_max_epochs = 2000", "adam_max_epochs = 150"},
           {"gradient_batch_size = 8192", "gradient_batch_size = 75"},
           {"batched_gradients = \"auto\"", "batched_gradients = \"" + mode + "\""}},
          "dropout_" + batches + "_" + mode);
      const fs::path out = root_ / ("batched_" + batches + "_" + mode);
      run_study(cfg, out.string(), world_);
      if (!world_.is_root()) continue;
      lambda[mode] = io::read_doubles((out / "results.h5").string(), "endpoints/lambda_adam");
      epochs[mode] = io::read_doubles((out / "results.h5").string(), "endpoints/adam_epochs");
      for (const std::string& field : draw_fields)
        drawn[field][mode] = io::read_doubles((out / "results.h5").string(), "endpoints/" + field);
    }
    if (!world_.is_root()) continue;
    ASSERT_EQ(lambda["on"].size(), lambda["off"].size());
    ASSERT_FALSE(lambda["on"].empty());
    EXPECT_EQ(epochs["on"], epochs["off"]) << batches;
    for (std::size_t k = 0; k < lambda["on"].size(); ++k)
      EXPECT_NEAR(lambda["on"][k], lambda["off"][k], 1e-9 * std::abs(lambda["off"][k])) << batches << " " << k;
    for (const std::string& field : draw_fields) {
      const std::vector<double>& on = drawn[field]["on"];
      const std::vector<double>& off = drawn[field]["off"];
      ASSERT_EQ(on.size(), off.size()) << field;
      std::size_t nonzero = 0;
      for (std::size_t k = 0; k < on.size(); ++k) {
        EXPECT_NEAR(on[k], off[k], 1e-9 * std::abs(off[k]) + 1e-15) << field << " " << batches << " " << k;
        nonzero += off[k] != 0.0 ? 1 : 0;
      }
      EXPECT_GT(nonzero, 0u) << field;  // not a comparison of zeros
    }
  }
}

TEST_F(TrainingStudies, DropoutCellsCostTheirParametersOnACpuAndAlsoTheirLayersOnAGpuInTheOrderTheyTookThere) {
  DropoutConfig c;  // paper scale: one chunk per (depth, width, rate) of 10 seeds
  const auto sorted_by_cost = [&](bool gpu) {
    std::vector<std::pair<double, DropoutChunk>> by_cost;
    for (const DropoutChunk& ch : enumerate_dropout_chunks(c))
      by_cost.emplace_back(dropout_chunk_cost(ch, 784, 10, gpu), ch);
    std::stable_sort(by_cost.begin(), by_cost.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    return by_cost;
  };
  const auto rank_of = [](const std::vector<std::pair<double, DropoutChunk>>& by_cost, std::int64_t depth,
                          std::int64_t width) {
    for (std::size_t k = 0; k < by_cost.size(); ++k)
      if (by_cost[k].second.depth == depth && by_cost[k].second.width == width) return k;
    return by_cost.size();
  };
  const auto expect_order = [&](bool gpu, const std::vector<std::pair<std::int64_t, std::int64_t>>& order) {
    const auto by_cost = sorted_by_cost(gpu);
    for (std::size_t k = 1; k < order.size(); ++k)
      EXPECT_LT(rank_of(by_cost, order[k - 1].first, order[k - 1].second), rank_of(by_cost, order[k].first, order[k].second))
          << (gpu ? "gpu" : "cpu") << ": depth " << order[k].first << " x width " << order[k].second;
  };
  // 784 -> 5 x 512 -> 10: 784*512 + 512 + 4 (512^2 + 512) + 10*512 + 10 =
  // 1,457,674 parameters; on a GPU also 6 linear layers of 100,000 each.
  // 784 -> 3 x 128 -> 10: 134,794 parameters (and 4 layers), the cheapest.
  for (bool gpu : {false, true}) {
    const auto by_cost = sorted_by_cost(gpu);
    const double count = static_cast<double>(by_cost.front().second.count);
    EXPECT_EQ(by_cost.front().second.depth, 5);
    EXPECT_EQ(by_cost.front().second.width, 512);
    EXPECT_DOUBLE_EQ(by_cost.front().first, count * (gpu ? 2'057'674.0 : 1'457'674.0));
    EXPECT_EQ(by_cost.back().second.depth, 3);
    EXPECT_EQ(by_cost.back().second.width, 128);
    EXPECT_DOUBLE_EQ(by_cost.back().first, count * (gpu ? 534'794.0 : 134'794.0));
  }
  // On a CPU by parameters (its time goes with them); on a GPU in the order
  // the H200 measured (the cells' seconds: 349, 231, 154, 148, 112, 89),
  // depth 5 x width 128 before depth 3 x width 256.
  expect_order(false, {{5, 512}, {3, 512}, {5, 256}, {3, 256}, {5, 128}, {3, 128}});
  expect_order(true, {{5, 512}, {3, 512}, {5, 256}, {5, 128}, {3, 256}, {3, 128}});
}

TEST_F(TrainingStudies, DropoutTaskIdsEncodeTheCellAndRejectRatesOffTheGrid) {
  DropoutConfig c;
  const std::vector<DropoutTask> tasks = enumerate_dropout_tasks(c);
  EXPECT_EQ(tasks.size(), 2u * 3u * 8u * 10u);  // paper scale: 480 classifiers
  std::set<std::uint64_t> ids;
  for (const DropoutTask& t : tasks) ids.insert(t.id());
  EXPECT_EQ(ids.size(), tasks.size());
  const DropoutTask t{5, 512, 7, 5000, 9};
  EXPECT_EQ(t.id(), (std::uint64_t{1} << 56) | (std::uint64_t{5} << 48) | (std::uint64_t{512} << 32) |
                        (std::uint64_t{5000} << 16) | 9u);
  EXPECT_EQ(t.label(), "d5_w512_r5000_s9");

  const std::string bad = config_replacing("dropout", "rates = [0.0, 0.5]", "rates = [0.0, 0.12345]");
  io::ConfigReader reader(bad);
  try {
    read_dropout_config(reader);
    ADD_FAILURE() << "a rate off the 1e-4 grid was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("grid.rates"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gradmatch::studies
