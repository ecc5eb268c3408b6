#include "core/problems.hpp"

#include <cmath>

#include "core/lapack.hpp"

namespace gradmatch::problems {

Matrix gaussian(Rng& rng, std::int64_t m, std::int64_t p, double sd) {
  Matrix a(m, p);
  for (double& v : a.values()) v = sd * rng.normal();
  return a;
}

Matrix random_spd(Rng& rng, std::int64_t p, double condition, double scale) {
  // Orthonormal Q from the eigenvectors of a random symmetric matrix.
  Matrix s = gaussian(rng, p, p);
  Matrix sym(p, p);
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = 0; j < p; ++j) sym(i, j) = s(i, j) + s(j, i);
  lapack::syevd(p, sym.data(), p);  // columns (column-major) are orthonormal
  const Matrix q = sym.transposed();
  Matrix d(p, p);
  for (std::int64_t i = 0; i < p; ++i) {
    const double t = p > 1 ? static_cast<double>(i) / static_cast<double>(p - 1) : 0.0;
    d(i, i) = scale * std::exp(t * std::log(condition));
  }
  Matrix out = matmul(matmul(q, d), q.transposed());
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = i + 1; j < p; ++j) out(i, j) = out(j, i) = 0.5 * (out(i, j) + out(j, i));
  return out;
}

Equations consistent_sym(Rng& rng, const Matrix& lambda, std::int64_t m) {
  const std::int64_t p = lambda.rows();
  Equations eq;
  eq.theta = gaussian(rng, m, p);
  eq.grad_loss = matmul(eq.theta, lambda);  // rows: (Lambda theta_k)^T
  for (double& v : eq.grad_loss.values()) v *= -2.0;
  return eq;
}

Equations random_sym(Rng& rng, std::int64_t m, std::int64_t p) {
  Equations eq;
  eq.theta = gaussian(rng, m, p);
  eq.grad_loss = gaussian(rng, m, p);
  return eq;
}

}  // namespace gradmatch::problems
