#pragma once
// The long-horizon check of Barrett & Dherin's modified flow (appendix I's
// "long-horizon trajectory rules", synthetic part): over many GD steps, GD
// stays far closer to the flow of the modified loss L + (eta/4) ||grad L||^2
// than to the gradient flow of L.
//
// One task per step size eta, all on one data set (linear regression, n rows,
// p columns, x_ij ~ N(0, 1), theta_j ~ N(0, theta_sd^2), noise sigma, drawn
// from Rng(seed, 0)), float64, bias-free linear model from theta = 0:
//   theta_GD(t+1)   = theta_GD(t) - eta g(theta_GD(t))
//   theta_flow      dtheta/dt = -g,                  integrated over [0, t eta]
//   theta_modified  dtheta/dt = -g - (eta/2) H g,    likewise
// (training/flow.hpp; RK4 with `substeps` substeps per step interval, the
// flows continued from one interval to the next). Per step: the distances
// ||theta_GD - theta_flow|| and ||theta_GD - theta_modified||.
//
// Expected size, for S = X^T X / n = s I (H = 2s I, x = 2 eta s): GD
// contracts the error by (1 - x) per step, the flow by e^{-x}, the modified
// flow by e^{-x - x^2/2}; log(1 - x) = -x - x^2/2 - x^3/3 - ..., so after t
// steps the distances are ~ t e^{-x t} (x^2/2) and ~ t e^{-x t} (x^3/3) and
// their ratio ~ 2x/3 = (4/3) eta s: 0.013 at eta = 0.01 and 0.04 at
// eta = 0.03 (the authors measured 0.014 and 0.038).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "studies/study.hpp"
#include "training/flow.hpp"

namespace gradmatch::io {
class ConfigReader;
}

namespace gradmatch::studies {

/// Defaults: the study's reference values (n 500, p 10, sigma 0.1, eta {0.01, 0.03},
/// 50 steps, RK4 with 20 substeps, float64).
struct LongHorizonConfig {
  std::uint64_t seed = 1105;
  std::int64_t n = 500;
  std::int64_t p = 10;
  double theta_sd = 1.0;
  double noise_sd = 0.1;
  std::vector<double> learning_rates{0.01, 0.03};
  std::int64_t steps = 50;
  training::Integrator integrator = training::Integrator::rk4;
  std::int64_t substeps = 20;
};

/// Reads every key (top-level `study = "long_horizon"`), then reader.finish().
LongHorizonConfig read_long_horizon_config(io::ConfigReader& reader);

struct LongHorizonResult {
  std::vector<double> dist_flow;      ///< [steps + 1] ||theta_GD(t) - theta_flow(t eta)||
  std::vector<double> dist_modified;  ///< [steps + 1] ||theta_GD(t) - theta_modified(t eta)||
  std::vector<double> loss_gd;        ///< [steps + 1] L(theta_GD(t))
};

/// Pure: the run of step size learning_rates[eta_index].
LongHorizonResult run_long_horizon_task(const LongHorizonConfig& config, std::int64_t eta_index,
                                        torch::Device device = torch::Device(torch::kCPU));

/// summary.json: `runs` with eta, final_dist_flow, final_dist_modified, ratio
/// (= final_dist_modified / final_dist_flow).
nlohmann::json long_horizon_summary(const LongHorizonConfig& config, std::span<const LongHorizonResult> results);

/// The study for `gradmatch run` (studies/study.hpp): one task per step size.
std::unique_ptr<Study> make_long_horizon_study();

}  // namespace gradmatch::studies
