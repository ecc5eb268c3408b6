#pragma once
// The implicit-gradient-regularization calibration study: paper Figure 6
// and appendix H.5 -- recover Barrett & Dherin's lambda = eta p / 4 from
// trajectory deviations of trained networks.
//
//   read_igr_calibration_config -> prepare_igr_calibration_shared (data)
//     -> tasks (width x eta x seed) -> run_igr_calibration_task -> outputs
//
// Data (shared, identical on every rank): an MNIST-format IDX directory
// (Fashion-MNIST from Debian by default; MNIST when data.dir points at it),
// pixels in [0, 1]. The training split is shuffled with Rng(seed, 0): the
// first `train` images train, the next `validation` validate (disjoint); the
// test split, shuffled with Rng(seed, 1), gives `test` images. The probe set
// is the first `probe` images of the training subset (a fixed random subset).
//
// A task (width, eta, seed): a tanh MLP 784 -> depth x width -> 10 with
// bias-free hidden layers, initialised from Rng(seed, task id), trained by
// plain mini-batch SGD (batch 128, step eta, no momentum, weight decay,
// dropout or schedule; batch order from (seed, task id)) with cross-entropy
// for `epochs` epochs. After every epoch the train and validation accuracy
// are measured; the selected checkpoint theta* is the epoch with the highest
// validation accuracy among those whose train accuracy reaches the threshold
// (H.5: 90%); runs that never reach it are excluded (status
// "below_threshold"), runs whose loss becomes non-finite before any
// checkpoint qualifies are "diverged". At theta* (converted to the probe
// dtype, float64 by default): test accuracy, R_IG = ||g||^2 / p on the probe
// set, and lambda-hat from T probe steps of full-batch GD on the probe set,
// each a flow-vs-GD row with an RK4 reference of k substeps (training/igr.hpp:
// Eq. 6 pooled over the T rows). lambda_theory = eta p / 4.
//
// Outputs: results.h5 (per run, and lambda-hat per probe step), summary.json
// (key `runs`: width, eta, seed, p, lambda_hat, lambda_theory, ratio,
// residual_ratio, r_ig, test_accuracy, status, ...), run_info.json. No
// equation files: a row holds p values and p reaches millions at paper scale.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "studies/study.hpp"
#include "training/data.hpp"
#include "training/flow.hpp"

namespace gradmatch::io {
class ConfigReader;
}

