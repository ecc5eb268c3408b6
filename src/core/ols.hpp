#pragma once
// Ordinary least squares under gradient descent: the simulator and the
// Ali et al. (2019) theory of early stopping (paper section 3, appendix H.3).
//
// Model and scale conventions (docs/design.md):
//   y = X beta + noise,  L(theta) = (1/n) ||y - X theta||^2,
//   S = X^T X / n,  r = X^T y / n,  c = y^T y / n,
//   L(theta)      = theta^T S theta - 2 r^T theta + c,
//   grad L(theta) = 2 (S theta - r).
// Gradient descent from theta_0 = 0 with step epsilon is
//   theta_t = theta_{t-1} - epsilon (S theta_{t-1} - r)
// (epsilon times HALF the loss gradient, as in Ali et al.). In the
// eigenbasis S = V diag(s) V^T it sums to
//   theta_t = V diag((1 - a_i^t) / s_i) V^T r,   a_i = 1 - epsilon s_i.
//
// Ali et al.: theta_t uniquely minimises L(theta) + theta^T Lambda(t) theta,
//   Lambda(t) = V diag(f_i) V^T,  f_i = s_i / (a_i^{-t} - 1) = s_i a_i^t / (1 - a_i^t),
// because stationarity 2 (S theta - r) + 2 Lambda theta = 0 reads
// (S + Lambda) theta = r, and 1 / (s_i + f_i) = (1 - a_i^t) / s_i. This needs
// 0 < epsilon s_i < 1; f_i(s -> 0) = 1 / (epsilon t). Lambda(1) = (I - epsilon S) / epsilon.
//
// Gradient matching at an endpoint theta with target b = -grad L(theta)
// (fit.hpp's families; stationarity grad R = b):
//   sym    2 Lambda theta = b: exactly consistent with Lambda(t), since
//          b = 2 (r - S theta_t) = 2 Lambda(t) theta_t. Endpoints that share X
//          (new beta and noise) share Lambda(t), so m >= p generic endpoints
//          determine it.
//   diag   one endpoint: q_j = b_j / (2 theta_j). Retraining the explicit
//          problem min L + sum_j q_j theta_j^2 solves (S + diag q) theta = r,
//          i.e. (X^T X + n diag q) theta = X^T y, and theta_t solves it too
//          (diag(q) theta_t = b / 2 = r - S theta_t): the retrained weights
//          equal the early-stopped ones exactly, although diag q != Lambda(t).
//   ridge  lambda = <2 theta, b> / ||2 theta||^2 = theta^T Lambda(t) theta / ||theta||^2,
//          the Rayleigh quotient of Lambda(t) at theta_t, so it lies between
//          Lambda(t)'s extreme eigenvalues and decays to 0 like tr(Lambda(t)) / p.
//
// Early stopping is PyTorch Lightning's EarlyStopping callback on the training
// loss, mode "min", with one full-batch step per epoch (see EarlyStopping and
// gradient_descent below for the exact step indexing).
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <vector>

#include "core/early_stopping.hpp"
#include "core/equations.hpp"
#include "core/matrix.hpp"
#include "core/rng.hpp"

