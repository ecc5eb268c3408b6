#include "core/fit.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "core/errors.hpp"
#include "core/text.hpp"

namespace gradmatch {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
/// A coefficient whose unit vector has more than this share of its squared
/// norm outside the design's row space counts as not identified.
constexpr double kIdentifiedTolerance = 1e-6;

Method resolve_method(const FitOptions& o) {
  const FamilyKind kind = o.family.kind;
  const std::string fam = o.family.to_string();
  if (kind == FamilyKind::diag) {
    if (o.method == Method::automatic || o.method == Method::closed_form) return Method::closed_form;
    throw InputError("--method " + to_string(o.method) + " does not apply to --family diag; use closed-form (default)");
  }
  if (kind == FamilyKind::sym) {
    if (o.method == Method::automatic) return Method::structured;
    if (o.method == Method::structured || o.method == Method::vech || o.method == Method::vech_plain) return o.method;
    throw InputError("--method " + to_string(o.method) +
                     " does not apply to --family sym; use structured (default), vech or vech-plain");
  }
  if (o.method == Method::automatic) return Method::qr;
  if (o.method == Method::qr || o.method == Method::normal) return o.method;
  throw InputError("--method " + to_string(o.method) + " does not apply to --family " + fam +
                   "; use qr (default) or normal");
}

// Design rows of one point for a column family: out is p x r, row-major.
void point_columns(const FamilySpec& f, const Equations& eq, std::int64_t k, std::vector<double>& buf) {
  buf.resize(static_cast<std::size_t>(eq.p() * column_count(f, eq)));
  fill_columns(f, eq, k, buf.data());
}

}  // namespace

Method parse_method(std::string_view text) {
  if (text == "auto") return Method::automatic;
  if (text == "closed-form") return Method::closed_form;
  if (text == "qr") return Method::qr;
  if (text == "normal" || text == "gram") return Method::normal;
  if (text == "structured") return Method::structured;
  if (text == "vech") return Method::vech;
  if (text == "vech-plain") return Method::vech_plain;
  throw InputError("--method '" + std::string(text) +
                   "' is not a method; accepted: auto, closed-form, qr, normal (or gram), structured, vech, vech-plain");
}

std::string to_string(Method method) {
  switch (method) {
    case Method::automatic: return "auto";
    case Method::closed_form: return "closed-form";
    case Method::qr: return "qr";
    case Method::normal: return "normal";
    case Method::structured: return "structured";
    case Method::vech: return "vech";
    case Method::vech_plain: return "vech-plain";
  }
  return "?";
}

double sym_fit_workspace_bytes(const FitOptions& options, std::int64_t m, std::int64_t p) {
  if (options.family.kind != FamilyKind::sym) return 0.0;
  const double pd = static_cast<double>(p), md = static_cast<double>(m);
  if (resolve_method(options) == Method::structured) return 8.0 * 12.0 * pd * pd;
  return 8.0 * 2.0 * md * pd * (pd * (pd + 1.0) / 2.0);
}

Matrix FitResult::lambda_matrix() const {
  if (shape.size() != 2) throw std::logic_error("FitResult::lambda_matrix: not a sym fit");
  return Matrix(shape[0], shape[1], coefficients);
}

Fitter::Fitter(FitOptions options, const Equations& layout, std::int64_t m_total)
    : options_(std::move(options)),
      method_(resolve_method(options_)),
      m_total_(m_total),
      p_(layout.p()),
      parameters_(layout.parameters) {
  const FamilySpec& f = options_.family;
  if (f.kind == FamilyKind::features && layout.features.empty())
    throw InputError("--family features: the equations hold no 'features/<name>' datasets; add candidate "
                     "regularizer gradients under features/ or choose another family");
  if (options_.normalize && !f.is_column_family())
    throw InputError("--normalize applies to the column families (ridge, huber, elastic-net, features), not to " +
                     f.to_string());
  if (options_.nonneg && f.kind == FamilyKind::sym)
    throw InputError("--nonneg is not defined for --family sym (a PSD constraint is not a sign constraint)");
  if (f.is_column_family()) {
    r_ = column_count(f, layout);
    names_ = column_names(f, layout);
  } else if (f.kind == FamilyKind::diag) {
    r_ = p_;
  } else {
    r_ = sym_unknowns(p_);
  }
  // One cut for every route: a singular value s counts iff s > rcond * s_max
  // (QR/gelsd, the normal equations' eigenvalues against rcond^2 * mu_max,
  // the structured and distributed solvers alike), which needs rcond < 1.
  if (std::isnan(options_.rcond) || options_.rcond >= 1.0)
    throw InputError(text::cat("--rcond ", options_.rcond,
                               ": the relative singular-value cut must lie in [0, 1); leave it out for the default ",
                               default_rcond(r_)));
  rcond_ = options_.rcond >= 0.0 ? options_.rcond : default_rcond(r_);
  double b_max = 0.0;
  if (layout.m() > 0)
    for (std::int64_t j = 0; j < p_; ++j) b_max = std::max(b_max, std::abs(layout.b(0, j)));
  if (b_max > 0.0 && std::isfinite(b_max)) std::frexp(b_max, &stat_exponent_);
}

