#include "core/ols.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/errors.hpp"
#include "core/fit.hpp"
#include "core/rng.hpp"

namespace gradmatch {
namespace {

constexpr double kLearningRate = 0.01;

ols::Dataset small_dataset(std::uint64_t stream = 1) {
  Rng rng(7, stream);
  return ols::draw_dataset(rng, 200, 5, 3.0, 1.0);
}

double max_abs_diff(std::span<const double> a, std::span<const double> b) {
  double d = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

double norm(std::span<const double> a) { return std::sqrt(std::inner_product(a.begin(), a.end(), a.begin(), 0.0)); }

FitOptions family(const char* name) {
  FitOptions o;
  o.family = FamilySpec::parse(name);
  return o;
}

// ---- data and moments -------------------------------------------------------

TEST(OlsData, MomentsGiveTheDirectLossAndGradient) {
  const ols::Dataset d = small_dataset();
  const ols::Moments mo = ols::moments(d.x, d.y);
  const std::vector<double> theta{0.5, -1.0, 2.0, 0.0, 3.0};
  std::vector<double> residual(d.y);
  for (std::int64_t i = 0; i < d.x.rows(); ++i)
    for (std::int64_t j = 0; j < d.x.cols(); ++j) residual[static_cast<std::size_t>(i)] -= d.x(i, j) * theta[static_cast<std::size_t>(j)];
  const double n = static_cast<double>(d.x.rows());
  const double direct = std::inner_product(residual.begin(), residual.end(), residual.begin(), 0.0) / n;
  EXPECT_NEAR(ols::loss(mo, theta), direct, 1e-12 * direct);
  // grad L = -(2/n) X^T (y - X theta)
  const std::vector<double> g = ols::loss_gradient(mo, theta);
  for (std::int64_t j = 0; j < d.x.cols(); ++j) {
    double s = 0.0;
    for (std::int64_t i = 0; i < d.x.rows(); ++i) s += d.x(i, j) * residual[static_cast<std::size_t>(i)];
    EXPECT_NEAR(g[static_cast<std::size_t>(j)], -2.0 * s / n, 1e-12);
  }
}

TEST(OlsData, BootstrapMomentsEqualMomentsOfTheResampledRows) {
  const ols::Dataset d = small_dataset();
  Rng rng(11, 3);
  const std::vector<std::int64_t> counts = ols::bootstrap_counts(rng, d.x.rows());
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), std::int64_t{0}), d.x.rows());
  Matrix xr(d.x.rows(), d.x.cols());
  std::vector<double> yr;
  std::int64_t row = 0;
  for (std::int64_t i = 0; i < d.x.rows(); ++i)
    for (std::int64_t c = 0; c < counts[static_cast<std::size_t>(i)]; ++c, ++row) {
      for (std::int64_t j = 0; j < d.x.cols(); ++j) xr(row, j) = d.x(i, j);
      yr.push_back(d.y[static_cast<std::size_t>(i)]);
    }
  const ols::Moments a = ols::moments(d.x, d.y, counts), b = ols::moments(xr, yr);
  EXPECT_LT(frobenius_distance(a.gram, b.gram), 1e-13);
  EXPECT_LT(max_abs_diff(a.xty, b.xty), 1e-13);
  EXPECT_NEAR(a.yty, b.yty, 1e-12 * b.yty);
  EXPECT_EQ(a.n, b.n);
}

TEST(OlsData, DrawsAreKeyedBySeedAndStreamOnly) {
  const ols::Dataset a = small_dataset(4), b = small_dataset(4), c = small_dataset(5);
  EXPECT_EQ(a.x.values(), b.x.values());
  EXPECT_EQ(a.y, b.y);
  EXPECT_NE(a.beta, c.beta);
}

// ---- Ali et al. theory ------------------------------------------------------

TEST(OlsTheory, GradientDescentIterateSolvesAliRidgeProblem) {
  const ols::Dataset d = small_dataset();
  const ols::Moments mo = ols::moments(d.x, d.y);
  const ols::Spectrum sp = ols::spectrum(mo.gram);
  for (std::int64_t t : {1, 2, 7, 100, 500, 3000}) {
    const std::vector<double> theta = ols::gradient_descent(mo, kLearningRate, t).theta;
    const std::vector<double> ridge = ols::ridge_solution(mo, ols::ali_lambda(sp, kLearningRate, t));
    EXPECT_LT(max_abs_diff(theta, ridge), 1e-10 * std::max(1.0, norm(theta))) << "t = " << t;
  }
}

