#include "core/least_squares.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/problems.hpp"
#include "core/rng.hpp"

namespace gradmatch {
namespace {

Matrix gram_of(const Matrix& a) { return matmul(a.transposed(), a); }

std::vector<double> at_b(const Matrix& a, const std::vector<double>& b) {
  std::vector<double> out(static_cast<std::size_t>(a.cols()), 0.0);
  for (std::int64_t i = 0; i < a.rows(); ++i)
    for (std::int64_t c = 0; c < a.cols(); ++c) out[static_cast<std::size_t>(c)] += a(i, c) * b[static_cast<std::size_t>(i)];
  return out;
}

double objective(const Matrix& g, const std::vector<double>& h, const std::vector<double>& x) {
  // 1/2 x^T G x - h^T x  (= 1/2 ||A x - b||^2 up to a constant)
  double s = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    s -= h[i] * x[i];
    for (std::size_t j = 0; j < x.size(); ++j) s += 0.5 * x[i] * g(static_cast<std::int64_t>(i), static_cast<std::int64_t>(j)) * x[j];
  }
  return s;
}

TEST(LeastSquares, QrAndNormalEquationsAgreeOnAFullRankTallProblem) {
  Rng rng(1, 0);
  const Matrix a = problems::gaussian(rng, 200, 6);
  std::vector<double> b(200);
  for (double& v : b) v = rng.normal();
  const auto qr = solve_qr(a, b, default_rcond(6));
  const auto ne = solve_normal_equations(gram_of(a), at_b(a, b), default_rcond(6));
  ASSERT_EQ(qr.rank, 6);
  ASSERT_EQ(ne.rank, 6);
  for (std::size_t c = 0; c < 6; ++c) EXPECT_NEAR(qr.x[c], ne.x[c], 1e-12);
  EXPECT_NEAR(qr.condition_number, ne.condition_number, 1e-9 * qr.condition_number);
  // Optimality: A^T (b - A x) = 0.
  const auto g = gram_of(a);
  const auto h = at_b(a, b);
  for (std::int64_t c = 0; c < 6; ++c) {
    double r = h[static_cast<std::size_t>(c)];
    for (std::int64_t d = 0; d < 6; ++d) r -= g(c, d) * qr.x[static_cast<std::size_t>(d)];
    EXPECT_NEAR(r, 0.0, 1e-10);
  }
}

TEST(LeastSquares, RankDeficientDesignGivesTheMinimumNormSolutionOnBothRoutes) {
  Rng rng(2, 0);
  Matrix a = problems::gaussian(rng, 50, 4);
  for (std::int64_t i = 0; i < 50; ++i) a(i, 3) = a(i, 0) + a(i, 1);  // column 3 = column 0 + column 1
  std::vector<double> b(50);
  for (double& v : b) v = rng.normal();
  const auto qr = solve_qr(a, b, default_rcond(4));
  const auto ne = solve_normal_equations(gram_of(a), at_b(a, b), default_rcond(4));
  EXPECT_EQ(qr.rank, 3);
  EXPECT_EQ(ne.rank, 3);
  EXPECT_TRUE(std::isinf(qr.condition_number));
  // Minimum norm: x is orthogonal to the null vector (1, 1, 0, -1).
  EXPECT_NEAR(qr.x[0] + qr.x[1] - qr.x[3], 0.0, 1e-10);
  for (std::size_t c = 0; c < 4; ++c) EXPECT_NEAR(qr.x[c], ne.x[c], 1e-8);
}

TEST(LeastSquares, QrHandlesFewerEquationsThanUnknownsWithTheMinimumNormSolution) {
  Rng rng(3, 0);
  const Matrix a = problems::gaussian(rng, 3, 5);
  const std::vector<double> b{1.0, -2.0, 0.5};
  const auto qr = solve_qr(a, b, default_rcond(5));
  EXPECT_EQ(qr.rank, 3);
  // Consistent: A x = b exactly, and x = A^T (A A^T)^{-1} b lies in the row space.
  for (std::int64_t i = 0; i < 3; ++i) {
    double s = 0.0;
    for (std::int64_t c = 0; c < 5; ++c) s += a(i, c) * qr.x[static_cast<std::size_t>(c)];
    EXPECT_NEAR(s, b[static_cast<std::size_t>(i)], 1e-12);
  }
  const auto ne = solve_normal_equations(gram_of(a), at_b(a, b), default_rcond(5));
  for (std::size_t c = 0; c < 5; ++c) EXPECT_NEAR(qr.x[c], ne.x[c], 1e-9);
}

TEST(Nnls, EqualsBruteForceEnumerationOfActiveSets) {
  for (std::uint64_t trial = 0; trial < 40; ++trial) {
    Rng rng(4, trial);
    const std::int64_t r = 2 + static_cast<std::int64_t>(trial % 5);  // 2..6 columns
    const Matrix a = problems::gaussian(rng, 30, r);
    std::vector<double> b(30);
    for (double& v : b) v = rng.normal();
    const Matrix g = gram_of(a);
    const auto h = at_b(a, b);
    const auto x = nnls(g, h);

    // Brute force: over every support set S solve the unconstrained problem on
    // S; keep the feasible one with the smallest objective.
    double best = std::numeric_limits<double>::infinity();
    std::vector<double> best_x;
    for (std::uint32_t mask = 0; mask < (1u << r); ++mask) {
      std::vector<std::int64_t> set;
      for (std::int64_t c = 0; c < r; ++c)
        if (mask & (1u << c)) set.push_back(c);
      const auto n = static_cast<std::int64_t>(set.size());
      Matrix gs(n, n);
      std::vector<double> hs(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) {
        hs[static_cast<std::size_t>(i)] = h[static_cast<std::size_t>(set[static_cast<std::size_t>(i)])];
        for (std::int64_t j = 0; j < n; ++j) gs(i, j) = g(set[static_cast<std::size_t>(i)], set[static_cast<std::size_t>(j)]);
      }
      const auto sol = solve_normal_equations(gs, hs, default_rcond(n));
      std::vector<double> full(static_cast<std::size_t>(r), 0.0);
      bool feasible = true;
      for (std::int64_t i = 0; i < n; ++i) {
        full[static_cast<std::size_t>(set[static_cast<std::size_t>(i)])] = sol.x[static_cast<std::size_t>(i)];
        feasible = feasible && sol.x[static_cast<std::size_t>(i)] >= 0.0;
      }
      if (!feasible) continue;
      const double f = objective(g, h, full);
      if (f < best) { best = f; best_x = full; }
    }
    ASSERT_EQ(best_x.size(), x.size());
    for (std::size_t c = 0; c < x.size(); ++c) {
      EXPECT_GE(x[c], 0.0);
      EXPECT_NEAR(x[c], best_x[c], 1e-10) << "trial " << trial << " coefficient " << c;
    }
    EXPECT_NEAR(objective(g, h, x), best, 1e-10 * std::max(1.0, std::abs(best)));
  }
}

TEST(Nnls, ReturnsTheUnconstrainedSolutionWhenItIsAlreadyNonNegative) {
  Rng rng(5, 0);
  const Matrix a = problems::gaussian(rng, 40, 3);
  const std::vector<double> truth{0.5, 1.5, 2.0};
  std::vector<double> b(40, 0.0);
  for (std::int64_t i = 0; i < 40; ++i)
    for (std::int64_t c = 0; c < 3; ++c) b[static_cast<std::size_t>(i)] += a(i, c) * truth[static_cast<std::size_t>(c)];
  std::vector<std::int64_t> free_set;
  const auto x = nnls(gram_of(a), at_b(a, b), &free_set);
  for (std::size_t c = 0; c < 3; ++c) EXPECT_NEAR(x[c], truth[c], 1e-12);
  EXPECT_EQ(free_set.size(), 3u);
}

}  // namespace
}  // namespace gradmatch
