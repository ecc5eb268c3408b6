#include "core/ols.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "core/errors.hpp"
#include "core/lapack.hpp"
#include "core/text.hpp"

namespace gradmatch::ols {
namespace {

using text::sz;

// out = S theta - r (half the loss gradient); returns theta^T out - r^T theta + c = L(theta).
double half_gradient_and_loss(const Moments& mo, std::span<const double> theta, std::vector<double>& out) {
  const std::int64_t p = mo.gram.cols();
  double quad = 0.0, lin = 0.0;
  for (std::int64_t i = 0; i < p; ++i) {
    const double* row = mo.gram.data() + i * p;
    double s = 0.0;
    for (std::int64_t j = 0; j < p; ++j) s += row[j] * theta[sz(j)];
    const double g = s - mo.xty[sz(i)];
    out[sz(i)] = g;
    quad += theta[sz(i)] * g;
    lin += mo.xty[sz(i)] * theta[sz(i)];
  }
  return quad - lin + mo.yty;  // theta^T (S theta - r) - r^T theta + c
}

void check_moments(const Moments& mo, std::span<const double> theta, const char* where) {
  if (mo.gram.rows() != mo.gram.cols() || static_cast<std::int64_t>(mo.xty.size()) != mo.gram.rows() ||
      static_cast<std::int64_t>(theta.size()) != mo.gram.rows())
    throw std::invalid_argument(std::string(where) + ": S, r and theta sizes differ");
}

void check_learning_rate(double learning_rate, const char* where) {
  if (!(learning_rate > 0.0) || !std::isfinite(learning_rate))
    throw InputError(std::string(where) + ": the learning rate must be positive and finite");
}

// Adam on one scalar (PyTorch's update with bias correction).
struct ScalarAdam {
  double beta1, beta2, epsilon;
  double m1 = 0.0, m2 = 0.0, b1t = 1.0, b2t = 1.0;
  /// The step to subtract from the parameter for this gradient.
  double step(double grad, double learning_rate) {
    m1 = beta1 * m1 + (1.0 - beta1) * grad;
    m2 = beta2 * m2 + (1.0 - beta2) * grad * grad;
    b1t *= beta1;
    b2t *= beta2;
    return learning_rate * (m1 / (1.0 - b1t)) / (std::sqrt(m2 / (1.0 - b2t)) + epsilon);
  }
};

}  // namespace

Dataset draw_response(Rng& rng, const Matrix& x, double beta_sd, double noise_sd) {
  const std::int64_t n = x.rows(), p = x.cols();
  Dataset d;
  d.x = x;
  d.beta.resize(sz(p));
  for (double& b : d.beta) b = beta_sd * rng.normal();
  d.noise.resize(sz(n));
  for (double& e : d.noise) e = noise_sd * rng.normal();
  d.y.resize(sz(n));
  for (std::int64_t i = 0; i < n; ++i) {
    double s = d.noise[sz(i)];
    for (std::int64_t j = 0; j < p; ++j) s += x(i, j) * d.beta[sz(j)];
    d.y[sz(i)] = s;
  }
  return d;
}

Dataset draw_dataset(Rng& rng, std::int64_t n, std::int64_t p, double beta_sd, double noise_sd) {
  Matrix x(n, p);
  for (double& v : x.values()) v = rng.normal();
  return draw_response(rng, x, beta_sd, noise_sd);
}

Moments moments(const Matrix& x, std::span<const double> y) {
  const std::vector<std::int64_t> ones(sz(x.rows()), 1);
  return moments(x, y, ones);
}

Moments moments(const Matrix& x, std::span<const double> y, std::span<const std::int64_t> counts) {
  const std::int64_t n = x.rows(), p = x.cols();
  if (static_cast<std::int64_t>(y.size()) != n || static_cast<std::int64_t>(counts.size()) != n)
    throw std::invalid_argument("ols::moments: x, y and counts disagree on n");
  Moments mo;
  std::int64_t total = 0;
  for (std::int64_t c : counts) total += c;
  if (total <= 0) throw std::invalid_argument("ols::moments: the counts sum to zero");
  mo.n = total;
  const double inv_n = 1.0 / static_cast<double>(total);
  // Weighted rows sqrt(c_i) x_i: row-major [n, p] is column-major X^T (p x n),
  // so syrk('N') gives X^T diag(c) X in the lower triangle.
  Matrix xw(n, p);
  mo.xty.assign(sz(p), 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    const double c = static_cast<double>(counts[sz(i)]);
    const double sc = std::sqrt(c);
    for (std::int64_t j = 0; j < p; ++j) {
      xw(i, j) = sc * x(i, j);
      mo.xty[sz(j)] += c * x(i, j) * y[sz(i)];
    }
    mo.yty += c * y[sz(i)] * y[sz(i)];
  }
  Matrix lower(p, p);
  lapack::syrk('L', 'N', p, n, inv_n, xw.data(), p, 0.0, lower.data(), p);
  mo.gram = Matrix(p, p);
  for (std::int64_t j = 0; j < p; ++j)
    for (std::int64_t i = j; i < p; ++i) mo.gram(i, j) = mo.gram(j, i) = lower.data()[j * p + i];
  for (double& v : mo.xty) v *= inv_n;
  mo.yty *= inv_n;
  return mo;
}

std::vector<std::int64_t> bootstrap_counts(Rng& rng, std::int64_t n) {
  std::vector<std::int64_t> counts(sz(n), 0);
  for (std::int64_t i = 0; i < n; ++i) ++counts[rng.below(static_cast<std::uint64_t>(n))];
  return counts;
}

double loss(const Moments& mo, std::span<const double> theta) {
  check_moments(mo, theta, "ols::loss");
  std::vector<double> g(theta.size());
  return half_gradient_and_loss(mo, theta, g);
}

std::vector<double> loss_gradient(const Moments& mo, std::span<const double> theta) {
  check_moments(mo, theta, "ols::loss_gradient");
  std::vector<double> g(theta.size());
  half_gradient_and_loss(mo, theta, g);
  for (double& v : g) v *= 2.0;
  return g;
}

Equations endpoint_equations(const Moments& mo, std::span<const double> theta) {
  const auto p = static_cast<std::int64_t>(theta.size());
  Equations eq;
  eq.theta = Matrix(1, p, std::vector<double>(theta.begin(), theta.end()));
  eq.grad_loss = Matrix(1, p, loss_gradient(mo, theta));
  return eq;
}

GradientDescentRun gradient_descent(const Moments& mo, double learning_rate, std::int64_t steps) {
  const StoppingRule never{std::numeric_limits<std::int64_t>::max(), 0.0, steps};
  return gradient_descent(mo, learning_rate, never);
}

GradientDescentRun gradient_descent(const Moments& mo, double learning_rate, const StoppingRule& rule) {
  check_learning_rate(learning_rate, "ols::gradient_descent");
  const std::int64_t p = mo.gram.cols();
  GradientDescentRun run;
  run.theta.assign(sz(p), 0.0);
  check_moments(mo, run.theta, "ols::gradient_descent");
  EarlyStopping monitor(rule.patience, rule.min_delta);
  std::vector<double> g(sz(p));
  run.monitored_loss.reserve(sz(std::min<std::int64_t>(rule.max_steps, 1 << 20)));
  while (run.steps < rule.max_steps) {
    const double l = half_gradient_and_loss(mo, run.theta, g);  // forward pass at theta_{k-1}
    for (std::int64_t j = 0; j < p; ++j) run.theta[sz(j)] -= learning_rate * g[sz(j)];
    ++run.steps;
    run.monitored_loss.push_back(l);
    if (monitor.update(l)) {
      run.stopped_early = true;
      break;
    }
  }
  return run;
}

Matrix gradient_descent_checkpoints(const Moments& mo, double learning_rate, std::span<const std::int64_t> checkpoints) {
  check_learning_rate(learning_rate, "ols::gradient_descent_checkpoints");
  const std::int64_t p = mo.gram.cols();
  Matrix out(static_cast<std::int64_t>(checkpoints.size()), p);
  std::vector<double> theta(sz(p), 0.0), g(sz(p));
  check_moments(mo, theta, "ols::gradient_descent_checkpoints");
  std::int64_t t = 0;
  for (std::size_t c = 0; c < checkpoints.size(); ++c) {
    if (checkpoints[c] < 1 || (c > 0 && checkpoints[c] <= checkpoints[c - 1]))
      throw std::invalid_argument("ols::gradient_descent_checkpoints: checkpoints must be >= 1 and strictly increasing");
    for (; t < checkpoints[c]; ++t) {
      half_gradient_and_loss(mo, theta, g);
      for (std::int64_t j = 0; j < p; ++j) theta[sz(j)] -= learning_rate * g[sz(j)];
    }
    for (std::int64_t j = 0; j < p; ++j) out(static_cast<std::int64_t>(c), j) = theta[sz(j)];
  }
  return out;
}

Spectrum spectrum(const Matrix& gram) {
  const std::int64_t p = gram.rows();
  if (gram.cols() != p) throw std::invalid_argument("ols::spectrum: S must be square");
  Spectrum sp;
  Matrix a = gram;  // symmetric: row-major == column-major
  sp.s = lapack::syevd(p, a.data(), p);
  sp.v = a.transposed();  // column-major eigenvectors -> row-major V with eigenvector columns
  return sp;
}

std::vector<double> ali_lambda_eigenvalues(const Spectrum& sp, double learning_rate, std::int64_t t) {
  check_learning_rate(learning_rate, "ali_lambda()");
  if (t < 1) throw std::invalid_argument("ali_lambda(): t must be >= 1 (Lambda(0) is infinite)");
  std::vector<double> f(sp.s.size());
  for (std::size_t i = 0; i < sp.s.size(); ++i) {
    const double s = std::max(sp.s[i], 0.0);  // rounding can leave a null eigenvalue at -1e-17
    const double es = learning_rate * s;
    if (es >= 1.0) {
      const double s_max = *std::max_element(sp.s.begin(), sp.s.end());
      throw InputError(text::cat("the learning rate ", text::num(learning_rate), " times s_max = ", text::num(s_max),
                                 ", the largest eigenvalue of X^T X / n, is >= 1, and Ali et al.'s Lambda(t) needs ",
                                 "epsilon * s_max < 1: lower the learning rate below 1 / s_max = ",
                                 text::num(1.0 / s_max)));
    }
    if (sp.s[i] < -1e-12 * std::max(1.0, sp.s.back()))
      throw std::invalid_argument("ali_lambda(): S has a negative eigenvalue");
    if (s == 0.0) {
      f[i] = 1.0 / (learning_rate * static_cast<double>(t));
      continue;
    }
    // a^t and 1 - a^t without cancellation: a^t = exp(t log1p(-es)).
    const double log_at = static_cast<double>(t) * std::log1p(-es);
    f[i] = s * std::exp(log_at) / -std::expm1(log_at);
  }
  return f;
}

Matrix ali_lambda(const Spectrum& sp, double learning_rate, std::int64_t t) {
  const std::vector<double> f = ali_lambda_eigenvalues(sp, learning_rate, t);
  const std::int64_t p = sp.v.rows();
  Matrix vf = sp.v;
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = 0; j < p; ++j) vf(i, j) *= f[sz(j)];
  Matrix lambda = matmul(vf, sp.v.transposed());
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = i + 1; j < p; ++j) lambda(i, j) = lambda(j, i) = 0.5 * (lambda(i, j) + lambda(j, i));
  return lambda;
}

