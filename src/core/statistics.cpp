#include "core/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

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
                                     2.059538553,  2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456};
  if (df < 1) throw std::invalid_argument(text::cat("t_quantile_975: df = ", df, " (needs df >= 1)"));
  if (df <= 30) return table[df - 1];
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

}  // namespace gradmatch::stats
