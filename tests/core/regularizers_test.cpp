// Gradients of every regularizer family against central finite differences.
#include "core/regularizers.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "core/problems.hpp"
#include "core/rng.hpp"

namespace gradmatch {
namespace {

// Central differences of f at theta, step h.
std::vector<double> numeric_gradient(const std::function<double(std::span<const double>)>& f, std::vector<double> theta,
                                     double h) {
  std::vector<double> g(theta.size());
  for (std::size_t j = 0; j < theta.size(); ++j) {
    const double t = theta[j];
    theta[j] = t + h;
    const double up = f(theta);
    theta[j] = t - h;
    const double down = f(theta);
    theta[j] = t;
    g[j] = (up - down) / (2.0 * h);
  }
  return g;
}

void expect_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t j = 0; j < a.size(); ++j) EXPECT_NEAR(a[j], b[j], tol) << "coordinate " << j;
}

std::vector<double> random_theta(std::uint64_t stream, std::size_t p, double sd) {
  Rng rng(7, stream);
  std::vector<double> t(p);
  for (double& v : t) v = sd * rng.normal();
  return t;
}

TEST(Regularizers, RidgeGradientMatchesFiniteDifferences) {
  const auto theta = random_theta(1, 12, 1.0);
  std::vector<double> g(theta.size());
  reg::ridge_gradient(theta, 0.37, g);
  expect_close(g, numeric_gradient([](auto t) { return reg::ridge_value(t, 0.37); }, theta, 1e-5), 1e-8);
}

TEST(Regularizers, HuberGradientMatchesFiniteDifferencesInsideAndOutsideBeta) {
  // beta = 0.5 with sd 1: coordinates on both sides of |x| = beta (none within h of the kink).
  auto theta = random_theta(2, 40, 1.0);
  const double beta = 0.5;
  for (double& t : theta)
    if (std::abs(std::abs(t) - beta) < 1e-3) t += 0.01;
  std::vector<double> g(theta.size());
  reg::huber_gradient(theta, 2.5, beta, g);
  expect_close(g, numeric_gradient([&](auto t) { return reg::huber_value(t, 2.5, beta); }, theta, 1e-6), 1e-7);
  int inside = 0;
  for (double t : theta) inside += std::abs(t) < beta;
  EXPECT_GT(inside, 0);
  EXPECT_LT(inside, 40);
}

TEST(Regularizers, ValuesAndGradientsFollowTheScaleConventionsByHand) {
  // R = lambda sum theta^2 (gradient 2 lambda theta), sum q_j theta_j^2,
  // theta^T Lambda theta, lambda1 sum h_beta + lambda2 sum theta^2: the factors
  // of 2 every fit and docs/fit.md rely on, worked out by hand.
  const std::vector<double> theta{1.0, 2.0};
  EXPECT_DOUBLE_EQ(reg::ridge_value(theta, 0.5), 2.5);
  std::vector<double> g(2);
  reg::ridge_gradient(theta, 0.5, g);
  EXPECT_EQ(g, (std::vector<double>{1.0, 2.0}));
  EXPECT_DOUBLE_EQ(reg::diag_value(theta, std::vector<double>{0.5, 2.0}), 8.5);
  reg::diag_gradient(theta, std::vector<double>{0.5, 2.0}, g);
  EXPECT_EQ(g, (std::vector<double>{1.0, 8.0}));
  const Matrix lambda(2, 2, {1.0, 0.5, 0.5, 2.0});
  EXPECT_DOUBLE_EQ(reg::sym_value(theta, lambda), 11.0);
  reg::sym_gradient(theta, lambda, g);
  EXPECT_EQ(g, (std::vector<double>{4.0, 9.0}));  // 2 Lambda theta
  // beta = 1.5: theta_0 = 1 inside (1 / 3), theta_1 = 2 outside (2 - 0.75).
  EXPECT_DOUBLE_EQ(reg::elastic_net_value(theta, 2.0, 0.5, 1.5), 2.0 * (1.0 / 3.0 + 1.25) + 0.5 * 5.0);
}

TEST(Regularizers, HuberIsQuadraticInsideBetaAndLinearOutside) {
  EXPECT_DOUBLE_EQ(reg::huber(0.001, 0.01), 0.001 * 0.001 / 0.02);
  EXPECT_DOUBLE_EQ(reg::huber(-3.0, 0.01), 3.0 - 0.005);
  EXPECT_DOUBLE_EQ(reg::huber_derivative(0.004, 0.01), 0.4);
  EXPECT_DOUBLE_EQ(reg::huber_derivative(-2.0, 0.01), -1.0);
  // Continuous value and slope at the boundary.
  EXPECT_NEAR(reg::huber(0.01 - 1e-12, 0.01), reg::huber(0.01 + 1e-12, 0.01), 1e-11);
}

TEST(Regularizers, ElasticNetGradientMatchesFiniteDifferences) {
  auto theta = random_theta(3, 30, 0.3);
  const double beta = 0.2;
  for (double& t : theta)
    if (std::abs(std::abs(t) - beta) < 1e-3) t += 0.01;
  std::vector<double> g(theta.size());
  reg::elastic_net_gradient(theta, 0.8, 1.7, beta, g);
  expect_close(g, numeric_gradient([&](auto t) { return reg::elastic_net_value(t, 0.8, 1.7, beta); }, theta, 1e-6),
               1e-7);
}

TEST(Regularizers, DiagGradientMatchesFiniteDifferences) {
  const auto theta = random_theta(4, 9, 1.0);
  const auto q = random_theta(5, 9, 2.0);
  std::vector<double> g(theta.size());
  reg::diag_gradient(theta, q, g);
  expect_close(g, numeric_gradient([&](auto t) { return reg::diag_value(t, q); }, theta, 1e-5), 1e-8);
}

TEST(Regularizers, SymGradientMatchesFiniteDifferences) {
  Rng rng(11, 0);
  const Matrix lambda = problems::random_spd(rng, 8, 50.0);
  const auto theta = random_theta(6, 8, 1.0);
  std::vector<double> g(theta.size());
  reg::sym_gradient(theta, lambda, g);
  expect_close(g, numeric_gradient([&](auto t) { return reg::sym_value(t, lambda); }, theta, 1e-5), 1e-7);
  // For symmetric Lambda the gradient is exactly 2 Lambda theta.
  for (std::int64_t i = 0; i < 8; ++i) {
    double s = 0.0;
    for (std::int64_t j = 0; j < 8; ++j) s += 2.0 * lambda(i, j) * theta[static_cast<std::size_t>(j)];
    EXPECT_NEAR(g[static_cast<std::size_t>(i)], s, 1e-12);
  }
}

}  // namespace
}  // namespace gradmatch
