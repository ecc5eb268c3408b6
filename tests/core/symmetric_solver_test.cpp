#include "core/symmetric_solver.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "core/fit.hpp"
#include "core/problems.hpp"
#include "core/rng.hpp"
#include "least_squares_reference.hpp"

namespace gradmatch {
namespace {

SymmetricSolution structured(const Equations& eq, double rcond) {
  Matrix g(eq.p(), eq.p()), c(eq.p(), eq.p());
  accumulate_lyapunov(eq, g, c);
  return solve_structured(g, c, rcond);
}

double rel_distance(const Matrix& a, const Matrix& b) { return frobenius_distance(a, b) / frobenius_norm(b); }

// sum_{i<=j} Lambda_ij^2: the norm that plain-vech least squares minimises.
double vech_norm2(const Matrix& l) {
  double s = 0.0;
  for (std::int64_t i = 0; i < l.rows(); ++i)
    for (std::int64_t j = i; j < l.cols(); ++j) s += l(i, j) * l(i, j);
  return s;
}

// Residual of the normal equations Lambda G + G Lambda - C (zero at any least-squares solution).
double normal_equation_residual(const Equations& eq, const Matrix& lambda) {
  Matrix g(eq.p(), eq.p()), c(eq.p(), eq.p());
  accumulate_lyapunov(eq, g, c);
  Matrix r = matmul(lambda, g);
  const Matrix gl = matmul(g, lambda);
  for (std::int64_t i = 0; i < r.size(); ++i) r.data()[i] += gl.data()[i] - c.data()[i];
  return frobenius_norm(r) / frobenius_norm(c);
}

class SymmetricSolverSizes : public ::testing::TestWithParam<std::int64_t> {};

TEST_P(SymmetricSolverSizes, StructuredMatchesVechOnRandomFullRankProblems) {
  const std::int64_t p = GetParam();
  Rng rng(10, static_cast<std::uint64_t>(p));
  const Equations eq = problems::random_sym(rng, 2 * p, p);
  const double rcond = default_rcond(sym_unknowns(p));
  const auto s = structured(eq, rcond);
  const auto v = solve_vech(eq, rcond, VechCoordinates::isometric);
  const auto vp = solve_vech(eq, rcond, VechCoordinates::plain);
  EXPECT_EQ(s.rank, sym_unknowns(p));
  EXPECT_EQ(v.rank, sym_unknowns(p));
  EXPECT_LT(rel_distance(s.lambda, v.lambda), 1e-10);
  EXPECT_LT(rel_distance(s.lambda, vp.lambda), 1e-10);  // full rank: the solution is unique
  EXPECT_LT(normal_equation_residual(eq, s.lambda), 1e-12);
  EXPECT_NEAR(s.condition_number, v.condition_number, 1e-8 * v.condition_number);
}

TEST_P(SymmetricSolverSizes, StructuredMatchesIsometricVechOnUnderdeterminedProblems) {
  const std::int64_t p = GetParam();
  const std::int64_t m = std::max<std::int64_t>(1, p / 2);
  Rng rng(11, static_cast<std::uint64_t>(p));
  const Equations eq = problems::random_sym(rng, m, p);
  const double rcond = default_rcond(sym_unknowns(p));
  const auto s = structured(eq, rcond);
  const auto v = solve_vech(eq, rcond, VechCoordinates::isometric);
  const std::int64_t expected_rank = sym_unknowns(p) - sym_unknowns(p - m);  // p m - m (m - 1) / 2
  EXPECT_EQ(s.rank, expected_rank);
  EXPECT_EQ(v.rank, expected_rank);
  EXPECT_LT(rel_distance(s.lambda, v.lambda), 1e-10);
  // A least-squares solution: the Lyapunov normal equations hold. (With m < p
  // the system is not consistent in general: Theta^T B must be symmetric.)
  EXPECT_LT(normal_equation_residual(eq, s.lambda), 1e-10);
  // Minimum Frobenius norm: no component in (null space) x (null space).
  // With G = U diag(g) U^T the null directions are the eigenvectors with g ~ 0.
  const Matrix lt = matmul(matmul(s.eigenvectors.transposed(), s.lambda), s.eigenvectors);
  for (std::int64_t i = 0; i < p - m; ++i)
    for (std::int64_t j = 0; j < p - m; ++j) EXPECT_NEAR(lt(i, j), 0.0, 1e-10);
}

INSTANTIATE_TEST_SUITE_P(Sizes, SymmetricSolverSizes, ::testing::Values(2, 3, 8, 15));

TEST(SymmetricSolver, PlainVechReturnsTheMinimumVechNormNotTheMinimumFrobeniusNorm) {
  const std::int64_t p = 6, m = 2;
  Rng rng(12, 0);
  const Equations eq = problems::random_sym(rng, m, p);
  const double rcond = default_rcond(sym_unknowns(p));
  const auto frob = structured(eq, rcond);
  const auto plain = solve_vech(eq, rcond, VechCoordinates::plain);
  // Both are least-squares solutions ...
  EXPECT_LT(normal_equation_residual(eq, frob.lambda), 1e-10);
  EXPECT_LT(normal_equation_residual(eq, plain.lambda), 1e-10);
  // ... but each minimises its own norm, so they differ.
  EXPECT_GT(rel_distance(plain.lambda, frob.lambda), 1e-3);
  EXPECT_LT(frobenius_norm(frob.lambda), frobenius_norm(plain.lambda));
  EXPECT_LT(vech_norm2(plain.lambda), vech_norm2(frob.lambda));
}

TEST(SymmetricSolver, RecoversAConsistentLambdaExactlyFromPEndpoints) {
  const std::int64_t p = 12;
  Rng rng(13, 0);
  const Matrix lambda = problems::random_spd(rng, p, 1e3, 0.01);
  const Equations eq = problems::consistent_sym(rng, lambda, p);
  const auto s = structured(eq, default_rcond(sym_unknowns(p)));
  EXPECT_LT(rel_distance(s.lambda, lambda), 1e-10);
}

TEST(SymmetricSolver, StandardErrorsMatchTheExplicitVechCovariance) {
  // Inconsistent problem: sigma^2 (D^T D)^{-1} of the explicit plain-vech design
  // gives the covariance of (Lambda_ij, i <= j) directly.
  const std::int64_t p = 4, m = 9, q = sym_unknowns(p);
  Rng rng(14, 0);
  const Equations eq = problems::random_sym(rng, m, p);
  FitOptions opt;
  opt.family = FamilySpec::parse("sym");
  const FitResult res = fit(eq, opt);
  ASSERT_EQ(res.standard_errors.size(), static_cast<std::size_t>(p * p));

  std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = i; j < p; ++j) pairs.emplace_back(i, j);
  const reference::OlsReference ref =
      reference::ols_reference(reference::vech_design(eq, pairs), reference::stacked_targets(eq));
  // sigma2 from this design's own least squares: RSS / (m p - q), m p = 36 equations, q = 10 unknowns.
  EXPECT_NEAR(res.sigma2, ref.rss / static_cast<double>(m * p - q), 1e-10 * res.sigma2);
  for (std::int64_t c = 0; c < q; ++c) {
    const auto [a, b] = pairs[static_cast<std::size_t>(c)];
    const double se = std::sqrt(res.sigma2 * ref.inverse_diag[static_cast<std::size_t>(c)]);
    EXPECT_NEAR(res.standard_errors[static_cast<std::size_t>(a * p + b)], se, 1e-10 * se) << a << "," << b;
    EXPECT_NEAR(res.standard_errors[static_cast<std::size_t>(b * p + a)], se, 1e-10 * se);
  }
}

}  // namespace
}  // namespace gradmatch
