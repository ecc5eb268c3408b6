#pragma once
// An independent least-squares reference for the fit tests: the plain-vech
// design of a symmetric Lambda and ordinary least squares by the
// eigendecomposition of D^T D (not the QR or structured solvers under test).
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/equations.hpp"
#include "core/lapack.hpp"
#include "core/matrix.hpp"

namespace gradmatch::reference {

/// Columns of 2 Theta Lambda for the entries (i, j), i <= j, of a symmetric
/// Lambda: row k * p + i of equation k, coordinate i.
inline Matrix vech_design(const Equations& eq, const std::vector<std::pair<std::int64_t, std::int64_t>>& entries) {
  const std::int64_t m = eq.m(), p = eq.p(), q = static_cast<std::int64_t>(entries.size());
  Matrix d(m * p, q);
  for (std::int64_t k = 0; k < m; ++k)
    for (std::int64_t i = 0; i < p; ++i)
      for (std::int64_t c = 0; c < q; ++c) {  // (2 Theta Lambda)_ki = 2 sum_j theta_kj Lambda_ji
        const auto [a, b] = entries[static_cast<std::size_t>(c)];
        if (a == i) d(k * p + i, c) += 2.0 * eq.theta(k, b);
        if (b == i && a != b) d(k * p + i, c) += 2.0 * eq.theta(k, a);
      }
  return d;
}

/// The targets b = -grad L (or the file's target) in the rows of vech_design.
inline std::vector<double> stacked_targets(const Equations& eq) {
  std::vector<double> b;
  for (std::int64_t k = 0; k < eq.m(); ++k)
    for (std::int64_t j = 0; j < eq.p(); ++j) b.push_back(eq.b(k, j));
  return b;
}

/// Ordinary least squares on a full-rank design d [n, q]: the solution, its
/// residual sum of squares and diag((d^T d)^-1).
struct OlsReference {
  std::vector<double> x, inverse_diag;
  double rss = 0.0;
};
inline OlsReference ols_reference(const Matrix& d, const std::vector<double>& b) {
  const std::int64_t n = d.rows(), q = d.cols();
  Matrix v = matmul(d.transposed(), d);
  const auto mu = lapack::syevd(q, v.data(), q);  // row e of v: the eigenvector of mu[e]
  const auto inverse = [&](std::int64_t c, std::int64_t e2) {
    double s = 0.0;
    for (std::int64_t e = 0; e < q; ++e) s += v.data()[e * q + c] * v.data()[e * q + e2] / mu[static_cast<std::size_t>(e)];
    return s;
  };
  std::vector<double> dtb(static_cast<std::size_t>(q), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t c = 0; c < q; ++c) dtb[static_cast<std::size_t>(c)] += d(i, c) * b[static_cast<std::size_t>(i)];
  OlsReference r;
  r.x.assign(static_cast<std::size_t>(q), 0.0);
  for (std::int64_t c = 0; c < q; ++c) {
    r.inverse_diag.push_back(inverse(c, c));
    for (std::int64_t e = 0; e < q; ++e) r.x[static_cast<std::size_t>(c)] += inverse(c, e) * dtb[static_cast<std::size_t>(e)];
  }
  for (std::int64_t i = 0; i < n; ++i) {
    double pred = 0.0;
    for (std::int64_t c = 0; c < q; ++c) pred += d(i, c) * r.x[static_cast<std::size_t>(c)];
    r.rss += (b[static_cast<std::size_t>(i)] - pred) * (b[static_cast<std::size_t>(i)] - pred);
  }
  return r;
}

}  // namespace gradmatch::reference
