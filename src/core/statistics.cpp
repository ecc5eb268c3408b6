#include "core/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "core/rng.hpp"
#include "core/text.hpp"

namespace gradmatch::stats {

using text::sz;

double finite_median(std::vector<double> v) {
  std::erase_if(v, [](double x) { return !std::isfinite(x); });
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 == 1 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

MeanSe finite_mean_se(std::span<const double> v) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  MeanSe out;
  double sum = 0.0;
  for (double x : v)
    if (std::isfinite(x)) {
      sum += x;
      ++out.n;
    }
  if (out.n == 0) return {nan, nan, 0};
  out.mean = sum / static_cast<double>(out.n);
  if (out.n < 2) {
    out.se = nan;
    return out;
  }
  double ss = 0.0;
  for (double x : v)
    if (std::isfinite(x)) ss += (x - out.mean) * (x - out.mean);
  out.se = std::sqrt(ss / static_cast<double>(out.n - 1) / static_cast<double>(out.n));
  return out;
}

double t_quantile_975(std::int64_t df) {
  static constexpr double table[] = {12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851,
                                     2.364624252,  2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830,
                                     2.160368656,  2.144786688, 2.131449546, 2.119905299, 2.109815578, 2.100922040,
                                     2.093024054,  2.085963447, 2.079613845, 2.073873068, 2.068657610, 2.063898562,
                                     2.059538553,  2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456,
                                     2.039513446,  2.036933343, 2.034515297, 2.032244509, 2.030107928, 2.028094001,
                                     2.026192463,  2.024394165, 2.022690912, 2.021075383};
  if (df < 1) throw std::invalid_argument(text::cat("t_quantile_975: df = ", df, " (needs df >= 1)"));
  if (df <= 40) return table[df - 1];
  // Cornish-Fisher expansion around the normal quantile.
  const double z = 1.959963984540054, v = static_cast<double>(df);
  const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z;
  return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v) +
         (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * v * v * v);
}

Band column_band(const Matrix& samples) {
  const std::int64_t n = samples.rows(), k = samples.cols();
  if (n < 1) throw std::invalid_argument("column_band: needs at least one row");
  Band b;
  b.mean.assign(sz(k), 0.0);
  b.ci_low.assign(sz(k), 0.0);
  b.ci_high.assign(sz(k), 0.0);
  for (std::int64_t j = 0; j < k; ++j) {
    double mean = 0.0;
    for (std::int64_t i = 0; i < n; ++i) mean += samples(i, j);
    mean /= static_cast<double>(n);
    double half = 0.0;
    if (n > 1) {
      double ss = 0.0;
      for (std::int64_t i = 0; i < n; ++i) ss += (samples(i, j) - mean) * (samples(i, j) - mean);
      half = t_quantile_975(n - 1) * std::sqrt(ss / static_cast<double>(n - 1) / static_cast<double>(n));
    }
    b.mean[sz(j)] = mean;
    b.ci_low[sz(j)] = mean - half;
    b.ci_high[sz(j)] = mean + half;
  }
  return b;
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Ranks 0..n-1 of v, tied values sharing their mean rank.
std::vector<double> mean_ranks(std::span<const double> v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (std::size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * static_cast<double>(i + j);
    i = j + 1;
  }
  return r;
}

// A block as its centred ranks: rho(pi) = sum_i a_i b_pi(i) / norm.
struct RankedBlock {
  std::vector<double> a, b;
  double norm = 0.0;
  double rho(const std::vector<double>& b_permuted) const {
    double s = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b_permuted[i];
    return s / norm;
  }
};

// Centred ranks of (x, y); norm 0 when either is constant.
RankedBlock ranked(std::span<const double> x, std::span<const double> y) {
  RankedBlock r;
  r.a = mean_ranks(x);
  r.b = mean_ranks(y);
  const double mean = (static_cast<double>(x.size()) - 1.0) / 2.0;
  double saa = 0.0, sbb = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    r.a[i] -= mean;
    r.b[i] -= mean;
    saa += r.a[i] * r.a[i];
    sbb += r.b[i] * r.b[i];
  }
  r.norm = saa > 0.0 && sbb > 0.0 ? std::sqrt(saa * sbb) : 0.0;
  return r;
}

}  // namespace