std::vector<double> ridge_solution(const Moments& mo, const Matrix& penalty) {
  const std::int64_t p = mo.gram.rows();
  if (penalty.rows() != p || penalty.cols() != p) throw std::invalid_argument("ols::ridge_solution: penalty is not p x p");
  Matrix a(p, p);  // S + penalty, symmetrised (column-major == row-major)
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = 0; j < p; ++j) a(i, j) = mo.gram(i, j) + 0.5 * (penalty(i, j) + penalty(j, i));
  std::vector<double> x = mo.xty;
  lapack::gelsd(p, p, 1, a.data(), p, x.data(), p, -1.0);
  return x;
}

std::vector<double> retrain_diagonal(const Moments& mo, std::span<const double> q) {
  const std::int64_t p = mo.gram.rows();
  if (static_cast<std::int64_t>(q.size()) != p) throw std::invalid_argument("ols::retrain_diagonal: q is not [p]");
  Matrix d(p, p);
  for (std::int64_t j = 0; j < p; ++j) d(j, j) = q[sz(j)];
  return ridge_solution(mo, d);
}

AdamRidgeFit fit_ridge_adam(const Equations& eq, const AdamOptions& o) {
  eq.validate("fit_ridge_adam()");
  if (!(o.learning_rate > 0.0) || o.max_epochs < 1 || o.patience < 1)
    throw InputError("fit_ridge_adam(): learning rate, max_epochs and patience must be positive");
  const std::int64_t m = eq.m(), p = eq.p();
  auto loss_and_gradient = [&](double u, double& grad) {
    const double lambda = std::exp(u);
    double l = 0.0, gsum = 0.0;
    for (std::int64_t k = 0; k < m; ++k) {
      const double w = eq.weight(k);
      for (std::int64_t j = 0; j < p; ++j) {
        const double a = 2.0 * eq.theta(k, j);
        const double res = lambda * a - eq.b(k, j);
        l += w * res * res;
        gsum += w * res * a;
      }
    }
    grad = 2.0 * lambda * gsum;  // d/du of sum w (lambda a - b)^2
    return l;
  };
  double u = o.init_log_lambda;
  ScalarAdam adam{o.beta1, o.beta2, o.epsilon};
  EarlyStopping monitor(o.patience, 0.0);
  AdamRidgeFit best{std::exp(u), std::numeric_limits<double>::infinity(), 0};
  for (std::int64_t epoch = 1; epoch <= o.max_epochs; ++epoch) {
    double grad = 0.0;
    const double l = loss_and_gradient(u, grad);
    best.epochs = epoch;
    if (l < best.loss) {
      best.loss = l;
      best.lambda = std::exp(u);
    }
    if (monitor.update(l)) break;
    u -= adam.step(grad, o.learning_rate);
  }
  return best;
}

