#include "core/fit.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "core/errors.hpp"
#include "core/lapack.hpp"
#include "core/problems.hpp"
#include "core/regularizers.hpp"
#include "core/rng.hpp"
#include "least_squares_reference.hpp"

namespace gradmatch {
namespace {

// Solves the p x p system M x = v (M symmetric positive definite) by eigendecomposition.
std::vector<double> solve_spd(const Matrix& m, const std::vector<double>& v) {
  const std::int64_t p = m.rows();
  Matrix e = m;
  const auto mu = lapack::syevd(p, e.data(), p);
  std::vector<double> x(static_cast<std::size_t>(p), 0.0);
  for (std::int64_t i = 0; i < p; ++i) {
    double proj = 0.0;
    for (std::int64_t a = 0; a < p; ++a) proj += e.data()[i * p + a] * v[static_cast<std::size_t>(a)];
    for (std::int64_t a = 0; a < p; ++a) x[static_cast<std::size_t>(a)] += e.data()[i * p + a] * proj / mu[static_cast<std::size_t>(i)];
  }
  return x;
}

// One linear regression with L = (1/n) ||y - X theta||^2.
struct Regression {
  Matrix x;
  std::vector<double> y;
  std::int64_t n() const { return x.rows(); }
  std::int64_t p() const { return x.cols(); }
  Matrix s() const {  // X^T X / n
    Matrix s = matmul(x.transposed(), x);
    for (double& v : s.values()) v /= static_cast<double>(n());
    return s;
  }
  std::vector<double> xty() const {  // X^T y / n
    std::vector<double> out(static_cast<std::size_t>(p()), 0.0);
    for (std::int64_t i = 0; i < n(); ++i)
      for (std::int64_t j = 0; j < p(); ++j) out[static_cast<std::size_t>(j)] += x(i, j) * y[static_cast<std::size_t>(i)] / static_cast<double>(n());
    return out;
  }
  // grad L = (2/n) X^T (X theta - y), computed from the data (not from the penalty).
  std::vector<double> grad(const std::vector<double>& theta) const {
    std::vector<double> g(static_cast<std::size_t>(p()), 0.0);
    for (std::int64_t i = 0; i < n(); ++i) {
      double r = -y[static_cast<std::size_t>(i)];
      for (std::int64_t j = 0; j < p(); ++j) r += x(i, j) * theta[static_cast<std::size_t>(j)];
      for (std::int64_t j = 0; j < p(); ++j) g[static_cast<std::size_t>(j)] += 2.0 * x(i, j) * r / static_cast<double>(n());
    }
    return g;
  }
};

Regression random_regression(Rng& rng, std::int64_t n, std::int64_t p) {
  Regression r{problems::gaussian(rng, n, p), std::vector<double>(static_cast<std::size_t>(n))};
  const Matrix beta = problems::gaussian(rng, p, 1, 3.0);
  for (std::int64_t i = 0; i < n; ++i) {
    double s = rng.normal();
    for (std::int64_t j = 0; j < p; ++j) s += r.x(i, j) * beta(j, 0);
    r.y[static_cast<std::size_t>(i)] = s;
  }
  return r;
}

// Appends the point (theta, grad L(theta)) of regression r to eq.
void add_point(Equations& eq, const Regression& r, const std::vector<double>& theta) {
  const std::int64_t m = eq.m(), p = r.p();
  Matrix t(m + 1, p), g(m + 1, p);
  for (std::int64_t k = 0; k < m; ++k)
    for (std::int64_t j = 0; j < p; ++j) {
      t(k, j) = eq.theta(k, j);
      g(k, j) = eq.grad_loss(k, j);
    }
  const auto grad = r.grad(theta);
  for (std::int64_t j = 0; j < p; ++j) {
    t(m, j) = theta[static_cast<std::size_t>(j)];
    g(m, j) = grad[static_cast<std::size_t>(j)];
  }
  eq.theta = std::move(t);
  eq.grad_loss = std::move(g);
}

// Closed-form ridge regression: (X^T X / n + lambda I) theta = X^T y / n.
std::vector<double> ridge_solution(const Regression& r, double lambda) {
  Matrix m = r.s();
  for (std::int64_t j = 0; j < r.p(); ++j) m(j, j) += lambda;
  return solve_spd(m, r.xty());
}

// Exact stationary point of L + lambda1 sum h_beta(theta) + lambda2 sum theta^2
// at a chosen theta: pick y so that grad L(theta) = -(lambda1 h'(theta) + 2 lambda2 theta).
// (The objective is convex, so theta is its unique minimiser.)
Regression elastic_net_regression(Rng& rng, const std::vector<double>& theta, double l1, double l2, double beta) {
  const std::int64_t n = 80, p = static_cast<std::int64_t>(theta.size());
  Regression r{problems::gaussian(rng, n, p), {}};
  std::vector<double> g(static_cast<std::size_t>(p));
  reg::elastic_net_gradient(theta, l1, l2, beta, g);
  // grad L = (2/n) X^T (X theta - y) = -g  <=>  y = X theta + (n/2) X (X^T X)^{-1} g.
  const auto z = solve_spd(matmul(r.x.transposed(), r.x), g);
  r.y.assign(static_cast<std::size_t>(n), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < p; ++j)
      r.y[static_cast<std::size_t>(i)] += r.x(i, j) * (theta[static_cast<std::size_t>(j)] + 0.5 * static_cast<double>(n) * z[static_cast<std::size_t>(j)]);
  return r;
}

FitOptions options(const std::string& family, const std::string& method = "auto") {
  FitOptions o;
  o.family = FamilySpec::parse(family);
  o.method = parse_method(method);
  return o;
}

TEST(RidgeFit, RecoversLambdaFromClosedFormRidgeRegressions) {
  for (const double lambda : {1e-3, 0.1, 2.5}) {
    Equations eq;
    Rng rng(20, static_cast<std::uint64_t>(lambda * 1000));
    for (int k = 0; k < 4; ++k) {
      const Regression r = random_regression(rng, 100, 7);
      add_point(eq, r, ridge_solution(r, lambda));
    }
    for (const char* method : {"qr", "normal"}) {
      const FitResult res = fit(eq, options("ridge", method));
      EXPECT_NEAR(res.coefficient(), lambda, 1e-10 * lambda) << method;
      EXPECT_LT(res.residual_ratio, 1e-10);
      EXPECT_NEAR(res.cosine, 1.0, 1e-12);
      EXPECT_EQ(res.m, 4);
      EXPECT_EQ(res.p, 7);
      EXPECT_EQ(res.rank, 1);
      EXPECT_DOUBLE_EQ(res.condition_number, 1.0);
      EXPECT_TRUE(res.shape.empty());
    }
  }
}

TEST(RidgeFit, TheCosineStaysWithinMinusOneAndOneWhenRoundingWouldPushItOut) {
  // Exact equations grad_loss = -2 lambda theta (lambda of either sign): the
  // prediction is the target, the cosine 1, and the rounding of its three
  // sums lands above 1 for some of these draws.
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    Rng rng(31, seed);
    const double lambda = (seed % 2 == 0 ? 1.0 : -1.0) * std::exp(rng.normal());
    Equations eq;
    eq.theta = Matrix(3, 5);
    eq.grad_loss = Matrix(3, 5);
    for (std::int64_t k = 0; k < 3; ++k)
      for (std::int64_t j = 0; j < 5; ++j) {
        eq.theta(k, j) = rng.normal();
        eq.grad_loss(k, j) = -2.0 * lambda * eq.theta(k, j);
      }
    const FitResult res = fit(eq, options("ridge", "qr"));
    EXPECT_LE(std::abs(res.cosine), 1.0) << seed;
    EXPECT_NEAR(res.cosine, 1.0, 1e-15) << seed;
  }
}

TEST(RidgeFit, ScalarFitOfAnInconsistentProblemIsTheProjection) {
  Rng rng(21, 0);
  Equations eq{problems::gaussian(rng, 3, 5), problems::gaussian(rng, 3, 5), {}, {}, {}, {}};
  double ab = 0.0, aa = 0.0, bb = 0.0;
  for (std::int64_t k = 0; k < 3; ++k)
    for (std::int64_t j = 0; j < 5; ++j) {
      const double a = 2.0 * eq.theta(k, j), b = -eq.grad_loss(k, j);
      ab += a * b;
      aa += a * a;
      bb += b * b;
    }
  const FitResult res = fit(eq, options("ridge"));
  EXPECT_NEAR(res.coefficient(), ab / aa, 1e-14);
  const double cos = ab / std::sqrt(aa * bb);
  EXPECT_NEAR(std::abs(res.cosine), std::abs(cos), 1e-12);
  EXPECT_NEAR(res.residual_ratio, std::sqrt(1.0 - cos * cos), 1e-12);
  // Standard error: sigma^2 / sum a^2 with sigma^2 = RSS / (n - 1).
  const double rss = bb - ab * ab / aa;
  EXPECT_NEAR(res.sigma2, rss / 14.0, 1e-12);
  EXPECT_NEAR(res.standard_errors.at(0), std::sqrt(rss / 14.0 / aa), 1e-12);
}

TEST(DiagFit, RecoversTheDiagonalPenaltyOfOneRegressionExactly) {
  Rng rng(22, 0);
  const Regression r = random_regression(rng, 200, 6);
  const std::vector<double> q{0.01, 0.1, 0.5, 1.0, 2.0, 0.0};
  Matrix m = r.s();
  for (std::int64_t j = 0; j < 6; ++j) m(j, j) += q[static_cast<std::size_t>(j)];
  Equations eq;
  add_point(eq, r, solve_spd(m, r.xty()));
  const FitResult res = fit(eq, options("diag"));
  ASSERT_EQ(res.shape, std::vector<std::int64_t>{6});
  for (std::size_t j = 0; j < 6; ++j) EXPECT_NEAR(res.coefficients[j], q[j], 1e-10 * std::max(q[j], 1.0));
  EXPECT_LT(res.residual_ratio, 1e-10);
}

TEST(ElasticNetFit, RecoversLambda1AndLambda2FromExactStationaryPoints) {
  const double beta = 1e-2;
  for (const auto& [l1, l2] : std::vector<std::pair<double, double>>{{0.05, 0.2}, {1.0, 1e-3}, {1e-3, 1.0}}) {
    Rng rng(23, static_cast<std::uint64_t>(l1 * 1e4 + l2 * 10));
    Equations eq;
    for (int k = 0; k < 3; ++k) {
      // Half the coordinates inside the quadratic zone |theta| < beta, half outside.
      std::vector<double> theta(10);
      for (std::size_t j = 0; j < 10; ++j) theta[j] = (j % 2 ? 0.9 * beta : 1.5) * (rng.uniform() - 0.5) * 2.0;
      add_point(eq, elastic_net_regression(rng, theta, l1, l2, beta), theta);
    }
    for (const char* method : {"qr", "normal"}) {
      const FitResult res = fit(eq, options("elastic-net:beta=0.01", method));
      ASSERT_EQ(res.coefficients.size(), 2u);
      EXPECT_NEAR(res.coefficients[0], l1, 1e-9 * std::max(l1, l2)) << method;
      EXPECT_NEAR(res.coefficients[1], l2, 1e-9 * std::max(l1, l2)) << method;
      EXPECT_LT(res.residual_ratio, 1e-9);
      EXPECT_EQ(res.names, (std::vector<std::string>{"lambda1", "lambda2"}));
    }
  }
}

TEST(HuberFit, RecoversLambdaFromExactStationaryPoints) {
  Rng rng(24, 0);
  Equations eq;
  for (int k = 0; k < 2; ++k) {
    std::vector<double> theta(8);
    for (double& t : theta) t = rng.normal();
    add_point(eq, elastic_net_regression(rng, theta, 0.3, 0.0, 0.5), theta);
  }
  const FitResult res = fit(eq, options("huber:beta=0.5"));
  EXPECT_NEAR(res.coefficient(), 0.3, 1e-11);
}

TEST(FeaturesFit, ReproducesElasticNetWhenGivenItsColumns) {
  Rng rng(25, 0);
  std::vector<double> theta(10);
  for (std::size_t j = 0; j < 10; ++j) theta[j] = (j % 2 ? 0.005 : 1.0) * rng.normal();
  Equations eq;
  add_point(eq, elastic_net_regression(rng, theta, 0.4, 0.7, 0.01), theta);
  Matrix huber_col(1, 10), ridge_col(1, 10);
  for (std::int64_t j = 0; j < 10; ++j) {
    huber_col(0, j) = reg::huber_derivative(theta[static_cast<std::size_t>(j)], 0.01);
    ridge_col(0, j) = 2.0 * theta[static_cast<std::size_t>(j)];
  }
  eq.features = {{"huber", huber_col}, {"ridge", ridge_col}};
  const FitResult res = fit(eq, options("features"));
  EXPECT_EQ(res.names, (std::vector<std::string>{"huber", "ridge"}));
  EXPECT_NEAR(res.coefficients[0], 0.4, 1e-9);
  EXPECT_NEAR(res.coefficients[1], 0.7, 1e-9);
}

TEST(ColumnScaling, LeavesAFullRankSolutionAndItsStandardErrorsUnchanged) {
  Rng rng(26, 0);
  Equations eq{problems::gaussian(rng, 5, 20, 0.01), problems::gaussian(rng, 5, 20), {}, {}, {}, {}};
  for (const char* method : {"qr", "normal"}) {
    FitOptions plain = options("elastic-net:beta=0.02", method), scaled = plain;
    scaled.normalize = true;
    const FitResult a = fit(eq, plain), b = fit(eq, scaled);
    for (std::size_t c = 0; c < 2; ++c) {
      EXPECT_NEAR(a.coefficients[c], b.coefficients[c], 1e-9 * std::abs(a.coefficients[c]));
      EXPECT_NEAR(a.standard_errors[c], b.standard_errors[c], 1e-9 * a.standard_errors[c]);
    }
    // Scaling equilibrates the columns, so the condition number cannot grow.
    EXPECT_LE(b.condition_number, a.condition_number * (1.0 + 1e-12));
  }
}

TEST(NonNegativeFit, ClampsANegativeCoefficientAndRefitsTheRest) {
  // b = 2 theta * 0.5 - 0.3 * huber'(theta): the unconstrained elastic-net fit has lambda1 < 0.
  Rng rng(27, 0);
  Equations eq{problems::gaussian(rng, 4, 15), Matrix(4, 15), {}, {}, {}, {}};
  for (std::int64_t k = 0; k < 4; ++k)
    for (std::int64_t j = 0; j < 15; ++j)
      eq.grad_loss(k, j) = -(2.0 * 0.5 * eq.theta(k, j) - 0.3 * reg::huber_derivative(eq.theta(k, j), 0.1));
  const FitResult free_fit = fit(eq, options("elastic-net:beta=0.1"));
  EXPECT_NEAR(free_fit.coefficients[0], -0.3, 1e-10);
  FitOptions o = options("elastic-net:beta=0.1");
  o.nonneg = true;
  const FitResult res = fit(eq, o);
  EXPECT_EQ(res.coefficients[0], 0.0);
  // With lambda1 pinned at 0 the rest is the one-column ridge fit.
  Equations ridge_eq = eq;
  const FitResult ridge = fit(ridge_eq, options("ridge"));
  EXPECT_NEAR(res.coefficients[1], ridge.coefficient(), 1e-12);
  EXPECT_TRUE(std::isnan(res.standard_errors[0]));
}

TEST(NonNegativeFit, TheDiagFamilyClampsEachNegativeCoordinateAloneAndLeavesTheOthersExact) {
  // b_kj = 2 q_j theta_kj (+ a little noise on coordinate 0): the diag fit is one
  // decoupled ratio per coordinate, so the constraint clamps q_1 < 0 to 0 and
  // leaves every other coordinate as the unconstrained fit has it.
  Rng rng(29, 0);
  const std::vector<double> q{0.3, -0.2, 0.0, 1.5};
  Equations eq{problems::gaussian(rng, 5, 4), Matrix(5, 4), {}, {}, {}, {}};
  for (std::int64_t k = 0; k < 5; ++k)
    for (std::int64_t j = 0; j < 4; ++j)
      eq.grad_loss(k, j) = -2.0 * q[static_cast<std::size_t>(j)] * eq.theta(k, j) + (j == 0 ? 1e-3 * rng.normal() : 0.0);
  const FitResult free_fit = fit(eq, options("diag"));
  EXPECT_NEAR(free_fit.coefficients[1], -0.2, 1e-12);
  FitOptions o = options("diag");
  o.nonneg = true;
  const FitResult res = fit(eq, o);
  EXPECT_EQ(res.coefficients[1], 0.0);
  for (const std::size_t j : {std::size_t{0}, std::size_t{2}, std::size_t{3}})
    EXPECT_EQ(res.coefficients[j], free_fit.coefficients[j]) << j;
  EXPECT_NEAR(res.coefficients[3], 1.5, 1e-12);
  EXPECT_TRUE(std::isnan(res.standard_errors[1]));  // a coordinate on its bound has no standard error
  EXPECT_TRUE(std::isfinite(res.standard_errors[0]) && res.standard_errors[0] > 0.0);
  EXPECT_GT(res.residual_ratio, free_fit.residual_ratio);  // the clamped coordinate's target is left unexplained
}

TEST(Weights, AnIntegerWeightEqualsRepeatingThePoint) {
  Rng rng(28, 0);
  Equations eq{problems::gaussian(rng, 3, 6), problems::gaussian(rng, 3, 6), {}, {}, {2.0, 1.0, 0.0}, {}};
  Equations repeated{Matrix(2, 6), Matrix(2, 6), {}, {}, {}, {}};
  for (std::int64_t j = 0; j < 6; ++j) {
    repeated.theta(0, j) = repeated.theta(1, j) = eq.theta(0, j);
    repeated.grad_loss(0, j) = repeated.grad_loss(1, j) = eq.grad_loss(0, j);
  }
  Equations both = repeated.rows(0, 2);
  {  // append point 1
    Matrix t(3, 6), g(3, 6);
    for (std::int64_t k = 0; k < 3; ++k)
      for (std::int64_t j = 0; j < 6; ++j) {
        t(k, j) = k < 2 ? repeated.theta(k, j) : eq.theta(1, j);
        g(k, j) = k < 2 ? repeated.grad_loss(k, j) : eq.grad_loss(1, j);
      }
    both.theta = t;
    both.grad_loss = g;
  }
  // Every route that weighs rows: QR on sqrt(w)-scaled rows, the weighted
  // normal equations (their sums, which the distributed fits add up too), the
  // closed-form diag, the structured and both vech sym solvers.
  const std::vector<std::pair<const char*, const char*>> routes{
      {"ridge", "qr"},        {"ridge", "normal"}, {"elastic-net:beta=0.5", "qr"}, {"elastic-net:beta=0.5", "normal"},
      {"huber:beta=0.5", "normal"}, {"diag", "closed-form"}, {"sym", "structured"}, {"sym", "vech"},
      {"sym", "vech-plain"}};
  for (const auto& [family, method] : routes) {
    const FitResult a = fit(eq, options(family, method)), b = fit(both, options(family, method));
    ASSERT_EQ(a.coefficients.size(), b.coefficients.size());
    for (std::size_t c = 0; c < a.coefficients.size(); ++c)
      EXPECT_NEAR(a.coefficients[c], b.coefficients[c], 1e-10 * (1.0 + std::abs(b.coefficients[c]))) << family << " " << method;
    EXPECT_NEAR(a.residual_ratio, b.residual_ratio, 1e-12) << family << " " << method;
    EXPECT_EQ(a.n_equations, 12);  // the zero-weight point does not count
  }
}

TEST(Weights, UniformWeightsFarFromOneChangeNeitherTheFitNorItsCosineAndResidualRatio) {
  Rng rng(30, 0);
  const Equations plain{problems::gaussian(rng, 6, 3), problems::gaussian(rng, 6, 3), {}, {}, {}, {}};
  const FitResult a = fit(plain, options("ridge"));
  for (const double w : {1e200, 1e-200}) {
    Equations weighted = plain;
    weighted.weights.assign(6, w);
    const FitResult b = fit(weighted, options("ridge"));
    EXPECT_NEAR(b.coefficients[0], a.coefficients[0], 1e-12 * std::abs(a.coefficients[0])) << w;
    EXPECT_NEAR(b.residual_ratio, a.residual_ratio, 1e-12) << w;
    EXPECT_NEAR(b.cosine, a.cosine, 1e-12) << w;  // was 0 (1e200) and NaN (1e-200): the product of the sums
    EXPECT_EQ(b.warnings, a.warnings) << w;
  }
}

TEST(Fitter, EquationsScaledBy1eMinus200Or1e200KeepTheirResidualRatioAndCosine) {
  Rng rng(32, 0);
  Equations plain{problems::gaussian(rng, 6, 3), problems::gaussian(rng, 6, 3), {}, {}, {}, {}};
  for (std::int64_t k = 0; k < 6; ++k)  // b = theta + noise: ridge explains most of it
    for (std::int64_t j = 0; j < 3; ++j) plain.grad_loss(k, j) = -plain.theta(k, j) + 0.1 * plain.grad_loss(k, j);
  const FitResult a = fit(plain, options("ridge"));
  for (const double scale : {1e-200, 1e200}) {
    Equations scaled = plain;
    for (double& v : scaled.theta.values()) v *= scale;
    for (double& v : scaled.grad_loss.values()) v *= scale;
    const FitResult b = fit(scaled, options("ridge"));
    EXPECT_NEAR(b.coefficients[0], a.coefficients[0], 1e-12 * std::abs(a.coefficients[0])) << scale;
    EXPECT_NEAR(b.residual_ratio, a.residual_ratio, 1e-12) << scale;  // was 0 at 1e-200 (squares underflow)
    EXPECT_NEAR(b.cosine, a.cosine, 1e-12) << scale;                  // was NaN at 1e-200
    EXPECT_EQ(b.warnings, a.warnings) << scale;
  }
}

TEST(Fitter, SummingStatisticsOverRowBlocksEqualsTheSerialFit) {
  Rng rng(29, 0);
  const Equations eq = problems::random_sym(rng, 17, 5);
  for (const char* family : {"ridge", "diag", "sym", "huber:beta=0.3"}) {
    FitOptions o = options(family, std::string(family) == "sym" ? "structured" : (std::string(family) == "diag" ? "auto" : "normal"));
    const FitResult serial = fit(eq, o);
    Fitter fitter(o, eq, eq.m());
    std::vector<double> stats, sums;
    for (auto [b, e] : std::vector<std::pair<int, int>>{{0, 6}, {6, 7}, {7, 17}}) {
      const auto s = fitter.statistics(eq.rows(b, e));
      if (stats.empty()) stats.assign(s.size(), 0.0);
      for (std::size_t i = 0; i < s.size(); ++i) stats[i] += s[i];
    }
    fitter.solve(stats);
    for (auto [b, e] : std::vector<std::pair<int, int>>{{0, 9}, {9, 17}}) {
      const auto s = fitter.residual_sums(eq.rows(b, e));
      if (sums.empty()) sums.assign(s.size(), 0.0);
      for (std::size_t i = 0; i < s.size(); ++i) sums[i] += s[i];
    }
    const FitResult split = fitter.result(sums);
    for (std::size_t c = 0; c < serial.coefficients.size(); ++c)
      EXPECT_NEAR(split.coefficients[c], serial.coefficients[c], 1e-12 * (1.0 + std::abs(serial.coefficients[c]))) << family;
    EXPECT_NEAR(split.residual_ratio, serial.residual_ratio, 1e-13) << family;
    EXPECT_NEAR(split.cosine, serial.cosine, 1e-13) << family;
  }
}

TEST(FamilySpec, ParsesEveryFamilyAndRoundTripsItsText) {
  for (const char* text : {"ridge", "diag", "sym", "features", "huber:beta=0.001", "elastic-net:beta=0.25"}) {
    const FamilySpec f = FamilySpec::parse(text);
    EXPECT_EQ(f.to_string(), text);
    const FamilySpec again = FamilySpec::parse(f.to_string());
    EXPECT_EQ(again.kind, f.kind) << text;
    EXPECT_EQ(again.beta, f.beta) << text;
  }
  EXPECT_DOUBLE_EQ(FamilySpec::parse("huber:beta=0.001").beta, 0.001);
  EXPECT_EQ(FamilySpec::parse("elastic-net:beta=2").kind, FamilyKind::elastic_net);
}

TEST(FamilySpec, RejectsUnknownFamiliesAndBadBetasWithAHint) {
  for (const char* bad : {"lasso", "huber", "huber:beta=", "huber:beta=-1", "huber:beta=abc", "elastic-net:b=1",
                          "ridge:beta=1", ""}) {
    try {
      FamilySpec::parse(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("beta"), std::string::npos) << e.what();
    }
  }
}

TEST(FitOptions, RejectsMethodsThatDoNotApplyToTheFamily) {
  Rng rng(30, 0);
  const Equations eq = problems::random_sym(rng, 3, 3);
  EXPECT_THROW(fit(eq, options("diag", "vech")), InputError);
  EXPECT_THROW(fit(eq, options("ridge", "structured")), InputError);
  EXPECT_THROW(fit(eq, options("sym", "qr")), InputError);
  EXPECT_THROW(fit(eq, options("features")), InputError);  // no features/ datasets
  FitOptions o = options("sym");
  o.nonneg = true;
  EXPECT_THROW(fit(eq, o), InputError);
  EXPECT_THROW(parse_method("lstsq"), InputError);
}

// One point in p = 2 with orthogonal candidate columns (1, 0) and (0, 0.3):
// the design's singular values are 1 and 0.3 and b = (1, 0.3) is matched by
// coefficients (1, 1). A cut rcond >= 0.3 drops the second column (minimum
// norm: (1, 0), rank 1), a smaller one keeps it, whatever the method.
TEST(Rcond, EveryMethodCutsTheSameSingularValues) {
  Equations eq{Matrix(1, 2, {1.0, 1.0}), Matrix(1, 2, {-1.0, -0.3}), {}, {}, {}, {}};
  eq.features = {{"a", Matrix(1, 2, {1.0, 0.0})}, {"b", Matrix(1, 2, {0.0, 0.3})}};
  for (const char* method : {"qr", "normal"}) {
    FitOptions o = options("features", method);
    o.rcond = 0.5;
    FitResult r = fit(eq, o);
    EXPECT_EQ(r.rank, 1) << method;
    EXPECT_NEAR(r.coefficients[0], 1.0, 1e-12) << method;
    EXPECT_NEAR(r.coefficients[1], 0.0, 1e-12) << method;
    o.rcond = 0.2;
    r = fit(eq, o);
    EXPECT_EQ(r.rank, 2) << method;
    EXPECT_NEAR(r.coefficients[1], 1.0, 1e-12) << method;
    EXPECT_EQ(r.rcond, 0.2);
  }
}

TEST(Rcond, NanAndValuesOfOneOrMoreAreRejectedNamingTheFlag) {
  Rng rng(30, 0);
  const Equations eq = problems::random_sym(rng, 3, 3);
  for (const double bad : {std::nan(""), 1.0, 2.0, std::numeric_limits<double>::infinity()}) {
    FitOptions o = options("ridge");
    o.rcond = bad;
    try {
      fit(eq, o);
      ADD_FAILURE() << bad;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("--rcond"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("[0, 1)"), std::string::npos) << e.what();
    }
  }
  FitOptions o = options("ridge");  // negative: the default cut
  o.rcond = -1.0;
  EXPECT_DOUBLE_EQ(fit(eq, o).rcond, default_rcond(1));
}

TEST(Equations, KeepFeaturesKeepsTheMatchedColumnsInTheGlobsOrderAndNamesTheColumnsWhenOneMatchesNone) {
  Rng rng(31, 0);
  Equations eq{problems::gaussian(rng, 2, 3), problems::gaussian(rng, 2, 3), {}, {}, {}, {}};
  for (const char* name : {"ridge", "nuclear.fc1", "nuclear.fc2", "layerwise_ridge.fc1"})
    eq.features.emplace_back(name, problems::gaussian(rng, 2, 3));
  const Matrix fc2 = eq.features[2].second;
  Equations all = eq;
  all.keep_features({});
  EXPECT_EQ(all.features.size(), 4u);
  eq.keep_features({"nuclear.*", "ridge"});  // the globs' order; one glob's matches in the file's
  ASSERT_EQ(eq.features.size(), 3u);
  EXPECT_EQ(eq.features[0].first, "nuclear.fc1");
  EXPECT_EQ(eq.features[1].first, "nuclear.fc2");
  EXPECT_EQ(eq.features[2].first, "ridge");
  EXPECT_EQ(eq.features[1].second(1, 2), fc2(1, 2));
  try {
    eq.keep_features({"ridge", "frob*"});
    ADD_FAILURE() << "a glob that matches nothing was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              "--columns: 'frob*' matches none of the feature columns (nuclear.fc1, nuclear.fc2, ridge)");
  }
}

TEST(Equations, ValidationRejectsNonFiniteValuesAndNegativeWeights) {
  Rng rng(31, 0);
  Equations eq = problems::random_sym(rng, 3, 3);
  eq.grad_loss(1, 2) = std::nan("");
  EXPECT_THROW(eq.validate("x"), InputError);
  eq = problems::random_sym(rng, 3, 3);
  eq.weights = {1.0, -1.0, 1.0};
  EXPECT_THROW(eq.validate("x"), InputError);
  eq.weights = {1.0, 1.0};
  EXPECT_THROW(eq.validate("x"), InputError);
}

TEST(SymFit, VechMethodsReportTheSameStandardErrorsAsStructured) {
  Rng rng(32, 0);
  const Equations eq = problems::random_sym(rng, 10, 4);
  const FitResult s = fit(eq, options("sym", "structured")), v = fit(eq, options("sym", "vech"));
  ASSERT_EQ(s.standard_errors.size(), v.standard_errors.size());
  for (std::size_t i = 0; i < s.standard_errors.size(); ++i) {
    EXPECT_NEAR(s.coefficients[i], v.coefficients[i], 1e-10);
    EXPECT_NEAR(s.standard_errors[i], v.standard_errors[i], 1e-10);
  }
  EXPECT_EQ(v.method, "vech");
}

// ---- Warnings: known answers for each sentence ----

/// The warnings that contain `words`.
std::size_t warnings_with(const FitResult& r, const std::string& words) {
  std::size_t n = 0;
  for (const std::string& w : r.warnings) n += w.find(words) != std::string::npos;
  return n;
}

/// Exact ridge equations: b = 2 lambda theta, so the fit explains everything.
Equations exact_ridge(Rng& rng, std::int64_t m, std::int64_t p, double lambda) {
  Equations eq;
  eq.theta = problems::gaussian(rng, m, p);
  eq.grad_loss = Matrix(m, p);
  for (std::int64_t i = 0; i < eq.theta.size(); ++i) eq.grad_loss.data()[i] = -2.0 * lambda * eq.theta.data()[i];
  return eq;
}

TEST(FitWarnings, AnExactFitHasNone) {
  Rng rng(41, 0);
  const Equations eq = exact_ridge(rng, 3, 6, 0.3);
  for (const char* family : {"ridge", "diag"}) {
    const FitResult r = fit(eq, options(family));
    EXPECT_TRUE(r.warnings.empty()) << family << ": " << (r.warnings.empty() ? "" : r.warnings.front());
  }
}

TEST(FitWarnings, SaysWhenTheFamilyExplainsLittle) {
  // b_k orthogonal to theta_k in every row: the best ridge is 0, residual ratio 1, cosine undefined.
  Equations eq;
  eq.theta = Matrix(2, 2, {1.0, 0.0, 0.0, 2.0});
  eq.grad_loss = Matrix(2, 2, {0.0, 3.0, -1.0, 0.0});
  const FitResult r = fit(eq, options("ridge"));
  EXPECT_NEAR(r.coefficient(), 0.0, 1e-15);
  EXPECT_NEAR(r.residual_ratio, 1.0, 1e-15);
  EXPECT_EQ(warnings_with(r, "explains little"), 1u);
  // Least squares gives ratio^2 + cosine^2 = 1, so a ratio of 0.95 is a cosine of 0.31:
  // a weak fit with positive cosine still warns.
  eq.theta = Matrix(1, 2, {1.0, 0.0});
  eq.grad_loss = Matrix(1, 2, {-std::sqrt(1.0 - 0.95 * 0.95), 0.95});
  const FitResult weak = fit(eq, options("ridge"));
  EXPECT_NEAR(weak.residual_ratio, 0.95, 1e-9);
  EXPECT_NEAR(weak.cosine, std::sqrt(1.0 - 0.95 * 0.95), 1e-9);
  EXPECT_EQ(warnings_with(weak, "explains little"), 1u);
}

TEST(FitWarnings, RankDeficientFeaturesGetNullStandardErrorsForTheUnidentifiedCoefficients) {
  // Columns a, b, a + b and c: rank 3 of 4. Only c's coefficient is identified.
  Rng rng(42, 0);
  const std::int64_t m = 4, p = 5;
  Equations eq;
  eq.theta = problems::gaussian(rng, m, p);
  const Matrix a = problems::gaussian(rng, m, p), b = problems::gaussian(rng, m, p), c = problems::gaussian(rng, m, p);
  Matrix ab(m, p);
  for (std::int64_t i = 0; i < ab.size(); ++i) ab.data()[i] = a.data()[i] + b.data()[i];
  const Matrix noise = problems::gaussian(rng, m, p, 0.01);
  eq.grad_loss = Matrix(m, p);
  for (std::int64_t i = 0; i < ab.size(); ++i)
    eq.grad_loss.data()[i] = -(0.5 * a.data()[i] + 2.0 * c.data()[i] + noise.data()[i]);
  eq.features = {{"a", a}, {"b", b}, {"ab", ab}, {"c", c}};
  const FitResult r = fit(eq, options("features"));
  EXPECT_EQ(r.rank, 3);
  ASSERT_EQ(r.standard_errors.size(), 4u);
  // Features are sorted by name in files but kept in the given order here: a, b, ab, c.
  EXPECT_TRUE(std::isnan(r.standard_errors[0]));
  EXPECT_TRUE(std::isnan(r.standard_errors[1]));
  EXPECT_TRUE(std::isnan(r.standard_errors[2]));
  // Against the full-rank design [a, b, c] (20 x 3): c's coefficient and its
  // standard error are estimable, so any generalized inverse gives them;
  // sigma2 = RSS / (20 - rank 3); the minimum-norm split of a's and b's
  // coefficients over (a, b, a + b) is (g_a - s, g_b - s, s), s = (g_a + g_b) / 3.
  Matrix reduced(m * p, 3);
  std::vector<double> target(static_cast<std::size_t>(m * p));
  for (std::int64_t i = 0; i < m * p; ++i) {
    reduced(i, 0) = a.data()[i];
    reduced(i, 1) = b.data()[i];
    reduced(i, 2) = c.data()[i];
    target[static_cast<std::size_t>(i)] = -eq.grad_loss.data()[i];
  }
  const reference::OlsReference ref = reference::ols_reference(reduced, target);
  const double sigma2 = ref.rss / 17.0, split = (ref.x[0] + ref.x[1]) / 3.0;
  EXPECT_NEAR(r.sigma2, sigma2, 1e-10 * sigma2);
  EXPECT_NEAR(r.coefficients[0], ref.x[0] - split, 1e-10);
  EXPECT_NEAR(r.coefficients[1], ref.x[1] - split, 1e-10);
  EXPECT_NEAR(r.coefficients[2], split, 1e-10);
  EXPECT_NEAR(r.coefficients[3], ref.x[2], 1e-10);
  EXPECT_NEAR(r.coefficients[3], 2.0, 0.05);
  const double se_c = std::sqrt(sigma2 * ref.inverse_diag[2]);
  EXPECT_NEAR(r.standard_errors[3], se_c, 1e-9 * se_c);
  EXPECT_EQ(warnings_with(r, "rank-deficient (rank 3 of 4 coefficients): 3 coefficient(s) are not identified"), 1u);
  EXPECT_EQ(warnings_with(r, "(a, b, ab)"), 1u);
}

TEST(FitWarnings, DiagGivesNullStandardErrorToACoordinateThatIsZeroAtEveryPoint) {
  Rng rng(43, 0);
  Equations eq = exact_ridge(rng, 3, 4, 0.2);
  for (std::int64_t k = 0; k < 3; ++k) eq.theta(k, 2) = eq.grad_loss(k, 2) = 0.0;
  for (std::int64_t k = 0; k < 3; ++k) eq.grad_loss(k, 0) += 0.01 * static_cast<double>(k);  // residual for sigma2 > 0
  const FitResult r = fit(eq, options("diag"));
  EXPECT_EQ(r.rank, 3);
  EXPECT_TRUE(std::isnan(r.standard_errors[2]));
  // Each coordinate alone: q_j = sum_k a b / sum_k a^2 with a = 2 theta_kj,
  // sigma2 = RSS over all 12 equations / (12 - rank 3), se_j = sqrt(sigma2 / sum_k a^2).
  double rss = 0.0;
  std::vector<double> q(4, 0.0), aa(4, 0.0);
  for (std::int64_t j = 0; j < 4; ++j) {
    double ab = 0.0;
    for (std::int64_t k = 0; k < 3; ++k) {
      const double ak = 2.0 * eq.theta(k, j);
      aa[static_cast<std::size_t>(j)] += ak * ak;
      ab += ak * eq.b(k, j);
    }
    if (j != 2) q[static_cast<std::size_t>(j)] = ab / aa[static_cast<std::size_t>(j)];
    for (std::int64_t k = 0; k < 3; ++k) {
      const double res = eq.b(k, j) - 2.0 * eq.theta(k, j) * q[static_cast<std::size_t>(j)];
      rss += res * res;
    }
  }
  EXPECT_NEAR(q[1], 0.2, 1e-12);  // untouched coordinates keep the exact ridge
  EXPECT_NEAR(r.sigma2, rss / 9.0, 1e-12 * rss / 9.0);
  for (int j : {0, 1, 3}) {
    const auto u = static_cast<std::size_t>(j);
    EXPECT_NEAR(r.coefficients[u], q[u], 1e-12 * std::abs(q[u])) << j;
    const double se = std::sqrt(rss / 9.0 / aa[u]);
    EXPECT_NEAR(r.standard_errors[u], se, 1e-12 * se) << j;
  }
  EXPECT_EQ(warnings_with(r, "1 coefficient(s) are not identified"), 1u);
}

TEST(FitWarnings, SymSaysHowManyEndpointsWouldDetermineIt) {
  // m = 3 points in p = 5: the thetas span 3 dimensions, 2 missing; rank 15 - 2*3/2 = 12.
  Rng rng(44, 0);
  const Equations eq = exact_ridge(rng, 3, 5, 0.1);
  for (const char* method : {"structured", "vech"}) {
    const FitResult r = fit(eq, options("sym", method));
    EXPECT_EQ(r.rank, 12) << method;
    EXPECT_EQ(warnings_with(r, "sym is underdetermined: rank 12 of p (p + 1) / 2 = 15"), 1u) << method;
    EXPECT_EQ(warnings_with(r, "span 3 of the p = 5 dimensions"), 1u) << method;
    EXPECT_EQ(warnings_with(r, "at least p = 5 endpoints"), 1u) << method;
    EXPECT_EQ(warnings_with(r, "(2 more independent ones)"), 1u) << method;
    EXPECT_EQ(warnings_with(r, "explains little"), 0u) << method;
  }
  // Five points determine it: no warning, Lambda = 0.1 I.
  Rng rng5(45, 0);
  const FitResult full = fit(exact_ridge(rng5, 5, 5, 0.1), options("sym"));
  EXPECT_EQ(full.rank, 15);
  EXPECT_TRUE(full.warnings.empty());
  EXPECT_NEAR(full.lambda_matrix()(2, 2), 0.1, 1e-10);
}

TEST(FitWarnings, SymGivesNullStandardErrorsToEntriesOutsideTheSpanOfTheThetas) {
  // theta's in span{e0, e1} of R^3 (plus noise for sigma2 > 0): Lambda_22 is not identified, Lambda_00 is.
  Equations eq;
  eq.theta = Matrix(4, 3, {1, 0, 0, 0, 1, 0, 1, 1, 0, 2, -1, 0});
  eq.grad_loss = Matrix(4, 3, {-0.2, 0.01, 0.3, 0.0, -0.2, -0.1, -0.21, -0.2, 0.0, -0.4, 0.2, 0.05});
  const FitResult r = fit(eq, options("sym"));
  EXPECT_EQ(r.rank, 5);  // 6 unknowns, Lambda_22 unidentified
  ASSERT_EQ(r.standard_errors.size(), 9u);
  EXPECT_TRUE(std::isnan(r.standard_errors[8]));
  // Against the plain vech design of the 5 identified entries (12 x 5; the
  // column of Lambda_22 is zero): entries and their standard errors are
  // estimable, so any generalized inverse gives them; sigma2 = RSS / (12 - 5);
  // the minimum-norm solution leaves Lambda_22 at 0.
  const std::vector<std::pair<std::int64_t, std::int64_t>> entries{{0, 0}, {0, 1}, {0, 2}, {1, 1}, {1, 2}};
  const reference::OlsReference ref =
      reference::ols_reference(reference::vech_design(eq, entries), reference::stacked_targets(eq));
  const double sigma2 = ref.rss / 7.0;
  EXPECT_NEAR(r.sigma2, sigma2, 1e-10 * sigma2);
  EXPECT_NEAR(r.coefficients[8], 0.0, 1e-12);
  for (std::size_t c = 0; c < entries.size(); ++c) {
    const auto [e, f] = entries[c];
    const double se = std::sqrt(sigma2 * ref.inverse_diag[c]);
    for (const std::int64_t at : {e * 3 + f, f * 3 + e}) {
      EXPECT_NEAR(r.coefficients[static_cast<std::size_t>(at)], ref.x[c], 1e-10) << e << "," << f;
      EXPECT_NEAR(r.standard_errors[static_cast<std::size_t>(at)], se, 1e-9 * se) << e << "," << f;
    }
  }
}

TEST(FitWarnings, AllWeightsZeroSaysSoAndNothingElse) {
  Rng rng(46, 0);
  Equations eq = exact_ridge(rng, 3, 4, 0.2);
  eq.weights = {0.0, 0.0, 0.0};
  const FitResult r = fit(eq, options("ridge"));
  EXPECT_EQ(r.n_equations, 0);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(warnings_with(r, "every weight is zero"), 1u);
}

TEST(FitWarnings, OverflowToNonFiniteStatisticsIsReported) {
  // sum (2 theta)^2 with theta = 1e160 overflows double precision (8e320 > 1.8e308).
  Equations eq;
  eq.theta = Matrix(1, 2, {1e160, -1e160});
  eq.grad_loss = Matrix(1, 2, {-1.0, 1.0});
  // The Gram route squares the values (QR would scale them safely).
  const FitResult r = fit(eq, options("ridge", "normal"));
  EXPECT_EQ(warnings_with(r, "non-finite statistics"), 1u) << r.coefficient() << " " << r.residual_ratio;
  EXPECT_EQ(r.warnings.size(), 1u);
}

}  // namespace
}  // namespace gradmatch
