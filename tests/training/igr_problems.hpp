#pragma once
// Known-answer problems for the HVP, reference-flow, trajectory and IGR
// tests and the probe-step benchmark (float64 throughout):
//
//   linear regression  L = (1/n) ||y - X theta||^2 on a bias-free linear
//                      model, so g = 2 (S theta - r), H = 2 S with
//                      S = X^T X / n, r = X^T y / n, and the gradient flow is
//                      theta(t) = theta* + V exp(-2 s t) V^T (theta_0 - theta*)
//                      (S = V diag(s) V^T, theta* = S^{-1} r).
//   tanh classifier    a small bias-free tanh MLP with cross-entropy on
//                      Gaussian inputs: smooth, non-quadratic.
#include <ATen/ATen.h>

#include <cstdint>

#include "core/rng.hpp"
#include "training/data.hpp"
#include "training/models.hpp"

namespace gradmatch::training::testing {

inline Dataset regression_data(std::int64_t n, std::int64_t d, std::uint64_t seed) {
  LinearDataOptions o;
  o.n = n;
  o.d = d;
  o.theta_sd = 1.0;
  o.noise_sd = 0.5;
  return linear_regression(o, seed, 0).data;
}

inline ModelHandle linear_model(std::int64_t d, std::uint64_t seed = 3) {
  MlpOptions o;
  o.inputs = d;
  o.outputs = 1;
  o.activation = Activation::identity;
  o.output_bias = false;
  return make_handle(make_mlp(o, seed, 0, torch::kCPU, at::kDouble));
}

inline MlpOptions tanh_options(std::int64_t inputs, std::vector<std::int64_t> hidden, std::int64_t classes) {
  MlpOptions o;
  o.inputs = inputs;
  o.hidden = std::move(hidden);
  o.outputs = classes;
  o.activation = Activation::tanh;
  o.hidden_bias = false;
  return o;
}

inline ModelHandle tanh_classifier(std::int64_t inputs, std::vector<std::int64_t> hidden, std::int64_t classes,
                                   std::uint64_t seed = 5) {
  return make_handle(make_mlp(tanh_options(inputs, std::move(hidden), classes), seed, 0, torch::kCPU, at::kDouble));
}

/// x ~ N(0, 1) [n, d]; labels from a random linear map's argmax.
inline Dataset class_data(std::int64_t n, std::int64_t d, std::int64_t classes, std::uint64_t seed) {
  Rng rng(seed, 1);
  at::Tensor x = at::empty({n, d}, at::kDouble);
  at::Tensor w = at::empty({d, classes}, at::kDouble);
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data_ptr<double>()[i] = rng.normal();
  for (std::int64_t i = 0; i < w.numel(); ++i) w.data_ptr<double>()[i] = rng.normal();
  return {x, at::matmul(x, w).argmax(1)};
}

/// S and r of a regression data set.
struct RegressionMoments {
  at::Tensor s, r;
};
inline RegressionMoments regression_moments(const Dataset& data) {
  const double n = static_cast<double>(data.size());
  const at::Tensor y = data.y.reshape({-1, 1});
  return {at::matmul(data.x.t(), data.x) / n, (at::matmul(data.x.t(), y) / n).reshape({-1})};
}

/// The exact gradient-flow point theta(t) from theta0 (see the top).
inline at::Tensor exact_regression_flow(const Dataset& data, const at::Tensor& theta0, double t) {
  const RegressionMoments m = regression_moments(data);
  const at::Tensor star = at::linalg_solve(m.s, m.r.unsqueeze(1)).squeeze(1);
  const auto [s, v] = at::linalg_eigh(m.s);
  const at::Tensor decay = at::exp(-2.0 * t * s);
  const at::Tensor e = at::matmul(v.t(), (theta0 - star).unsqueeze(1)).squeeze(1);
  return star + at::matmul(v, (decay * e).unsqueeze(1)).squeeze(1);
}

/// Relative 2-norm distance ||a - b|| / ||b||.
inline double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

}  // namespace gradmatch::training::testing
