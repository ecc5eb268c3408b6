// The IGR studies (igr_synthetic, long_horizon, igr_calibration) at smoke
// scale, through the task farm and run store: their numerical targets,
// byte-identical outputs to a one-rank reference, resume, the Euler bias, and
// config errors. Registered at 2 ranks (the runs are compared with a one-rank
// reference run in the same job).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "study_files.hpp"
#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/fit.hpp"
#include "mpi/mpi.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "studies/igr_calibration.hpp"
#include "studies/igr_synthetic.hpp"
#include "studies/long_horizon.hpp"
#include "studies/registry.hpp"
#include "training/curvature.hpp"
#include "training/data.hpp"
#include "io/config.hpp"
#include "../mpi/shared_scratch.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;
using mpi::Communicator;

using namespace test_support;

class IgrStudies : public mpi::testing::SharedScratchTest {
 protected:
  IgrStudies() : SharedScratchTest("gradmatch-igr-studies-") {}
  // The study on every rank into root_/all and on rank 0 alone into root_/one.
  void run_both(const std::string& config) {
    if (world_.is_root()) run_study(config, (root_ / "one").string(), Communicator(MPI_COMM_SELF));
    world_.barrier();
    run_study(config, (root_ / "all").string(), world_);
  }
  // The smoke config with `line` added after the line starting with `after`.
  std::string config_with(const std::string& study, const std::string& after, const std::string& line) {
    std::string text = slurp(smoke(study));
    const std::size_t at = text.find('\n', text.find(after));
    text.insert(at + 1, line + "\n");
    const fs::path path = root_ / (study + "-edited.toml");
    if (world_.is_root()) std::ofstream(path) << text;
    world_.barrier();
    return path.string();
  }
};

TEST_F(IgrStudies, SyntheticSmokeRecoversEtaPOverFourAndFitReproducesIt) {
  run_both(smoke("igr_synthetic"));
  if (!world_.is_root()) return;
  const fs::path out = root_ / "all";
  EXPECT_EQ(outputs(out), outputs(root_ / "one"));  // byte for byte, any rank count
  const nlohmann::json s = json_of(out / "summary.json");
  ASSERT_EQ(s.at("runs").size(), 4u);  // p {3, 5} x eta {1e-3, 1e-2}
  for (const auto& run : s.at("runs")) {
    const double ratio = run.at("ratio").get<double>();
    EXPECT_GE(ratio, 0.97) << run.dump();
    EXPECT_LE(ratio, 1.01) << run.dump();
    EXPECT_NEAR(run.at("lambda_theory").get<double>(),
                run.at("eta").get<double>() * run.at("p").get<double>() / 4.0, 1e-15);
    EXPECT_LT(run.at("residual_ratio").get<double>(), 0.01);
    // A quadratic: the ratio is the spectral finite-step factor, up to RK4's
    // error at 10 substeps (eta lambda_max / 10 <= 5e-3 here).
    EXPECT_NEAR(ratio, run.at("finite_step_factor_spectral").get<double>(), 1e-8) << run.dump();
  }
  // The equation file of a run: `gradmatch fit --family features` gives lambda-hat.
  const nlohmann::json& run = s.at("runs").at(3);
  const Equations eq = io::read_equation_file((out / "equations_p5_eta0.01_seed0.h5").string());
  ASSERT_TRUE(eq.target.has_value());
  EXPECT_EQ(eq.m(), 30);
  FitOptions o;
  o.family = FamilySpec::parse("features");
  const FitResult fitted = fit(eq, o);
  EXPECT_NEAR(fitted.coefficient(), run.at("lambda_hat").get<double>(), 1e-12 * fitted.coefficient());
  // Each checkpoint's one-row ratio is that row's own spectral factor
  // sum_i r(eta h_i) <v_i, u>^2 / ||u||^2 (u = H g, h_i and v_i H's
  // eigenpairs), with H recovered from the file alone: the loss is
  // quadratic, so g(theta) = H theta - c and the 30 rows (theta_t, g_t) give
  // H and c by least squares.
  ASSERT_EQ(run.at("p").get<double>(), 5.0);
  const double eta = run.at("eta").get<double>();
  ASSERT_EQ(eta, 1e-2);
  const at::TensorOptions f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor theta = at::from_blob(const_cast<double*>(eq.theta.data()), {eq.m(), 5}, f64).clone();
  const at::Tensor grad = at::from_blob(const_cast<double*>(eq.grad_loss.data()), {eq.m(), 5}, f64).clone();
  const at::Tensor design = at::cat({theta, at::ones({eq.m(), 1}, f64)}, 1);
  const at::Tensor solution = std::get<0>(at::linalg_lstsq(design, grad));  // [6, 5]: H^T over -c^T
  const at::Tensor h = solution.narrow(0, 0, 5).t();
  // A Hessian, up to the least squares' error (GD rows span their space unevenly).
  EXPECT_LT((h - h.t()).abs().max().item<double>(), 1e-4 * h.abs().max().item<double>());
  const auto [values, vectors] = at::linalg_eigh(0.5 * (h + h.t()));
  IgrSyntheticConfig sizes;
  sizes.steps = 30;
  sizes.checkpoints = 6;
  const std::vector<std::int64_t> rows = igr_synthetic_checkpoints(sizes);
  std::vector<std::int64_t> shape;
  const auto ratio_t = io::read_doubles((out / "results.h5").string(), "runs/ratio_checkpoints", &shape);
  ASSERT_EQ(shape.back(), static_cast<std::int64_t>(rows.size()));
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const at::Tensor u = h.mv(grad[rows[k]]);
    const at::Tensor along = vectors.t().mv(u);
    double weighted = 0.0;
    for (std::int64_t i = 0; i < 5; ++i)
      weighted += training::finite_step_factor(eta * values[i].item<double>()) * std::pow(along[i].item<double>(), 2);
    const double expected = weighted / u.dot(u).item<double>();
    EXPECT_NEAR(ratio_t[3 * rows.size() + k], expected, 1e-9) << "checkpoint step " << rows[k];  // measured 2.4e-11
  }
}

