#pragma once
// Fitting a regularizer family to gradient equations: the core's entry point.
//
//   fit(eq, options)            serial: everything in one process.
//   Fitter                      the same fit split into additive pieces so
//                               that ranks can each take a block of rows:
//     statistics(block)   -> vector, summed over blocks (MPI all-reduce)
//     solve(total)        -> coefficients (identical on every rank)
//     residual_sums(block)-> vector, summed over blocks
//     result(total)       -> FitResult with diagnostics
//   Methods that need every row at once (qr, vech) use solve_all(eq), or
//   take a solution computed elsewhere (gradmatch::distributed's ScaLAPACK
//   solves) through set_column_solution / set_symmetric_solution.
// fit() is literally this sequence with one block, so the serial path is the
// oracle of the distributed one.
//
// Diagnostics (every fit): residual ratio ||b - grad R||_W / ||b||_W, cosine
// between b and grad R, the design's condition number, the residual variance
// sigma^2 = RSS / (n - rank) and standard errors sqrt(sigma^2 (A^T W A)^+_ii)
// -- NaN (JSON null) for a coefficient the equations do not identify -- and
// warnings: sentences saying when the result means little (fit_warnings).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/equations.hpp"
#include "core/family.hpp"
#include "core/least_squares.hpp"
#include "core/symmetric_solver.hpp"

namespace gradmatch {

enum class Method { automatic, closed_form, qr, normal, structured, vech, vech_plain };

/// "auto", "closed-form", "qr", "normal" (alias "gram"), "structured", "vech", "vech-plain".
Method parse_method(std::string_view text);
std::string to_string(Method method);

struct FitOptions {
  FamilySpec family;
  Method method = Method::automatic;
  bool normalize = false;  ///< unit-norm column scaling (paper appendix G.1), column families
  bool nonneg = false;     ///< non-negative coefficients (active-set NNLS; clamping for diag)
  double rcond = -1.0;     ///< relative singular-value cut; < 0 means default_rcond(unknowns)
  /// Largest p for which `sym` reports standard errors of every entry (the
  /// computation is O(p^4)); above it they are left empty.
  std::int64_t sym_standard_error_max_p = 200;
};

struct FitResult {
  std::string family;
  std::string method;
  std::vector<std::int64_t> shape;       ///< {} scalar, {r}, {p} or {p, p}
  std::vector<double> coefficients;      ///< row-major, shape above
  std::vector<double> standard_errors;   ///< same layout; empty when not computed
  std::vector<std::string> names;        ///< column families: coefficient names
  std::int64_t m = 0, p = 0;
  std::int64_t n_equations = 0;          ///< scalar equations with positive weight
  std::int64_t unknowns = 0;
  std::int64_t rank = 0;
  double residual_ratio = 0.0;
  double cosine = 0.0;
  double condition_number = 0.0;
  double sigma2 = 0.0;                   ///< NaN when n_equations <= rank
  double rcond = 0.0;
  bool normalized = false;
  bool nonneg = false;
  /// Some sum of the fit overflowed to a non-finite value: the coefficients are NaN.
  bool overflow = false;
  /// Sentences saying when the numbers mean little (see fit_warnings); empty when none apply.
  std::vector<std::string> warnings;
  /// The equations' parameter tensors (theta's columns), when recorded.
  std::vector<ParameterBlock> parameters;

  /// Coefficient i (scalar families: i = 0).
  double coefficient(std::size_t i = 0) const { return coefficients.at(i); }
  /// Lambda as a p x p matrix (sym only).
  Matrix lambda_matrix() const;
};

class Fitter {
 public:
  /// `layout` is any block of the equations (it fixes p and the feature names);
  /// `m_total` is the number of points over all blocks.
  Fitter(FitOptions options, const Equations& layout, std::int64_t m_total);

  Method method() const { return method_; }
  /// qr and vech need every row in one place.
  bool needs_all_rows() const { return method_ == Method::qr || method_ == Method::vech || method_ == Method::vech_plain; }