double spearman(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size())
    throw std::invalid_argument(text::cat("spearman: x has ", x.size(), " values, y ", y.size()));
  if (x.size() < 2) return kNaN;
  const RankedBlock r = ranked(x, y);
  return r.norm > 0.0 ? r.rho(r.b) : kNaN;
}

TrendTest blocked_trend_test(const std::vector<TrendBlock>& blocks, std::uint64_t seed, std::uint64_t stream,
                             std::int64_t monte_carlo, std::int64_t max_exact) {
  if (monte_carlo < 1) throw std::invalid_argument("blocked_trend_test: monte_carlo must be >= 1");
  std::vector<RankedBlock> ranked_blocks;
  for (const TrendBlock& block : blocks) {
    if (block.x.size() != block.y.size())
      throw std::invalid_argument(
          text::cat("blocked_trend_test: a block has ", block.x.size(), " x values and ", block.y.size(), " y values"));
    std::vector<double> x, y;
    for (std::size_t i = 0; i < block.y.size(); ++i)
      if (std::isfinite(block.y[i])) {
        x.push_back(block.x[i]);
        y.push_back(block.y[i]);
      }
    if (x.size() < 2) continue;
    RankedBlock r = ranked(x, y);
    if (r.norm > 0.0) ranked_blocks.push_back(std::move(r));
  }
  TrendTest out;
  out.blocks = static_cast<std::int64_t>(ranked_blocks.size());
  if (ranked_blocks.empty()) return {kNaN, kNaN, kNaN, 0, 0, false};
  const auto k = static_cast<double>(ranked_blocks.size());
  out.statistic = 0.0;
  for (const RankedBlock& r : ranked_blocks) out.statistic += r.rho(r.b) / k;
  const double tolerance = 1e-12;
  std::int64_t at_least = 0, at_most = 0;
  const auto count = [&](double t) {
    at_least += t >= out.statistic - tolerance;
    at_most += t <= out.statistic + tolerance;
  };

  // Every joint permutation when they are few: the product of n_b! (saturating).
  std::int64_t joint = 1;
  for (const RankedBlock& r : ranked_blocks) {
    for (std::size_t f = 2; f <= r.a.size() && joint <= max_exact; ++f) joint *= static_cast<std::int64_t>(f);
    if (joint > max_exact) break;
  }
  if (joint <= max_exact) {
    // Each block's correlations over all its permutations, then every combination.
    std::vector<std::vector<double>> rhos;
    for (const RankedBlock& r : ranked_blocks) {
      std::vector<std::size_t> perm(r.b.size());
      std::iota(perm.begin(), perm.end(), std::size_t{0});
      std::vector<double> values, b(r.b.size());
      do {
        for (std::size_t i = 0; i < perm.size(); ++i) b[i] = r.b[perm[i]];
        values.push_back(r.rho(b));
      } while (std::next_permutation(perm.begin(), perm.end()));
      rhos.push_back(std::move(values));
    }
    std::vector<std::size_t> digit(rhos.size(), 0);
    for (std::int64_t n = 0; n < joint; ++n) {
      double t = 0.0;
      for (std::size_t j = 0; j < rhos.size(); ++j) t += rhos[j][digit[j]] / k;
      count(t);
      for (std::size_t j = 0; j < rhos.size() && ++digit[j] == rhos[j].size(); ++j) digit[j] = 0;
    }
    out.permutations = joint;
    out.exact = true;
    out.p_increasing = static_cast<double>(at_least) / static_cast<double>(joint);
    out.p_decreasing = static_cast<double>(at_most) / static_cast<double>(joint);
    return out;
  }

  Rng rng(seed, stream);
  std::vector<double> b;
  for (std::int64_t n = 0; n < monte_carlo; ++n) {
    double t = 0.0;
    for (const RankedBlock& r : ranked_blocks) {
      b = r.b;
      for (std::size_t i = b.size() - 1; i > 0; --i) {  // Fisher-Yates
        const auto j = std::min(i, static_cast<std::size_t>(rng.uniform() * static_cast<double>(i + 1)));
        std::swap(b[i], b[j]);
      }
      t += r.rho(b) / k;
    }
    count(t);
  }
  out.permutations = monte_carlo;
  out.p_increasing = static_cast<double>(1 + at_least) / static_cast<double>(1 + monte_carlo);
  out.p_decreasing = static_cast<double>(1 + at_most) / static_cast<double>(1 + monte_carlo);
  return out;
}

}  // namespace gradmatch::stats