TEST_F(IgrStudies, SyntheticEulerReferenceReproducesTheOneMinusOneOverKFactor) {
  const std::string config = config_with("igr_synthetic", "[reference]", "integrator = \"euler\"");
  // The smoke file already says integrator = "rk4" under [reference]: drop that line.
  if (world_.is_root()) {
    std::string text = slurp(config);
    text.erase(text.find("integrator = \"rk4\"\n"), std::string("integrator = \"rk4\"\n").size());
    std::ofstream(config) << text;
  }
  world_.barrier();
  run_study(config, (root_ / "euler").string(), world_);
  if (!world_.is_root()) return;
  const nlohmann::json s = json_of(root_ / "euler" / "summary.json");
  EXPECT_EQ(s.at("reference").at("integrator"), "euler");
  for (const auto& run : s.at("runs"))
    if (run.at("eta").get<double>() == 1e-3) {
      EXPECT_NEAR(run.at("ratio").get<double>(), 1.0 - 1.0 / 10.0, 5e-3);
    }
}

TEST_F(IgrStudies, SyntheticResumesExactlyTheForgottenRows) {
  run_both(smoke("igr_synthetic"));
  const fs::path out = root_ / "all";
  std::int64_t reset = 0;
  if (world_.is_root()) {
    reset = forget_rows(out / "store.h5", "p5", 2);
    for (const auto& [name, bytes] : outputs(out)) fs::remove(out / name);
    fs::remove(out / "run_info.json");
  }
  world_.barrier();
  run_study(smoke("igr_synthetic"), out.string(), world_);
  if (!world_.is_root()) return;
  EXPECT_EQ(outputs(out), outputs(root_ / "one"));
  const nlohmann::json tasks = json_of(out / "run_info.json").at("tasks");
  EXPECT_EQ(reset, 1);
  EXPECT_EQ(tasks.at("run").get<std::int64_t>(), reset);
  EXPECT_EQ(tasks.at("resumed").get<std::int64_t>(), 4 - reset);
}

TEST_F(IgrStudies, SyntheticRunInSelectedPartsWritesTheWholeRunsOutputs) {
  // Tasks 1-2 are table p3, 3-4 table p5: task 3 alone first (a cell rerun
  // with the whole run's draws), then the rest across both tables.
  run_both(smoke("igr_synthetic"));
  const fs::path parts = root_ / "parts";
  run_study(smoke("igr_synthetic"), parts.string(), world_, RunOptions{"3"});
  if (world_.is_root()) {
    EXPECT_TRUE(fs::exists(parts / "store.h5"));
    EXPECT_FALSE(fs::exists(parts / "summary.json"));
    EXPECT_FALSE(fs::exists(parts / "run_info.json"));
  }
  run_study(smoke("igr_synthetic"), parts.string(), world_, RunOptions{"1-2,4"});
  if (!world_.is_root()) return;
  EXPECT_EQ(outputs(parts), outputs(root_ / "one"));
  const nlohmann::json tasks = json_of(parts / "run_info.json").at("tasks");
  EXPECT_EQ(tasks.at("resumed"), 1);
  EXPECT_EQ(tasks.at("run"), 3);
}

