#include "distributed/distributed_solvers.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <string>

#include "core/fit.hpp"
#include "core/problems.hpp"
#include "core/rng.hpp"
#include "distributed/distributed_fit.hpp"
#include "io/equation_file.hpp"

namespace gradmatch::distributed {
namespace {

// An equation file shared by all ranks: written by rank 0, then a barrier.
std::string shared_file(const Communicator& world, const Equations& eq, const std::string& name) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("gradmatch_dsolve_" + name + "_np" + std::to_string(world.size()) + ".h5")).string();
  collective(world, [&] {
    if (world.is_root()) io::write_equation_file(path, eq);
  });
  world.barrier();
  return path;
}

void remove_shared(const Communicator& world, const std::string& path) {
  world.barrier();
  if (world.is_root()) std::filesystem::remove(path);
}

Equations my_block(const Communicator& world, const Equations& eq) {
  const auto [begin, end] = point_block(eq.m(), world.rank(), world.size());
  return eq.rows(begin, end);
}

// Random weights in (0, 1) with one zero weight: both must be handled.
void add_weights(Rng& rng, Equations& eq) {
  eq.weights.resize(static_cast<std::size_t>(eq.m()));
  for (double& w : eq.weights) w = rng.uniform();
  eq.weights[1] = 0.0;
}

Equations sym_problem(std::uint64_t seed, std::int64_t m, std::int64_t p) {
  Rng rng(seed, 0);
  Equations eq = problems::random_sym(rng, m, p);
  add_weights(rng, eq);
  return eq;
}

Equations features_problem(std::uint64_t seed, bool collinear) {
  Rng rng(seed, 0);
  Equations eq = problems::random_sym(rng, 29, 5);
  Matrix a = problems::gaussian(rng, 29, 5), b = problems::gaussian(rng, 29, 5), c = problems::gaussian(rng, 29, 5);
  if (collinear)  // c = a - 2 b: the design has rank 2 of 3
    for (std::int64_t i = 0; i < c.size(); ++i) c.data()[i] = a.data()[i] - 2.0 * b.data()[i];
  // b = 0.7 a + 0.2 b - 0.1 c + noise: a nonneg fit keeps a and b, drops c.
  Matrix target = problems::gaussian(rng, 29, 5, 0.1);
  for (std::int64_t i = 0; i < c.size(); ++i)
    target.data()[i] += 0.7 * a.data()[i] + 0.2 * b.data()[i] - 0.1 * c.data()[i];
  eq.target = target;
  eq.features = {{"a", a}, {"b", b}, {"c", c}};
  add_weights(rng, eq);
  return eq;
}

