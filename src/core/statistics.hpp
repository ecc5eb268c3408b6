#pragma once
// Summary statistics of the studies: over the seeds of a grid cell (median,
// mean and standard error of the finite values: a diverged seed is NaN and
// left out), over bootstrap pools (mean and 95% Student-t band per column),
// and trends across a grid axis (Spearman correlation; a permutation test of
// a monotone trend within blocks such as seeds).
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
/// 9 digits for df <= 40 (table), Cornish-Fisher beyond (error < 6e-7; it
/// exceeds 1e-6 below df 36).
double t_quantile_975(std::int64_t df);

/// Per column: the mean and its 95% t confidence interval.
struct Band {
  std::vector<double> mean, ci_low, ci_high;
};

/// The band of each column of `samples` [n, k] over its n rows:
/// mean ± t_{0.975, n-1} sd / sqrt(n). With one row the interval collapses
/// to the mean. Every value counts (no NaN filtering: pools do not diverge).
Band column_band(const Matrix& samples);

/// Spearman rank correlation of equally long x and y: the Pearson
/// correlation of their ranks, tied values sharing their mean rank. NaN when
/// either is constant or shorter than 2.
double spearman(std::span<const double> x, std::span<const double> y);

/// One block of a trend test: points (x_i, y_i) measured under one shared
/// condition, e.g. the dropout rates of one seed (whose initial weights and
/// batch order every rate shares).
struct TrendBlock {
  std::vector<double> x, y;
};

/// A monotone trend of y in x, judged within blocks. The statistic T is the
/// mean over blocks of the within-block Spearman correlation; its null
/// distribution is that of T when each block's y values are permuted among
/// its x values (no trend: within a block, y is exchangeable). Points with a
/// non-finite y are left out; a block counts when it keeps two points and its
/// y is not constant.
struct TrendTest {
  double statistic = 0.0;     ///< T, in [-1, 1]; NaN when no block counts
  double p_increasing = 0.0;  ///< one-sided P(T* >= T): small when y rises with x
  double p_decreasing = 0.0;  ///< one-sided P(T* <= T): small when y falls with x
  std::int64_t blocks = 0;    ///< blocks that count
  std::int64_t permutations = 0;  ///< joint permutations the p-values count (every one when exact)
  bool exact = false;  ///< p-values over every joint permutation (otherwise Monte Carlo, +1 corrected)
};

/// Exact when the blocks' permutations number at most `max_exact` in all
/// (the product of their factorials); otherwise `monte_carlo` draws keyed by
/// (seed, stream), p = (1 + #{T* beyond T}) / (1 + draws), which is never
/// below 1 / (1 + draws).
TrendTest blocked_trend_test(const std::vector<TrendBlock>& blocks, std::uint64_t seed, std::uint64_t stream,
                             std::int64_t monte_carlo = 20000, std::int64_t max_exact = 200000);

}  // namespace gradmatch::stats