std::vector<double> Fitter::statistics(const Equations& block) const {
  const FamilySpec& f = options_.family;
  const std::int64_t m = block.m(), p = p_;
  if (f.is_column_family()) {
    const std::int64_t r = r_;
    std::vector<double> s(static_cast<std::size_t>(r * r + r), 0.0);
    std::vector<double> a;
    for (std::int64_t k = 0; k < m; ++k) {
      const double w = block.weight(k);
      if (w == 0.0) continue;
      point_columns(f, block, k, a);
      for (std::int64_t j = 0; j < p; ++j) {
        const double* row = a.data() + j * r;
        const double bj = block.b(k, j);
        for (std::int64_t c = 0; c < r; ++c) {
          for (std::int64_t d = 0; d < r; ++d) s[static_cast<std::size_t>(c * r + d)] += w * row[c] * row[d];
          s[static_cast<std::size_t>(r * r + c)] += w * row[c] * bj;
        }
      }
    }
    return s;
  }
  if (f.kind == FamilyKind::diag) {
    std::vector<double> s(static_cast<std::size_t>(2 * p), 0.0);
    for (std::int64_t k = 0; k < m; ++k) {
      const double w = block.weight(k);
      for (std::int64_t j = 0; j < p; ++j) {
        const double a = 2.0 * block.theta(k, j);
        s[static_cast<std::size_t>(j)] += w * a * a;
        s[static_cast<std::size_t>(p + j)] += w * a * block.b(k, j);
      }
    }
    return s;
  }
  Matrix g(p, p), c(p, p);
  accumulate_lyapunov(block, g, c);
  std::vector<double> s(g.values());
  s.insert(s.end(), c.values().begin(), c.values().end());
  return s;
}

