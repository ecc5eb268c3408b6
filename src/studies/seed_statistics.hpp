#pragma once
// Statistics over the seeds of a grid cell: median, mean and standard error
// of the finite values (a diverged seed is NaN and left out).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace gradmatch::studies {

/// Median of the finite values of `v`; NaN when there is none.
inline double finite_median(std::vector<double> v) {
  std::erase_if(v, [](double x) { return !std::isfinite(x); });
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 == 1 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

/// Mean and standard error (sample sd / sqrt(n)) of the finite values.
struct MeanSe {
  double mean = 0.0;  ///< NaN when n = 0
  double se = 0.0;    ///< NaN when n < 2
  std::int64_t n = 0;
};

inline MeanSe finite_mean_se(std::span<const double> v) {
  MeanSe out;
  double sum = 0.0;
  for (double x : v)
    if (std::isfinite(x)) {
      sum += x;
      ++out.n;
    }
  if (out.n == 0) return {std::nan(""), std::nan(""), 0};
  out.mean = sum / static_cast<double>(out.n);
  if (out.n < 2) {
    out.se = std::nan("");
    return out;
  }
  double ss = 0.0;
  for (double x : v)
    if (std::isfinite(x)) ss += (x - out.mean) * (x - out.mean);
  out.se = std::sqrt(ss / static_cast<double>(out.n - 1) / static_cast<double>(out.n));
  return out;
}

}  // namespace gradmatch::studies