namespace gradmatch::ols {

/// A regression data set. x is [n, p] row-major; y = x beta + noise.
struct Dataset {
  Matrix x;
  std::vector<double> beta;   ///< ground-truth coefficients [p]
  std::vector<double> noise;  ///< the noise that was added [n]
  std::vector<double> y;      ///< [n]
};

/// Draws x_ij ~ N(0, 1), beta_j ~ N(0, beta_sd^2) and noise_i ~ N(0, noise_sd^2),
/// in that order, from `rng`.
Dataset draw_dataset(Rng& rng, std::int64_t n, std::int64_t p, double beta_sd, double noise_sd);

/// Draws beta and noise for a given design (same order as draw_dataset after x).
Dataset draw_response(Rng& rng, const Matrix& x, double beta_sd, double noise_sd);

/// The sufficient statistics of the least-squares problem (see the top).
struct Moments {
  Matrix gram;              ///< S = X^T X / n, [p, p]
  std::vector<double> xty;  ///< r = X^T y / n, [p]
  double yty = 0.0;         ///< c = y^T y / n
  std::int64_t n = 0;
};

/// Moments of (x, y).
Moments moments(const Matrix& x, std::span<const double> y);
/// Moments of the data set in which row i appears counts[i] times (a bootstrap
/// resample when the counts sum to n). The divisor is sum(counts).
Moments moments(const Matrix& x, std::span<const double> y, std::span<const std::int64_t> counts);

/// Row multiplicities of one bootstrap resample: n draws of a row index in [0, n).
std::vector<std::int64_t> bootstrap_counts(Rng& rng, std::int64_t n);

/// L(theta) = (1/n) ||y - X theta||^2 from the moments.
double loss(const Moments& mo, std::span<const double> theta);
/// grad L(theta) = 2 (S theta - r).
std::vector<double> loss_gradient(const Moments& mo, std::span<const double> theta);

/// One endpoint as gradient equations: theta [1, p] and grad_loss [1, p].
Equations endpoint_equations(const Moments& mo, std::span<const double> theta);

/// Lightning's EarlyStopping rule (mode "min"), fed one monitored value per
/// epoch: the one rule of core/early_stopping.hpp (a non-finite value stops
/// at once).
using EarlyStopping = EarlyStoppingRule;

struct StoppingRule {
  std::int64_t patience = 5;
  double min_delta = 0.0;
  std::int64_t max_steps = 500;
};

struct GradientDescentRun {
  std::vector<double> theta;          ///< theta_t, the CURRENT iterate when training ended
  std::int64_t steps = 0;             ///< t: number of GD steps taken (the stop step)
  bool stopped_early = false;         ///< true when the rule fired (not just max_steps)
  std::vector<double> monitored_loss; ///< [steps]: l_k = L(theta_{k-1}), k = 1..t
};

/// Exactly `steps` GD steps from 0.
GradientDescentRun gradient_descent(const Moments& mo, double learning_rate, std::int64_t steps);

/// GD from 0 under early stopping, as a Lightning Trainer with one full-batch
/// step per epoch runs it: step k (k = 1, 2, ...) computes l_k = L(theta_{k-1})
/// in its forward pass (the logged training loss), updates to theta_k, and
/// the callback then sees l_k. Training ends after the step at which the rule
/// fires, or after max_steps. The stop step t is the number of steps taken
/// (Lightning's current_epoch after fit), and the iterate returned is theta_t,
/// the current one: Lightning does not restore the best weights.
GradientDescentRun gradient_descent(const Moments& mo, double learning_rate, const StoppingRule& rule);

/// theta_t at each of the strictly increasing `checkpoints` (t >= 1) of one
/// GD trajectory from 0; returns [checkpoints.size(), p].
Matrix gradient_descent_checkpoints(const Moments& mo, double learning_rate, std::span<const std::int64_t> checkpoints);

/// S = V diag(s) V^T: eigenvalues ascending, v's columns the eigenvectors.
struct Spectrum {
  std::vector<double> s;
  Matrix v;
};
Spectrum spectrum(const Matrix& gram);

/// Ali et al.'s Lambda(t) (t >= 1). Throws InputError unless
/// 0 < learning_rate * s_max < 1 and every s_i >= 0.
Matrix ali_lambda(const Spectrum& sp, double learning_rate, std::int64_t t);
/// The eigenvalues f_i of Lambda(t), in the order of sp.s.
std::vector<double> ali_lambda_eigenvalues(const Spectrum& sp, double learning_rate, std::int64_t t);

/// Solves (S + penalty) theta = r: the minimiser of L(theta) + theta^T penalty theta
/// (penalty symmetric, S + penalty nonsingular; SVD least squares otherwise).
std::vector<double> ridge_solution(const Moments& mo, const Matrix& penalty);
/// Retrains with the explicit diagonal penalty sum_j q_j theta_j^2:
/// theta' = (X^T X + n diag q)^{-1} X^T y = (S + diag q)^{-1} r.
std::vector<double> retrain_diagonal(const Moments& mo, std::span<const double> q);

/// The iterative scalar-ridge fit of the paper (appendix H.3): Adam on
/// u = log lambda minimising the SUM-reduced matching loss
///   l(u) = sum_k w_k sum_j (2 e^u theta_kj - b_kj)^2,
/// with early stopping on l (improvement iff l < best, stop after `patience`
/// epochs without one). Epoch k evaluates l at the current u, then takes an
/// Adam step (PyTorch's update with bias correction). The log
/// parametrisation keeps lambda > 0 and lets u travel the decades that
/// lambda spans over a trajectory (about 1e2 down to 1e-4); the sum
/// reduction keeps the gradient p times larger than a mean would, away from
/// Adam's epsilon.
struct AdamOptions {
  double learning_rate = 0.05;
  std::int64_t max_epochs = 30000;
  std::int64_t patience = 2000;
  double init_log_lambda = 0.0;  ///< u at epoch 1 (lambda = 1)
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
};

struct AdamRidgeFit {
  double lambda = 0.0;      ///< e^u at the lowest loss seen
  double loss = 0.0;        ///< that loss
  std::int64_t epochs = 0;  ///< epochs run
};

/// When sum_k w_k <theta_k, b_k> <= 0 no lambda > 0 is optimal: the loss then
/// falls as lambda -> 0 and the fit returns the smallest lambda it reached.
AdamRidgeFit fit_ridge_adam(const Equations& eq, const AdamOptions& options);

/// The scalar-ridge fit the authors' dropout code runs (the paper's Figure 5
/// estimates), reproduced for parity: one endpoint theta (p parameters),
/// targets b_k = -grad L_k of mini-batches, Adam on u = log lambda over the
/// MEAN-reduced loss of each mini-batch in turn,
///   l_k(u) = (1/p) sum_j (2 e^u theta_j - b_kj)^2
///          = (4 lambda^2 ||theta||^2 - 4 lambda <theta, b_k> + ||b_k||^2) / p,
/// one Adam step per mini-batch (epsilon 1e-8 against gradients that the mean
/// reduction makes p times smaller). The mini-batches come as `partitions`
/// partitions of the data of equally many batches each; epoch e runs
/// partition (e - 1) mod partitions in order, as a data loader that
/// reshuffles each epoch would with that many distinct shuffles (one
/// partition: the same batches every epoch; at least as many as epochs: a
/// fresh shuffle every epoch). The monitored loss is the last
/// mini-batch's loss seen before its step (`last_batch`: what PyTorch
/// Lightning's monitors read of a loss logged in training_step with the
/// default flags, on_step only) or the mean of the epoch's mini-batch losses
/// (`epoch_mean`). On it: PyTorch's ReduceLROnPlateau(mode "min", factor,
/// patience, threshold 1e-4 relative) and early stopping (any decrease counts)
/// after `patience` epochs without improvement or `max_epochs`. u starts at
/// `init_log_lambda` (the authors draw 0.1 N(0, 1)). The exact minimiser of
/// the mean of the l_k of every partition the fit ran is
/// lambda* = mean_k <theta, b_k> / (2 ||theta||^2); the returned lambda is
/// where Adam stopped (e^u after the last step), which is what the parity
/// column shows next to lambda*.
struct MinibatchTargets {
  std::vector<double> theta_dot_b;  ///< <theta, b_k> per mini-batch
  std::vector<double> b_squared;    ///< ||b_k||^2 per mini-batch
  double theta_squared = 0.0;       ///< ||theta||^2
  std::int64_t p = 0;               ///< parameters (the mean reduction's divisor)
  std::int64_t partitions = 1;      ///< the batches are this many partitions' (partition-major)
};

/// Partition `index` (0, 1, 2, ... in turn, each asked for once, when an
/// epoch first needs it) as its mini-batches' <theta, b_k> and ||b_k||^2:
/// partitions that cost a pass over the data are made only if used.
using MinibatchPartitionSource =
    std::function<void(std::int64_t index, std::vector<double>& theta_dot_b, std::vector<double>& b_squared)>;

enum class AdamMonitor { last_batch, epoch_mean };

struct MinibatchAdamOptions {
  double learning_rate = 0.05;
  std::int64_t max_epochs = 2000;
  std::int64_t patience = 100;
  double init_log_lambda = 0.0;
  double plateau_factor = 0.5;
  std::int64_t plateau_patience = 10;
  double plateau_threshold = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  AdamMonitor monitor = AdamMonitor::last_batch;
};

struct MinibatchAdamFit {
  double lambda = 0.0;       ///< e^u where the fit stopped
  double loss = 0.0;         ///< the last monitored loss
  double lambda_exact = 0.0; ///< lambda* (see above)
  std::int64_t epochs = 0;
  std::int64_t partitions_used = 0;  ///< partitions made (min(epochs, partitions))
  double final_learning_rate = 0.0;
};

MinibatchAdamFit fit_ridge_adam_minibatch(const MinibatchTargets& targets, const MinibatchAdamOptions& options);
/// The same over `partitions` partitions made on demand by `source` (every
/// partition must have as many mini-batches as the first).
MinibatchAdamFit fit_ridge_adam_minibatch(double theta_squared, std::int64_t p, std::int64_t partitions,
                                          const MinibatchPartitionSource& source, const MinibatchAdamOptions& options);

}  // namespace gradmatch::ols