void Fitter::finish_column_solution(const Matrix& gram, std::span<const double> rhs, const LeastSquaresSolution* qr) {
  const std::int64_t r = r_;
  // Unit-norm column scaling: A' = A D^{-1}, D = diag(||a_c||_W).
  std::vector<double> scale(static_cast<std::size_t>(r), 1.0);
  if (options_.normalize)
    for (std::int64_t c = 0; c < r; ++c) {
      const double n = std::sqrt(gram(c, c));
      scale[static_cast<std::size_t>(c)] = n > 0.0 ? n : 1.0;
    }
  Matrix gs(r, r);
  std::vector<double> hs(static_cast<std::size_t>(r));
  for (std::int64_t c = 0; c < r; ++c) {
    hs[static_cast<std::size_t>(c)] = rhs[static_cast<std::size_t>(c)] / scale[static_cast<std::size_t>(c)];
    for (std::int64_t d = 0; d < r; ++d)
      gs(c, d) = gram(c, d) / (scale[static_cast<std::size_t>(c)] * scale[static_cast<std::size_t>(d)]);
  }
  LeastSquaresSolution sol = qr ? *qr : solve_normal_equations(gs, hs, rcond_);
  pinv_diag_.assign(static_cast<std::size_t>(r), 0.0);
  if (options_.nonneg) {
    std::vector<std::int64_t> free_set;
    sol.x = nnls(gs, hs, &free_set);
    // Standard errors of the free coefficients from the free block of the Gram.
    const auto nf = static_cast<std::int64_t>(free_set.size());
    Matrix gf(nf, nf);
    for (std::int64_t a = 0; a < nf; ++a)
      for (std::int64_t b = 0; b < nf; ++b)
        gf(a, b) = gs(free_set[static_cast<std::size_t>(a)], free_set[static_cast<std::size_t>(b)]);
    const auto fsol = solve_normal_equations(gf, std::vector<double>(static_cast<std::size_t>(nf), 0.0), rcond_);
    for (std::int64_t c = 0; c < r; ++c) pinv_diag_[static_cast<std::size_t>(c)] = kNaN;
    for (std::int64_t a = 0; a < nf; ++a) pinv_diag_[static_cast<std::size_t>(free_set[static_cast<std::size_t>(a)])] = fsol.gram_pinv(a, a);
  } else {
    for (std::int64_t c = 0; c < r; ++c) pinv_diag_[static_cast<std::size_t>(c)] = sol.gram_pinv(c, c);
    if (sol.rank < r) {
      // Coefficient c is identified iff e_c lies in the design's row space,
      // i.e. (G^+ G)_cc = 1. A coefficient outside it has no standard error:
      // (G^+)_cc is merely the size of its identified part.
      for (std::int64_t c = 0; c < r; ++c) {
        double projection = 0.0;
        for (std::int64_t d = 0; d < r; ++d) projection += sol.gram_pinv(c, d) * gs(d, c);
        if (projection < 1.0 - kIdentifiedTolerance) pinv_diag_[static_cast<std::size_t>(c)] = kNaN;
      }
    }
  }
  coef_.resize(static_cast<std::size_t>(r));
  for (std::int64_t c = 0; c < r; ++c) {
    const double sc = scale[static_cast<std::size_t>(c)];
    coef_[static_cast<std::size_t>(c)] = sol.x[static_cast<std::size_t>(c)] / sc;
    pinv_diag_[static_cast<std::size_t>(c)] /= sc * sc;
  }
  rank_ = sol.rank;
  cond_ = sol.condition_number;
  solved_ = true;
}

void Fitter::solve(std::span<const double> s) {
  if (needs_all_rows()) throw std::logic_error("Fitter::solve: method " + to_string(method_) + " needs solve_all");
  for (double v : s) overflow_ = overflow_ || !std::isfinite(v);  // inputs are finite: only overflow makes these
  const FamilySpec& f = options_.family;
  const std::int64_t p = p_;
  if (f.is_column_family()) {
    const std::int64_t r = r_;
    Matrix gram(r, r, std::vector<double>(s.begin(), s.begin() + r * r));
    finish_column_solution(gram, s.subspan(static_cast<std::size_t>(r * r), static_cast<std::size_t>(r)), nullptr);
    return;
  }
  if (f.kind == FamilyKind::diag) {
    coef_.assign(static_cast<std::size_t>(p), 0.0);
    pinv_diag_.assign(static_cast<std::size_t>(p), 0.0);
    double dmax = 0.0;
    for (std::int64_t j = 0; j < p; ++j) dmax = std::max(dmax, s[static_cast<std::size_t>(j)]);
    double dmin = std::numeric_limits<double>::infinity();
    rank_ = 0;
    const double cut = rcond_ * rcond_ * dmax;
    for (std::int64_t j = 0; j < p; ++j) {
      const double d = s[static_cast<std::size_t>(j)];
      dmin = std::min(dmin, d);
      pinv_diag_[static_cast<std::size_t>(j)] = kNaN;  // not identified unless the coordinate is seen
      if (d > cut && d > 0.0) {
        ++rank_;
        double q = s[static_cast<std::size_t>(p + j)] / d;
        if (options_.nonneg) q = std::max(q, 0.0);  // decoupled coordinates: clamping is exact NNLS
        coef_[static_cast<std::size_t>(j)] = q;
        pinv_diag_[static_cast<std::size_t>(j)] = (options_.nonneg && q == 0.0) ? kNaN : 1.0 / d;
      }
    }
    cond_ = (rank_ == p && dmin > 0.0) ? std::sqrt(dmax / dmin) : std::numeric_limits<double>::infinity();
    solved_ = true;
    return;
  }
  Matrix g(p, p, std::vector<double>(s.begin(), s.begin() + p * p));
  Matrix c(p, p, std::vector<double>(s.begin() + p * p, s.begin() + 2 * p * p));
  sym_ = solve_structured(g, c, rcond_);
  sym_has_eig_ = true;
  coef_ = sym_.lambda.values();
  rank_ = sym_.rank;
  cond_ = sym_.condition_number;
  solved_ = true;
}

