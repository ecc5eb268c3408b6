#pragma once
// Distributed solves of gradient equations: ScaLAPACK on block-cyclic data,
// and MPI sums where the reduced problem is small.
//
// Rows. The m points are cut into blocks of c = ceil(m / P) consecutive
// points, block r on rank r (point_block; the last blocks may be shorter or
// empty); each rank reads only its block. A point gives p scalar equations,
// so rank r holds design rows [r c p, (r + 1) c p): that IS a block-cyclic
// matrix on a P x 1 grid with row block c p (row block c for the m x p
// matrices Theta and B), so every solver starts from the rows where they
// were read, with no copy and no communication.
// Weights enter as W^{1/2}: row (k, j) is scaled by sqrt(w_k).
//
// Column families, --method qr (A is N x r, N = m p, r small):
//   PDGEQRF on A_w and PDORMQR on b_w (P x 1 grid) leave R (r x r) and
//   z = (Q^T b_w)[0, r); these r^2 + r numbers are summed onto every rank and
//   the rest is the serial code: core solve_qr(R, z) -- dgelsd on R, exactly
//   what the serial path does after its own dgeqrf -- so rank deficiency gets
//   the same minimum-norm solution and rank. It also gives gram = R^T R and
//   rhs = R^T z (= A^T W A, A^T W b) and cond(A) = cond(R) with no second pass.
//   This is PDGELS with its last step, PDTRSM with R (meaningless when R is
//   singular, and PDGELS does not check), replaced by the SVD of the tiny R.
//   The 1-D layout stays: with r << N / P the active rows never shrink
//   appreciably during the QR, so it is balanced and needs no redistribution.
//
// sym --method vech / vech-plain (the explicit N x q design, q = p(p+1)/2):
//   the design's singular values are sqrt(2 (g_i + g_j)) in isometric
//   coordinates (within a factor sqrt(2) of those in plain ones), g the
//   eigenvalues of G = sum_k w_k theta_k theta_k^T. So G and C are
//   all-reduced first (p x p, cheap) and solved by core solve_structured,
//   whose eigenvalues decide:
//   - full column rank with margin (g_min > 4 rcond^2 g_max, N >= q):
//     PDGELS on a 2-D block-cyclic copy of the design (it is wide, and on the
//     1-D layout the first ranks would fall idle as the QR moves down);
//     cond from the singular values of R (PDGESVD). Should they show rank
//     deficiency after all, the fallback below runs instead.
//   - otherwise (m < p, collinear points, or N < q) the design is rank
//     deficient in BOTH directions: neither PDGELS' QR (needs full column
//     rank) nor its LQ (full row rank) gives the minimum-norm solution. The
//     rows are gathered on rank 0, solved there by core solve_vech (dgelsd,
//     bitwise the serial computation) and Lambda broadcast. Such problems
//     have m < p points, so gathering them is cheap next to their design.
//   G's eigenvectors ride along for the standard errors, as in the serial fit.
//
// sym --method structured at p >= SolverTuning::structured_scalapack_min_p:
//   Theta_w, B_w (m x p) are redistributed from the P x 1 grid to the
//   near-square 2-D grid; G = Theta_w^T Theta_w and X = B_w^T Theta_w by
//   PDGEMM, C = (X + X^T) / 2 by PDGEADD; PDSYEVD gives G = U diag(g) U^T;
//   C~ = U^T C U by PDGEMM; C~_ij /= g_i + g_j with core's cut (zero below
//   it: the minimum-Frobenius-norm solution); Lambda = U C~ U^T by PDGEMM,
//   gathered onto every rank with U (the residual pass needs Lambda
//   everywhere). Below the crossover, all-reducing the p x p partial sums
//   of G and C and solving serially (distributed_fit.cpp) is cheaper.
//
// Gram path (--method normal, alias gram; tall-skinny fits): every rank sums
// the r x r normal equations of its rows (Fitter::statistics), one MPI
// all-reduce adds them up (distributed_fit.cpp), by MPI or, with
// SolverTuning::reduce = nccl, by NCCL on device buffers (nccl.hpp).
//
// Every function here is collective over `comm` (all ranks call it, each
// with its own block) and returns the same result on every rank.
#include <cstdint>
#include <utility>
#include <vector>

#include "core/equations.hpp"
#include "core/family.hpp"
#include "core/least_squares.hpp"
#include "core/symmetric_solver.hpp"
#include "distributed/nccl.hpp"
#include "mpi/mpi.hpp"

namespace gradmatch::distributed {

struct SolverTuning {
  /// sym structured: ScaLAPACK from this p on; all-reduce of G, C below.
  /// Tests set 0 to force the ScaLAPACK path at small p.
  std::int64_t structured_scalapack_min_p = 256;
  /// Square block size of the 2-D block-cyclic layouts (ScaLAPACK's usual 64).
  std::int64_t block_size = 64;
  /// The all-reduces of fit_equation_file (the Gram matrix of --method
  /// normal, G and C of the structured sym solve, the residual sums).
  ReduceBackend reduce = ReduceBackend::mpi;
};

/// Points per block, ceil(m / size) (at least 1).
std::int64_t points_per_block(std::int64_t m, int size);
/// Points [begin, end) of rank `rank`: [rank c, min(m, (rank + 1) c)).
std::pair<std::int64_t, std::int64_t> point_block(std::int64_t m, int rank, int size);

/// Rows of `all` (an m_total x cols matrix, read on `root` only) cut by
/// point_block: rank r returns rows point_block(m_total, r, size) as a
/// matrix of their own (0 rows when its block is empty). Collective; how
/// equations held on one rank (a study's pooled rows) become the blocks the
/// solvers here and fit_distributed start from.
Matrix scatter_rows(const Communicator& comm, const Matrix& all, std::int64_t m_total, std::int64_t cols, int root = 0);

struct ColumnQrSolution {
  LeastSquaresSolution solution;  ///< of the design after unit-norm column scaling when `normalize`
  Matrix gram;                    ///< A^T W A of the unscaled design (r x r)
  std::vector<double> rhs;        ///< A^T W b
};

/// Column family by distributed QR. `block` holds this rank's points
/// (point_block of m_total; it may be empty but has p columns and every
/// feature); the result feeds Fitter::set_column_solution.
ColumnQrSolution solve_columns_qr(const Communicator& comm, const FamilySpec& family, const Equations& block,
                                  std::int64_t m_total, bool normalize, double rcond, const SolverTuning& tuning = {});

/// Lambda G + G Lambda = C by PDGEMM + PDSYEVD (see above); the result,
/// eigenvectors and eigenvalues included, feeds Fitter::set_symmetric_solution.
SymmetricSolution solve_structured_scalapack(const Communicator& comm, const Equations& block, std::int64_t m_total,
                                             double rcond, const SolverTuning& tuning = {});

struct VechSolution {
  SymmetricSolution solution;  ///< lambda, rank, cond of the vech fit; U and g of G
  bool scalapack = false;      ///< PDGELS ran (false: rank-deficient fallback on rank 0)
};

/// The vech design solved by PDGELS, or by the serial fallback (see above).
VechSolution solve_vech_distributed(const Communicator& comm, const Equations& block, std::int64_t m_total,
                                    double rcond, VechCoordinates coords, const SolverTuning& tuning = {});

/// G and C (symmetric_solver.hpp) summed over every rank's block.
std::pair<Matrix, Matrix> allreduce_lyapunov(const Communicator& comm, const Equations& block);

}  // namespace gradmatch::distributed
