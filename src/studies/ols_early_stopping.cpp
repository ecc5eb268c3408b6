#include "studies/ols_early_stopping.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string_view>

#include "core/errors.hpp"
#include "core/fit.hpp"
#include "core/least_squares.hpp"
#include "core/rng.hpp"
#include "core/statistics.hpp"
#include "core/symmetric_solver.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "io/provenance.hpp"
#include "studies/schema.hpp"

namespace gradmatch::studies {
namespace {

constexpr const char* kStudy = "ols_early_stopping";
constexpr std::int64_t kMaxIndex = (std::int64_t{1} << 20) - 1;  // pool and endpoint fields of a task id
constexpr std::int64_t kMaxSigmas = (std::int64_t{1} << 16) - 1;
constexpr std::uint64_t kCanonicalStream = 0;                   // shared data; task ids have kind >= 1


using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---- config -----------------------------------------------------------------

PoolSpec read_pools(io::ConfigReader& r, const std::string& table, PoolSpec fallback) {
  PoolSpec s;
  s.pools = r.get_int(table + ".pools", fallback.pools, 1, kMaxIndex);
  s.endpoints = r.get_int(table + ".endpoints", fallback.endpoints, 1, kMaxIndex);
  return s;
}

ols::StoppingRule read_rule(io::ConfigReader& r, const std::string& table, ols::StoppingRule fallback) {
  ols::StoppingRule s;
  s.patience = r.get_int(table + ".patience", fallback.patience, 1, 10'000'000);
  s.min_delta = r.get_double(table + ".min_delta", fallback.min_delta, 0.0, 1e300);
  s.max_steps = r.get_int(table + ".max_steps", fallback.max_steps, 1, 10'000'000);
  return s;
}

// ---- pools ------------------------------------------------------------------

struct PoolSolve {
  std::vector<double> distance;  // ||Lambda-hat_m - target||_F, m = 1..M (only M when !every_m)
  Matrix full;                   // Lambda-hat_M
  std::vector<Matrix> kept;      // Lambda-hat_m at the requested m
};

// Lambda-hat_m from the first m rows of `eq`, accumulating the Lyapunov sums
// row by row; rcond as fit() chooses it for --family sym.
PoolSolve solve_pool(const Equations& eq, const Matrix& target, std::span<const std::int64_t> keep, bool every_m) {
  const std::int64_t m = eq.m(), p = eq.p();
  const double rcond = default_rcond(sym_unknowns(p));
  Matrix g(p, p), c(p, p);
  PoolSolve out;
  out.kept.resize(keep.size());
  for (std::int64_t k = 1; k <= m; ++k) {
    accumulate_lyapunov(eq.rows(k - 1, k), g, c);
    const bool wanted = std::find(keep.begin(), keep.end(), k) != keep.end();
    if (!every_m && k < m && !wanted) continue;
    const Matrix lambda = solve_structured(g, c, rcond).lambda;
    out.distance.push_back(frobenius_distance(lambda, target));
    for (std::size_t i = 0; i < keep.size(); ++i)
      if (keep[i] == k) out.kept[i] = lambda;
    if (k == m) out.full = lambda;
  }
  if (!every_m) out.distance = {out.distance.back()};
  return out;
}

// Row k of a pool: the endpoint's theta and grad L.
void set_row(Equations& eq, std::int64_t k, std::span<const double> theta, std::span<const double> grad) {
  for (std::int64_t j = 0; j < eq.p(); ++j) {
    eq.theta(k, j) = theta[sz(j)];
    eq.grad_loss(k, j) = grad[sz(j)];
  }
}

Equations empty_pool(std::int64_t m, std::int64_t p) {
  Equations eq;
  eq.theta = Matrix(m, p);
  eq.grad_loss = Matrix(m, p);
  return eq;
}

FitOptions family(const char* name) {
  FitOptions o;
  o.family = FamilySpec::parse(name);
  return o;
}

std::vector<double> response(const ols::Dataset& d, double sigma) {
  std::vector<double> y(d.noise.size());
  for (std::int64_t i = 0; i < d.x.rows(); ++i) {
    double s = sigma * d.noise[sz(i)];
    for (std::int64_t j = 0; j < d.x.cols(); ++j) s += d.x(i, j) * d.beta[sz(j)];
    y[sz(i)] = s;
  }
  return y;
}

std::vector<std::int64_t> m_axis(std::int64_t m) {
  std::vector<std::int64_t> axis(sz(m));
  std::iota(axis.begin(), axis.end(), std::int64_t{1});
  return axis;
}


}  // namespace

// ---- config -----------------------------------------------------------------

OlsEarlyStoppingConfig read_ols_config(io::ConfigReader& r) {
  OlsEarlyStoppingConfig c;
  c.seed = read_study_seed(r, kStudy, c.seed);
  c.n = r.get_int("data.n", c.n, 2, 10'000'000);
  c.p = r.get_int("data.p", c.p, 1, 1000);
  c.beta_sd = r.get_double("data.beta_sd", c.beta_sd, 1e-300, 1e150);
  c.noise_sd = r.get_double("data.noise_sd", c.noise_sd, 0.0, 1e150);
  c.learning_rate = r.get_double("data.learning_rate", c.learning_rate, 1e-300, 1e3);

  c.canonical = read_rule(r, "canonical", c.canonical);

  c.fixed_iterate = read_pools(r, "fixed_iterate", c.fixed_iterate);
  c.fixed_iterate_show_m = r.get_int("fixed_iterate.show_m", c.fixed_iterate_show_m, 1, kMaxIndex);

  c.variable_stop = read_pools(r, "variable_stop", c.variable_stop);
  c.variable_rule = read_rule(r, "variable_stop", c.variable_rule);

  c.trace_steps = r.get_ints("lambda_trace.steps", c.trace_steps, 1, 10'000'000);
  c.adam.learning_rate = r.get_double("lambda_trace.adam_learning_rate", c.adam.learning_rate, 1e-300, 1e3);
  c.adam.max_epochs = r.get_int("lambda_trace.adam_max_epochs", c.adam.max_epochs, 1, 100'000'000);
  c.adam.patience = r.get_int("lambda_trace.adam_patience", c.adam.patience, 1, 100'000'000);
  c.adam.init_log_lambda = r.get_double("lambda_trace.adam_init_log_lambda", c.adam.init_log_lambda, -700.0, 700.0);

  c.bootstrap_noise_sd = r.get_double("bootstrap.noise_sd", c.bootstrap_noise_sd, 0.0, 1e150);
  c.bootstrap = read_pools(r, "bootstrap", c.bootstrap);
  c.bootstrap_show_m = r.get_ints("bootstrap.show_m", c.bootstrap_show_m, 1, kMaxIndex);

  c.sweep_sigmas = r.get_doubles("sigma_sweep.sigmas", c.sweep_sigmas, 0.0, 1e150);
  c.sweep_steps = r.get_int("sigma_sweep.steps", c.sweep_steps, 1, 10'000'000);
  c.sweep = read_pools(r, "sigma_sweep", c.sweep);
  // Until this key existed a resample's draws were keyed by its sigma's
  // position in the list (a store from then resumes with draw_key = "position").
  c.sweep_draw_key = r.get_choice("sigma_sweep.draw_key", c.sweep_draw_key, {"value", "position"});
  r.key_existed_since("sigma_sweep.draw_key", "position");

  // Cross-field constraints.
  if (c.fixed_iterate_show_m > c.fixed_iterate.endpoints)
    config_error(r, "fixed_iterate.show_m",
                 cat(std::to_string(c.fixed_iterate_show_m), " exceeds fixed_iterate.endpoints = ",
                     std::to_string(c.fixed_iterate.endpoints), "; choose m between 1 and the pool size"));
  for (std::int64_t m : c.bootstrap_show_m)
    if (m > c.bootstrap.endpoints)
      config_error(r, "bootstrap.show_m",
                   cat(std::to_string(m), " exceeds bootstrap.endpoints = ", std::to_string(c.bootstrap.endpoints),
                       "; every m must lie between 1 and the pool size"));
  if (c.trace_steps.empty()) config_error(r, "lambda_trace.steps", "is empty; give at least one step t >= 1");
  for (std::size_t i = 1; i < c.trace_steps.size(); ++i)
    if (c.trace_steps[i] <= c.trace_steps[i - 1])
      config_error(r, "lambda_trace.steps", "must be strictly increasing (one GD trajectory is read at each step)");
  reject_repeats(r, "bootstrap.show_m", c.bootstrap_show_m, "m");
  if (c.sweep_sigmas.empty()) config_error(r, "sigma_sweep.sigmas", "is empty; give at least one noise level");
  reject_repeats(r, "sigma_sweep.sigmas", c.sweep_sigmas, "noise level");
  if (static_cast<std::int64_t>(c.sweep_sigmas.size()) > kMaxSigmas)
    config_error(r, "sigma_sweep.sigmas", cat("holds more than ", std::to_string(kMaxSigmas), " values"));
  r.finish();
  return c;
}

// ---- tasks ------------------------------------------------------------------

std::uint64_t OlsTask::id() const {
  return (static_cast<std::uint64_t>(kind) << 56) | (static_cast<std::uint64_t>(sigma_index) << 40) |
         (static_cast<std::uint64_t>(pool) << 20) | static_cast<std::uint64_t>(endpoint);
}

std::uint64_t OlsTask::draw_stream(const OlsEarlyStoppingConfig& c) const {
  if (kind != OlsTaskKind::sigma_sweep || c.sweep_draw_key == "position") return id();
  return value_keyed_stream(c.sweep_sigmas.at(static_cast<std::size_t>(sigma_index)), OlsTask{kind, 0, pool, endpoint}.id());
}

std::vector<OlsTask> enumerate_tasks(const OlsEarlyStoppingConfig& c) {
  std::vector<OlsTask> tasks;
  auto add_pools = [&](OlsTaskKind kind, std::int64_t sigma_index, const PoolSpec& spec, std::int64_t first) {
    for (std::int64_t pool = 0; pool < spec.pools; ++pool)
      for (std::int64_t e = first; e < spec.endpoints; ++e) tasks.push_back({kind, sigma_index, pool, e});
  };
  add_pools(OlsTaskKind::fixed_iterate, 0, c.fixed_iterate, 0);
  add_pools(OlsTaskKind::variable_stop, 0, c.variable_stop, 0);
  add_pools(OlsTaskKind::bootstrap, 0, c.bootstrap, 1);  // endpoint 0: the canonical run
  for (std::int64_t s = 0; s < static_cast<std::int64_t>(c.sweep_sigmas.size()); ++s)
    add_pools(OlsTaskKind::sigma_sweep, s, c.sweep, 1);
  return tasks;
}

OlsShared prepare_shared(const OlsEarlyStoppingConfig& c) {
  OlsShared s;
  Rng rng(c.seed, kCanonicalStream);
  s.data = ols::draw_dataset(rng, c.n, c.p, c.beta_sd, 1.0);  // noise holds z ~ N(0, 1)
  s.moments = ols::moments(s.data.x, response(s.data, c.noise_sd));
  s.spectrum = ols::spectrum(s.moments.gram);
  ols::ali_lambda(s.spectrum, c.learning_rate, 1);  // InputError unless epsilon s_max < 1
  s.canonical = ols::gradient_descent(s.moments, c.learning_rate, c.canonical);

  s.bootstrap_y = response(s.data, c.bootstrap_noise_sd);
  s.bootstrap_moments = ols::moments(s.data.x, s.bootstrap_y);
  s.bootstrap_canonical = ols::gradient_descent(s.bootstrap_moments, c.learning_rate, c.canonical);

  for (double sigma : c.sweep_sigmas) {
    s.sweep_y.push_back(response(s.data, sigma));
    s.sweep_moments.push_back(ols::moments(s.data.x, s.sweep_y.back()));
    s.sweep_theta.push_back(ols::gradient_descent(s.sweep_moments.back(), c.learning_rate, c.sweep_steps).theta);
  }
  return s;
}

OlsTaskResult run_task(const OlsEarlyStoppingConfig& c, const OlsShared& s, const OlsTask& task) {
  Rng rng(c.seed, task.draw_stream(c));
  ols::Moments mo;
  ols::GradientDescentRun run;
  switch (task.kind) {
    case OlsTaskKind::fixed_iterate:
    case OlsTaskKind::variable_stop: {
      const ols::Dataset d = ols::draw_response(rng, s.data.x, c.beta_sd, c.noise_sd);
      mo = ols::moments(d.x, d.y);
      run = task.kind == OlsTaskKind::fixed_iterate ? ols::gradient_descent(mo, c.learning_rate, s.canonical.steps)
                                                    : ols::gradient_descent(mo, c.learning_rate, c.variable_rule);
      break;
    }
    case OlsTaskKind::bootstrap:
    case OlsTaskKind::sigma_sweep: {
      const bool figure7 = task.kind == OlsTaskKind::bootstrap;
      const std::vector<double>& y = figure7 ? s.bootstrap_y : s.sweep_y.at(sz(task.sigma_index));
      mo = ols::moments(s.data.x, y, ols::bootstrap_counts(rng, c.n));
      run = ols::gradient_descent(mo, c.learning_rate, figure7 ? s.bootstrap_canonical.steps : c.sweep_steps);
      break;
    }
  }
  OlsTaskResult out;
  out.grad_loss = ols::loss_gradient(mo, run.theta);
  out.theta = std::move(run.theta);
  out.steps = run.steps;
  return out;
}

// ---- assembly ---------------------------------------------------------------

OlsStudyResults assemble(const OlsEarlyStoppingConfig& c, const OlsShared& s, std::span<const OlsTask> tasks,
                         std::span<const OlsTaskResult> results) {
  if (tasks.size() != results.size()) throw std::invalid_argument("assemble: one result per task is needed");
  std::map<std::uint64_t, std::size_t> index;
  for (std::size_t i = 0; i < tasks.size(); ++i) index[tasks[i].id()] = i;
  auto result_of = [&](OlsTaskKind kind, std::int64_t sigma, std::int64_t pool, std::int64_t e) -> const OlsTaskResult& {
    const auto it = index.find(OlsTask{kind, sigma, pool, e}.id());
    if (it == index.end()) throw std::invalid_argument("assemble: a task result is missing");
    return results[it->second];
  };
  const std::int64_t p = c.p;
  const double lr = c.learning_rate;
  OlsStudyResults r;

  // Canonical run: panels A and C.
  r.stop_step = s.canonical.steps;
  r.lambda_theory = ols::ali_lambda(s.spectrum, lr, r.stop_step);
  r.canonical_equations = ols::endpoint_equations(s.moments, s.canonical.theta);
  r.q_hat = fit(r.canonical_equations, family("diag")).coefficients;
  r.theta_retrained = ols::retrain_diagonal(s.moments, r.q_hat);
  for (std::int64_t j = 0; j < p; ++j)
    r.diag_retrain_max_abs_diff =
        std::max(r.diag_retrain_max_abs_diff, std::abs(r.theta_retrained[sz(j)] - s.canonical.theta[sz(j)]));

  // Panel B: fixed iterate, one target Lambda(t) for every endpoint.
  {
    const PoolSpec& spec = c.fixed_iterate;
    r.fixed_distance = Matrix(spec.pools, spec.endpoints);
    const double norm = frobenius_norm(r.lambda_theory);
    const std::int64_t show[] = {c.fixed_iterate_show_m};
    for (std::int64_t pool = 0; pool < spec.pools; ++pool) {
      Equations eq = empty_pool(spec.endpoints, p);
      for (std::int64_t e = 0; e < spec.endpoints; ++e) {
        const OlsTaskResult& t = result_of(OlsTaskKind::fixed_iterate, 0, pool, e);
        set_row(eq, e, t.theta, t.grad_loss);
      }
      const PoolSolve solved = solve_pool(eq, r.lambda_theory, show, true);
      std::copy(solved.distance.begin(), solved.distance.end(), r.fixed_distance.row(pool).begin());
      r.fixed_relative_error.push_back(solved.distance.back() / norm);
      if (pool == 0) {
        r.fixed_lambda_show = solved.kept[0];
        r.fixed_lambda_full = solved.full;
        r.fixed_equations = std::move(eq);
      }
    }
    r.fixed_band = stats::column_band(r.fixed_distance);
  }

  // Panel D: every endpoint stops itself; target = elementwise median of Lambda(t_k).
  {
    const PoolSpec& spec = c.variable_stop;
    r.variable_distance = Matrix(spec.pools, spec.endpoints);
    r.variable_steps = Matrix(spec.pools, spec.endpoints);
    for (std::int64_t pool = 0; pool < spec.pools; ++pool) {
      Equations eq = empty_pool(spec.endpoints, p);
      std::vector<Matrix> lambdas;
      for (std::int64_t e = 0; e < spec.endpoints; ++e) {
        const OlsTaskResult& t = result_of(OlsTaskKind::variable_stop, 0, pool, e);
        set_row(eq, e, t.theta, t.grad_loss);
        r.variable_steps(pool, e) = static_cast<double>(t.steps);
        lambdas.push_back(ols::ali_lambda(s.spectrum, lr, t.steps));
      }
      Matrix target(p, p);
      std::vector<double> entry(lambdas.size());
      for (std::int64_t i = 0; i < p * p; ++i) {
        for (std::size_t k = 0; k < lambdas.size(); ++k) entry[k] = lambdas[k].data()[i];
        target.data()[i] = stats::finite_median(entry);
      }
      r.variable_lambda_median.insert(r.variable_lambda_median.end(), target.values().begin(), target.values().end());
      const PoolSolve solved = solve_pool(eq, target, {}, true);
      std::copy(solved.distance.begin(), solved.distance.end(), r.variable_distance.row(pool).begin());
      if (pool == 0) {
        r.variable_lambda_full = solved.full;
        r.variable_equations = std::move(eq);
      }
    }
    r.variable_band = stats::column_band(r.variable_distance);
  }

  // Panel E: one trajectory, scalar ridge at theta_t with b = -grad L(theta_t).
  {
    r.trace_theta = ols::gradient_descent_checkpoints(s.moments, lr, c.trace_steps);
    r.trace_grad_loss = Matrix(r.trace_theta.rows(), p);
    for (std::size_t i = 0; i < c.trace_steps.size(); ++i) {
      const Equations eq = ols::endpoint_equations(s.moments, r.trace_theta.row(static_cast<std::int64_t>(i)));
      std::copy(eq.grad_loss.values().begin(), eq.grad_loss.values().end(),
                r.trace_grad_loss.row(static_cast<std::int64_t>(i)).begin());
      r.trace_closed.push_back(fit(eq, family("ridge")).coefficient());
      const std::vector<double> f = ols::ali_lambda_eigenvalues(s.spectrum, lr, c.trace_steps[i]);
      r.trace_theory.push_back(std::accumulate(f.begin(), f.end(), 0.0) / static_cast<double>(p));
      const ols::AdamRidgeFit adam = ols::fit_ridge_adam(eq, c.adam);
      r.trace_iterative.push_back(adam.lambda);
      r.trace_adam_epochs.push_back(adam.epochs);
    }
  }

  // Figure 7 A-E: canonical sigma = 10 endpoint + bootstrap resamples.
  {
    const PoolSpec& spec = c.bootstrap;
    r.bootstrap_steps = s.bootstrap_canonical.steps;
    r.bootstrap_lambda_theory = ols::ali_lambda(s.spectrum, lr, r.bootstrap_steps);
    r.bootstrap_zero_baseline = frobenius_norm(r.bootstrap_lambda_theory);
    r.bootstrap_distance = Matrix(spec.pools, spec.endpoints);
    const Equations canonical = ols::endpoint_equations(s.bootstrap_moments, s.bootstrap_canonical.theta);
    for (std::int64_t pool = 0; pool < spec.pools; ++pool) {
      Equations eq = empty_pool(spec.endpoints, p);
      set_row(eq, 0, canonical.theta.row(0), canonical.grad_loss.row(0));
      for (std::int64_t e = 1; e < spec.endpoints; ++e) {
        const OlsTaskResult& t = result_of(OlsTaskKind::bootstrap, 0, pool, e);
        set_row(eq, e, t.theta, t.grad_loss);
      }
      const PoolSolve solved = solve_pool(eq, r.bootstrap_lambda_theory, c.bootstrap_show_m, true);
      std::copy(solved.distance.begin(), solved.distance.end(), r.bootstrap_distance.row(pool).begin());
      if (pool == 0) {
        for (const Matrix& l : solved.kept)
          r.bootstrap_lambda_show.insert(r.bootstrap_lambda_show.end(), l.values().begin(), l.values().end());
        r.bootstrap_lambda_full = solved.full;
        r.bootstrap_equations = std::move(eq);
      }
    }
    r.bootstrap_band = stats::column_band(r.bootstrap_distance);
  }

  // Figure 7 F: distance at m = M over sigma.
  {
    const PoolSpec& spec = c.sweep;
    const auto n_sigma = static_cast<std::int64_t>(c.sweep_sigmas.size());
    const Matrix target = ols::ali_lambda(s.spectrum, lr, c.sweep_steps);
    r.sweep_distance = Matrix(n_sigma, spec.pools);
    for (std::int64_t si = 0; si < n_sigma; ++si) {
      const Equations canonical = ols::endpoint_equations(s.sweep_moments[sz(si)], s.sweep_theta[sz(si)]);
      for (std::int64_t pool = 0; pool < spec.pools; ++pool) {
        Equations eq = empty_pool(spec.endpoints, p);
        set_row(eq, 0, canonical.theta.row(0), canonical.grad_loss.row(0));
        for (std::int64_t e = 1; e < spec.endpoints; ++e) {
          const OlsTaskResult& t = result_of(OlsTaskKind::sigma_sweep, si, pool, e);
          set_row(eq, e, t.theta, t.grad_loss);
        }
        r.sweep_distance(si, pool) = solve_pool(eq, target, {}, false).distance.back();
      }
      r.sweep_zero_baseline.push_back(frobenius_norm(target));
    }
    r.sweep_band = stats::column_band(r.sweep_distance.transposed());
  }
  return r;
}

// ---- outputs ----------------------------------------------------------------

namespace {

nlohmann::json band_json(const Band& b, std::int64_t m) {
  return {{"m", m_axis(m)}, {"mean", b.mean}, {"ci_low", b.ci_low}, {"ci_high", b.ci_high}};
}

constexpr const char* kDistanceUnits = "Frobenius norm";

void write_band(io::ResultsWriter& w, const std::string& group, const Band& b, const std::string& axis) {
  w.write(group + "/mean", b.mean, {"mean over pools of the distance ||Lambda-hat - Lambda||_F", kDistanceUnits, {axis}});
  w.write(group + "/ci_low", b.ci_low, {"lower end of the 95% Student-t interval of that mean", kDistanceUnits, {axis}});
  w.write(group + "/ci_high", b.ci_high, {"upper end of the 95% Student-t interval of that mean", kDistanceUnits, {axis}});
}

std::vector<std::int64_t> as_counts(const std::vector<double>& v) {
  std::vector<std::int64_t> out;
  for (double x : v) out.push_back(static_cast<std::int64_t>(x));
  return out;
}

void write_results(const std::string& path, const OlsEarlyStoppingConfig& c, const std::string& config_text,
                   const OlsShared& s, const OlsStudyResults& r) {
  io::ResultsWriter w(path, kStudy);
  const std::vector<std::string> pp{"parameter", "parameter"};
  w.write("config", config_text, {"the study's TOML config as given", "", {}});
  w.write("canonical/beta", s.data.beta, {"true coefficients beta of the canonical data set", "", {"parameter"}});
  w.write("canonical/theta_hat", s.canonical.theta,
          {"endpoint of the canonical early-stopped GD run (Figure 4 A)", "", {"parameter"}});
  w.write("canonical/theta_retrained", r.theta_retrained,
          {"(X^T X + n diag q-hat)^-1 X^T y: the canonical data refitted with the diagonal penalty", "", {"parameter"}});
  w.write("canonical/q_hat", r.q_hat, {"diagonal penalty fitted to the canonical endpoint", "", {"parameter"}});
  w.write("canonical/stop_step", r.stop_step, {"GD step at which the canonical run stopped", "steps", {}});
  w.write("canonical/monitored_loss", s.canonical.monitored_loss,
          {"training loss (1/n)||y - X theta||^2 after each step of the canonical run", "", {"step"}});
  w.write("canonical/lambda_theory", r.lambda_theory,
          {"Ali et al.'s Lambda(t) at the canonical stop step", "", pp});
  w.write("canonical/gram_eigenvalues", s.spectrum.s, {"eigenvalues S of X^T X / n", "", {"parameter"}});
  w.write("canonical/diag_retrain_max_abs_diff", r.diag_retrain_max_abs_diff,
          {"max |theta_retrained - theta_hat|", "", {}});

  const auto distance = [](const char* what) {
    return io::DatasetInfo{cat("||Lambda-hat_m - Lambda||_F of ", what, ", per pool and pool size m"), kDistanceUnits,
                           {"pool", "m"}};
  };
  w.write("fixed_iterate/m", m_axis(c.fixed_iterate.endpoints), {"pool size m (endpoints pooled)", "", {"m"}});
  w.write("fixed_iterate/distance", r.fixed_distance, distance("fixed-iterate pools (Figure 4 B)"));
  write_band(w, "fixed_iterate", r.fixed_band, "m");
  w.write("fixed_iterate/relative_error", r.fixed_relative_error,
          {"||Lambda-hat - Lambda||_F / ||Lambda||_F at the full pool", "", {"pool"}});
  w.write("fixed_iterate/show_m", c.fixed_iterate_show_m, {"the pool size drawn in Figure 4 B", "", {}});
  w.write("fixed_iterate/lambda_hat_show", r.fixed_lambda_show, {"Lambda-hat of pool 0 at show_m", "", pp});
  w.write("fixed_iterate/lambda_hat_pool0", r.fixed_lambda_full, {"Lambda-hat of pool 0 at the full pool", "", pp});

  const std::int64_t p = c.p;
  w.write("variable_stop/m", m_axis(c.variable_stop.endpoints), {"pool size m (endpoints pooled)", "", {"m"}});
  w.write("variable_stop/distance", r.variable_distance, distance("variable-stop pools (Figure 4 D)"));
  write_band(w, "variable_stop", r.variable_band, "m");
  w.write("variable_stop/stop_steps", as_counts(r.variable_steps.values()),
          {"GD step at which each endpoint stopped", "steps", {"pool", "endpoint"}},
          {r.variable_steps.rows(), r.variable_steps.cols()});
  w.write("variable_stop/lambda_median", r.variable_lambda_median,
          {"Lambda(t) at the median stop step of each pool", "", {"pool", "parameter", "parameter"}},
          {c.variable_stop.pools, p, p});
  w.write("variable_stop/lambda_hat_pool0", r.variable_lambda_full, {"Lambda-hat of pool 0 at the full pool", "", pp});

  w.write("lambda_trace/t", c.trace_steps, {"GD step of each checkpoint", "steps", {"checkpoint"}});
  w.write("lambda_trace/theta", r.trace_theta, {"GD iterate theta_t", "", {"checkpoint", "parameter"}});
  w.write("lambda_trace/closed", r.trace_closed,
          {"closed-form scalar ridge lambda-hat fitted at theta_t (Figure 4 E)", "", {"checkpoint"}});
  w.write("lambda_trace/theory", r.trace_theory, {"tr(Lambda(t)) / p", "", {"checkpoint"}});
  w.write("lambda_trace/iterative", r.trace_iterative,
          {"lambda-hat by Adam on log lambda (sum reduction)", "", {"checkpoint"}});
  w.write("lambda_trace/adam_epochs", r.trace_adam_epochs, {"epochs the Adam fit ran", "epochs", {"checkpoint"}});

  w.write("bootstrap/noise_sd", c.bootstrap_noise_sd, {"noise sd sigma of Figure 7", "", {}});
  w.write("bootstrap/steps", r.bootstrap_steps, {"GD step of the canonical sigma endpoint", "steps", {}});
  w.write("bootstrap/lambda_theory", r.bootstrap_lambda_theory, {"Ali et al.'s Lambda(t) at that step", "", pp});
  w.write("bootstrap/m", m_axis(c.bootstrap.endpoints), {"pool size m (endpoints pooled)", "", {"m"}});
  w.write("bootstrap/distance", r.bootstrap_distance, distance("bootstrap pools (Figure 7 A)"));
  write_band(w, "bootstrap", r.bootstrap_band, "m");
  w.write("bootstrap/zero_baseline", r.bootstrap_zero_baseline,
          {"||Lambda||_F: the distance of Lambda-hat = 0", kDistanceUnits, {}});
  w.write("bootstrap/show_m", c.bootstrap_show_m, {"the pool sizes drawn in Figure 7 B-D", "", {"shown"}});
  w.write("bootstrap/lambda_hat_show", r.bootstrap_lambda_show, {"Lambda-hat of pool 0 at show_m", "", {"shown", "parameter", "parameter"}},
          {static_cast<std::int64_t>(c.bootstrap_show_m.size()), p, p});
  w.write("bootstrap/lambda_hat_pool0", r.bootstrap_lambda_full, {"Lambda-hat of pool 0 at the full pool", "", pp});

  w.write("sigma_sweep/sigma", c.sweep_sigmas, {"noise sd sigma", "", {"sigma"}});
  w.write("sigma_sweep/steps", c.sweep_steps, {"GD steps of every sweep endpoint", "steps", {}});
  w.write("sigma_sweep/distance", r.sweep_distance,
          {"||Lambda-hat - Lambda||_F at the full pool (Figure 7 F)", kDistanceUnits, {"sigma", "pool"}});
  write_band(w, "sigma_sweep", r.sweep_band, "sigma");
  w.write("sigma_sweep/zero_baseline", r.sweep_zero_baseline,
          {"||Lambda||_F: the distance of Lambda-hat = 0", kDistanceUnits, {"sigma"}});
  w.commit();
}

}  // namespace

nlohmann::json summary_json(const OlsEarlyStoppingConfig& c, const OlsStudyResults& r) {
  const double rel_mean = std::accumulate(r.fixed_relative_error.begin(), r.fixed_relative_error.end(), 0.0) /
                          static_cast<double>(r.fixed_relative_error.size());
  std::vector<double> steps(r.variable_steps.values());
  std::sort(steps.begin(), steps.end());
  nlohmann::json variable = band_json(r.variable_band, c.variable_stop.endpoints);
  variable["stop_step_min"] = static_cast<std::int64_t>(steps.front());
  variable["stop_step_median"] = stats::finite_median(steps);
  variable["stop_step_max"] = static_cast<std::int64_t>(steps.back());
  nlohmann::json bootstrap = band_json(r.bootstrap_band, c.bootstrap.endpoints);
  bootstrap["zero_baseline"] = r.bootstrap_zero_baseline;
  bootstrap["steps"] = r.bootstrap_steps;
  bootstrap["noise_sd"] = c.bootstrap_noise_sd;
  return {
      {"study", kStudy},
      {"gradmatch_version", io::gradmatch_version()},
      {"stop_epoch", r.stop_step},
      {"diag_retrain_max_abs_diff", r.diag_retrain_max_abs_diff},
      {"fixed_iterate_rel_error", rel_mean},
      {"fixed_iterate_distance_by_m", band_json(r.fixed_band, c.fixed_iterate.endpoints)},
      {"variable_stop_distance_by_m", variable},
      {"lambda_trace",
       {{"t", c.trace_steps}, {"closed", r.trace_closed}, {"theory", r.trace_theory}, {"iterative", r.trace_iterative}}},
      {"bootstrap_distance_by_m", bootstrap},
      {"sigma_sweep",
       {{"sigma", c.sweep_sigmas},
        {"steps", c.sweep_steps},
        {"distance", r.sweep_band.mean},
        {"ci_low", r.sweep_band.ci_low},
        {"ci_high", r.sweep_band.ci_high},
        {"zero_baseline", r.sweep_zero_baseline}}},
  };
}

// ---- the study on the runner --------------------------------------------------

namespace {

constexpr OlsTaskKind kKinds[] = {OlsTaskKind::fixed_iterate, OlsTaskKind::variable_stop, OlsTaskKind::bootstrap,
                                  OlsTaskKind::sigma_sweep};

const char* table_name(OlsTaskKind kind) {
  switch (kind) {
    case OlsTaskKind::fixed_iterate: return "fixed_iterate";
    case OlsTaskKind::variable_stop: return "variable_stop";
    case OlsTaskKind::bootstrap: return "bootstrap";
    case OlsTaskKind::sigma_sweep: return "sigma_sweep";
  }
  return "unknown";
}

std::size_t kind_index(OlsTaskKind kind) { return static_cast<std::size_t>(kind) - 1; }

/// A task's result as one store row.
Schema<OlsTaskResult> task_schema(std::int64_t p) {
  return {vector("theta", &OlsTaskResult::theta, "parameter", p, "", "the endpoint theta"),
          vector("grad_loss", &OlsTaskResult::grad_loss, "parameter", p, "", "grad L at the endpoint, own data"),
          scalar("steps", &OlsTaskResult::steps, "steps", "GD steps taken")};
}

class OlsEarlyStoppingStudy final : public Study {
 public:
  void configure(io::ConfigReader& reader) override {
    config_ = read_ols_config(reader);
    config_text_ = reader.text();
    learning_rate_where_ = reader.where("data.learning_rate");
    schema_ = task_schema(config_.p);
  }