void Fitter::solve_all(const Equations& eq) {
  if (!needs_all_rows()) {
    solve(statistics(eq));
    return;
  }
  const FamilySpec& f = options_.family;
  const std::int64_t m = eq.m(), p = p_;
  if (f.kind == FamilyKind::sym) {
    const auto coords = method_ == Method::vech ? VechCoordinates::isometric : VechCoordinates::plain;
    sym_ = solve_vech(eq, rcond_, coords);
    coef_ = sym_.lambda.values();
    rank_ = sym_.rank;
    cond_ = sym_.condition_number;
    sym_has_eig_ = false;
    if (p <= options_.sym_standard_error_max_p) {
      // Standard errors come from the eigenstructure of G (same model).
      Matrix g(p, p), c(p, p);
      accumulate_lyapunov(eq, g, c);
      const SymmetricSolution s = solve_structured(g, c, rcond_);
      sym_.eigenvectors = s.eigenvectors;
      sym_.eigenvalues = s.eigenvalues;
      sym_has_eig_ = true;
    }
    solved_ = true;
    return;
  }
  // Column family by QR on the weighted design.
  const std::int64_t r = r_;
  Matrix design(m * p, r);
  std::vector<double> b(static_cast<std::size_t>(m * p));
  std::vector<double> a;
  for (std::int64_t k = 0; k < m; ++k) {
    const double sw = std::sqrt(eq.weight(k));
    point_columns(f, eq, k, a);
    for (std::int64_t j = 0; j < p; ++j) {
      b[static_cast<std::size_t>(k * p + j)] = sw * eq.b(k, j);
      for (std::int64_t c = 0; c < r; ++c) design(k * p + j, c) = sw * a[static_cast<std::size_t>(j * r + c)];
    }
  }
  Matrix gram(r, r);
  std::vector<double> rhs(static_cast<std::size_t>(r), 0.0);
  for (std::int64_t i = 0; i < m * p; ++i)
    for (std::int64_t c = 0; c < r; ++c) {
      rhs[static_cast<std::size_t>(c)] += design(i, c) * b[static_cast<std::size_t>(i)];
      for (std::int64_t d = 0; d < r; ++d) gram(c, d) += design(i, c) * design(i, d);
    }
  std::vector<double> scale(static_cast<std::size_t>(r), 1.0);
  if (options_.normalize)
    for (std::int64_t c = 0; c < r; ++c) {
      const double n = std::sqrt(gram(c, c));
      scale[static_cast<std::size_t>(c)] = n > 0.0 ? n : 1.0;
      for (std::int64_t i = 0; i < m * p; ++i) design(i, c) /= scale[static_cast<std::size_t>(c)];
    }
  const LeastSquaresSolution qr = solve_qr(design, b, rcond_);
  finish_column_solution(gram, rhs, &qr);
}

void Fitter::set_column_solution(const Matrix& gram, std::span<const double> rhs, const LeastSquaresSolution& qr) {
  if (!options_.family.is_column_family() || method_ != Method::qr)
    throw std::logic_error("Fitter::set_column_solution: only for column families with method qr");
  if (gram.rows() != r_ || gram.cols() != r_ || static_cast<std::int64_t>(rhs.size()) != r_ ||
      static_cast<std::int64_t>(qr.x.size()) != r_)
    throw std::logic_error("Fitter::set_column_solution: sizes differ from the family's r");
  finish_column_solution(gram, rhs, &qr);
}

void Fitter::set_symmetric_solution(SymmetricSolution solution) {
  if (options_.family.kind != FamilyKind::sym)
    throw std::logic_error("Fitter::set_symmetric_solution: only for family sym");
  if (solution.lambda.rows() != p_ || solution.lambda.cols() != p_)
    throw std::logic_error("Fitter::set_symmetric_solution: Lambda is not p x p");
  sym_ = std::move(solution);
  sym_has_eig_ = sym_.eigenvectors.rows() == p_ && static_cast<std::int64_t>(sym_.eigenvalues.size()) == p_;
  coef_ = sym_.lambda.values();
  rank_ = sym_.rank;
  cond_ = sym_.condition_number;
  solved_ = true;
}

