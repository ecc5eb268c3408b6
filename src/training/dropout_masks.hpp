#pragma once
// Keyed dropout masks: the same masks for a model trained alone and for the
// same model as one replicate of a batched model (replicates.hpp), on any
// device.
//
// A model's mask stream has a 64-bit key. At its t-th training forward pass
// (t = 0, 1, ...) the mask of hidden layer l, an activation [rows, cols], is
//   k     = mix(key + (t * 256 + l + 1) * gamma)           (the layer's key)
//   z_e   = mix(k + (e + 1) * gamma),  e = row * cols + col (its elements)
//   keep  = (z_e >> 11) < floor((1 - rate) 2^53)
// and the activation is multiplied by keep / (1 - rate) (inverted dropout),
// with mix the SplitMix64 finaliser and gamma = 0x9E3779B97F4A7C15: z_e is
// SplitMix64's output stream seeded with k, so keep is Bernoulli(1 - rate)
// to 2^-53. Everything is elementwise int64 tensor arithmetic (wrapping
// multiplication, masked logical shifts), so masks depend on (key, t, l, e)
// only -- not on the device, the batch composition or the other replicates.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <span>

namespace gradmatch::training {

/// SplitMix64's finaliser (the scalar reference of the tensor code).
std::uint64_t splitmix64_mix(std::uint64_t z);
/// Whether element e of hidden layer `layer`'s mask at step `step` keeps its unit (the scalar reference).
bool dropout_keeps(std::uint64_t key, std::int64_t step, std::int64_t layer, std::int64_t element, double rate);

/// The mask streams of R models (R = 1 for a model alone).
class DropoutStreams {
 public:
  DropoutStreams() = default;
  /// keys[r], rates[r] in [0, 1); multipliers in `value_options`' dtype and device.
  DropoutStreams(std::span<const std::uint64_t> keys, std::span<const double> rates,
                 const at::TensorOptions& value_options);

  bool active() const { return active_; }  ///< some rate is positive
  std::int64_t replicates() const { return keys_.defined() ? keys_.size(0) : 0; }
  /// keep / (1 - rate) of hidden layer `layer` at `step`: [R, rows, cols].
  at::Tensor multipliers(std::int64_t step, std::int64_t layer, std::int64_t rows, std::int64_t cols) const;
  /// The streams of replicates `index` (int64, on the device), in that order.
  DropoutStreams select(const at::Tensor& index) const;

 private:
  at::Tensor keys_;        // [R] int64
  at::Tensor thresholds_;  // [R] int64: floor((1 - rate) 2^53)
  at::Tensor scales_;      // [R] values' dtype: 1 / (1 - rate)
  bool active_ = false;
};

}  // namespace gradmatch::training