  bool uses_libtorch() const override { return false; }  // core only: its ranks are CPU ranks

  void prepare(const StudyContext&) override {
    try {
      shared_ = prepare_shared(config_);
    } catch (const InputError& e) {  // the step size breaks Ali et al.'s condition: name the key
      throw InputError(cat(learning_rate_where_, ": ", e.what()));
    }
    tasks_ = enumerate_tasks(config_);
    members_.assign(std::size(kKinds), {});
    for (std::size_t i = 0; i < tasks_.size(); ++i) members_[kind_index(tasks_[i].kind)].push_back(i);
  }

  std::vector<TaskTable> tables() const override {
    std::vector<TaskTable> out;
    for (OlsTaskKind kind : kKinds) {
      TaskTable table{table_name(kind), schema_.width(), {}, {}};
      for (std::size_t i : members_[kind_index(kind)]) table.ids.push_back(tasks_[i].id());
      out.push_back(std::move(table));
    }
    return out;
  }

  /// In table order (fixed_iterate, variable_stop, bootstrap, sigma_sweep),
  /// from the config alone, so that --dry-run numbers them.
  std::vector<std::string> task_labels() const override {
    const std::vector<OlsTask> tasks = enumerate_tasks(config_);
    std::vector<std::string> labels;
    for (OlsTaskKind kind : kKinds)
      for (const OlsTask& t : tasks) {
        if (t.kind != kind) continue;
        std::string label = table_name(kind);
        if (kind == OlsTaskKind::sigma_sweep)
          label += cat(" sigma ", label_number(config_.sweep_sigmas[sz(t.sigma_index)]), ",");
        labels.push_back(cat(label, " pool ", std::to_string(t.pool), ", endpoint ", std::to_string(t.endpoint)));
      }
    return labels;
  }

