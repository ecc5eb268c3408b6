#include "core/rng.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace gradmatch {
namespace {

TEST(Philox, MatchesTheRandom123KnownAnswerVectors) {
  // Known-answer vectors of Philox4x32-10 from Random123 (kat_vectors):
  // counter = 0, key = 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
  const Philox zero(0, 0);
  const auto out = zero.block(0);
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[1], 0xe169c58du);
  EXPECT_EQ(out[2], 0xbc57ac4cu);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
  // counter = ffffffff x4, key = ffffffff x2 -> 408f276d 41c83b0e a20bc7c6 6d5451fd.
  const Philox ones(0xffffffffffffffffull, 0xffffffffffffffffull);
  const auto out2 = ones.block(0xffffffffffffffffull);
  EXPECT_EQ(out2[0], 0x408f276du);
  EXPECT_EQ(out2[1], 0x41c83b0eu);
  EXPECT_EQ(out2[2], 0xa20bc7c6u);
  EXPECT_EQ(out2[3], 0x6d5451fdu);
}

TEST(Rng, StreamsAreReproducibleAndDistinct) {
  Rng a(42, 7), b(42, 7), c(42, 8), d(43, 7);
  for (int i = 0; i < 100; ++i) {
    const double x = a.normal();
    EXPECT_EQ(x, b.normal());
    EXPECT_NE(x, c.normal());
    EXPECT_NE(x, d.normal());
  }
}

TEST(Rng, NormalDrawsHaveUnitMomentsWithinSamplingError) {
  Rng rng(1, 0);
  const int n = 200000;
  double s = 0.0, s2 = 0.0;
  for (int i = 0; i < n; ++i) {
    const double x = rng.normal();
    s += x;
    s2 += x * x;
  }
  const double mean = s / n, var = s2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(var, 1.0, 5.0 * std::sqrt(2.0 / n));
}

TEST(Rng, UniformStaysInsideTheOpenUnitInterval) {
  Rng rng(3, 3);
  for (int i = 0; i < 10000; ++i) {
    const double u = rng.uniform();
    EXPECT_GT(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
}

}  // namespace
}  // namespace gradmatch
