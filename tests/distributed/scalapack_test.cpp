#include "distributed/scalapack.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/errors.hpp"
#include "core/lapack.hpp"
#include "core/least_squares.hpp"
#include "core/problems.hpp"
#include "core/rng.hpp"

namespace gradmatch::distributed::scalapack {
namespace {

double max_abs_diff(const Matrix& a, const Matrix& b) {
  double d = 0.0;
  for (std::int64_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a.data()[i] - b.data()[i]));
  return d;
}

// The same random matrix on every rank (keyed by seed, never by rank).
Matrix shared_gaussian(std::uint64_t seed, std::int64_t m, std::int64_t n) {
  Rng rng(seed, 0);
  return problems::gaussian(rng, m, n);
}

DistributedMatrix distribute(const BlacsGrid& grid, const Matrix& a, std::int64_t mb, std::int64_t nb) {
  DistributedMatrix d(grid, a.rows(), a.cols(), mb, nb);
  d.fill([&](std::int64_t i, std::int64_t j) { return a(i, j); });
  return d;
}

TEST(BlacsGrid, NearSquareShapesPutTheLargerSideFirst) {
  const std::vector<std::pair<int, std::pair<int, int>>> cases{
      {1, {1, 1}}, {2, {2, 1}}, {3, {3, 1}}, {4, {2, 2}}, {6, {3, 2}}, {7, {7, 1}}, {8, {4, 2}}, {9, {3, 3}}, {12, {4, 3}}};
  for (const auto& [size, shape] : cases) EXPECT_EQ(BlacsGrid::near_square(size), shape) << size;
  EXPECT_THROW(BlacsGrid::near_square(0), std::invalid_argument);
}

TEST(BlacsGrid, CoversEveryRankInRowMajorOrder) {
  const Communicator world;
  const BlacsGrid square(world);
  const auto [rows, cols] = BlacsGrid::near_square(world.size());
  EXPECT_EQ(square.nprow(), rows);
  EXPECT_EQ(square.npcol(), cols);
  EXPECT_EQ(square.myrow() * square.npcol() + square.mycol(), world.rank());
  // 1: 1x1, 2: 2x1, 4: 2x2.
  if (world.size() == 4) {
    EXPECT_EQ(square.npcol(), 2);
  }
  const BlacsGrid column(world, world.size(), 1);
  EXPECT_EQ(column.myrow(), world.rank());
  EXPECT_EQ(column.mycol(), 0);
  EXPECT_THROW(BlacsGrid(world, world.size() + 1, 1), std::invalid_argument);
}

TEST(DistributedMatrix, FillThenGatherRoundTripsEveryShapeAndBlocking) {
  const Communicator world;
  const BlacsGrid grid(world);
  for (const auto& [m, n, mb, nb] : std::vector<std::array<std::int64_t, 4>>{
           {7, 5, 2, 3}, {1, 1, 1, 1}, {13, 4, 64, 64}, {9, 11, 1, 2}, {0, 3, 2, 2}, {40, 3, 5, 1}}) {
    DistributedMatrix d(grid, m, n, mb, nb);
    d.fill([](std::int64_t i, std::int64_t j) { return 100.0 * static_cast<double>(i) + static_cast<double>(j); });
    // Local index helpers invert each other and agree with the owner.
    for (std::int64_t il = 0; il < d.local_rows(); ++il) {
      EXPECT_EQ(d.local_row(d.global_row(il)), il);
      EXPECT_EQ(d.row_owner(d.global_row(il)), grid.myrow());
    }
    for (std::int64_t jl = 0; jl < d.local_cols(); ++jl) EXPECT_EQ(d.local_col(d.global_col(jl)), jl);
    std::vector<double> count{static_cast<double>(d.local_rows() * d.local_cols())};
    world.allreduce_sum(count);
    EXPECT_EQ(count[0], static_cast<double>(m * n));
    const Matrix all = d.gather();
    const Matrix on_root = d.gather(0);
    ASSERT_EQ(all.rows(), m);
    ASSERT_EQ(all.cols(), n);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) EXPECT_EQ(all(i, j), 100.0 * static_cast<double>(i) + static_cast<double>(j));
    if (world.is_root()) EXPECT_EQ(max_abs_diff(on_root, all), 0.0);
    else EXPECT_TRUE(on_root.empty());
    if (m >= 2 && n >= 2) {
      EXPECT_EQ(d.gather_leading(2, 2)(1, 1), 101.0);
    }
  }
}

TEST(DistributedMatrix, RedistributesFromRowBlocksToTwoDimensionalBlockCyclic) {
  const Communicator world;
  const BlacsGrid rows(world, world.size(), 1), grid(world);
  const Matrix a = shared_gaussian(1, 23, 6);
  const std::int64_t per_rank = (23 + world.size() - 1) / world.size();
  const DistributedMatrix src = distribute(rows, a, per_rank, 6);
  DistributedMatrix dst(grid, 23, 6, 3, 2);
  redistribute(src, dst, rows);
  EXPECT_EQ(max_abs_diff(dst.gather(), a), 0.0);
  DistributedMatrix lead(grid, 4, 4, 2, 2);
  redistribute_leading(4, 4, dst, lead, rows);
  EXPECT_EQ(max_abs_diff(lead.gather(), a.row_block(0, 4).transposed().row_block(0, 4).transposed()), 0.0);
}