TEST(OlsTheory, AliLambdaAfterOneStepIsIdentityMinusStepTimesGramOverStep) {
  const ols::Moments mo = ols::moments(small_dataset().x, small_dataset().y);
  const Matrix lambda = ols::ali_lambda(ols::spectrum(mo.gram), kLearningRate, 1);
  Matrix expected = Matrix::identity(5);
  for (std::int64_t i = 0; i < expected.size(); ++i)
    expected.data()[i] = (expected.data()[i] - kLearningRate * mo.gram.data()[i]) / kLearningRate;
  EXPECT_LT(frobenius_distance(lambda, expected), 1e-10 * frobenius_norm(expected));
}

TEST(OlsTheory, AliLambdaEigenvaluesDecayTowardZeroWithSteps) {
  const ols::Moments mo = ols::moments(small_dataset().x, small_dataset().y);
  const ols::Spectrum sp = ols::spectrum(mo.gram);
  std::vector<double> previous = ols::ali_lambda_eigenvalues(sp, kLearningRate, 1);
  for (std::int64_t t : {2, 10, 100, 1000, 10000}) {
    const std::vector<double> f = ols::ali_lambda_eigenvalues(sp, kLearningRate, t);
    for (std::size_t i = 0; i < f.size(); ++i) {
      EXPECT_GT(f[i], 0.0);
      EXPECT_LT(f[i], previous[i]);
    }
    previous = f;
  }
  EXPECT_LT(*std::max_element(previous.begin(), previous.end()), 1e-30);  // e^{-100 s}
}

TEST(OlsTheory, AliLambdaRejectsAStepBeyondStability) {
  const ols::Moments mo = ols::moments(small_dataset().x, small_dataset().y);
  const ols::Spectrum sp = ols::spectrum(mo.gram);
  EXPECT_THROW(ols::ali_lambda(sp, 1.0 / sp.s.back() * 1.01, 10), InputError);
}

// Endpoints on a shared X with new beta and noise, all at the same step t:
// b_k = 2 Lambda(t) theta_k exactly, so m >= p of them pin Lambda(t) down.
TEST(OlsTheory, SymFitOfFixedIterateEndpointsOnSharedDesignRecoversAliLambda) {
  const ols::Dataset base = small_dataset();
  const std::int64_t p = base.x.cols(), t = 300;
  const Matrix truth = ols::ali_lambda(ols::spectrum(ols::moments(base.x, base.y).gram), kLearningRate, t);
  for (std::int64_t m : {p, 3 * p}) {
    Equations eq;
    eq.theta = Matrix(m, p);
    eq.grad_loss = Matrix(m, p);
    for (std::int64_t k = 0; k < m; ++k) {
      Rng rng(21, static_cast<std::uint64_t>(k));
      const ols::Dataset d = ols::draw_response(rng, base.x, 3.0, 1.0);
      const ols::Moments mo = ols::moments(d.x, d.y);
      const std::vector<double> theta = ols::gradient_descent(mo, kLearningRate, t).theta;
      const std::vector<double> g = ols::loss_gradient(mo, theta);
      for (std::int64_t j = 0; j < p; ++j) {
        eq.theta(k, j) = theta[static_cast<std::size_t>(j)];
        eq.grad_loss(k, j) = g[static_cast<std::size_t>(j)];
      }
    }
    const FitResult r = fit(eq, family("sym"));
    EXPECT_LT(frobenius_distance(r.lambda_matrix(), truth), 1e-9 * frobenius_norm(truth)) << "m = " << m;
    EXPECT_LT(r.residual_ratio, 1e-9);
  }
}

