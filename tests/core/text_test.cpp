// The text helpers every layer builds messages with (core/text.hpp).
#include "core/text.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace gradmatch::text {
namespace {

TEST(Cat, JoinsTextCharactersIntegersAndShortestRoundTripDoubles) {
  const std::string file = "eq.h5";
  EXPECT_EQ(cat(file, ": row ", std::int64_t{3}, " of ", 10u, ", value ", 0.1, ' ', 1e-5), "eq.h5: row 3 of 10, value 0.1 1e-05");
  EXPECT_EQ(cat(std::numeric_limits<double>::infinity(), " ", -2.5f), "inf -2.5");
  EXPECT_EQ(cat(), "");
  EXPECT_EQ(num(1.0 / 3.0), "0.3333333333333333");
}

TEST(Sz, CastsANonNegativeIndex) {
  static_assert(sz(std::int64_t{5}) == std::size_t{5});
  EXPECT_EQ(sz(std::int64_t{1} << 40), std::size_t{1} << 40);
}

}  // namespace
}  // namespace gradmatch::text
