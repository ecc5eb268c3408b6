#pragma once
// Dense least squares for the column families: min_x ||A x - b||^2 with a
// tall-skinny design A (N x r, N = m p equations, r coefficients).
//
// Two routes that return the same minimum-norm solution:
//   solve_qr               A = QR (dgeqrf), then the r x r system R x = Q^T b by
//                          SVD (dgelsd) -- accurate, needs all of A.
//   solve_normal_equations eigendecomposition of the Gram matrix A^T A; works from
//                          sums over row blocks (MPI all-reduce), squares cond(A).
// Singular values below rcond * s_max are dropped (minimum-norm solution).
// Both return (A^T A)^+ for standard errors and cond(A) = s_max / s_min
// (+inf when A is rank deficient).
#include <cstdint>
#include <span>
#include <vector>

#include "core/matrix.hpp"

namespace gradmatch {

struct LeastSquaresSolution {
  std::vector<double> x;
  std::int64_t rank = 0;
  double condition_number = 0.0;
  Matrix gram_pinv;  ///< (A^T A)^+, r x r
};

/// Default relative singular-value threshold for a design with r unknowns:
/// sqrt(100 r eps). Gram-based routes cannot resolve singular values below
/// ~sqrt(eps) relative, so both routes share this threshold and agree on rank.
double default_rcond(std::int64_t unknowns);

/// `gram` = A^T A (r x r, symmetric), `rhs` = A^T b.
LeastSquaresSolution solve_normal_equations(const Matrix& gram, std::span<const double> rhs, double rcond);

/// `design` = A (N x r, row-major), `b` = [N].
LeastSquaresSolution solve_qr(const Matrix& design, std::span<const double> b, double rcond);

/// Non-negative least squares min ||A x - b||, x >= 0, by the exact
/// Lawson-Hanson active-set method on the Gram form (A^T A, A^T b).
/// Returns x; `free_set` (if given) receives the indices with x_i > 0.
std::vector<double> nnls(const Matrix& gram, std::span<const double> rhs, std::vector<std::int64_t>* free_set = nullptr);

}  // namespace gradmatch