  std::string describe() const override {
    return cat("canonical run stopped at step ", std::to_string(shared_.canonical.steps), "; ",
               std::to_string(tasks_.size()), " tasks");
  }

  /// Memory: the shared X and one task's copy of it, the responses of every
  /// noise level; time: ~3 ns per n p^2 + 500 p^2 (the moments and the GD
  /// steps), rough, from the paper-scale config (8,435 tasks in 2.4 s on 2 ranks).
  ResourceEstimate estimate() const override {
    const OlsEarlyStoppingConfig& c = config_;
    const auto pooled = [](const PoolSpec& s, std::int64_t first) { return s.pools * std::max<std::int64_t>(0, s.endpoints - first); };
    const std::int64_t sigmas = static_cast<std::int64_t>(c.sweep_sigmas.size());
    const std::int64_t fixed = pooled(c.fixed_iterate, 0), variable = pooled(c.variable_stop, 0),
                       boot = pooled(c.bootstrap, 1), sweep = sigmas * pooled(c.sweep, 1);
    const double n = static_cast<double>(c.n), p = static_cast<double>(c.p);
    ResourceEstimate e;
    e.tasks = fixed + variable + boot + sweep;
    e.tasks_text = cat("gradient-descent runs of OLS with n = ", c.n, ", p = ", c.p, " (fixed_iterate ", fixed,
                       ", variable_stop ", variable, ", bootstrap ", boot, ", sigma_sweep ", sweep, ")");
    e.store_bytes = store_bytes(static_cast<double>(e.tasks), 2.0 * p + 1.0);
    e.memory_bytes = 8.0 * (2.0 * n * p + n * (4.0 + static_cast<double>(sigmas)) + 8.0 * p * p);
    e.memory_keys = "data.n, data.p";
    const double pools = static_cast<double>(c.fixed_iterate.pools + c.variable_stop.pools + c.bootstrap.pools +
                                             sigmas * c.sweep.pools);
    const double points = static_cast<double>(c.fixed_iterate.endpoints + c.variable_stop.endpoints +
                                              c.bootstrap.endpoints + static_cast<std::int64_t>(c.trace_steps.size()) + 1);
    e.output_bytes = 8.0 * (2.0 * p * points + p * p * (pools + 30.0) + 4.0 * pools * points) +
                     4096.0 * (6.0 + static_cast<double>(c.trace_steps.size()));
    e.disk_keys = "data.p and the pool sizes";
    e.seconds_per_task = 3e-9 * (n * p * p + 500.0 * p * p);
    e.time_basis = "3 ns x (n p^2 + 500 p^2)";
    e.outputs = {"results.h5", "summary.json", "equations_canonical.h5", "equations_{fixed_iterate,variable_stop,bootstrap}_pool0.h5",
                 cat("equations_lambda_trace_t*.h5 (", c.trace_steps.size(), " files)")};
    return e;
  }