TEST_F(IgrStudies, LongHorizonSmokeModifiedFlowStaysFarCloserToGradientDescent) {
  run_both(smoke("long_horizon"));
  if (!world_.is_root()) return;
  EXPECT_EQ(outputs(root_ / "all"), outputs(root_ / "one"));
  const nlohmann::json s = json_of(root_ / "all" / "summary.json");
  ASSERT_EQ(s.at("runs").size(), 2u);
  for (const auto& run : s.at("runs")) {
    const double eta = run.at("eta").get<double>();
    const double ratio = run.at("ratio").get<double>();
    EXPECT_NEAR(run.at("final_dist_modified").get<double>() / run.at("final_dist_flow").get<double>(), ratio, 1e-15);
    // ~ (4/3) eta s with s the Gram eigenvalues (~1): 0.013 and 0.04.
    EXPECT_GT(ratio, eta);
    EXPECT_LT(ratio, 2.0 * eta);
  }
  const auto flow = io::read_doubles((root_ / "all" / "results.h5").string(), "dist_flow");
  const auto modified = io::read_doubles((root_ / "all" / "results.h5").string(), "dist_modified");
  ASSERT_EQ(flow.size(), 2u * 11u);
  for (std::size_t i = 0; i < flow.size(); ++i)
    if (i % 11 != 0) {
      EXPECT_LT(modified[i], 0.1 * flow[i]) << i;
    }
}

TEST_F(IgrStudies, LongHorizonDistancesAreTheClosedFormsOfGradientDescentAndBothFlows) {
  // The smoke problem is a linear regression: with H = 2 X^T X / n (the MSE's
  // Hessian) and e = theta - theta_ls, gradient descent gives e_t = (I - eta H)^t e_0,
  // the gradient flow e(t eta) = exp(-H t eta) e_0 and the modified flow, of
  // L + (eta/4)||grad L||^2, exp(-(H + (eta/2) H^2) t eta) e_0, from theta = 0.
  // Every recorded distance, at every step, against these (RK4 with 5
  // substeps of eta/5 is far more accurate than the tolerance).
  if (!world_.is_root()) return;
  io::ConfigReader reader(smoke("long_horizon"));
  const LongHorizonConfig c = read_long_horizon_config(reader);
  training::LinearDataOptions d;
  d.n = c.n;
  d.d = c.p;
  d.theta_sd = c.theta_sd;
  d.noise_sd = c.noise_sd;
  const training::SyntheticData data = training::linear_regression(d, c.seed, 0);  // the study's data stream
  const at::Tensor x = data.data.x.to(at::kDouble), y = data.data.y.to(at::kDouble).reshape({-1, 1});
  const auto n = static_cast<double>(c.n);
  const at::Tensor h = 2.0 * x.t().matmul(x) / n;
  const at::Tensor theta_ls = at::linalg_solve(h, 2.0 * x.t().matmul(y) / n).reshape({-1});
  const auto [lambda, v] = at::linalg_eigh(h);
  const at::Tensor z0 = v.t().matmul(-theta_ls);  // e_0 in H's eigenbasis (distances are basis-free)
  for (std::int64_t k = 0; k < static_cast<std::int64_t>(c.learning_rates.size()); ++k) {
    const double eta = c.learning_rates[static_cast<std::size_t>(k)];
    const LongHorizonResult r = run_long_horizon_task(c, k);
    ASSERT_EQ(r.dist_flow.size(), static_cast<std::size_t>(c.steps + 1));
    for (std::int64_t t = 0; t <= c.steps; ++t) {
      const double time = eta * static_cast<double>(t);
      const at::Tensor gd = (1.0 - eta * lambda).pow(static_cast<double>(t)) * z0;
      const at::Tensor flow = at::exp(-lambda * time) * z0;
      const at::Tensor modified = at::exp(-(lambda + 0.5 * eta * lambda * lambda) * time) * z0;
      const double to_flow = (gd - flow).norm().item<double>(), to_modified = (gd - modified).norm().item<double>();
      const auto i = static_cast<std::size_t>(t);
      EXPECT_NEAR(r.dist_flow[i], to_flow, 1e-8 * to_flow + 1e-14) << "eta " << eta << ", t " << t;
      EXPECT_NEAR(r.dist_modified[i], to_modified, 1e-6 * to_modified + 1e-14) << "eta " << eta << ", t " << t;
    }
  }
}

