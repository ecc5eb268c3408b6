#include "core/symmetric_solver.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/lapack.hpp"

namespace gradmatch {
namespace {

// Weighted copies sqrt(w_k) theta_k and sqrt(w_k) b_k, row-major m x p.
void weighted_rows(const Equations& eq, Matrix& theta, Matrix& b) {
  const std::int64_t m = eq.m(), p = eq.p();
  theta = Matrix(m, p);
  b = Matrix(m, p);
  for (std::int64_t k = 0; k < m; ++k) {
    const double sw = std::sqrt(eq.weight(k));
    for (std::int64_t j = 0; j < p; ++j) {
      theta(k, j) = sw * eq.theta(k, j);
      b(k, j) = sw * eq.b(k, j);
    }
  }
}

// Returns U as a row-major matrix whose column i is eigenvector i.
Matrix eigenvectors_row_major(const Matrix& col_major_v) {
  return col_major_v.transposed();  // column-major V == row-major V^T
}

}  // namespace

void accumulate_lyapunov(const Equations& block, Matrix& g, Matrix& c) {
  const std::int64_t m = block.m(), p = block.p();
  if (g.rows() != p || g.cols() != p || c.rows() != p || c.cols() != p)
    throw std::invalid_argument("accumulate_lyapunov: G and C must be p x p");
  if (m == 0) return;
  Matrix th, b;
  weighted_rows(block, th, b);
  // Row-major m x p data is column-major p x m, i.e. Theta^T. G += Theta^T Theta.
  Matrix gl(p, p);
  lapack::syrk('L', 'N', p, m, 1.0, th.data(), p, 0.0, gl.data(), p);
  // X = B^T Theta (column-major p x p): gemm('N', 'T') on the column-major transposes.
  Matrix x(p, p);
  lapack::gemm('N', 'T', p, p, m, 1.0, b.data(), p, th.data(), p, 0.0, x.data(), p);
  // Column-major element (i, j) lives at data[j * p + i].
  for (std::int64_t j = 0; j < p; ++j)
    for (std::int64_t i = j; i < p; ++i) {
      const double gij = gl.data()[j * p + i];  // lower triangle
      g(i, j) += gij;
      if (i != j) g(j, i) += gij;
    }
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = 0; j < p; ++j) c(i, j) += 0.5 * (x.data()[j * p + i] + x.data()[i * p + j]);
}

SymmetricSolution solve_structured(const Matrix& g, const Matrix& c, double rcond) {
  const std::int64_t p = g.rows();
  if (g.cols() != p || c.rows() != p || c.cols() != p) throw std::invalid_argument("solve_structured: shapes differ");
  SymmetricSolution out;
  Matrix v = g;
  out.eigenvalues = lapack::syevd(p, v.data(), p);
  out.eigenvectors = eigenvectors_row_major(v);
  const Matrix& u = out.eigenvectors;
  const Matrix ut = u.transposed();
  Matrix ct = matmul(matmul(ut, c), u);  // U^T C U
  const auto& ev = out.eigenvalues;
  const double mu_max = std::max(2.0 * ev.back(), 0.0);
  const double cut = rcond * rcond * mu_max;
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = 0; j < p; ++j) {
      const double mu = ev[static_cast<std::size_t>(i)] + ev[static_cast<std::size_t>(j)];
      if (mu > cut && mu > 0.0) {
        ct(i, j) /= mu;
        if (i <= j) ++out.rank;
      } else {
        ct(i, j) = 0.0;
      }
    }
  out.lambda = matmul(matmul(u, ct), ut);
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = i + 1; j < p; ++j) {
      const double s = 0.5 * (out.lambda(i, j) + out.lambda(j, i));
      out.lambda(i, j) = out.lambda(j, i) = s;
    }
  const double mu_min = 2.0 * ev.front();
  out.condition_number = (out.rank == sym_unknowns(p) && mu_min > 0.0) ? std::sqrt(mu_max / mu_min)
                                                                        : std::numeric_limits<double>::infinity();
  return out;
}

