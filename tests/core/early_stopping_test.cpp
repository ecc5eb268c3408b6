// The one early-stopping rule (core/early_stopping.hpp): Lightning's
// EarlyStopping, mode "min", check_finite.
#include "core/early_stopping.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace gradmatch {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(EarlyStoppingRule, TracksBestWaitAndTheValueThatSetBest) {
  // patience 2, min_delta 0.1: 1.0 improves (best 1.0, #1); 0.95 is not better
  // by 0.1 (wait 1); 0.85 is (best 0.85, #3, wait 0); 0.8 and 0.79 are not
  // (wait 1, 2): the fifth value stops.
  EarlyStoppingRule rule(2, 0.1);
  const std::vector<double> values{1.0, 0.95, 0.85, 0.8, 0.79};
  const std::vector<bool> stops{false, false, false, false, true};
  const std::vector<bool> improved{true, false, true, false, false};
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(rule.update(values[i]), stops[i]) << i;
    EXPECT_EQ(rule.improved(), improved[i]) << i;
  }
  EXPECT_EQ(rule.best(), 0.85);
  EXPECT_EQ(rule.best_count(), 3);
  EXPECT_EQ(rule.wait(), 2);
  EXPECT_FALSE(rule.stopped_on_non_finite());
}

TEST(EarlyStoppingRule, ANaNStopsAtOnceWithoutMovingBestOrWait) {
  EarlyStoppingRule rule(100, 0.0);
  EXPECT_FALSE(rule.update(2.0));
  EXPECT_FALSE(rule.update(3.0));  // wait 1
  EXPECT_TRUE(rule.update(kNaN));
  EXPECT_FALSE(rule.improved());
  EXPECT_TRUE(rule.stopped_on_non_finite());
  EXPECT_EQ(rule.best(), 2.0);
  EXPECT_EQ(rule.wait(), 1);
  EXPECT_EQ(rule.best_count(), 1);
}

TEST(EarlyStoppingRule, InfinitiesStopAtOnceEvenAsTheFirstValue) {
  for (double v : {kInf, -kInf, kNaN}) {
    EarlyStoppingRule rule(5, 0.0);
    EXPECT_TRUE(rule.update(v)) << v;
    EXPECT_EQ(rule.best(), kInf) << v;  // nothing was an improvement
    EXPECT_EQ(rule.best_count(), 0) << v;
  }
}

TEST(EarlyStoppingRule, ResetForgetsEverything) {
  EarlyStoppingRule rule(1, 0.0);
  EXPECT_FALSE(rule.update(1.0));
  EXPECT_TRUE(rule.update(kNaN));
  rule.reset();
  EXPECT_EQ(rule.best(), kInf);
  EXPECT_EQ(rule.wait(), 0);
  EXPECT_FALSE(rule.stopped_on_non_finite());
  EXPECT_FALSE(rule.update(5.0));
  EXPECT_EQ(rule.best_count(), 1);
  EXPECT_TRUE(rule.update(5.0));  // equal is no gain: wait 1 = patience
}

}  // namespace
}  // namespace gradmatch
