#pragma once
// Candidate regularizers R(theta; Lambda) and their gradients, with the
// scale conventions of docs/design.md (the factor-2 traps):
//   ridge        R = lambda * sum theta^2            grad = 2 lambda theta
//   diag         R = sum_j q_j theta_j^2             grad = 2 q (.) theta
//   sym          R = theta^T Lambda theta            grad = 2 Lambda theta
//   huber_beta   h(x) = x^2/(2 beta) if |x| < beta, else |x| - beta/2
//                R = lambda * sum h(theta_j)         grad = lambda * h'(theta)
//   elastic net  R = l1 * sum h_beta(theta) + l2 * sum theta^2
// Every family except sym/diag is linear in a few scalar coefficients, so
// its gradient is a fixed set of "columns" (one p-vector per coefficient).
#include <span>

#include "core/matrix.hpp"

namespace gradmatch::reg {

double huber(double x, double beta);
/// dh/dx: x / beta inside (-beta, beta), sign(x) outside.
double huber_derivative(double x, double beta);

double ridge_value(std::span<const double> theta, double lambda);
void ridge_gradient(std::span<const double> theta, double lambda, std::span<double> out);

double huber_value(std::span<const double> theta, double lambda, double beta);
void huber_gradient(std::span<const double> theta, double lambda, double beta, std::span<double> out);

double elastic_net_value(std::span<const double> theta, double lambda1, double lambda2, double beta);
void elastic_net_gradient(std::span<const double> theta, double lambda1, double lambda2, double beta,
                          std::span<double> out);

double diag_value(std::span<const double> theta, std::span<const double> q);
void diag_gradient(std::span<const double> theta, std::span<const double> q, std::span<double> out);

double sym_value(std::span<const double> theta, const Matrix& lambda);
void sym_gradient(std::span<const double> theta, const Matrix& lambda, std::span<double> out);

}  // namespace gradmatch::reg
