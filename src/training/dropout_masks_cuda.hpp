#pragma once
// The CUDA kernel behind DropoutStreams::multipliers on CUDA tensors
// (dropout_masks_cuda.cu; built with GRADMATCH_CUDA_KERNELS only).
#include <cstdint>

namespace gradmatch::training::cuda_kernels {

/// out[r * per + e] = (int32) lowbias32(layer_keys[r] + (e + 1) gamma32) <= thresholds[r] ? scales[r] : 0
/// for every r, e (total = R * per), float or double `scales`/`out`, on the
/// CUDA stream `stream`. Returns the cudaError_t of the launch (0: success).
int dropout_multipliers(const std::int32_t* layer_keys, const std::int32_t* thresholds, const void* scales,
                        bool float64, std::int64_t per_replicate, std::int64_t total, void* out, void* stream);

}  // namespace gradmatch::training::cuda_kernels