// One endpoint, diagonal family: q = b / (2 theta), which is not diag(Lambda(t)),
// yet (S + diag q) theta_t = r, so retraining with it returns theta_t.
TEST(OlsTheory, DiagonalRetrainReproducesEarlyStoppedIterate) {
  const ols::Dataset d = small_dataset();
  const ols::Moments mo = ols::moments(d.x, d.y);
  const ols::GradientDescentRun run = ols::gradient_descent(mo, kLearningRate, ols::StoppingRule{5, 0.0, 500});
  const Equations eq = ols::endpoint_equations(mo, run.theta);
  const FitResult r = fit(eq, family("diag"));
  for (std::int64_t j = 0; j < eq.p(); ++j)
    EXPECT_NEAR(r.coefficient(static_cast<std::size_t>(j)), eq.b(0, j) / (2.0 * eq.theta(0, j)),
                1e-12 * std::abs(r.coefficient(static_cast<std::size_t>(j))));
  const std::vector<double> retrained = ols::retrain_diagonal(mo, r.coefficients);
  EXPECT_LT(max_abs_diff(retrained, run.theta), 1e-10);
  const Matrix lambda = ols::ali_lambda(ols::spectrum(mo.gram), kLearningRate, run.steps);
  double diag_gap = 0.0;
  for (std::int64_t j = 0; j < eq.p(); ++j)
    diag_gap = std::max(diag_gap, std::abs(r.coefficient(static_cast<std::size_t>(j)) - lambda(j, j)));
  EXPECT_GT(diag_gap, 1e-4);  // misspecified, yet it reproduces the weights
}

// Scalar ridge at theta_t with b = -grad L(theta_t): lambda = theta^T Lambda(t) theta / ||theta||^2.
TEST(OlsTheory, ClosedFormRidgeIsRayleighQuotientOfAliLambdaAndDecaysLikeTrace) {
  const ols::Dataset d = small_dataset();
  const ols::Moments mo = ols::moments(d.x, d.y);
  const ols::Spectrum sp = ols::spectrum(mo.gram);
  const std::vector<std::int64_t> steps{1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 500, 1000};
  const Matrix thetas = ols::gradient_descent_checkpoints(mo, kLearningRate, steps);
  double previous = INFINITY, previous_trace = INFINITY;
  for (std::size_t c = 0; c < steps.size(); ++c) {
    const auto row = thetas.row(static_cast<std::int64_t>(c));
    const Equations eq = ols::endpoint_equations(mo, row);
    const double lambda = fit(eq, family("ridge")).coefficient();
    const Matrix theory = ols::ali_lambda(sp, kLearningRate, steps[c]);
    const Matrix lt = matmul(Matrix(1, 5, {row.begin(), row.end()}), theory);
    const double rayleigh =
        std::inner_product(lt.values().begin(), lt.values().end(), row.begin(), 0.0) / std::pow(norm(row), 2);
    EXPECT_NEAR(lambda, rayleigh, 1e-9 * rayleigh) << "t = " << steps[c];
    const std::vector<double> f = ols::ali_lambda_eigenvalues(sp, kLearningRate, steps[c]);
    const double trace = std::accumulate(f.begin(), f.end(), 0.0) / 5.0;
    const auto [lo, hi] = std::minmax_element(f.begin(), f.end());
    EXPECT_GE(lambda, *lo * (1 - 1e-12));
    EXPECT_LE(lambda, *hi * (1 + 1e-12));
    EXPECT_LT(lambda, previous);
    EXPECT_LT(trace, previous_trace);
    previous = lambda;
    previous_trace = trace;
  }
  EXPECT_LT(previous, 1e-3);  // lambda_1000 -> 0, from ~1e2 at t = 1
}

// ---- early stopping ---------------------------------------------------------

TEST(EarlyStopping, StopsAtTheStepAHandWorkedLossSequenceSays) {
  // patience 3, min_delta 0:        best  wait
  //  1: 5.0   improvement           5.0   0
  //  2: 4.0   improvement           4.0   0
  //  3: 4.0   equal is no gain      4.0   1
  //  4: 4.5                         4.0   2
  //  5: 3.9   improvement           3.9   0
  //  6: 3.9                         3.9   1
  //  7: 3.9                         3.9   2
  //  8: 3.9   wait reaches 3: stop
  const std::vector<double> losses{5.0, 4.0, 4.0, 4.5, 3.9, 3.9, 3.9, 3.9, 3.9};
  ols::EarlyStopping rule(3, 0.0);
  std::int64_t stop = 0;
  for (std::size_t k = 0; k < losses.size() && stop == 0; ++k)
    if (rule.update(losses[k])) stop = static_cast<std::int64_t>(k) + 1;
  EXPECT_EQ(stop, 8);
  EXPECT_EQ(rule.best(), 3.9);
}