TEST_F(IgrStudies, CalibrationSmokeEstimatesEveryQualifyingRun) {
  run_both(smoke("igr_calibration"));
  if (!world_.is_root()) return;
  EXPECT_EQ(outputs(root_ / "all"), outputs(root_ / "one"));
  const nlohmann::json s = json_of(root_ / "all" / "summary.json");
  ASSERT_EQ(s.at("runs").size(), 4u);  // widths {8, 16} x eta {0.05, 0.2}
  std::int64_t ok = 0;
  for (const auto& run : s.at("runs")) {
    for (const char* key : {"width", "eta", "seed", "p", "lambda_hat", "lambda_theory", "ratio", "residual_ratio",
                            "r_ig", "test_accuracy"})
      EXPECT_TRUE(run.contains(key)) << key;
    if (run.at("status") != "ok") continue;
    ++ok;
    EXPECT_GE(run.at("selected_epoch").get<std::int64_t>(), 1);
    EXPECT_GE(run.at("train_accuracy").get<double>(), 0.3);
    // Small steps: close to eta p / 4; the O(eta) correction grows with eta.
    const double ratio = run.at("ratio").get<double>();
    EXPECT_GT(ratio, 0.4);
    EXPECT_LT(ratio, 1.1);
    EXPECT_GT(run.at("r_ig").get<double>(), 0.0);
    // The ratio is lambda-hat over the theory's eta p / 4.
    const double s_eff = run.at("s_eff").get<double>(), eta = run.at("eta").get<double>();
    const double theory = run.at("lambda_theory").get<double>();
    EXPECT_NEAR(theory, eta * run.at("p").get<double>() / 4.0, 1e-15 * theory);
    EXPECT_NEAR(ratio, run.at("lambda_hat").get<double>() / theory, 1e-15 * std::abs(ratio));
    // The curvature diagnostics: r(eta s_eff) is what the summary says it is.
    EXPECT_GT(s_eff, 0.0);
    EXPECT_GT(std::abs(run.at("lambda_max").get<double>()), 0.0);
    EXPECT_NEAR(run.at("finite_step_factor").get<double>(), training::finite_step_factor(eta * s_eff), 1e-15);
    // An exact quadratic with the probe's Hessians gives the spectral factor;
    // what the network adds over one step (its third and higher derivatives)
    // moved the ratio by at most 0.053 in every run measured (docs/results.md).
    const double spectral = run.at("finite_step_factor_spectral").get<double>();
    EXPECT_NEAR(ratio, spectral, 0.06);
    EXPECT_TRUE(std::isfinite(run.at("third_order_term").get<double>()));  // its value: training/curvature_test
  }
  EXPECT_EQ(s.at("runs_ok").get<std::int64_t>(), ok);
  EXPECT_GE(ok, 2);
}

