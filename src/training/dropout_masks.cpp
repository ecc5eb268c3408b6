#include "training/dropout_masks.hpp"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/rng.hpp"

#if GRADMATCH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "training/dropout_masks_cuda.hpp"
#endif

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

constexpr std::uint32_t kGamma32 = 0x9E3779B9U;
constexpr std::uint32_t kLow1 = 0x7FEB352DU;
constexpr std::uint32_t kLow2 = 0x846CA68BU;

std::int64_t as_signed32(std::uint32_t v) { return static_cast<std::int32_t>(v); }

// keep iff z <= threshold as signed int32: z is uniform on [-2^31, 2^31), so
// that happens with probability floor((1 - rate) 2^32) / 2^32 (1 at rate 0).
std::int32_t threshold(double rate) {
  if (rate <= 0.0) return std::numeric_limits<std::int32_t>::max();
  const auto kept = static_cast<std::uint32_t>(std::ldexp(1.0 - rate, 32));  // < 2^32 since 1 - rate < 1
  return static_cast<std::int32_t>(kept - 1U + 0x80000000U);
}

// Logical right shift of int64 / int32 values (ATen's shift of signed values is arithmetic).
at::Tensor shift_right(const at::Tensor& z, int s) {
  const std::uint64_t mask = z.scalar_type() == at::kInt ? 0xFFFFFFFFULL >> s : ~std::uint64_t{0} >> s;
  return at::bitwise_right_shift(z, s).bitwise_and_(as_signed(mask));
}

// SplitMix64's finaliser, in place (int64).
at::Tensor& mix_(at::Tensor& z) {
  z.bitwise_xor_(shift_right(z, 30)).mul_(as_signed(kMix1));
  z.bitwise_xor_(shift_right(z, 27)).mul_(as_signed(kMix2));
  return z.bitwise_xor_(shift_right(z, 31));
}

// Wellons' lowbias32 integer hash, in place (int32).
at::Tensor& lowbias32_(at::Tensor& z) {
  z.bitwise_xor_(shift_right(z, 16)).mul_(as_signed32(kLow1));
  z.bitwise_xor_(shift_right(z, 15)).mul_(as_signed32(kLow2));
  return z.bitwise_xor_(shift_right(z, 16));
}

// z_e of the header: the hash of element e under a layer's 32-bit key.
std::uint32_t element_hash(std::uint32_t layer_key, std::int64_t e) {
  return lowbias32(layer_key + (static_cast<std::uint32_t>(e) + 1U) * kGamma32);
}

}  // namespace

std::uint32_t lowbias32(std::uint32_t x) {
  x ^= x >> 16;
  x *= kLow1;
  x ^= x >> 15;
  x *= kLow2;
  return x ^ (x >> 16);
}

std::uint64_t splitmix64_mix(std::uint64_t z) { return mix64(z); }

bool dropout_keeps(std::uint64_t key, std::int64_t step, std::int64_t layer, std::int64_t element, double rate) {
  const std::uint64_t k = splitmix64_mix(key + layer_offset(step, layer));
  return static_cast<std::int32_t>(element_hash(static_cast<std::uint32_t>(k), element)) <= threshold(rate);
}

DropoutStreams::DropoutStreams(std::span<const std::uint64_t> keys, std::span<const double> rates,
                               const at::TensorOptions& value_options) {
  if (keys.size() != rates.size() || keys.empty()) throw InputError("dropout masks: need one key and one rate per model");
  std::vector<std::int64_t> k;
  std::vector<std::int32_t> t;
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
  thresholds_ = at::tensor(t, at::TensorOptions().dtype(at::kInt)).to(device);
  scales_ = at::tensor(s, at::TensorOptions().dtype(at::kDouble)).to(device, value_options.dtype().toScalarType());
}

at::Tensor DropoutStreams::multipliers(std::int64_t step, std::int64_t layer, std::int64_t rows, std::int64_t cols,
                                      MaskPath path) const {
  const std::int64_t r = replicates();
  at::Tensor layer_keys = keys_.add(as_signed(layer_offset(step, layer)));
  mix_(layer_keys);
  // The low 32 bits as a signed int32 (exact: no out-of-range conversion).
  layer_keys = layer_keys.bitwise_and_(std::int64_t{0xFFFFFFFF})
                   .bitwise_xor_(std::int64_t{0x80000000})
                   .sub_(std::int64_t{0x80000000})
                   .to(at::kInt);
  // One pass over the output: a loop on the CPU (the scalar reference's
  // arithmetic), the kernel of dropout_masks_cuda.cu on a GPU where it was built.
  constexpr bool cuda_kernel = GRADMATCH_CUDA_KERNELS != 0;
  if (path == MaskPath::fused && (keys_.is_cpu() || (cuda_kernel && keys_.is_cuda()))) {
    at::Tensor out = at::empty({r, rows, cols}, scales_.options());
    const at::Tensor lk = layer_keys.contiguous(), th = thresholds_.contiguous(), sc = scales_.contiguous();
    const std::int64_t per = rows * cols;
#if GRADMATCH_CUDA_KERNELS
    if (keys_.is_cuda()) {
      // On the tensors' GPU and its current stream, whatever the thread's current device.
      const c10::cuda::CUDAGuard guard(keys_.device());
      const int rc = cuda_kernels::dropout_multipliers(lk.data_ptr<std::int32_t>(), th.data_ptr<std::int32_t>(),
                                                       sc.data_ptr(), sc.scalar_type() == at::kDouble, per, r * per,
                                                       out.data_ptr(),
                                                       at::cuda::getCurrentCUDAStream(keys_.device().index()).stream());
      if (rc != 0) throw std::runtime_error("dropout masks: CUDA kernel launch failed (error " + std::to_string(rc) + ")");
      return out;
    }
#endif
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "dropout_multipliers", [&] {
      const std::int32_t* k = lk.data_ptr<std::int32_t>();
      const std::int32_t* t = th.data_ptr<std::int32_t>();
      const scalar_t* scale = sc.data_ptr<scalar_t>();
      scalar_t* o = out.data_ptr<scalar_t>();
      for (std::int64_t i = 0; i < r; ++i) {
        const auto key = static_cast<std::uint32_t>(k[i]);
        const std::int32_t keep_at_most = t[i];
        const scalar_t s = scale[i];
        scalar_t* row = o + i * per;
        at::parallel_for(0, per, 16384, [&](std::int64_t begin, std::int64_t end) {
          for (std::int64_t e = begin; e < end; ++e)
            row[e] = static_cast<std::int32_t>(element_hash(key, e)) <= keep_at_most ? s : scalar_t(0);
        });
      }
    });
    return out;
  }
  // (e + 1) gamma32 for every element, kept for the next call of the same shape.
  if (!offsets_.defined() || offsets_.numel() != rows * cols || offsets_.size(1) != rows)
    offsets_ = at::arange(1, rows * cols + 1, keys_.options().dtype(at::kInt))
                   .mul_(as_signed32(kGamma32))
                   .view({1, rows, cols});
  at::Tensor z = offsets_.add(layer_keys.view({r, 1, 1}));
  lowbias32_(z);
  return at::where(z.le(thresholds_.view({r, 1, 1})), scales_.view({r, 1, 1}), at::zeros({}, scales_.options()));
}

DropoutStreams DropoutStreams::select(const at::Tensor& index) const {
  DropoutStreams out;
  out.keys_ = keys_.index_select(0, index);
  out.thresholds_ = thresholds_.index_select(0, index);
  out.scales_ = scales_.index_select(0, index);
  out.active_ = active_;
  out.offsets_ = offsets_;
  return out;
}

}  // namespace gradmatch::training