// max |a - b| / max |a|; NaN must sit in the same places (e.g. standard
// errors of coefficients pinned at zero by a non-negative fit).
double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double scale = 0.0, diff = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) {
      if (std::isnan(a[i]) != std::isnan(b[i])) return std::numeric_limits<double>::infinity();
      continue;
    }
    scale = std::max(scale, std::abs(a[i]));
    diff = std::max(diff, std::abs(a[i] - b[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

void expect_same_on_every_rank(const Communicator& world, const std::vector<double>& mine) {
  std::vector<double> root = mine;
  if (!world.is_root()) std::fill(root.begin(), root.end(), 0.0);
  world.allreduce_sum(root);  // only rank 0 contributed
  for (std::size_t i = 0; i < mine.size(); ++i) ASSERT_EQ(mine[i], root[i]) << "entry " << i;
}

void expect_matches_serial(const Communicator& world, const FitResult& serial, const FitResult& dist,
                           const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(serial.coefficients.size(), dist.coefficients.size());
  EXPECT_LE(rel_diff(serial.coefficients, dist.coefficients), 1e-10);
  ASSERT_EQ(serial.standard_errors.size(), dist.standard_errors.size());
  EXPECT_LE(rel_diff(serial.standard_errors, dist.standard_errors), 1e-8);
  EXPECT_EQ(dist.rank, serial.rank);
  if (std::isinf(serial.condition_number)) EXPECT_TRUE(std::isinf(dist.condition_number));
  else EXPECT_NEAR(dist.condition_number, serial.condition_number, 1e-8 * serial.condition_number);
  EXPECT_NEAR(dist.residual_ratio, serial.residual_ratio, 1e-10);
  EXPECT_NEAR(dist.cosine, serial.cosine, 1e-10);
  EXPECT_FALSE(std::isnan(dist.cosine));
  EXPECT_EQ(dist.n_equations, serial.n_equations);
  EXPECT_EQ(dist.method, serial.method);
  expect_same_on_every_rank(world, dist.coefficients);
}

// || Lambda G + G Lambda - C ||_F relative to its terms: the normal equations of the sym fit.
double lyapunov_residual(const Equations& eq, const Matrix& lambda) {
  const std::int64_t p = eq.p();
  Matrix g(p, p), c(p, p);
  accumulate_lyapunov(eq, g, c);
  const Matrix lg = matmul(lambda, g), gl = matmul(g, lambda);
  double r = 0.0;
  for (std::int64_t i = 0; i < p * p; ++i) {
    const double d = lg.data()[i] + gl.data()[i] - c.data()[i];
    r += d * d;
  }
  return std::sqrt(r) / (2.0 * frobenius_norm(g) * frobenius_norm(lambda) + frobenius_norm(c));
}

TEST(DistributedSolvers, PointBlocksAreOneRowBlockPerRank) {
  for (int size : {1, 2, 3, 4}) {
    for (std::int64_t m : {1, 5, 10, 23}) {
      const std::int64_t c = points_per_block(m, size);
      std::int64_t next = 0;
      for (int r = 0; r < size; ++r) {
        const auto [b, e] = point_block(m, r, size);
        EXPECT_EQ(b, std::min(m, r * c));  // a P x 1 grid with row block c describes it
        EXPECT_GE(e, b);
        EXPECT_LE(e - b, c);
        next = e;
      }
      EXPECT_EQ(next, m);
    }
  }
}

TEST(DistributedSolvers, QrMatchesSerialToe1e10) {
  const Communicator world;
  const Equations eq = features_problem(11, false);
  const std::string path = shared_file(world, eq, "qr");
  for (const std::string family : {"ridge", "huber:beta=0.5", "elastic-net:beta=0.5", "features"})
    for (const bool normalize : {false, true})
      for (const std::int64_t block : {64, 1}) {
        FitOptions o;
        o.family = FamilySpec::parse(family);
        o.method = Method::qr;
        o.normalize = normalize;
        SolverTuning t;
        t.block_size = block;
        expect_matches_serial(world, fit(eq, o), fit_equation_file(world, path, o, t),
                              family + (normalize ? " normalized" : "") + " nb " + std::to_string(block));
      }
  FitOptions o;
  o.family = FamilySpec::parse("features");
  o.method = Method::qr;
  o.nonneg = true;
  const FitResult nonneg = fit_equation_file(world, path, o);
  expect_matches_serial(world, fit(eq, o), nonneg, "features nonneg");
  EXPECT_EQ(nonneg.coefficients[2], 0.0);
  EXPECT_GT(nonneg.coefficients[0], 0.5);
  remove_shared(world, path);
}

TEST(DistributedSolvers, QrGivesTheSerialMinimumNormSolutionOfARankDeficientDesign) {
  const Communicator world;
  const Equations eq = features_problem(12, true);
  const std::string path = shared_file(world, eq, "qr_deficient");
  FitOptions o;
  o.family = FamilySpec::parse("features");
  o.method = Method::qr;
  const FitResult serial = fit(eq, o), dist = fit_equation_file(world, path, o);
  EXPECT_EQ(serial.rank, 2);
  expect_matches_serial(world, serial, dist, "collinear features");
  remove_shared(world, path);
}

TEST(DistributedSolvers, QrHandlesFewerPointsThanRanks) {
  const Communicator world;
  for (const std::int64_t m : {1, 3}) {
    Rng rng(14, static_cast<std::uint64_t>(m));
    const Equations eq = problems::random_sym(rng, m, 4);  // some ranks hold no point
    const std::string path = shared_file(world, eq, "qr_small");
    for (const std::string family : {"ridge", "elastic-net:beta=0.5"}) {
      FitOptions o;
      o.family = FamilySpec::parse(family);
      o.method = Method::qr;
      expect_matches_serial(world, fit(eq, o), fit_equation_file(world, path, o), family + " m " + std::to_string(m));
    }
    remove_shared(world, path);
  }
  // Fewer equations (m p = 2) than unknowns (r = 3): the minimum-norm solution.
  Rng rng(15, 0);
  Equations eq = problems::random_sym(rng, 1, 2);
  eq.features = {{"a", problems::gaussian(rng, 1, 2)}, {"b", problems::gaussian(rng, 1, 2)}, {"c", problems::gaussian(rng, 1, 2)}};
  const std::string path = shared_file(world, eq, "qr_wide");
  FitOptions o;
  o.family = FamilySpec::parse("features");
  o.method = Method::qr;
  const FitResult serial = fit(eq, o);
  EXPECT_EQ(serial.rank, 2);
  expect_matches_serial(world, serial, fit_equation_file(world, path, o), "features m p < r");
  remove_shared(world, path);
}

TEST(DistributedSolvers, QrSatisfiesTheNormalEquations) {
  const Communicator world;
  const Equations eq = features_problem(13, false);
  FitOptions o;
  o.family = FamilySpec::parse("features");
  o.method = Method::qr;
  const Equations block = my_block(world, eq);
  Fitter fitter(o, eq, eq.m());
  const ColumnQrSolution s = solve_columns_qr(world, o.family, block, eq.m(), false, fitter.rcond());
  const std::vector<double>& x = s.solution.x;
  // A^T W (b - A x), summed over every point (each rank checks the whole).
  const std::int64_t p = eq.p(), r = 3;
  std::vector<double> cols(static_cast<std::size_t>(p * r)), g(static_cast<std::size_t>(r), 0.0);
  double a2 = 0.0, b2 = 0.0;
  for (std::int64_t k = 0; k < eq.m(); ++k) {
    fill_columns(o.family, eq, k, cols.data());
    const double w = eq.weight(k);
    for (std::int64_t j = 0; j < p; ++j) {
      double res = eq.b(k, j);
      for (std::int64_t c = 0; c < r; ++c) res -= cols[static_cast<std::size_t>(j * r + c)] * x[static_cast<std::size_t>(c)];
      for (std::int64_t c = 0; c < r; ++c) {
        g[static_cast<std::size_t>(c)] += w * cols[static_cast<std::size_t>(j * r + c)] * res;
        a2 += w * cols[static_cast<std::size_t>(j * r + c)] * cols[static_cast<std::size_t>(j * r + c)];
      }
      b2 += w * eq.b(k, j) * eq.b(k, j);
    }
  }
  for (double gc : g) EXPECT_LE(std::abs(gc), 1e-12 * std::sqrt(a2) * std::sqrt(b2));
  // gram and rhs from R equal A^T W A and A^T W b.
  Fitter serial(o, eq, eq.m());
  const std::vector<double> stats = serial.statistics(eq);
  for (std::int64_t c = 0; c < r; ++c) {
    EXPECT_NEAR(s.rhs[static_cast<std::size_t>(c)], stats[static_cast<std::size_t>(r * r + c)], 1e-12 * a2);
    for (std::int64_t d = 0; d < r; ++d) EXPECT_NEAR(s.gram(c, d), stats[static_cast<std::size_t>(c * r + d)], 1e-12 * a2);
  }
}

TEST(DistributedSolvers, VechMatchesSerial) {
  const Communicator world;
  struct Case {
    std::int64_t p, m, block;
    bool scalapack;  // full rank: PDGELS; else the rank-0 fallback
  };
  for (const Case& c : {Case{7, 14, 4, true}, Case{7, 14, 64, true}, Case{20, 40, 8, true}, Case{7, 5, 4, false}, Case{7, 3, 4, false}}) {
    const Equations eq = sym_problem(20 + static_cast<std::uint64_t>(c.p + c.m), c.m, c.p);
    const std::string path = shared_file(world, eq, "vech");
    for (const Method method : {Method::vech, Method::vech_plain}) {
      FitOptions o;
      o.family = FamilySpec::parse("sym");
      o.method = method;
      SolverTuning t;
      t.block_size = c.block;
      const std::string what = "p " + std::to_string(c.p) + " m " + std::to_string(c.m) + " " + to_string(method);
      const FitResult serial = fit(eq, o), dist = fit_equation_file(world, path, o, t);
      expect_matches_serial(world, serial, dist, what);
      EXPECT_LE(lyapunov_residual(eq, dist.lambda_matrix()), 1e-10) << what;
      const Fitter fitter(o, eq, eq.m());
      const auto coords = method == Method::vech ? VechCoordinates::isometric : VechCoordinates::plain;
      const VechSolution v = solve_vech_distributed(world, my_block(world, eq), eq.m(), fitter.rcond(), coords, t);
      EXPECT_EQ(v.scalapack, c.scalapack) << what;
    }
    remove_shared(world, path);
  }
}

TEST(DistributedSolvers, StructuredScalapackMatchesSerial) {
  const Communicator world;
  struct Case {
    std::int64_t p, m, block;
  };
  for (const Case& c : {Case{7, 14, 3}, Case{7, 14, 64}, Case{20, 40, 4}, Case{7, 5, 2}, Case{20, 9, 64}, Case{7, 3, 2}}) {
    const Equations eq = sym_problem(40 + static_cast<std::uint64_t>(c.p + c.m), c.m, c.p);
    const std::string path = shared_file(world, eq, "structured");
    FitOptions o;
    o.family = FamilySpec::parse("sym");
    SolverTuning t;
    t.structured_scalapack_min_p = 0;  // force PDGEMM + PDSYEVD at small p
    t.block_size = c.block;
    const std::string what = "p " + std::to_string(c.p) + " m " + std::to_string(c.m) + " nb " + std::to_string(c.block);
    const FitResult serial = fit(eq, o), dist = fit_equation_file(world, path, o, t);
    expect_matches_serial(world, serial, dist, what);
    EXPECT_LE(lyapunov_residual(eq, dist.lambda_matrix()), 1e-10) << what;
    if (c.m < c.p) {
      EXPECT_LT(dist.rank, sym_unknowns(c.p)) << what;
    }
    // The solver itself: U orthogonal, G = U diag(g) U^T.
    const Fitter fitter(o, eq, eq.m());
    const SymmetricSolution s = solve_structured_scalapack(world, my_block(world, eq), eq.m(), fitter.rcond(), t);
    const Matrix utu = matmul(s.eigenvectors.transposed(), s.eigenvectors);
    EXPECT_LE(frobenius_distance(utu, Matrix::identity(c.p)), 1e-12 * static_cast<double>(c.p)) << what;
    ASSERT_TRUE(std::is_sorted(s.eigenvalues.begin(), s.eigenvalues.end())) << what;
    remove_shared(world, path);
  }
}

}  // namespace
}  // namespace gradmatch::distributed