TEST_F(IgrStudies, CalibrationRunTrainsTheSameNetworkWhicheverOtherStepSizesTheListHolds) {
  // A run's draws are keyed by its step size's value: eta 0.2 alone trains
  // the networks the smoke grid (0.05 and 0.2) trains at 0.2, to the bit.
  // Keyed by position (training.draw_key = "position", the behaviour before
  // the key existed), 0.2 alone takes the draws of the grid's first step size.
  const auto write = [&](const std::string& name, const std::string& rates, const std::string& key) {
    std::string text = slurp(smoke("igr_calibration"));
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"learning_rates = [0.05, 0.2]", "learning_rates = " + rates},
                                   {"draw_key = \"value\"", "draw_key = \"" + key + "\""}}) {
      const auto at = text.find(from);
      EXPECT_NE(at, std::string::npos) << from;
      if (at != std::string::npos) text.replace(at, from.size(), to);
    }
    const fs::path path = root_ / (name + ".toml");
    if (world_.is_root()) std::ofstream(path) << text;
    world_.barrier();
    return path.string();
  };
  const auto runs_at = [&](const std::string& dir) {
    std::map<std::int64_t, nlohmann::json> by_width;  // the eta = 0.2 runs by width
    const nlohmann::json summary = json_of(root_ / dir / "summary.json");
    for (const auto& run : summary.at("runs"))
      if (run.at("eta").get<double>() == 0.2) by_width[run.at("width").get<std::int64_t>()] = run;
    return by_width;
  };
  for (const std::string key : {"value", "position"}) {
    run_study(write("grid_" + key, "[0.05, 0.2]", key), (root_ / ("grid_" + key)).string(), world_);
    run_study(write("alone_" + key, "[0.2]", key), (root_ / ("alone_" + key)).string(), world_);
  }
  if (!world_.is_root()) return;
  for (const std::string key : {"value", "position"}) {
    const auto grid = runs_at("grid_" + key), alone = runs_at("alone_" + key);
    ASSERT_EQ(grid.size(), 2u);
    ASSERT_EQ(alone.size(), 2u);
    for (const auto& [width, run] : alone) {
      const double a = run.at("lambda_hat").get<double>(), g = grid.at(width).at("lambda_hat").get<double>();
      if (key == "value") {
        EXPECT_EQ(a, g) << "width " << width;
        EXPECT_EQ(run.at("selected_epoch"), grid.at(width).at("selected_epoch")) << "width " << width;
      } else {
        EXPECT_NE(a, g) << "width " << width;  // other initial weights and batch order
      }
    }
  }
  // The default is "value"; a store from before the key resumes only with "position".
  io::ConfigReader reader(smoke("igr_calibration"));
  EXPECT_EQ(read_igr_calibration_config(reader).draw_key, "value");
  EXPECT_NE(reader.defaults().find("training.draw_key = \"position\""), std::string::npos) << reader.defaults();
}

TEST_F(IgrStudies, CalibrationStandardizesThePixelsWithTheTrainingSplitsMoments) {
  const std::string config = config_with("igr_calibration", "[data]", "standardize = true");
  if (world_.is_root()) {  // the smoke file spells out the default under [data]: drop that line
    std::string text = slurp(config);
    text.erase(text.find("standardize = false"), text.find('\n', text.find("standardize = false")) + 1 -
                                                     text.find("standardize = false"));
    std::ofstream(config) << text;
  }
  world_.barrier();
  io::ConfigReader reader(config);
  const IgrCalibrationConfig c = read_igr_calibration_config(reader);
  ASSERT_TRUE(c.standardize);
  const IgrCalibrationShared s = prepare_igr_calibration_shared(c);
  const at::Tensor x = s.train.x.to(at::kDouble);
  const at::Tensor sd = x.std(0, /*unbiased=*/false);
  const at::Tensor varying = sd > 0.5;  // constant pixels stay constant (scale 1)
  EXPECT_LT(x.mean(0).abs().max().item<double>(), 1e-5);
  EXPECT_LT((sd.masked_select(varying) - 1.0).abs().max().item<double>(), 1e-5);
  EXPECT_GT(varying.sum().item<std::int64_t>(), 100);
}

TEST_F(IgrStudies, BadConfigsAreInputErrorsNamingTheKey) {
  const auto exit_code = [&](const std::string& config) {
    try {
      run_study(config, (root_ / "bad").string(), world_);
    } catch (const mpi::CollectiveFailure& f) {
      EXPECT_NE(std::string(f.what()).find("key '"), std::string::npos) << f.what();
      return f.exit_code();
    }
    return 0;
  };
  EXPECT_EQ(exit_code(config_with("igr_synthetic", "[gd]", "momentum = 0.9")), 2);
  EXPECT_EQ(exit_code(config_with("long_horizon", "[reference]", "method = \"rk45\"")), 2);
  EXPECT_EQ(exit_code(config_with("igr_calibration", "[data]", "validation_fraction = 0.1")), 2);
  EXPECT_FALSE(fs::exists(root_ / "bad"));
  const auto names = study_names();
  for (const char* study : {"igr_synthetic", "long_horizon", "igr_calibration"})
    EXPECT_NE(std::find(names.begin(), names.end(), study), names.end()) << study;
}

}  // namespace
}  // namespace gradmatch::studies
