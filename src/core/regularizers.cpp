#include "core/regularizers.hpp"

#include <cmath>
#include <stdexcept>

namespace gradmatch::reg {
namespace {
void check_sizes(std::span<const double> theta, std::span<double> out, const char* who) {
  if (theta.size() != out.size()) throw std::invalid_argument(std::string(who) + ": output size differs from theta");
}
}  // namespace

double huber(double x, double beta) {
  const double a = std::abs(x);
  return a < beta ? x * x / (2.0 * beta) : a - 0.5 * beta;
}

double huber_derivative(double x, double beta) {
  if (std::abs(x) < beta) return x / beta;
  return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0);
}

double ridge_value(std::span<const double> theta, double lambda) {
  double s = 0.0;
  for (double t : theta) s += t * t;
  return lambda * s;
}

void ridge_gradient(std::span<const double> theta, double lambda, std::span<double> out) {
  check_sizes(theta, out, "ridge_gradient");
  for (std::size_t j = 0; j < theta.size(); ++j) out[j] = 2.0 * lambda * theta[j];
}

double huber_value(std::span<const double> theta, double lambda, double beta) {
  double s = 0.0;
  for (double t : theta) s += huber(t, beta);
  return lambda * s;
}

void huber_gradient(std::span<const double> theta, double lambda, double beta, std::span<double> out) {
  check_sizes(theta, out, "huber_gradient");
  for (std::size_t j = 0; j < theta.size(); ++j) out[j] = lambda * huber_derivative(theta[j], beta);
}

double elastic_net_value(std::span<const double> theta, double lambda1, double lambda2, double beta) {
  return huber_value(theta, lambda1, beta) + ridge_value(theta, lambda2);
}

void elastic_net_gradient(std::span<const double> theta, double lambda1, double lambda2, double beta,
                          std::span<double> out) {
  check_sizes(theta, out, "elastic_net_gradient");
  for (std::size_t j = 0; j < theta.size(); ++j)
    out[j] = lambda1 * huber_derivative(theta[j], beta) + 2.0 * lambda2 * theta[j];
}

double diag_value(std::span<const double> theta, std::span<const double> q) {
  if (q.size() != theta.size()) throw std::invalid_argument("diag_value: q and theta sizes differ");
  double s = 0.0;
  for (std::size_t j = 0; j < theta.size(); ++j) s += q[j] * theta[j] * theta[j];
  return s;
}

void diag_gradient(std::span<const double> theta, std::span<const double> q, std::span<double> out) {
  check_sizes(theta, out, "diag_gradient");
  if (q.size() != theta.size()) throw std::invalid_argument("diag_gradient: q and theta sizes differ");
  for (std::size_t j = 0; j < theta.size(); ++j) out[j] = 2.0 * q[j] * theta[j];
}

double sym_value(std::span<const double> theta, const Matrix& lambda) {
  const auto p = static_cast<std::int64_t>(theta.size());
  if (lambda.rows() != p || lambda.cols() != p) throw std::invalid_argument("sym_value: Lambda must be p x p");
  double s = 0.0;
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = 0; j < p; ++j) s += theta[static_cast<std::size_t>(i)] * lambda(i, j) * theta[static_cast<std::size_t>(j)];
  return s;
}

void sym_gradient(std::span<const double> theta, const Matrix& lambda, std::span<double> out) {
  check_sizes(theta, out, "sym_gradient");
  const auto p = static_cast<std::int64_t>(theta.size());
  if (lambda.rows() != p || lambda.cols() != p) throw std::invalid_argument("sym_gradient: Lambda must be p x p");
  // grad (theta^T L theta) = (L + L^T) theta; for symmetric L that is 2 L theta.
  for (std::int64_t i = 0; i < p; ++i) {
    double s = 0.0;
    for (std::int64_t j = 0; j < p; ++j)
      s += (lambda(i, j) + lambda(j, i)) * theta[static_cast<std::size_t>(j)];
    out[static_cast<std::size_t>(i)] = s;
  }
}

}  // namespace gradmatch::reg
