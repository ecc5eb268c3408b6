// Statistics over seeds and pools (core/statistics.hpp) against hand-worked values.
#include "core/statistics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>
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
  // The table's end (scipy.stats.t.ppf), where the expansion would be off by 1.7e-6 (df 31).
  EXPECT_NEAR(t_quantile_975(31), 2.039513446, 1e-9);
  EXPECT_NEAR(t_quantile_975(40), 2.021075383, 1e-9);
  // Beyond the table: t_{0.975} at df = 41, 60, 120 (scipy.stats.t.ppf) to 1e-6.
  EXPECT_NEAR(t_quantile_975(41), 2.019540964, 1e-6);
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

TEST(Spearman, IsThePearsonCorrelationOfRanksWithTiesSharingTheirMeanRank) {
  const std::vector<double> x{1.0, 2.0, 3.0, 4.0, 5.0};
  EXPECT_DOUBLE_EQ(spearman(x, std::vector<double>{1.0, 8.0, 27.0, 64.0, 125.0}), 1.0);
  EXPECT_DOUBLE_EQ(spearman(x, std::vector<double>{9.0, 7.0, 3.0, 0.0, -4.0}), -1.0);
  // No ties: 1 - 6 sum d^2 / (n (n^2 - 1)) with d = (-1, 1, -1, 1, 0): 1 - 24/120.
  EXPECT_DOUBLE_EQ(spearman(x, std::vector<double>{2.0, 1.0, 4.0, 3.0, 5.0}), 0.8);
  // Ties in y: ranks (0.5, 0.5, 2.5, 2.5) against (0, 1, 2, 3): 4 / sqrt(5 * 4).
  EXPECT_NEAR(spearman(std::vector<double>{1.0, 2.0, 3.0, 4.0}, std::vector<double>{1.0, 1.0, 2.0, 2.0}),
              4.0 / std::sqrt(20.0), 1e-15);
  EXPECT_TRUE(std::isnan(spearman(x, std::vector<double>{3.0, 3.0, 3.0, 3.0, 3.0})));
  EXPECT_TRUE(std::isnan(spearman(std::vector<double>{1.0}, std::vector<double>{2.0})));
  EXPECT_THROW(spearman(x, std::vector<double>{1.0, 2.0}), std::invalid_argument);
}

void expect_trend_test(const TrendTest& got, const TrendTest& want) {
  EXPECT_DOUBLE_EQ(got.statistic, want.statistic);
  EXPECT_DOUBLE_EQ(got.p_increasing, want.p_increasing);
  EXPECT_DOUBLE_EQ(got.p_decreasing, want.p_decreasing);
  EXPECT_EQ(got.blocks, want.blocks);
  EXPECT_EQ(got.permutations, want.permutations);
  EXPECT_EQ(got.exact, want.exact);
}

TEST(BlockedTrendTest, CountsEveryPermutationWhenTheyAreFew) {
  // One block of three increasing points: T = 1, reached by 1 of the 3! orders.
  expect_trend_test(blocked_trend_test({{{0.0, 1.0, 2.0}, {1.0, 2.0, 3.0}}}, 1, 1), {1.0, 1.0 / 6.0, 1.0, 1, 6, true});
  // Two blocks, rho = 1 and 0.5: T = 0.75. A block's rho over its 6 orders is
  // 1, 0.5, 0.5, -0.5, -0.5, -1, so the mean of two is >= 0.75 in 5 of 36
  // pairs ((1, 1) and four with 1 and 0.5) and <= 0.75 in all but (1, 1).
  expect_trend_test(
      blocked_trend_test({{{0.0, 1.0, 2.0}, {1.0, 2.0, 3.0}}, {{0.0, 1.0, 2.0}, {1.0, 3.0, 2.0}}}, 1, 1),
      {0.75, 5.0 / 36.0, 35.0 / 36.0, 2, 36, true});
}

TEST(BlockedTrendTest, LeavesOutNonFinitePointsAndBlocksWithoutATrendToTest) {
  // A NaN point drops out (three increasing points remain); a constant block
  // and a one-point block do not count: the one-block answer above.
  const TrendTest t = blocked_trend_test({{{0.0, 1.0, 2.0, 3.0}, {1.0, kNaN, 2.0, 3.0}},
                                          {{0.0, 1.0, 2.0}, {5.0, 5.0, 5.0}},
                                          {{0.0, 1.0}, {kInf, 4.0}}},
                                         1, 1);
  EXPECT_EQ(t.blocks, 1);
  EXPECT_EQ(t.permutations, 6);
  EXPECT_DOUBLE_EQ(t.statistic, 1.0);
  EXPECT_DOUBLE_EQ(t.p_increasing, 1.0 / 6.0);
  const TrendTest none = blocked_trend_test({{{0.0, 1.0}, {kNaN, 2.0}}}, 1, 1);
  EXPECT_EQ(none.blocks, 0);
  EXPECT_TRUE(std::isnan(none.statistic));
  EXPECT_TRUE(std::isnan(none.p_increasing));
  EXPECT_THROW(blocked_trend_test({{{0.0, 1.0}, {1.0}}}, 1, 1), std::invalid_argument);
}

TEST(BlockedTrendTest, DrawsPermutationsWhenTheyAreManyAndAgreesWithTheExactCount) {
  // Ten seeds of eight rates, every one increasing: no draw reaches T = 1
  // (chance 8!^-10), so p is its floor 1 / (1 + draws).
  std::vector<TrendBlock> rising(10, TrendBlock{{0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5}, {1, 2, 3, 4, 5, 6, 7, 8}});
  expect_trend_test(blocked_trend_test(rising, 7, 3, 2000), {1.0, 1.0 / 2001.0, 1.0, 10, 2000, false});
  // Three blocks of four (4!^3 = 13,824 joint orders): the draws estimate the
  // exact p within four binomial standard errors, and repeat with the key.
  const std::vector<TrendBlock> mixed{{{0, 1, 2, 3}, {0.2, 0.1, 0.5, 0.4}},
                                      {{0, 1, 2, 3}, {1.0, 3.0, 2.0, 4.0}},
                                      {{0, 1, 2, 3}, {3.0, 1.0, 2.0, 0.5}}};
  const TrendTest exact = blocked_trend_test(mixed, 7, 3);
  ASSERT_TRUE(exact.exact);
  EXPECT_EQ(exact.permutations, 13824);
  EXPECT_GT(exact.p_increasing, 0.05);  // a weak trend: the test has to measure, not floor
  EXPECT_LT(exact.p_increasing, 0.95);
  const std::int64_t draws = 20000;
  const TrendTest drawn = blocked_trend_test(mixed, 7, 3, draws, 0);
  ASSERT_FALSE(drawn.exact);
  EXPECT_DOUBLE_EQ(drawn.statistic, exact.statistic);
  for (const auto& [p_mc, p] : {std::pair{drawn.p_increasing, exact.p_increasing},
                                std::pair{drawn.p_decreasing, exact.p_decreasing}})
    EXPECT_NEAR(p_mc, p, 4.0 * std::sqrt(p * (1.0 - p) / draws) + 1.0 / draws);
  const TrendTest again = blocked_trend_test(mixed, 7, 3, draws, 0);
  EXPECT_EQ(again.p_increasing, drawn.p_increasing);
}

}  // namespace
}  // namespace gradmatch::stats