Matrix Fitter::predicted_gradients(const Equations& block) const {
  if (!solved_) throw std::logic_error("Fitter: solve before asking for predictions");
  const FamilySpec& f = options_.family;
  const std::int64_t m = block.m(), p = p_;
  Matrix pred(m, p);
  if (f.is_column_family()) {
    std::vector<double> a;
    for (std::int64_t k = 0; k < m; ++k) {
      point_columns(f, block, k, a);
      for (std::int64_t j = 0; j < p; ++j) {
        double s = 0.0;
        for (std::int64_t c = 0; c < r_; ++c) s += a[static_cast<std::size_t>(j * r_ + c)] * coef_[static_cast<std::size_t>(c)];
        pred(k, j) = s;
      }
    }
  } else if (f.kind == FamilyKind::diag) {
    for (std::int64_t k = 0; k < m; ++k)
      for (std::int64_t j = 0; j < p; ++j) pred(k, j) = 2.0 * coef_[static_cast<std::size_t>(j)] * block.theta(k, j);
  } else {
    // pred = 2 Theta Lambda (Lambda symmetric).
    pred = matmul(block.theta, sym_.lambda);
    for (double& v : pred.values()) v *= 2.0;
  }
  return pred;
}

std::vector<double> Fitter::residual_sums(const Equations& block) const {
  const Matrix pred = predicted_gradients(block);
  std::vector<double> s(5, 0.0);  // rss, btb, <pred, b>, ||pred||^2 (each times 2^-2e), n_equations
  for (std::int64_t k = 0; k < block.m(); ++k) {
    const double w = block.weight(k);
    if (w > 0.0) s[4] += static_cast<double>(p_);
    for (std::int64_t j = 0; j < p_; ++j) {
      const double b = std::ldexp(block.b(k, j), -stat_exponent_), a = std::ldexp(pred(k, j), -stat_exponent_);
      s[0] += w * (b - a) * (b - a);
      s[1] += w * b * b;
      s[2] += w * a * b;
      s[3] += w * a * a;
    }
  }
  return s;
}

FitResult Fitter::result(std::span<const double> s) const {
  if (!solved_) throw std::logic_error("Fitter: solve before asking for the result");
  const FamilySpec& f = options_.family;
  FitResult out;
  out.family = f.to_string();
  out.method = to_string(method_);
  out.m = m_total_;
  out.p = p_;
  out.unknowns = r_;
  out.rank = rank_;
  out.condition_number = cond_;
  out.rcond = rcond_;
  out.normalized = options_.normalize;
  out.nonneg = options_.nonneg;
  out.n_equations = static_cast<std::int64_t>(s[4]);
  out.coefficients = coef_;
  for (std::size_t i = 0; i < 4; ++i) out.overflow = out.overflow || !std::isfinite(s[i]);
  out.overflow = out.overflow || overflow_;
  for (double c : coef_) out.overflow = out.overflow || !std::isfinite(c);
  // Sums that overflowed make every number meaningless: report none.
  if (out.overflow) std::fill(out.coefficients.begin(), out.coefficients.end(), kNaN);
  const double rss = s[0], btb = s[1];
  out.residual_ratio = btb > 0.0 ? std::sqrt(rss / btb) : (rss > 0.0 ? std::numeric_limits<double>::infinity() : 0.0);
  // sqrt of each factor, not of the product: with weights or values far from
  // 1 (1e200, 1e-200) the product over- or underflows where each sum does not.
  // Clamped to [-1, 1]: for an exact fit the rounding of the three sums can
  // give 1 + 2e-16.
  out.cosine = (btb > 0.0 && s[3] > 0.0) ? std::clamp(s[2] / std::sqrt(btb) / std::sqrt(s[3]), -1.0, 1.0) : kNaN;
  const double dof = static_cast<double>(out.n_equations - rank_);
  out.sigma2 = dof > 0.0 ? std::ldexp(rss / dof, 2 * stat_exponent_) : kNaN;  // the sums' scale undone
  if (f.is_column_family()) {
    out.names = names_;
    out.shape = (f.kind == FamilyKind::ridge || f.kind == FamilyKind::huber) ? std::vector<std::int64_t>{}
                                                                              : std::vector<std::int64_t>{r_};
  } else if (f.kind == FamilyKind::diag) {
    out.shape = {p_};
  } else {
    out.shape = {p_, p_};
  }
  if (f.kind == FamilyKind::sym) {
    if (sym_has_eig_ && p_ <= options_.sym_standard_error_max_p) {
      const Matrix se = structured_standard_errors(sym_, out.sigma2, rcond_);
      out.standard_errors = se.values();
    }
  } else {
    out.standard_errors.resize(pinv_diag_.size());
    for (std::size_t c = 0; c < pinv_diag_.size(); ++c) out.standard_errors[c] = std::sqrt(out.sigma2 * pinv_diag_[c]);
  }
  out.parameters = parameters_;
  out.warnings = fit_warnings(out);
  return out;
}