namespace gradmatch::studies {

/// Defaults: appendix H.5's protocol (five hidden layers, widths 50..1600,
/// seven step sizes, batch 128, 50 epochs, 10k/1k/5k split, probe 2048, T 5,
/// k 10, threshold 0.9) on Fashion-MNIST.
struct IgrCalibrationConfig {
  std::uint64_t seed = 2022;
  std::string data_dir;  ///< data.dir; default training::kFashionMnistDir (Debian's Fashion-MNIST)
  std::int64_t train = 10000, validation = 1000, test = 5000, probe = 2048;
  std::int64_t depth = 5;
  std::vector<std::int64_t> widths{50, 100, 200, 400, 800, 1600};
  bool hidden_bias = false;
  bool output_bias = true;
  std::vector<double> learning_rates{5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1, 5e-1};
  std::int64_t batch_size = 128;
  std::int64_t epochs = 50;
  double train_accuracy_threshold = 0.9;
  bool train_float64 = false;  ///< training.dtype: "float32" (default) or "float64"
  std::int64_t replicates = 1;  ///< seeds per (width, eta) cell
  std::int64_t probe_steps = 5;
  std::int64_t probe_substeps = 10;
  training::Integrator probe_integrator = training::Integrator::rk4;
  bool probe_float64 = true;  ///< probe.dtype: "float64" (default) or "float32"
  bool standardize = false;   ///< data.standardize: pixels to zero mean, unit sd (fitted on the training split)
  /// training.draw_key: what keys a run's initial weights and batch order
  /// besides the seed and width: the step size's "value" (a run trains the
  /// same network whichever other step sizes the list holds) or its
  /// "position" in learning_rates (before this key existed).
  std::string draw_key = "value";
  std::int64_t curvature_iterations = 100;  ///< probe.power_iterations for lambda_max
};

IgrCalibrationConfig read_igr_calibration_config(io::ConfigReader& reader);

struct IgrCalibrationShared {
  training::Dataset train, validation, test, probe;  ///< float32 x, int64 labels
  std::int64_t inputs = 0, classes = 0;
};

/// Loads and splits the data (see the top). InputError when the directory
/// holds too few images for the requested sizes.
IgrCalibrationShared prepare_igr_calibration_shared(const IgrCalibrationConfig& config);

struct IgrCalibrationTask {
  std::int64_t width_index = 0, eta_index = 0, replicate = 0;
  /// width << 40 | eta_index << 20 | replicate: the task's number in the run store.
  std::uint64_t id(const IgrCalibrationConfig& config) const;
  /// The stream of the run's draws (initial weights, batch order): id() with
  /// training.draw_key = "position"; else a mix of the width, the step size's
  /// value and the replicate.
  std::uint64_t draw_stream(const IgrCalibrationConfig& config) const;
};
std::vector<IgrCalibrationTask> enumerate_igr_calibration_tasks(const IgrCalibrationConfig& config);

enum class IgrRunStatus { ok = 0, below_threshold = 1, diverged = 2 };
std::string to_string(IgrRunStatus status);

struct IgrCalibrationResult {
  std::int64_t width = 0;  ///< the task's coordinates
  double eta = 0.0;
  std::int64_t seed = 0;
  IgrRunStatus status = IgrRunStatus::ok;
  std::int64_t p = 0;
  std::int64_t epochs_run = 0;
  std::int64_t selected_epoch = 0;  ///< 0 unless ok
  double train_accuracy = 0.0, validation_accuracy = 0.0, test_accuracy = 0.0;  ///< at theta*
  double best_train_accuracy = 0.0;  ///< the highest train accuracy of any epoch (also for excluded runs)
  double r_ig = 0.0, probe_loss = 0.0;
  double lambda_hat = 0.0, lambda_per_parameter = 0.0, residual_ratio = 0.0, cosine = 0.0;
  double lambda_theory = 0.0;  ///< eta p / 4
  double ratio = 0.0;          ///< lambda_hat / lambda_theory
  // Curvature at theta* on the probe set (training/curvature.hpp).
  double s_eff = 0.0;               ///< <Hg, H Hg> / ||Hg||^2
  double lambda_max = 0.0;          ///< top Hessian eigenvalue (power iteration)
  double finite_step_factor = 0.0;  ///< r(eta s_eff) = 2 (e^-x - 1 + x) / x^2: the ratio curvature alone predicts
  /// The ratio an exact quadratic with the probe rows' Hessians gives: r over
  /// H's spectrum along H g, pooled over the rows (training/curvature.hpp)
  double finite_step_factor_spectral = 0.0;
  /// The leading non-quadratic part of the ratio, -(eta/3) <u, D3L[g, g]> /
  /// ||u||^2 pooled over the rows (training/curvature.hpp)
  double third_order_term = 0.0;
  std::vector<double> lambda_step;  ///< [probe_steps] Eq. 6 on each probe row alone
};

/// Pure: depends on (config, shared, task) only.
IgrCalibrationResult run_igr_calibration_task(const IgrCalibrationConfig& config, const IgrCalibrationShared& shared,
                                              const IgrCalibrationTask& task,
                                              torch::Device device = torch::Device(torch::kCPU));

/// summary.json (see the top; lambda fields are null for excluded runs).
nlohmann::json igr_calibration_summary(const IgrCalibrationConfig& config, std::span<const IgrCalibrationResult> results);

/// The study for `gradmatch run` (studies/study.hpp).
std::unique_ptr<Study> make_igr_calibration_study();

}  // namespace gradmatch::studies