  std::vector<double> statistics(const Equations& block) const;
  void solve(std::span<const double> total_statistics);
  void solve_all(const Equations& all);

  std::vector<double> residual_sums(const Equations& block) const;
  FitResult result(std::span<const double> total_residual_sums) const;

  /// The fitted gradient grad R(theta_k) at every point of the block, [m, p].
  Matrix predicted_gradients(const Equations& block) const;

  // Hooks for solvers outside the core (gradmatch::distributed's ScaLAPACK
  // solves): they compute the solution on their own data layout and hand it
  // over here, so that residual_sums() and result() -- every diagnostic --
  // run the same code as the serial fit. Either one replaces solve()/solve_all().
  const FitOptions& options() const { return options_; }
  double rcond() const { return rcond_; }          ///< the resolved singular-value cut
  std::int64_t unknowns() const { return r_; }     ///< r, p or p(p+1)/2
  /// Column family, method qr. `gram` = A^T W A and `rhs` = A^T W b of the
  /// UNSCALED design; `qr` solves the design after unit-norm column scaling
  /// when options().normalize (as solve_all does), else the design itself.
  void set_column_solution(const Matrix& gram, std::span<const double> rhs, const LeastSquaresSolution& qr);
  /// Family sym. When `solution` carries G's eigenvectors and eigenvalues,
  /// result() reports standard errors from them (p <= sym_standard_error_max_p).
  void set_symmetric_solution(SymmetricSolution solution);

 private:
  void finish_column_solution(const Matrix& gram, std::span<const double> rhs, const LeastSquaresSolution* qr);

  FitOptions options_;
  Method method_;
  std::int64_t m_total_, p_, r_;  // r_: number of coefficients
  std::vector<std::string> names_;
  std::vector<ParameterBlock> parameters_;
  double rcond_;
  /// residual_sums() works on b and the prediction times 2^-stat_exponent_
  /// (from row 0's largest |b|, the same on every rank): sums of squares of
  /// gradients near 1e-200 or 1e200 neither under- nor overflow, and a power
  /// of two leaves every ratio exact.
  int stat_exponent_ = 0;
  // Solution state.
  bool solved_ = false;
  bool overflow_ = false;  // a summed statistic was non-finite
  std::vector<double> coef_;
  std::vector<double> pinv_diag_;  // column/diag families: (A^T W A)^+_ii
  std::int64_t rank_ = 0;
  double cond_ = 0.0;
  SymmetricSolution sym_;
  bool sym_has_eig_ = false;
};

/// A fit "explains little" above this residual ratio or below this cosine.
inline constexpr double kWeakResidualRatio = 0.9;
inline constexpr double kWeakCosine = 0.1;

/// The warnings of a finished fit, in this order, each a sentence: every
/// weight zero (then nothing else); non-finite statistics from overflow
/// (then nothing else); a family that explains little (residual ratio above
/// kWeakResidualRatio or cosine below kWeakCosine); a rank-deficient design
/// (sym: underdetermined, with the number of endpoints that would determine
/// it; other families: how many coefficients are not identified). Fitter::result
/// fills FitResult::warnings with them.
std::vector<std::string> fit_warnings(const FitResult& result);

/// Serial fit of all equations.
FitResult fit(const Equations& eq, const FitOptions& options);

/// The memory (bytes) a serial `sym` fit of m points and p parameters works
/// in beyond the equations themselves, by method: the structured solver
/// about a dozen p x p float64 matrices at its peak (G and C, their copies,
/// the eigenvectors and their transpose, the products, Lambda and its
/// copies); vech and vech-plain their m p x p(p+1)/2 design twice (the
/// matrix and the SVD's workspace). 0 for the other families, whose
/// workspace is of the equations' own order. An estimate for refusing what
/// cannot fit, not a bound.
double sym_fit_workspace_bytes(const FitOptions& options, std::int64_t m, std::int64_t p);

}  // namespace gradmatch
