#pragma once
// Regularizer families that `gradmatch fit` solves for, and their
// "gradient columns".
//
// A family is linear in its coefficients c: grad R(theta_k) = A_k c, where
// A_k is p x r. Stacking all points gives the design A (m p x r) and the
// least-squares problem min_c sum_k w_k ||b_k - A_k c||^2.
//   ridge               r = 1      A_k = [2 theta_k]
//   huber:beta=B        r = 1      A_k = [h'_B(theta_k)]
//   elastic-net:beta=B  r = 2      A_k = [h'_B(theta_k), 2 theta_k]  -> (lambda1, lambda2)
//   features            r = #features/<name>   A_k = [F_1,k ... F_r,k]
//   diag                r = p      A_k = 2 diag(theta_k)   (decouples per coordinate)
//   sym                 r = p(p+1)/2, grad = 2 Lambda theta_k  (see symmetric_solver.hpp)
#include <string>
#include <string_view>
#include <vector>

#include "core/equations.hpp"

namespace gradmatch {

enum class FamilyKind { ridge, diag, sym, huber, elastic_net, features };

struct FamilySpec {
  FamilyKind kind = FamilyKind::ridge;
  double beta = 0.0;  ///< Huber smoothing width (huber, elastic-net)

  /// Parses "ridge", "diag", "sym", "features", "huber:beta=B",
  /// "elastic-net:beta=B". Throws InputError saying what is accepted.
  static FamilySpec parse(std::string_view text);
  /// The canonical text form (parse(to_string()) round-trips).
  std::string to_string() const;

  /// True for families whose gradient is a handful of columns (ridge,
  /// huber, elastic-net, features).
  bool is_column_family() const {
    return kind == FamilyKind::ridge || kind == FamilyKind::huber || kind == FamilyKind::elastic_net ||
           kind == FamilyKind::features;
  }
};

/// Number of columns r of a column family on these equations.
std::int64_t column_count(const FamilySpec& family, const Equations& eq);
/// Coefficient names of a column family ("lambda", "lambda1", feature names...).
std::vector<std::string> column_names(const FamilySpec& family, const Equations& eq);
/// Fills out (p x r, row-major) with the gradient columns A_k at point k.
void fill_columns(const FamilySpec& family, const Equations& eq, std::int64_t k, double* out);

}  // namespace gradmatch
