#pragma once
// Data sets: a pair of tensors, the paper's synthetic generators, seeded
// train/validation splits and feature normalization.
//
// Every random draw comes from the core's Philox stream keyed by (seed,
// stream) -- in a study (study seed, task id) -- so a data set is the same on
// any rank and in any order of tasks.
//
// Synthetic generators (draw order: x row-major, then coefficients, then noise,
// as core/ols.hpp):
//   linear_regression  x_ij ~ N(0,1), theta_j ~ N(0, theta_sd^2),
//                      y = x theta + eps, eps ~ N(0, noise_sd^2).
//                      H.2 (elastic net): n 5000, d 10, theta_sd 5, noise 0.5;
//                      H.3 (OLS): n 1000, d 10, theta_sd 3, noise 1;
//                      H.1 (Fig. 1): n 20, d 1, theta fixed at 2, noise 1.8.
//   tanh_curve         Fig. 2: n points evenly on [-2.5, 2.5],
//                      y = 0.75 tanh(1.4 x - 0.35) + 0.12 sin(2.7 x).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "core/rng.hpp"

namespace gradmatch::training {

struct Dataset {
  at::Tensor x;  ///< [n, d] floating
  at::Tensor y;  ///< [n] or [n, k]: float targets, or int64 class indices

  std::int64_t size() const { return x.defined() ? x.size(0) : 0; }
  /// Both tensors on `device`; x (and a floating y) converted to `dtype`.
  Dataset to(const at::Device& device, at::ScalarType dtype) const;
  /// The examples at `indices` (an int64 tensor or vector), in that order.
  Dataset take(const at::Tensor& indices) const;
  Dataset take(const std::vector<std::int64_t>& indices) const;
  /// Examples [begin, end).
  Dataset slice(std::int64_t begin, std::int64_t end) const;
};

/// Checks x is [n, d] floating and y has n rows; InputError prefixed with `where`.
void validate_dataset(const Dataset& data, const char* where);

struct LinearDataOptions {
  std::int64_t n = 5000;
  std::int64_t d = 10;
  double theta_sd = 5.0;
  double noise_sd = 0.5;
  std::vector<double> theta;  ///< fixed coefficients [d]; empty: draw them
};

struct SyntheticData {
  Dataset data;                    ///< float64, y [n, 1]
  std::vector<double> theta_true;  ///< the coefficients used (empty for tanh_curve)
};

/// Appendix H.2 defaults (see the top).
SyntheticData linear_regression(const LinearDataOptions& options, std::uint64_t seed, std::uint64_t stream);
/// Figure 2's curve; deterministic.
SyntheticData tanh_curve(std::int64_t n = 96);

/// Uniform random permutation of [0, n) (Fisher-Yates on the Philox stream).
std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed, std::uint64_t stream);
/// The same, continuing an existing stream (successive epochs' batch orders).
std::vector<std::int64_t> permutation(std::int64_t n, Rng& rng);

struct Split {
  Dataset train;
  Dataset validation;
};
/// Shuffles with (seed, stream) and puts round(fraction * n) examples in
/// validation, the rest in train (each keeps the shuffled order).
Split split(const Dataset& data, double validation_fraction, std::uint64_t seed, std::uint64_t stream);
/// The rows split() takes from a data set of n examples: train and validation, in their order.
struct SplitIndices {
  std::vector<std::int64_t> train, validation;
};
SplitIndices split_indices(std::int64_t n, double validation_fraction, std::uint64_t seed, std::uint64_t stream);

/// Per-feature affine normalization x -> (x - mean) / scale, fitted on one set
/// (the training split) and applied to any other.
struct Normalizer {
  at::Tensor mean;   ///< [d]
  at::Tensor scale;  ///< [d], standard deviations (features with sd < eps get 1)

  static Normalizer fit(const at::Tensor& x, double eps = 1e-12);
  at::Tensor apply(const at::Tensor& x) const;
  Dataset apply(const Dataset& data) const;
};

}  // namespace gradmatch::training