std::vector<std::string> fit_warnings(const FitResult& r) {
  std::vector<std::string> out;
  const auto say = [&](auto&&... parts) {
    std::ostringstream os;
    os.precision(4);
    (os << ... << parts);
    out.push_back(os.str());
  };
  if (r.n_equations == 0) {
    say("every weight is zero: no equation constrains the fit, so the coefficients are zero by convention and "
        "mean nothing; give some points a positive weight");
    return out;
  }
  if (r.overflow) {
    say("non-finite statistics: sums of squares of the equations overflowed double precision, so the "
        "coefficients are reported as null; rescale theta and the gradients (or check the writer) and fit again");
    return out;
  }
  if (r.residual_ratio > kWeakResidualRatio || !(r.cosine >= kWeakCosine)) {
    say("the ", r.family, " family explains little of the target (residual ratio ", r.residual_ratio, ", cosine ",
        r.cosine, "): the fitted coefficients describe the equations poorly and should not be read as the "
        "regularizer of the training procedure");
  }
  if (r.rank < r.unknowns) {
    if (r.family == "sym") {
      // Unidentified entries of Lambda are the pairs of directions outside
      // span{theta_k}: with u missing directions, u (u + 1) / 2 of them.
      const auto missing = static_cast<std::int64_t>(
          std::llround((std::sqrt(1.0 + 8.0 * static_cast<double>(r.unknowns - r.rank)) - 1.0) / 2.0));
      say("sym is underdetermined: rank ", r.rank, " of p (p + 1) / 2 = ", r.unknowns,
          " unknowns. The parameters of the ", r.m, " point(s) span ", r.p - missing, " of the p = ", r.p,
          " dimensions; Lambda is determined only by at least p = ", r.p,
          " endpoints whose parameters span all p dimensions (", missing,
          " more independent ones). The reported Lambda is the minimum-Frobenius-norm solution");
    } else {
      std::int64_t unidentified = 0;
      std::string which;
      for (std::size_t c = 0; c < r.standard_errors.size(); ++c)
        if (std::isnan(r.standard_errors[c]) && std::isfinite(r.sigma2)) {
          if (++unidentified <= 5 && !r.names.empty() && c < r.names.size()) which += (which.empty() ? "" : ", ") + r.names[c];
        }
      say("the design is rank-deficient (rank ", r.rank, " of ", r.unknowns, " coefficients)",
          unidentified > 0 ? ": " : "", unidentified > 0 ? std::to_string(unidentified) : std::string(),
          unidentified > 0 ? " coefficient(s) are not identified by these equations" : "",
          which.empty() ? "" : " (" + which + (unidentified > 5 ? ", ..." : "") + ")",
          unidentified > 0 ? " and have null standard errors" : "",
          "; the reported values are the minimum-norm solution");
    }
  }
  return out;
}

FitResult fit(const Equations& eq, const FitOptions& options) {
  eq.validate("fit()");
  Fitter fitter(options, eq, eq.m());
  if (fitter.needs_all_rows()) fitter.solve_all(eq);
  else fitter.solve(fitter.statistics(eq));
  return fitter.result(fitter.residual_sums(eq));
}

}  // namespace gradmatch