SymmetricSolution solve_vech(const Equations& eq, double rcond, VechCoordinates coords) {
  const std::int64_t m = eq.m(), p = eq.p(), q = sym_unknowns(p);
  const std::int64_t rows = m * p;
  const std::int64_t ld = std::max(rows, q);
  // Column index of the unknown for the pair (i, j), i <= j, row by row.
  std::vector<std::int64_t> first(static_cast<std::size_t>(p));
  for (std::int64_t i = 0, idx = 0; i < p; ++i) {
    first[static_cast<std::size_t>(i)] = idx - i;  // index(i, j) = first[i] + j for j >= i
    idx += p - i;
  }
  auto index = [&](std::int64_t i, std::int64_t j) {
    if (i > j) std::swap(i, j);
    return first[static_cast<std::size_t>(i)] + j;
  };
  const double off = coords == VechCoordinates::isometric ? std::sqrt(2.0) : 2.0;
  std::vector<double> design(static_cast<std::size_t>(rows * q), 0.0);  // column-major rows x q
  std::vector<double> rhs(static_cast<std::size_t>(ld), 0.0);
  for (std::int64_t k = 0; k < m; ++k) {
    const double sw = std::sqrt(eq.weight(k));
    for (std::int64_t i = 0; i < p; ++i) {
      const std::int64_t row = k * p + i;
      rhs[static_cast<std::size_t>(row)] = sw * eq.b(k, i);
      for (std::int64_t j = 0; j < p; ++j) {
        const double coef = (i == j ? 2.0 : off) * eq.theta(k, j) * sw;
        design[static_cast<std::size_t>(index(i, j) * rows + row)] += coef;
      }
    }
  }
  const lapack::LstsqInfo info = lapack::gelsd(rows, q, 1, design.data(), rows, rhs.data(), ld, rcond);
  SymmetricSolution out;
  out.lambda = Matrix(p, p);
  const double unscale = coords == VechCoordinates::isometric ? 1.0 / std::sqrt(2.0) : 1.0;
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = i; j < p; ++j) {
      const double u = rhs[static_cast<std::size_t>(index(i, j))];
      out.lambda(i, j) = out.lambda(j, i) = (i == j ? u : u * unscale);
    }
  out.rank = info.rank;
  const double smax = info.singular_values.empty() ? 0.0 : info.singular_values.front();
  const double smin = info.singular_values.empty() ? 0.0 : info.singular_values.back();
  out.condition_number = (out.rank == q && smin > 0.0) ? smax / smin : std::numeric_limits<double>::infinity();
  return out;
}

Matrix structured_standard_errors(const SymmetricSolution& s, double sigma2, double rcond) {
  const std::int64_t p = s.lambda.rows();
  const Matrix& u = s.eigenvectors;
  const auto& ev = s.eigenvalues;
  if (u.rows() != p) throw std::invalid_argument("structured_standard_errors: needs the structured solution");
  const double mu_max = std::max(2.0 * ev.back(), 0.0);
  const double cut = rcond * rcond * mu_max;
  // v_ij = sigma2 / (4 (g_i + g_j)): variance of L~_ij per unordered pair,
  // written so that Var(Lambda_ab) = sum_ij (U_ai^2 U_bj^2 + P_i P_j) v_ij with P = U_a. U_b.
  // z_ij = 1 on the unidentified pairs (g_i + g_j at or below the cut): the
  // same sums with z give the squared weight of Lambda_ab's functional there,
  // out of a total of 1 + [a == b]; an unidentified entry gets a NaN error.
  Matrix v(p, p), z(p, p);
  bool any_unidentified = false;
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = 0; j < p; ++j) {
      const double mu = ev[static_cast<std::size_t>(i)] + ev[static_cast<std::size_t>(j)];
      const bool identified = mu > cut && mu > 0.0;
      v(i, j) = identified ? sigma2 / (4.0 * mu) : 0.0;
      z(i, j) = identified ? 0.0 : 1.0;
      any_unidentified = any_unidentified || !identified;
    }
  Matrix a(p, p);  // U elementwise squared
  for (std::int64_t i = 0; i < p * p; ++i) a.data()[i] = u.data()[i] * u.data()[i];
  const Matrix first = matmul(matmul(a, v), a.transposed());
  const Matrix zfirst = any_unidentified ? matmul(matmul(a, z), a.transposed()) : Matrix();
  std::vector<double> pv(static_cast<std::size_t>(p));
  const auto second = [&](const Matrix& w) {  // P^T w P
    double total = 0.0;
    for (std::int64_t i = 0; i < p; ++i) {
      double s2 = 0.0;
      for (std::int64_t j = 0; j < p; ++j) s2 += w(i, j) * pv[static_cast<std::size_t>(j)];
      total += pv[static_cast<std::size_t>(i)] * s2;
    }
    return total;
  };
  Matrix se(p, p);
  for (std::int64_t x = 0; x < p; ++x)
    for (std::int64_t y = x; y < p; ++y) {
      for (std::int64_t i = 0; i < p; ++i) pv[static_cast<std::size_t>(i)] = u(x, i) * u(y, i);
      se(x, y) = se(y, x) = std::sqrt(std::max(first(x, y) + second(v), 0.0));
      if (any_unidentified && (zfirst(x, y) + second(z)) / (x == y ? 2.0 : 1.0) > 1e-6)
        se(x, y) = se(y, x) = std::numeric_limits<double>::quiet_NaN();
    }
  return se;
}

}  // namespace gradmatch