TEST(EarlyStopping, MinDeltaGainIsStrictAndSmallGainsDoNotMoveBest) {
  ols::EarlyStopping rule(2, 1e-3);
  EXPECT_FALSE(rule.update(1.0));     // best 1.0
  EXPECT_FALSE(rule.update(0.9995));  // 0.9995 < 0.999 fails: wait 1
  EXPECT_TRUE(rule.update(0.999));    // 0.999 < 0.999 fails (strict): wait 2, stop
  EXPECT_EQ(rule.best(), 1.0);
}

TEST(EarlyStopping, StopsAtOnceOnANonFiniteLoss) {
  ols::EarlyStopping rule(100, 0.0);
  EXPECT_FALSE(rule.update(1.0));
  EXPECT_TRUE(rule.update(NAN));
}

// ---- gradient descent -------------------------------------------------------

TEST(OlsGradientDescent, EarlyStoppedRunReturnsTheCurrentIterateAtTheStopStep) {
  const ols::Dataset d = small_dataset();
  const ols::Moments mo = ols::moments(d.x, d.y);
  const ols::StoppingRule rule{4, 1e-2, 5000};
  const ols::GradientDescentRun run = ols::gradient_descent(mo, kLearningRate, rule);
  ASSERT_TRUE(run.stopped_early);
  ASSERT_EQ(static_cast<std::int64_t>(run.monitored_loss.size()), run.steps);
  // l_k is the loss at theta_{k-1}, and the rule fires first at l_t.
  ols::EarlyStopping replay(rule.patience, rule.min_delta);
  std::int64_t fired = 0;
  for (std::int64_t k = 1; k <= run.steps && fired == 0; ++k) {
    const double l = ols::loss(mo, ols::gradient_descent(mo, kLearningRate, k - 1).theta);
    EXPECT_NEAR(run.monitored_loss[static_cast<std::size_t>(k - 1)], l, 1e-12 * l);
    if (replay.update(l)) fired = k;
  }
  EXPECT_EQ(fired, run.steps);
  const std::vector<double> current = ols::gradient_descent(mo, kLearningRate, run.steps).theta;
  const std::vector<double> at_best = ols::gradient_descent(mo, kLearningRate, run.steps - rule.patience).theta;
  EXPECT_EQ(run.theta, current);
  EXPECT_GT(max_abs_diff(run.theta, at_best), 1e-6);
}

TEST(OlsGradientDescent, RunsToMaxStepsWhileTheLossKeepsFalling) {
  const ols::Dataset d = small_dataset();
  const ols::Moments mo = ols::moments(d.x, d.y);
  const ols::GradientDescentRun run = ols::gradient_descent(mo, kLearningRate, ols::StoppingRule{5, 0.0, 500});
  EXPECT_EQ(run.steps, 500);
  EXPECT_FALSE(run.stopped_early);
  EXPECT_TRUE(std::is_sorted(run.monitored_loss.rbegin(), run.monitored_loss.rend()));
}

TEST(OlsGradientDescent, CheckpointsLieOnTheFixedStepTrajectory) {
  const ols::Dataset d = small_dataset();
  const ols::Moments mo = ols::moments(d.x, d.y);
  const std::vector<std::int64_t> steps{1, 3, 40};
  const Matrix thetas = ols::gradient_descent_checkpoints(mo, kLearningRate, steps);
  for (std::size_t c = 0; c < steps.size(); ++c) {
    const std::vector<double> theta = ols::gradient_descent(mo, kLearningRate, steps[c]).theta;
    const auto row = thetas.row(static_cast<std::int64_t>(c));
    EXPECT_EQ(std::vector<double>(row.begin(), row.end()), theta);
  }
}

// ---- iterative fit ----------------------------------------------------------

