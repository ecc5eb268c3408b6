#include "core/least_squares.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/lapack.hpp"

namespace gradmatch {

double default_rcond(std::int64_t unknowns) {
  return std::sqrt(100.0 * static_cast<double>(std::max<std::int64_t>(unknowns, 1)) *
                   std::numeric_limits<double>::epsilon());
}

LeastSquaresSolution solve_normal_equations(const Matrix& gram, std::span<const double> rhs, double rcond) {
  const std::int64_t r = gram.rows();
  if (gram.cols() != r || static_cast<std::int64_t>(rhs.size()) != r)
    throw std::invalid_argument("solve_normal_equations: shapes differ");
  LeastSquaresSolution out;
  out.x.assign(static_cast<std::size_t>(r), 0.0);
  out.gram_pinv = Matrix(r, r);
  if (r == 0) return out;
  Matrix v = gram;  // symmetric: row-major == column-major
  const std::vector<double> mu = lapack::syevd(r, v.data(), r);  // ascending; v column-major eigenvectors
  const double mu_max = std::max(mu.back(), 0.0);
  const double cut = rcond * rcond * mu_max;
  // Eigenvector i is column i of the column-major v, i.e. v.data()[i * r + a].
  std::vector<double> proj(static_cast<std::size_t>(r), 0.0);
  for (std::int64_t i = 0; i < r; ++i) {
    const double m = mu[static_cast<std::size_t>(i)];
    if (!(m > cut) || m <= 0.0) continue;
    ++out.rank;
    double s = 0.0;
    for (std::int64_t a = 0; a < r; ++a) s += v.data()[i * r + a] * rhs[static_cast<std::size_t>(a)];
    proj[static_cast<std::size_t>(i)] = s / m;
    for (std::int64_t a = 0; a < r; ++a)
      for (std::int64_t b = 0; b < r; ++b) out.gram_pinv(a, b) += v.data()[i * r + a] * v.data()[i * r + b] / m;
  }
  for (std::int64_t i = 0; i < r; ++i)
    for (std::int64_t a = 0; a < r; ++a) out.x[static_cast<std::size_t>(a)] += v.data()[i * r + a] * proj[static_cast<std::size_t>(i)];
  const double mu_min = std::max(mu.front(), 0.0);
  out.condition_number = (out.rank == r && mu_min > 0.0) ? std::sqrt(mu_max / mu_min)
                                                         : std::numeric_limits<double>::infinity();
  return out;
}

LeastSquaresSolution solve_qr(const Matrix& design, std::span<const double> b, double rcond) {
  const std::int64_t n = design.rows(), r = design.cols();
  if (static_cast<std::int64_t>(b.size()) != n) throw std::invalid_argument("solve_qr: b size differs from rows");
  LeastSquaresSolution out;
  if (r == 0) return out;
  // Row-major N x r is column-major r x N; LAPACK wants column-major N x r.
  Matrix a = design.transposed();  // row-major r x N == column-major N x r
  std::vector<double> rhs(b.begin(), b.end());
  Matrix rmat(r, r);          // column-major R (upper triangle)
  std::vector<double> z;      // leading entries of Q^T b
  if (n >= r) {
    std::vector<double> tau;
    lapack::geqrf(n, r, a.data(), n, tau);
    lapack::ormqr_qt(n, 1, r, a.data(), n, tau, rhs.data(), n);
    for (std::int64_t j = 0; j < r; ++j)
      for (std::int64_t i = 0; i <= j; ++i) rmat.data()[j * r + i] = a.data()[j * n + i];
    z.assign(rhs.begin(), rhs.begin() + r);
  } else {
    // Fewer equations than unknowns: the "R" of the problem is A itself, padded with zero rows.
    for (std::int64_t j = 0; j < r; ++j)
      for (std::int64_t i = 0; i < n; ++i) rmat.data()[j * r + i] = a.data()[j * n + i];
    z.assign(static_cast<std::size_t>(r), 0.0);
    std::copy(rhs.begin(), rhs.end(), z.begin());
  }
  // R^T R is the Gram matrix; its pseudo-inverse gives the standard errors.
  Matrix gram(r, r);
  for (std::int64_t i = 0; i < r; ++i)
    for (std::int64_t j = 0; j < r; ++j) {
      double s = 0.0;
      for (std::int64_t k = 0; k < r; ++k) s += rmat.data()[i * r + k] * rmat.data()[j * r + k];
      gram(i, j) = s;
    }
  Matrix rwork = rmat;
  const lapack::LstsqInfo info = lapack::gelsd(r, r, 1, rwork.data(), r, z.data(), r, rcond);
  out.x = std::move(z);
  out.rank = info.rank;
  const double smax = info.singular_values.front(), smin = info.singular_values.back();
  out.condition_number = (out.rank == r && smin > 0.0) ? smax / smin : std::numeric_limits<double>::infinity();
  // Pseudo-inverse of the Gram with the same rank decision as gelsd.
  Matrix v = gram;
  const std::vector<double> mu = lapack::syevd(r, v.data(), r);
  out.gram_pinv = Matrix(r, r);
  for (std::int64_t i = r - out.rank; i < r; ++i) {
    const double m = mu[static_cast<std::size_t>(i)];
    if (m <= 0.0) continue;
    for (std::int64_t a2 = 0; a2 < r; ++a2)
      for (std::int64_t b2 = 0; b2 < r; ++b2) out.gram_pinv(a2, b2) += v.data()[i * r + a2] * v.data()[i * r + b2] / m;
  }
  return out;
}

namespace {

// Solves G_PP z_P = h_P on the passive set P (minimum norm if singular).
std::vector<double> solve_on_set(const Matrix& gram, std::span<const double> rhs, const std::vector<std::int64_t>& set,
                                 std::int64_t r) {
  const auto n = static_cast<std::int64_t>(set.size());
  Matrix g(n, n);
  std::vector<double> h(static_cast<std::size_t>(n));
  for (std::int64_t a = 0; a < n; ++a) {
    h[static_cast<std::size_t>(a)] = rhs[static_cast<std::size_t>(set[static_cast<std::size_t>(a)])];
    for (std::int64_t b = 0; b < n; ++b)
      g(a, b) = gram(set[static_cast<std::size_t>(a)], set[static_cast<std::size_t>(b)]);
  }
  const auto sol = solve_normal_equations(g, h, default_rcond(n));
  std::vector<double> z(static_cast<std::size_t>(r), 0.0);
  for (std::int64_t a = 0; a < n; ++a) z[static_cast<std::size_t>(set[static_cast<std::size_t>(a)])] = sol.x[static_cast<std::size_t>(a)];
  return z;
}

}  // namespace

std::vector<double> nnls(const Matrix& gram, std::span<const double> rhs, std::vector<std::int64_t>* free_set) {
  const std::int64_t r = gram.rows();
  std::vector<double> x(static_cast<std::size_t>(r), 0.0);
  std::vector<bool> passive(static_cast<std::size_t>(r), false);
  double scale = 0.0;
  for (double h : rhs) scale = std::max(scale, std::abs(h));
  for (std::int64_t i = 0; i < r; ++i) scale = std::max(scale, std::abs(gram(i, i)));
  const double tol = 1e3 * std::numeric_limits<double>::epsilon() * std::max(scale, 1e-300) * static_cast<double>(std::max<std::int64_t>(r, 1));

  auto dual = [&](std::int64_t j) {  // w_j = (A^T (b - A x))_j
    double s = rhs[static_cast<std::size_t>(j)];
    for (std::int64_t k = 0; k < r; ++k) s -= gram(j, k) * x[static_cast<std::size_t>(k)];
    return s;
  };
  auto passive_list = [&] {
    std::vector<std::int64_t> set;
    for (std::int64_t j = 0; j < r; ++j)
      if (passive[static_cast<std::size_t>(j)]) set.push_back(j);
    return set;
  };

  for (std::int64_t outer = 0; outer < 3 * r + 10; ++outer) {
    std::int64_t best = -1;
    double best_w = tol;
    for (std::int64_t j = 0; j < r; ++j) {
      if (passive[static_cast<std::size_t>(j)]) continue;
      const double w = dual(j);
      if (w > best_w) { best_w = w; best = j; }
    }
    if (best < 0) break;
    passive[static_cast<std::size_t>(best)] = true;
    for (std::int64_t inner = 0; inner < 3 * r + 10; ++inner) {
      const auto set = passive_list();
      std::vector<double> z = solve_on_set(gram, rhs, set, r);
      bool feasible = true;
      for (auto j : set) feasible = feasible && z[static_cast<std::size_t>(j)] > 0.0;
      if (feasible) { x = std::move(z); break; }
      // Step from x toward z until the first passive coordinate hits zero;
      // that coordinate (and any other at zero) leaves the passive set.
      double alpha = 1.0;
      std::int64_t blocking = -1;
      for (auto j : set) {
        const double zj = z[static_cast<std::size_t>(j)], xj = x[static_cast<std::size_t>(j)];
        if (zj <= 0.0) {
          const double a = xj / (xj - zj);
          if (blocking < 0 || a < alpha) { alpha = a; blocking = j; }
        }
      }
      for (std::int64_t j = 0; j < r; ++j)
        x[static_cast<std::size_t>(j)] += alpha * (z[static_cast<std::size_t>(j)] - x[static_cast<std::size_t>(j)]);
      x[static_cast<std::size_t>(blocking)] = 0.0;
      for (auto j : set)
        if (x[static_cast<std::size_t>(j)] <= 0.0) {
          x[static_cast<std::size_t>(j)] = 0.0;
          passive[static_cast<std::size_t>(j)] = false;
        }
    }
  }
  if (free_set) {
    free_set->clear();
    for (std::int64_t j = 0; j < r; ++j)
      if (x[static_cast<std::size_t>(j)] > 0.0) free_set->push_back(j);
  }
  return x;
}

}  // namespace gradmatch
