#include "training/dropout_masks.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "core/errors.hpp"

namespace gradmatch::training {
namespace {

constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ULL;
constexpr std::uint64_t kMix1 = 0xBF58476D1CE4E5B9ULL;
constexpr std::uint64_t kMix2 = 0x94D049BB133111EBULL;
constexpr std::int64_t kLayerSlots = 256;

std::int64_t as_signed(std::uint64_t v) { return static_cast<std::int64_t>(v); }

std::uint64_t layer_offset(std::int64_t step, std::int64_t layer) {
  return (static_cast<std::uint64_t>(step) * kLayerSlots + static_cast<std::uint64_t>(layer) + 1) * kGamma;
}

std::int64_t threshold(double rate) { return static_cast<std::int64_t>(std::floor((1.0 - rate) * 0x1p53)); }

// Logical right shift of int64 values (ATen's shift of signed values is arithmetic).
at::Tensor shift_right(const at::Tensor& z, int s) {
  return at::bitwise_right_shift(z, s).bitwise_and(as_signed(~std::uint64_t{0} >> s));
}

at::Tensor mix(at::Tensor z) {
  z = z.bitwise_xor(shift_right(z, 30)).mul(as_signed(kMix1));
  z = z.bitwise_xor(shift_right(z, 27)).mul(as_signed(kMix2));
  return z.bitwise_xor(shift_right(z, 31));
}

}  // namespace

std::uint64_t splitmix64_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * kMix1;
  z = (z ^ (z >> 27)) * kMix2;
  return z ^ (z >> 31);
}

bool dropout_keeps(std::uint64_t key, std::int64_t step, std::int64_t layer, std::int64_t element, double rate) {
  const std::uint64_t k = splitmix64_mix(key + layer_offset(step, layer));
  const std::uint64_t z = splitmix64_mix(k + (static_cast<std::uint64_t>(element) + 1) * kGamma);
  return static_cast<std::int64_t>(z >> 11) < threshold(rate);
}

DropoutStreams::DropoutStreams(std::span<const std::uint64_t> keys, std::span<const double> rates,
                               const at::TensorOptions& value_options) {
  if (keys.size() != rates.size() || keys.empty()) throw InputError("dropout masks: need one key and one rate per model");
  std::vector<std::int64_t> k, t;
  std::vector<double> s;
  for (std::size_t r = 0; r < keys.size(); ++r) {
    if (!(rates[r] >= 0.0 && rates[r] < 1.0)) throw InputError("dropout masks: every rate must lie in [0, 1)");
    active_ = active_ || rates[r] > 0.0;
    k.push_back(as_signed(keys[r]));
    t.push_back(threshold(rates[r]));
    s.push_back(1.0 / (1.0 - rates[r]));
  }
  const at::Device device = value_options.device();
  keys_ = at::tensor(k, at::TensorOptions().dtype(at::kLong)).to(device);
  thresholds_ = at::tensor(t, at::TensorOptions().dtype(at::kLong)).to(device);
  scales_ = at::tensor(s, at::TensorOptions().dtype(at::kDouble)).to(device, value_options.dtype().toScalarType());
}

at::Tensor DropoutStreams::multipliers(std::int64_t step, std::int64_t layer, std::int64_t rows, std::int64_t cols) const {
  const std::int64_t r = replicates();
  const at::Tensor layer_keys = mix(keys_.add(as_signed(layer_offset(step, layer)))).view({r, 1, 1});
  const at::Tensor element = at::arange(1, rows * cols + 1, keys_.options()).view({1, rows, cols});
  const at::Tensor z = mix(element.mul(as_signed(kGamma)).add(layer_keys));
  const at::Tensor keep = shift_right(z, 11).lt(thresholds_.view({r, 1, 1}));
  return keep.to(scales_.scalar_type()).mul(scales_.view({r, 1, 1}));
}

DropoutStreams DropoutStreams::select(const at::Tensor& index) const {
  DropoutStreams out;
  out.keys_ = keys_.index_select(0, index);
  out.thresholds_ = thresholds_.index_select(0, index);
  out.scales_ = scales_.index_select(0, index);
  out.active_ = active_;
  return out;
}

}  // namespace gradmatch::training
