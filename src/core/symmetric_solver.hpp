#pragma once
// The `sym` family: a full symmetric Lambda with grad R = 2 Lambda theta.
//
// Stacking the points, the fit is min over symmetric Lambda of
//     sum_k w_k || 2 Lambda theta_k - b_k ||^2.
// Its normal equations (gradient projected onto symmetric matrices) are the
// Lyapunov equation
//     Lambda G + G Lambda = C,  G = sum_k w_k theta_k theta_k^T,
//                               C = sum_k w_k (b_k theta_k^T + theta_k b_k^T) / 2.
// With G = U diag(g) U^T and L~ = U^T Lambda U, C~ = U^T C U it decouples into
// L~_ij (g_i + g_j) = C~_ij. The design's singular values are
// sqrt(2 (g_i + g_j)) in the isometric coordinates of symmetric matrices
// (Lambda_ii, sqrt(2) Lambda_ij for i < j), so dropping the pairs with
// g_i + g_j <= rcond^2 max(g_i + g_j) and setting them to zero gives the
// MINIMUM-FROBENIUS-NORM least-squares solution (solve_structured).
//
// solve_vech builds the explicit (m p) x p(p+1)/2 design and solves it with
// LAPACK's SVD least squares (the paper's way). In isometric coordinates it
// returns the same minimum-Frobenius-norm solution; in the plain vech
// coordinates (Lambda_ij, i <= j, each once: numpy's lstsq on vech) it
// returns the solution of minimum sum_{i<=j} Lambda_ij^2, which differs from
// the Frobenius one when the system is underdetermined (m < p).
#include <cstdint>

#include "core/equations.hpp"
#include "core/matrix.hpp"

namespace gradmatch {

/// Adds the block's contributions to G and C (both p x p; caller zeroes them).
void accumulate_lyapunov(const Equations& block, Matrix& g, Matrix& c);

struct SymmetricSolution {
  Matrix lambda;                 ///< p x p, symmetric
  std::int64_t rank = 0;         ///< identified entries out of p(p+1)/2
  double condition_number = 0;   ///< of the design; +inf when rank deficient
  Matrix eigenvectors;           ///< U (row-major, columns are eigenvectors of G); empty for vech
  std::vector<double> eigenvalues;  ///< g ascending; empty for vech
};

/// Solves Lambda G + G Lambda = C by the eigendecomposition of G.
SymmetricSolution solve_structured(const Matrix& g, const Matrix& c, double rcond);

enum class VechCoordinates { isometric, plain };
/// Builds the explicit design and solves it by dgelsd.
SymmetricSolution solve_vech(const Equations& eq, double rcond, VechCoordinates coords);

/// Standard errors of every Lambda_ab under i.i.d. equation noise of
/// variance sigma2, from the structured solution (O(p^4); the caller decides
/// whether p is small enough). Unidentified components contribute nothing.
Matrix structured_standard_errors(const SymmetricSolution& s, double sigma2, double rcond);

/// Number of unknowns p(p+1)/2 of a p x p symmetric matrix.
inline std::int64_t sym_unknowns(std::int64_t p) { return p * (p + 1) / 2; }

}  // namespace gradmatch
