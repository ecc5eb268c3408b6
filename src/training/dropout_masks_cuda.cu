// The dropout multipliers of dropout_masks.hpp in one CUDA pass: the same
// function as the elementwise tensor code (bit for bit), without its dozen
// passes over int32 temporaries. Built only with a CUDA compiler and a
// CUDA LibTorch (cmake/gpu.cmake: GRADMATCH_CUDA_KERNELS); no LibTorch
// headers here.
#include <cuda_runtime.h>

#include <cstdint>

#include "training/dropout_masks_cuda.hpp"

namespace gradmatch::training::cuda_kernels {
namespace {

__device__ inline std::uint32_t lowbias32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352DU;
  x ^= x >> 15;
  x *= 0x846CA68BU;
  return x ^ (x >> 16);
}

template <class T>
__global__ void multipliers_kernel(const std::int32_t* layer_keys, const std::int32_t* thresholds, const T* scales,
                                   std::int64_t per_replicate, std::int64_t total, T* out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const std::int64_t r = i / per_replicate;
    const auto e = static_cast<std::uint32_t>(i - r * per_replicate);
    const std::uint32_t z = lowbias32(static_cast<std::uint32_t>(layer_keys[r]) + (e + 1U) * 0x9E3779B9U);
    out[i] = static_cast<std::int32_t>(z) <= thresholds[r] ? scales[r] : T(0);
  }
}

template <class T>
int launch(const std::int32_t* layer_keys, const std::int32_t* thresholds, const T* scales,
           std::int64_t per_replicate, std::int64_t total, T* out, void* stream) {
  if (total == 0) return 0;
  constexpr int threads = 256;
  const std::int64_t wanted = (total + threads - 1) / threads;
  const int blocks = static_cast<int>(wanted < 65535 * 8 ? wanted : 65535 * 8);
  multipliers_kernel<T><<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(layer_keys, thresholds, scales,
                                                                                     per_replicate, total, out);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int dropout_multipliers(const std::int32_t* layer_keys, const std::int32_t* thresholds, const void* scales,
                        bool float64, std::int64_t per_replicate, std::int64_t total, void* out, void* stream) {
  return float64 ? launch(layer_keys, thresholds, static_cast<const double*>(scales), per_replicate, total,
                          static_cast<double*>(out), stream)
                 : launch(layer_keys, thresholds, static_cast<const float*>(scales), per_replicate, total,
                          static_cast<float*>(out), stream);
}

}  // namespace gradmatch::training::cuda_kernels
