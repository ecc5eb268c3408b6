// Keyed dropout masks: the tensor code equals its scalar reference, keeps
// units at the rate asked for, and gives each replicate of a batch the masks
// it gets alone.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/errors.hpp"
#include "training/dropout_masks.hpp"

namespace gradmatch::training {
namespace {

TEST(DropoutMasks, SplitMix64FinaliserMatchesItsPublishedFirstOutputs) {
  // SplitMix64 seeded with 0: outputs mix(k * gamma), k = 1, 2 (Vigna's splitmix64.c).
  EXPECT_EQ(splitmix64_mix(0x9E3779B97F4A7C15ULL), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(splitmix64_mix(2 * 0x9E3779B97F4A7C15ULL), 0x6E789E6AA1B965F4ULL);
}

TEST(DropoutMasks, TensorMasksEqualTheScalarReferenceElementForElement) {
  const std::vector<std::uint64_t> keys{0, 12345, 0xFFFFFFFFFFFFFFFFULL};
  const std::vector<double> rates{0.5, 0.1, 0.3};
  const DropoutStreams streams(keys, rates, at::TensorOptions().dtype(at::kDouble));
  for (const std::int64_t step : {0, 7}) {
    for (const std::int64_t layer : {0, 2}) {
      const at::Tensor m = streams.multipliers(step, layer, 5, 9).contiguous();
      ASSERT_EQ(m.sizes(), (std::vector<std::int64_t>{3, 5, 9}));
      const double* v = m.data_ptr<double>();
      for (std::size_t r = 0; r < keys.size(); ++r)
        for (std::int64_t e = 0; e < 45; ++e) {
          const bool keep = dropout_keeps(keys[r], step, layer, e, rates[r]);
          EXPECT_EQ(v[static_cast<std::int64_t>(r) * 45 + e], keep ? 1.0 / (1.0 - rates[r]) : 0.0)
              << "r " << r << " step " << step << " layer " << layer << " element " << e;
        }
    }
  }
}

TEST(DropoutMasks, TheOnePassLoopEqualsTheTensorArithmeticBitForBit) {
  const std::vector<std::uint64_t> keys{7, 0xDEADBEEFULL, 0xFFFFFFFFFFFFFFFFULL, 2605};
  const std::vector<double> rates{0.0, 0.05, 0.5, 0.3};
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    const DropoutStreams streams(keys, rates, at::TensorOptions().dtype(dtype));
    for (const std::int64_t step : {0, 3, 1000003}) {
      // 130 x 257 = 33,410 elements per replicate: more than one parallel chunk.
      const at::Tensor fused = streams.multipliers(step, 1, 130, 257, MaskPath::fused);
      const at::Tensor reference = streams.multipliers(step, 1, 130, 257, MaskPath::tensor_ops);
      ASSERT_EQ(fused.scalar_type(), dtype);
      EXPECT_TRUE(at::equal(fused, reference)) << "step " << step << " dtype " << dtype;
    }
  }
}

TEST(DropoutMasks, KeepUnitsWithProbabilityOneMinusTheRate) {
  const std::vector<std::uint64_t> keys{2605};
  for (const double rate : {0.05, 0.3, 0.5}) {
    const std::vector<double> rates{rate};
    const DropoutStreams streams(keys, rates, at::TensorOptions().dtype(at::kDouble));
    const std::int64_t n = 200 * 500;
    const double kept = streams.multipliers(3, 1, 200, 500).ne(0.0).sum().item<double>() / static_cast<double>(n);
    const double sd = std::sqrt(rate * (1.0 - rate) / static_cast<double>(n));
    EXPECT_NEAR(kept, 1.0 - rate, 5.0 * sd) << rate;
  }
}

TEST(DropoutMasks, EachReplicateOfABatchDrawsTheMasksItDrawsAlone) {
  const std::vector<std::uint64_t> keys{11, 22, 33, 44};
  const std::vector<double> rates{0.0, 0.2, 0.5, 0.2};
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const DropoutStreams batch(keys, rates, opts);
  EXPECT_TRUE(batch.active());
  const at::Tensor together = batch.multipliers(4, 1, 6, 8);
  for (std::size_t r = 0; r < keys.size(); ++r) {
    const DropoutStreams alone(std::span<const std::uint64_t>(&keys[r], 1), std::span<const double>(&rates[r], 1), opts);
    EXPECT_TRUE(at::equal(together[static_cast<std::int64_t>(r)], alone.multipliers(4, 1, 6, 8)[0])) << r;
  }
  EXPECT_TRUE(at::equal(together[0], at::ones({6, 8}, opts)));  // rate 0 keeps everything, scale 1
  // A compacted batch (replicates 3 and 1) keeps their streams.
  const at::Tensor picked = batch.select(at::tensor(std::vector<std::int64_t>{3, 1}, at::kLong)).multipliers(4, 1, 6, 8);
  EXPECT_TRUE(at::equal(picked[0], together[3]));
  EXPECT_TRUE(at::equal(picked[1], together[1]));
  // Masks change with the step and the layer.
  EXPECT_FALSE(at::equal(batch.multipliers(5, 1, 6, 8)[2], together[2]));
  EXPECT_FALSE(at::equal(batch.multipliers(4, 0, 6, 8)[2], together[2]));
}

TEST(DropoutMasks, RejectsRatesOutsideZeroToOne) {
  const std::vector<std::uint64_t> keys{1};
  const std::vector<double> bad{1.0};
  EXPECT_THROW(DropoutStreams(keys, bad, at::TensorOptions()), InputError);
}

}  // namespace
}  // namespace gradmatch::training