TEST(ScaLapack, GemmAndGeaddMatchSerialProducts) {
  const Communicator world;
  const BlacsGrid grid(world);
  const Matrix a = shared_gaussian(2, 17, 9), b = shared_gaussian(3, 17, 5);
  const DistributedMatrix da = distribute(grid, a, 4, 4), db = distribute(grid, b, 4, 4);
  DistributedMatrix c(grid, 9, 5, 4, 4);
  gemm('T', 'N', 2.0, da, db, 0.0, c);  // 2 A^T B
  Matrix expect = matmul(a.transposed(), b);
  for (double& v : expect.values()) v *= 2.0;
  EXPECT_LE(max_abs_diff(c.gather(), expect), 1e-12);
  DistributedMatrix ct(grid, 5, 9, 3, 3);
  geadd('T', 1.0, c, 0.0, ct);
  EXPECT_LE(max_abs_diff(ct.gather(), expect.transposed()), 1e-12);
  DistributedMatrix wrong(grid, 5, 5, 4, 4);
  EXPECT_THROW(gemm('T', 'N', 1.0, da, db, 0.0, wrong), std::logic_error);
}

TEST(ScaLapack, SyevdMatchesSerialEigenvaluesAndReconstructs) {
  const Communicator world;
  const BlacsGrid grid(world);
  // Blocks larger than the matrix included: pdsyevd's own workspace query
  // is too small for them, and ranks that own no block get no eigenvalues
  // (see syevd()); every rank checks its own copy.
  for (const auto& [n, nb] : std::vector<std::pair<std::int64_t, std::int64_t>>{{11, 3}, {20, 64}, {5, 64}, {33, 4}, {64, 8}, {1, 1}}) {
    Rng rng(4, static_cast<std::uint64_t>(n));
    const Matrix s = problems::random_spd(rng, n, 100.0);
    DistributedMatrix ds = distribute(grid, s, nb, nb), z(grid, n, n, nb, nb);
    const std::vector<double> w = syevd(ds, z);
    Matrix v = s;
    const std::vector<double> serial = lapack::syevd(n, v.data(), n);
    for (std::size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(w[i], serial[i], 1e-12 * serial.back()) << n << " " << nb;
    // Z diag(w) Z^T = S.
    const Matrix u = z.gather();
    Matrix ud = u;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) ud(i, j) *= w[static_cast<std::size_t>(j)];
    EXPECT_LE(max_abs_diff(matmul(ud, u.transposed()), s), 1e-12 * serial.back()) << n << " " << nb;
  }
}

TEST(ScaLapack, GelsAndQrMatchSerialLeastSquaresAndSatisfyTheNormalEquations) {
  const Communicator world;
  const BlacsGrid grid(world);
  const Matrix a = shared_gaussian(5, 31, 6), b = shared_gaussian(6, 31, 1);
  const LeastSquaresSolution serial = solve_qr(a, b.values(), 1e-12);
  DistributedMatrix da = distribute(grid, a, 4, 4), db = distribute(grid, b, 4, 4);
  gels(da, db);
  const Matrix x = db.gather_leading(6, 1);
  for (std::int64_t i = 0; i < 6; ++i) EXPECT_NEAR(x(i, 0), serial.x[static_cast<std::size_t>(i)], 1e-12);
  // A^T (b - A x) = 0.
  Matrix r = b;
  const Matrix ax = matmul(a, x);
  for (std::int64_t i = 0; i < 31; ++i) r(i, 0) -= ax(i, 0);
  const Matrix atr = matmul(a.transposed(), r);
  for (std::int64_t i = 0; i < 6; ++i) EXPECT_LE(std::abs(atr(i, 0)), 1e-12 * 31);
  // The R of geqrf has the singular values of A.
  DistributedMatrix qa = distribute(grid, a, 4, 4), square(grid, 6, 6, 2, 2);
  geqrf(qa);
  redistribute_leading(6, 6, qa, square, grid);
  square.fill([&](std::int64_t i, std::int64_t j) { return i > j ? 0.0 : square.local(square.local_row(i), square.local_col(j)); });
  const std::vector<double> sv = singular_values(square);
  EXPECT_NEAR(sv.front() / sv.back(), serial.condition_number, 1e-10 * serial.condition_number);
}

TEST(ScaLapack, NarrowingOverflowThrowsNamingTheRoutine) {
  const Communicator world;
  const BlacsGrid grid(world);
  EXPECT_EQ(narrow(2147483647, "pdgels"), 2147483647);
  try {
    narrow(std::int64_t{1} << 31, "pdgels");
    ADD_FAILURE() << "2^31 does not fit a 32-bit int";
  } catch (const NumericalError& e) {
    EXPECT_NE(std::string(e.what()).find("pdgels"), std::string::npos) << e.what();
  }
  EXPECT_THROW(narrow(-1, "pdgemm"), NumericalError);
  // A global size beyond int fails in descinit before anything is allocated.
  try {
    DistributedMatrix(grid, std::int64_t{3} << 30, 1, 64, 1);
    ADD_FAILURE();
  } catch (const NumericalError& e) {
    EXPECT_NE(std::string(e.what()).find("descinit"), std::string::npos) << e.what();
  }
}

TEST(ScaLapack, IllegalArgumentsBecomeNumericalErrorsNamingTheRoutine) {
  const Communicator world;
  const BlacsGrid grid(world);
  // pdsyevd needs square blocks; the wrapper says so before ScaLAPACK would.
  DistributedMatrix a(grid, 4, 4, 2, 1), z(grid, 4, 4, 2, 1);
  EXPECT_THROW(syevd(a, z), std::logic_error);
  // info < 0 from the library: pdgels wants B's row block equal to A's
  // (argument 12 = DESCB, entry 5 = MB_). ScaLAPACK prints its own line too.
  DistributedMatrix x(grid, 8, 3, 4, 4), y(grid, 8, 1, 2, 2);
  try {
    gels(x, y);
    ADD_FAILURE() << "pdgels accepted mismatched row blocks";
  } catch (const NumericalError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("pdgels"), std::string::npos) << what;
    EXPECT_NE(what.find("argument 12 (entry 5)"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace gradmatch::distributed::scalapack