MinibatchAdamFit fit_ridge_adam_minibatch(const MinibatchTargets& t, const MinibatchAdamOptions& o) {
  const std::size_t all = t.theta_dot_b.size();
  if (all == 0 || t.b_squared.size() != all)
    throw InputError("fit_ridge_adam_minibatch(): need one <theta, b> and one ||b||^2 per mini-batch");
  if (t.partitions < 1 || all % static_cast<std::size_t>(t.partitions) != 0)
    throw InputError("fit_ridge_adam_minibatch(): the mini-batches must be whole partitions of equally many batches");
  const std::size_t k = all / static_cast<std::size_t>(t.partitions);
  const auto source = [&](std::int64_t index, std::vector<double>& tb, std::vector<double>& bb) {
    const auto first = static_cast<std::ptrdiff_t>(static_cast<std::size_t>(index) * k);
    tb.assign(t.theta_dot_b.begin() + first, t.theta_dot_b.begin() + first + static_cast<std::ptrdiff_t>(k));
    bb.assign(t.b_squared.begin() + first, t.b_squared.begin() + first + static_cast<std::ptrdiff_t>(k));
  };
  return fit_ridge_adam_minibatch(t.theta_squared, t.p, t.partitions, source, o);
}

MinibatchAdamFit fit_ridge_adam_minibatch(double theta_squared, std::int64_t p_count, std::int64_t partitions,
                                          const MinibatchPartitionSource& source, const MinibatchAdamOptions& o) {
  if (p_count < 1 || !(theta_squared > 0.0) || partitions < 1)
    throw InputError("fit_ridge_adam_minibatch(): need p >= 1, theta != 0 and at least one partition");
  if (!(o.learning_rate > 0.0) || o.max_epochs < 1 || o.patience < 1 || !(o.plateau_factor > 0.0 && o.plateau_factor < 1.0) ||
      o.plateau_patience < 0)
    throw InputError("fit_ridge_adam_minibatch(): learning rate, epochs and patience must be positive, the plateau factor in (0, 1)");
  const double p = static_cast<double>(p_count);
  // Partitions made so far, in the order asked for.
  std::vector<std::vector<double>> tb, bb;
  double sum_tb = 0.0;
  std::size_t batches_seen = 0;
  const auto partition = [&](std::int64_t index) -> std::size_t {
    const auto i = static_cast<std::size_t>(index);
    if (i == tb.size()) {
      tb.emplace_back();
      bb.emplace_back();
      source(index, tb.back(), bb.back());
      if (tb.back().empty() || bb.back().size() != tb.back().size() || tb.back().size() != tb.front().size())
        throw InputError("fit_ridge_adam_minibatch(): every partition needs as many mini-batches as the first, each "
                         "with its <theta, b> and ||b||^2");
      for (double v : tb.back()) sum_tb += v;
      batches_seen += tb.back().size();
    }
    return i;
  };

  MinibatchAdamFit out;
  double u = o.init_log_lambda, lr = o.learning_rate;
  ScalarAdam adam{o.beta1, o.beta2, o.epsilon};
  EarlyStopping stopping(o.patience, 0.0);
  double plateau_best = std::numeric_limits<double>::infinity();
  std::int64_t plateau_bad = 0;
  for (std::int64_t epoch = 1; epoch <= o.max_epochs; ++epoch) {
    const std::size_t at = partition((epoch - 1) % partitions);
    const std::vector<double>& theta_dot_b = tb[at];
    const std::vector<double>& b_squared = bb[at];
    const std::size_t k = theta_dot_b.size();
    double epoch_loss = 0.0, batch_loss = 0.0;
    for (std::size_t b = 0; b < k; ++b) {
      const double lambda = std::exp(u);
      batch_loss = (4.0 * lambda * lambda * theta_squared - 4.0 * lambda * theta_dot_b[b] + b_squared[b]) / p;
      epoch_loss += batch_loss;
      const double grad = lambda * (8.0 * lambda * theta_squared - 4.0 * theta_dot_b[b]) / p;  // d l_k / du
      u -= adam.step(grad, lr);
    }
    const double monitored = o.monitor == AdamMonitor::last_batch ? batch_loss : epoch_loss / static_cast<double>(k);
    out.epochs = epoch;
    out.loss = monitored;
    // ReduceLROnPlateau (mode min, threshold_mode rel, cooldown 0).
    if (monitored < plateau_best * (1.0 - o.plateau_threshold)) {
      plateau_best = monitored;
      plateau_bad = 0;
    } else if (++plateau_bad > o.plateau_patience) {
      if (lr - lr * o.plateau_factor > 1e-8) lr *= o.plateau_factor;  // PyTorch's eps: no change below 1e-8
      plateau_bad = 0;
    }
    if (stopping.update(monitored)) break;
  }
  out.lambda = std::exp(u);
  out.lambda_exact = sum_tb / static_cast<double>(batches_seen) / (2.0 * theta_squared);
  out.partitions_used = static_cast<std::int64_t>(tb.size());
  out.final_learning_rate = lr;
  return out;
}

}  // namespace gradmatch::ols
