#pragma once
// Keyed dropout masks: the same masks for a model trained alone and for the
// same model as one replicate of a batched model (replicates.hpp), on any
// device.
//
// A model's mask stream has a 64-bit key. At its t-th training forward pass
// (t = 0, 1, ...) the mask of hidden layer l, an activation [rows, cols], is
//   k     = mix64(key + (t * 256 + l + 1) * gamma64)          (the layer's key)
//   z_e   = low32(low 32 bits of k + (e + 1) * gamma32),  e = row * cols + col
//   keep  = z_e <= floor((1 - rate) 2^32) - 1 - 2^31   as signed int32
// and the activation is multiplied by keep / (1 - rate) (inverted dropout),
// with mix64 SplitMix64's finaliser, low32 Wellons' lowbias32 hash, gamma64
// = 0x9E3779B97F4A7C15 and gamma32 = 0x9E3779B9 (at rate 0 every unit is
// kept). keep is Bernoulli(1 - rate) to 2^-32. The per-element part is one
// pass (a loop on the CPU, a kernel on a GPU) or, portably, elementwise
// integer tensor arithmetic (wrapping multiplication, masked logical
// shifts, int32); masks depend on (key, t, l, e) only -- not on the device,
// the path, the batch composition or the other replicates.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <span>

namespace gradmatch::training {

/// SplitMix64's finaliser and the lowbias32 hash (the scalar references of the tensor code).
std::uint64_t splitmix64_mix(std::uint64_t z);
std::uint32_t lowbias32(std::uint32_t x);
/// Whether element e of hidden layer `layer`'s mask at step `step` keeps its unit (the scalar reference).
bool dropout_keeps(std::uint64_t key, std::int64_t step, std::int64_t layer, std::int64_t element, double rate);

/// How DropoutStreams::multipliers computes the masks (the same values either way):
///   fused       one pass: a loop on the CPU, a CUDA kernel on a GPU where one
///               was built (GRADMATCH_CUDA_KERNELS), else tensor_ops;
///   tensor_ops  elementwise tensor arithmetic, about a dozen passes (the
///               portable path, kept for the tests that compare the two).
enum class MaskPath { fused, tensor_ops };

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
  at::Tensor multipliers(std::int64_t step, std::int64_t layer, std::int64_t rows, std::int64_t cols,
                         MaskPath path = MaskPath::fused) const;
  /// The streams of replicates `index` (int64, on the device), in that order.
  DropoutStreams select(const at::Tensor& index) const;

 private:
  at::Tensor keys_;        // [R] int64
  at::Tensor thresholds_;  // [R] int32: floor((1 - rate) 2^32) - 1 - 2^31
  at::Tensor scales_;      // [R] values' dtype: 1 / (1 - rate)
  mutable at::Tensor offsets_;  // (e + 1) gamma of the last shape asked for
  bool active_ = false;
};

}  // namespace gradmatch::training
