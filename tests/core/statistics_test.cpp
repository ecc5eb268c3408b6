// Statistics over seeds and pools (core/statistics.hpp) against hand-worked values.
#include "core/statistics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace gradmatch::stats {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(FiniteMedian, LeavesOutNonFiniteValuesAndAveragesTheMiddleTwo) {
  EXPECT_EQ(finite_median({3.0, 1.0, 2.0}), 2.0);
  EXPECT_EQ(finite_median({4.0, 1.0, 3.0, 2.0}), 2.5);
  EXPECT_EQ(finite_median({kNaN, 5.0, kInf, 1.0, -kInf}), 3.0);
  EXPECT_TRUE(std::isnan(finite_median({kNaN, kInf})));
  EXPECT_TRUE(std::isnan(finite_median({})));
}

TEST(FiniteMeanSe, IsTheSampleMeanAndSdOverRootNOfTheFiniteValues) {
  // 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14/3, se = sqrt(14/3 / 4).
  const std::vector<double> v{1.0, kNaN, 2.0, 3.0, kInf, 6.0};
  const MeanSe s = finite_mean_se(v);
  EXPECT_EQ(s.n, 4);
  EXPECT_DOUBLE_EQ(s.mean, 3.0);
  EXPECT_DOUBLE_EQ(s.se, std::sqrt(14.0 / 3.0 / 4.0));
  const std::vector<double> one{kNaN, 7.0};
  const MeanSe single = finite_mean_se(one);
  EXPECT_EQ(single.n, 1);
  EXPECT_EQ(single.mean, 7.0);
  EXPECT_TRUE(std::isnan(single.se));
  const std::vector<double> none{kNaN};
  EXPECT_EQ(finite_mean_se(none).n, 0);
  EXPECT_TRUE(std::isnan(finite_mean_se(none).mean));
}

TEST(TQuantile975, MatchesTablesAndTendsToTheNormalQuantile) {
  EXPECT_NEAR(t_quantile_975(1), 12.706204736, 1e-9);
  EXPECT_NEAR(t_quantile_975(10), 2.228138852, 1e-9);
  EXPECT_NEAR(t_quantile_975(30), 2.042272456, 1e-9);
  // Beyond the table: t_{0.975} at df = 40, 60, 120 (scipy.stats.t.ppf) to 1e-6.
  EXPECT_NEAR(t_quantile_975(40), 2.021075383, 1e-6);
  EXPECT_NEAR(t_quantile_975(60), 2.000297821, 1e-6);
  EXPECT_NEAR(t_quantile_975(120), 1.979930405, 1e-6);
  EXPECT_NEAR(t_quantile_975(1'000'000), 1.959966357, 1e-6);
  EXPECT_THROW(t_quantile_975(0), std::invalid_argument);
}

TEST(ColumnBand, IsMeanPlusMinusTTimesTheStandardErrorPerColumn) {
  // Column 0: 1, 2, 3 (mean 2, sd 1); column 1: 5, 5, 5 (sd 0).
  const Matrix samples(3, 2, {1.0, 5.0, 2.0, 5.0, 3.0, 5.0});
  const Band b = column_band(samples);
  const double half = 4.302652730 / std::sqrt(3.0);
  EXPECT_DOUBLE_EQ(b.mean[0], 2.0);
  EXPECT_NEAR(b.ci_low[0], 2.0 - half, 1e-9);
  EXPECT_NEAR(b.ci_high[0], 2.0 + half, 1e-9);
  EXPECT_EQ(b.mean[1], 5.0);
  EXPECT_EQ(b.ci_low[1], 5.0);
  EXPECT_EQ(b.ci_high[1], 5.0);
  // One row: the band collapses to the row.
  const Band single = column_band(Matrix(1, 2, {0.5, -1.0}));
  EXPECT_EQ(single.ci_low, single.mean);
  EXPECT_EQ(single.ci_high, (std::vector<double>{0.5, -1.0}));
}

}  // namespace
}  // namespace gradmatch::stats
