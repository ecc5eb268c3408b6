// Synthetic generators, seeded splits and normalization.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/errors.hpp"
#include "training/data.hpp"
#include "training/tensor_bridge.hpp"

namespace gradmatch::training {
namespace {

TEST(SyntheticData, LinearRegressionIsKeyedBySeedAndStream) {
  const LinearDataOptions o;  // appendix H.2: 5000 x 10, theta ~ N(0, 25), noise sd 0.5
  const SyntheticData a = linear_regression(o, 1, 7);
  const SyntheticData b = linear_regression(o, 1, 7);
  const SyntheticData c = linear_regression(o, 1, 8);
  EXPECT_EQ(a.data.x.sizes(), (at::IntArrayRef{5000, 10}));
  EXPECT_EQ(a.data.y.sizes(), (at::IntArrayRef{5000, 1}));
  EXPECT_TRUE(at::equal(a.data.x, b.data.x));
  EXPECT_TRUE(at::equal(a.data.y, b.data.y));
  EXPECT_FALSE(at::equal(a.data.x, c.data.x));
  // y - x theta is the noise: mean ~ 0, sd ~ 0.5.
  const at::Tensor theta = to_tensor(a.theta_true, {10, 1});
  const at::Tensor noise = a.data.y - at::matmul(a.data.x, theta);
  EXPECT_NEAR(noise.std().item<double>(), 0.5, 0.02);
  EXPECT_NEAR(a.data.x.std().item<double>(), 1.0, 0.02);
  // A fixed theta (appendix H.1: y = 2 x + noise).
  const SyntheticData f = linear_regression({20, 1, 0.0, 1.8, {2.0}}, 3, 0);
  EXPECT_EQ(f.theta_true, std::vector<double>{2.0});
  EXPECT_THROW(linear_regression({20, 2, 0.0, 1.8, {2.0}}, 3, 0), InputError);
}

TEST(SyntheticData, TanhCurveIsFigureTwos) {
  const SyntheticData s = tanh_curve(96);
  EXPECT_EQ(s.data.x.size(0), 96);
  EXPECT_DOUBLE_EQ(s.data.x[0][0].item<double>(), -2.5);
  EXPECT_DOUBLE_EQ(s.data.x[95][0].item<double>(), 2.5);
  const double x = s.data.x[40][0].item<double>();
  EXPECT_DOUBLE_EQ(s.data.y[40][0].item<double>(), 0.75 * std::tanh(1.4 * x - 0.35) + 0.12 * std::sin(2.7 * x));
}

TEST(Split, IsASeededPartition) {
  const Dataset d{at::arange(100, at::kDouble).unsqueeze(1), at::arange(100, at::kLong)};
  const Split a = split(d, 0.1, 4, 2);
  const Split b = split(d, 0.1, 4, 2);
  const Split c = split(d, 0.1, 5, 2);
  EXPECT_EQ(a.train.size(), 90);
  EXPECT_EQ(a.validation.size(), 10);
  EXPECT_TRUE(at::equal(a.validation.y, b.validation.y));
  EXPECT_FALSE(at::equal(a.validation.y, c.validation.y));
  std::set<std::int64_t> all;
  for (const Dataset* part : {&a.train, &a.validation})
    for (std::int64_t i = 0; i < part->size(); ++i) {
      all.insert((*part).y[i].item<std::int64_t>());
      EXPECT_EQ((*part).x[i][0].item<double>(), static_cast<double>((*part).y[i].item<std::int64_t>()));
    }
  EXPECT_EQ(all.size(), 100u);
  EXPECT_EQ(split(d, 0.0, 4, 2).validation.size(), 0);
  EXPECT_THROW(split(d, 1.0, 4, 2), InputError);
}

TEST(Split, PermutationIsUniformEnough) {
  // Each position of a permutation of 4 takes each value ~1/4 of the time.
  std::vector<std::vector<int>> counts(4, std::vector<int>(4, 0));
  for (std::uint64_t s = 0; s < 4000; ++s) {
    const auto perm = permutation(4, 9, s);
    for (std::size_t i = 0; i < 4; ++i) ++counts[i][static_cast<std::size_t>(perm[i])];
  }
  for (const auto& row : counts)
    for (int c : row) EXPECT_NEAR(c, 1000, 120);
}

TEST(Normalizer, FitsOnTrainAndAppliesAnywhere) {
  const at::Tensor x = to_tensor(std::vector<double>{1, 5, 3, 5, 5, 5}, {3, 2});  // second feature constant
  const Normalizer n = Normalizer::fit(x);
  const at::Tensor z = n.apply(x);
  EXPECT_NEAR(z.select(1, 0).mean().item<double>(), 0.0, 1e-15);
  EXPECT_NEAR(z.select(1, 0).std(false).item<double>(), 1.0, 1e-15);
  EXPECT_TRUE(at::equal(z.select(1, 1), at::zeros({3}, at::kDouble)));  // constant: centred, not scaled
  const at::Tensor other = to_tensor(std::vector<double>{3, 6}, {1, 2});
  EXPECT_NEAR(n.apply(other)[0][1].item<double>(), 1.0, 1e-15);
}

}  // namespace
}  // namespace gradmatch::training
