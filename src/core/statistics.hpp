#pragma once
// Summary statistics of the studies: over the seeds of a grid cell (median,
// mean and standard error of the finite values: a diverged seed is NaN and
// left out) and over bootstrap pools (mean and 95% Student-t band per column).
#include <cstdint>
#include <span>
#include <vector>

#include "core/matrix.hpp"

namespace gradmatch::stats {

/// Median of the finite values of `v` (the mean of the middle two for an
/// even count); NaN when there is none.
double finite_median(std::vector<double> v);

/// Mean and standard error (sample sd / sqrt(n)) of the finite values.
struct MeanSe {
  double mean = 0.0;  ///< NaN when n = 0
  double se = 0.0;    ///< NaN when n < 2
  std::int64_t n = 0;
};
MeanSe finite_mean_se(std::span<const double> v);

/// The two-sided 95% Student-t quantile t_{0.975, df}, df >= 1: exact to
/// 9 digits for df <= 30 (table), Cornish-Fisher beyond (error < 1e-6).
double t_quantile_975(std::int64_t df);

/// Per column: the mean and its 95% t confidence interval.
struct Band {
  std::vector<double> mean, ci_low, ci_high;
};

/// The band of each column of `samples` [n, k] over its n rows:
/// mean ± t_{0.975, n-1} sd / sqrt(n). With one row the interval collapses
/// to the mean. Every value counts (no NaN filtering: pools do not diverge).
Band column_band(const Matrix& samples);

}  // namespace gradmatch::stats