TEST(OlsAdam, IterativeRidgeFitAgreesWithClosedFormAcrossTheTrajectory) {
  const ols::Dataset d = small_dataset();
  const ols::Moments mo = ols::moments(d.x, d.y);
  const std::vector<std::int64_t> steps{1, 20, 300, 1000};
  const Matrix thetas = ols::gradient_descent_checkpoints(mo, kLearningRate, steps);
  for (std::size_t c = 0; c < steps.size(); ++c) {
    const Equations eq = ols::endpoint_equations(mo, thetas.row(static_cast<std::int64_t>(c)));
    const double closed = fit(eq, family("ridge")).coefficient();
    const ols::AdamRidgeFit adam = ols::fit_ridge_adam(eq, ols::AdamOptions{});
    // At t = 1000 lambda ~ 5e-5: Adam's second moment still remembers the
    // large gradients of its first epochs near lambda = 1, so the last digits
    // converge slowly within 30000 epochs (a property of the paper's fit).
    const double tolerance = steps[c] < 1000 ? 1e-6 : 1e-3;
    EXPECT_NEAR(adam.lambda, closed, tolerance * closed) << "t = " << steps[c];
    EXPECT_LE(adam.epochs, 30000);
  }
}

TEST(OlsAdam, MinibatchParityFitFirstStepIsTheLearningRateDampedByEpsilonAtMeanReduction) {
  // One mini-batch, one epoch: Adam's first bias-corrected step is
  // lr * g / (|g| + eps), g = dl/du at u0 = 0 (lambda = 1):
  //   g = (8 ||theta||^2 - 4 <theta, b>) / p.
  ols::MinibatchTargets t;
  t.theta_squared = 2.0;
  t.theta_dot_b = {1.0};
  t.b_squared = {3.0};
  ols::MinibatchAdamOptions o;
  o.max_epochs = 1;
  for (std::int64_t p : {1LL, 1'000'000'000LL}) {
    t.p = p;
    const double g = (8.0 * 2.0 - 4.0 * 1.0) / static_cast<double>(p);
    const ols::MinibatchAdamFit f = ols::fit_ridge_adam_minibatch(t, o);
    EXPECT_NEAR(std::log(f.lambda), -0.05 * g / (std::abs(g) + 1e-8), 1e-15) << "p = " << p;
    // The epoch loss is l(u0) = (4 ||theta||^2 - 4 <theta, b> + ||b||^2) / p.
    EXPECT_NEAR(f.loss, (8.0 - 4.0 + 3.0) / static_cast<double>(p), 1e-15 / static_cast<double>(p));
  }
  // At p = 1e9 the gradient (1.2e-8) is of epsilon's size: the step is about half of lr.
}

TEST(OlsAdam, MinibatchParityFitReachesTheExactMinimiserWithoutEpsilonAndStallsAboveItWithEpsilon) {
  // Four mini-batches whose mean <theta, b> gives lambda* = 1e-3.
  ols::MinibatchTargets t;
  t.theta_squared = 50.0;
  t.theta_dot_b = {0.05, 0.15, 0.08, 0.12};  // mean 0.1 -> lambda* = 0.1 / 100
  t.b_squared = {1.0, 1.2, 0.9, 1.1};
  t.p = 100;
  ols::MinibatchAdamOptions o;
  o.epsilon = 0.0;
  o.max_epochs = 4000;
  o.patience = 4000;
  o.init_log_lambda = std::log(3e-3);  // near lambda*: Adam converges
  const ols::MinibatchAdamFit exact = ols::fit_ridge_adam_minibatch(t, o);
  EXPECT_DOUBLE_EQ(exact.lambda_exact, 1e-3);
  EXPECT_NEAR(exact.lambda, 1e-3, 2e-2 * 1e-3);
  // Started at lambda = 1 (the authors' 0.1 N(0, 1) on u), with mean
  // reduction over many parameters the gradients near lambda* are far
  // below epsilon and Adam's steps shrink before u has come down.
  o.init_log_lambda = 0.0;
  t.p = 10'000'000;
  o.epsilon = 1e-8;
  o.max_epochs = 2000;
  o.patience = 100;
  const ols::MinibatchAdamFit stalled = ols::fit_ridge_adam_minibatch(t, o);
  EXPECT_GT(stalled.lambda, 2.0 * stalled.lambda_exact);
}

TEST(OlsAdam, MinibatchParityFitOnTheLastBatchsLossStopsPatienceEpochsAfterThatLossLastFell) {
  // Batch 1 pulls lambda up (its optimum <theta, b>/2 = 50), batch 2's loss
  // (4 lambda^2 + 1) only grows with lambda > 0. From lambda = 1 Adam raises
  // lambda every epoch for dozens of epochs (u moves about lr per step), so
  // the last batch's loss is lowest at epoch 1: early stopping with patience
  // 10 on it ends at epoch 11, while the epoch mean keeps falling.
  ols::MinibatchTargets t;
  t.theta_squared = 1.0;
  t.theta_dot_b = {100.0, 0.0};
  t.b_squared = {2600.0, 1.0};
  t.p = 1;
  ols::MinibatchAdamOptions o;
  o.patience = 10;
  o.plateau_patience = 100'000'000;
  o.monitor = ols::AdamMonitor::last_batch;
  const ols::MinibatchAdamFit last = ols::fit_ridge_adam_minibatch(t, o);
  EXPECT_EQ(last.epochs, 11);
  EXPECT_GT(last.lambda, 1.0);
  o.monitor = ols::AdamMonitor::epoch_mean;
  const ols::MinibatchAdamFit mean = ols::fit_ridge_adam_minibatch(t, o);
  EXPECT_GT(mean.epochs, 30);
}

TEST(OlsAdam, MinibatchParityFitRunsOnePartitionPerEpochInTurn) {
  // Two partitions of one batch each, two epochs, take the same Adam steps
  // as one partition of both batches for one epoch.
  ols::MinibatchTargets one;
  one.theta_squared = 3.0;
  one.theta_dot_b = {0.4, -0.1};
  one.b_squared = {2.0, 1.5};
  one.p = 7;
  ols::MinibatchTargets two = one;
  two.partitions = 2;
  ols::MinibatchAdamOptions o;
  o.max_epochs = 1;
  const ols::MinibatchAdamFit a = ols::fit_ridge_adam_minibatch(one, o);
  o.max_epochs = 2;
  const ols::MinibatchAdamFit b = ols::fit_ridge_adam_minibatch(two, o);
  EXPECT_EQ(a.lambda, b.lambda);
  EXPECT_EQ(a.loss, b.loss);  // the last batch's loss before its step
  EXPECT_EQ(b.epochs, 2);
  EXPECT_DOUBLE_EQ(b.lambda_exact, 0.15 / (2.0 * 3.0));  // the mean over every batch of every partition
  // After one epoch the two-partition fit has seen batch 1 only.
  o.max_epochs = 1;
  ols::MinibatchTargets first = one;
  first.theta_dot_b = {0.4};
  first.b_squared = {2.0};
  EXPECT_EQ(ols::fit_ridge_adam_minibatch(two, o).lambda, ols::fit_ridge_adam_minibatch(first, o).lambda);
  two.partitions = 3;
  EXPECT_THROW(ols::fit_ridge_adam_minibatch(two, o), InputError);
}

TEST(OlsAdam, MinibatchParityFitMakesEachPartitionOnceInTurnAndOnlyIfAnEpochUsesIt) {
  // A thousand partitions and five epochs: five partitions are made, one per
  // epoch (a fresh shuffle every epoch); three partitions and seven epochs:
  // three, reused in turn.
  std::vector<std::int64_t> asked;
  const auto source = [&](std::int64_t index, std::vector<double>& tb, std::vector<double>& bb) {
    asked.push_back(index);
    tb = {0.1 * static_cast<double>(index + 1), 0.2};
    bb = {1.0, 2.0};
  };
  ols::MinibatchAdamOptions o;
  o.max_epochs = 5;
  const ols::MinibatchAdamFit fresh = ols::fit_ridge_adam_minibatch(2.0, 10, 1000, source, o);
  EXPECT_EQ(asked, (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(fresh.partitions_used, 5);
  // lambda* over the batches run: mean <theta, b> = (0.1 + ... + 0.5 + 5 * 0.2) / 10 = 0.25.
  EXPECT_DOUBLE_EQ(fresh.lambda_exact, 0.25 / (2.0 * 2.0));
  asked.clear();
  o.max_epochs = 7;
  EXPECT_EQ(ols::fit_ridge_adam_minibatch(2.0, 10, 3, source, o).partitions_used, 3);
  EXPECT_EQ(asked, (std::vector<std::int64_t>{0, 1, 2}));
  const auto ragged = [](std::int64_t index, std::vector<double>& tb, std::vector<double>& bb) {
    tb.assign(static_cast<std::size_t>(index + 1), 0.1);
    bb.assign(static_cast<std::size_t>(index + 1), 1.0);
  };
  EXPECT_THROW(ols::fit_ridge_adam_minibatch(2.0, 10, 3, ragged, o), InputError);
}

}  // namespace
}  // namespace gradmatch