  std::vector<double> compute(std::size_t table, std::int64_t row) override {
    return schema_.encode(run_task(config_, shared_, tasks_[members_[table][sz(row)]]));
  }

  nlohmann::json write(const std::vector<std::vector<double>>& rows, OutputDir& out) override {
    std::vector<OlsTaskResult> results(tasks_.size());
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const std::vector<OlsTaskResult> decoded = schema_.decode_all(rows[k]);
      for (std::size_t row = 0; row < decoded.size(); ++row) results[members_[k][row]] = decoded[row];
    }
    const auto t = Clock::now();
    const OlsStudyResults r = assemble(config_, shared_, tasks_, results);
    const double assemble_s = seconds_since(t);

    write_results(out.path("results.h5"), config_, config_text_, shared_, r);
    io::write_equation_file(out.path("equations_canonical.h5"), r.canonical_equations);
    io::write_equation_file(out.path("equations_fixed_iterate_pool0.h5"), r.fixed_equations);
    io::write_equation_file(out.path("equations_variable_stop_pool0.h5"), r.variable_equations);
    io::write_equation_file(out.path("equations_bootstrap_pool0.h5"), r.bootstrap_equations);
    for (std::size_t i = 0; i < config_.trace_steps.size(); ++i) {
      Equations eq;
      eq.theta = r.trace_theta.row_block(static_cast<std::int64_t>(i), static_cast<std::int64_t>(i) + 1);
      eq.grad_loss = r.trace_grad_loss.row_block(static_cast<std::int64_t>(i), static_cast<std::int64_t>(i) + 1);
      io::write_equation_file(out.path(cat("equations_lambda_trace_t", std::to_string(config_.trace_steps[i]), ".h5")),
                              eq);
    }
    io::write_json_file(out.path("summary.json"), summary_json(config_, r));
    return {{"wall_seconds_assemble", assemble_s}};
  }

 private:
  OlsEarlyStoppingConfig config_;
  std::string config_text_, learning_rate_where_;  ///< where: ConfigReader::where("data.learning_rate")
  OlsShared shared_;
  std::vector<OlsTask> tasks_;
  std::vector<std::vector<std::size_t>> members_;  ///< task indices per table, row order
  Schema<OlsTaskResult> schema_ = task_schema(0);  ///< set by configure() from p
};

}  // namespace

std::unique_ptr<Study> make_ols_early_stopping_study() { return std::make_unique<OlsEarlyStoppingStudy>(); }

}  // namespace gradmatch::studies
