#pragma once
// Gradient equations: the input of every fit.
//
// At each of m points (endpoints, bootstrap replicates, trajectory steps) we
// know the flat parameters theta_k in R^p and the full-batch mean loss
// gradient grad L(theta_k). Stationarity of loss + R(theta; Lambda) says
//     grad R(theta_k; Lambda) = b_k,   b_k = -grad L(theta_k)
// (or an explicit trajectory target b_k when `target` is given). A fit
// chooses Lambda minimising sum_k w_k || b_k - grad R(theta_k; Lambda) ||^2.
// This struct mirrors the version-1 equation file (docs/equation-format.md).
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/matrix.hpp"

namespace gradmatch {

/// One named parameter tensor of a model: a contiguous run of theta's columns.
struct ParameterBlock {
  std::string name;                 ///< e.g. "layer0.weight"
  std::vector<std::int64_t> shape;  ///< {} for a scalar parameter
  /// Number of scalars (the product of the shape; 1 for a scalar).
  std::int64_t size() const;
};

struct Equations {
  Matrix theta;                                        ///< [m, p]
  Matrix grad_loss;                                    ///< [m, p]
  std::optional<Matrix> target;                        ///< [m, p]; replaces -grad_loss when present
  std::vector<std::pair<std::string, Matrix>> features;  ///< name -> [m, p] candidate gradients
  std::vector<double> weights;                         ///< [m] or empty (all ones)
  /// Optional: the parameter tensors that theta's columns are, in column
  /// order (their sizes sum to p). Empty when the writer did not record them.
  std::vector<ParameterBlock> parameters;

  std::int64_t m() const { return theta.rows(); }
  std::int64_t p() const { return theta.cols(); }

  /// The regression target b_kj.
  double b(std::int64_t k, std::int64_t j) const { return target ? (*target)(k, j) : -grad_loss(k, j); }
  double weight(std::int64_t k) const { return weights.empty() ? 1.0 : weights[static_cast<std::size_t>(k)]; }

  /// Throws InputError (prefixed with `where`) unless shapes agree, every
  /// value is finite, every weight is non-negative and, when parameters are
  /// recorded, their names are unique and non-empty and their sizes sum to p.
  void validate(const std::string& where) const;

  /// Points [begin, end) as their own equations (used to split rows among ranks).
  Equations rows(std::int64_t begin, std::int64_t end) const;

  /// Keeps the feature columns whose names match one of `globs` (shell
  /// patterns: * ? [...]), in the order of the globs (a glob's matches in
  /// their order in the file), so that coefficients come out as the user
  /// listed the columns; nothing changes when `globs` is
  /// empty. InputError naming the columns there are when a glob matches none.
  void keep_features(const std::vector<std::string>& globs);
};

}  // namespace gradmatch
