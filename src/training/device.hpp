#pragma once
// The compute device of a rank, as LibTorch sees it.
//
// A study's `device` key asks for "auto" (CUDA when LibTorch sees a GPU,
// else the CPU), "cpu" or "cuda". resolve_device() takes the GPU count from
// LibTorch (torch::cuda::device_count(): 0 for a LibTorch built without
// CUDA), hands it with the rank's place on its node to
// distributed::assign_device() (CUDA device local_rank mod G) and returns
// the torch::Device every model, data set and replicate batch of the rank
// lives on. "cuda" where no GPU is usable is bad input (InputError).
//
// Everything in the training layer follows its inputs' device: models are
// made on a device (make_mlp), data moved with Dataset::to, and gradients,
// HVPs and flows are computed where the parameters live; only results
// handed to the core (std::vector<double>) come back to the host.
#include <c10/core/Device.h>

#include <string>
#include <string_view>

#include "distributed/device_assignment.hpp"

namespace gradmatch::training {

enum class DeviceRequest { automatic, cpu, cuda };
/// "auto" | "cpu" | "cuda"; InputError naming `what` (e.g. "FILE: key 'device'") otherwise.
DeviceRequest parse_device_request(std::string_view text, std::string_view what = "device");
std::string to_string(DeviceRequest request);

/// True when this gradmatch was compiled against a LibTorch with CUDA.
bool built_with_cuda();
/// GPUs LibTorch can use in this process (0 without CUDA or without a GPU).
int cuda_device_count();

struct ComputeDevice {
  c10::Device device{c10::kCPU};
  distributed::DeviceAssignment assignment;
  std::string description;  ///< "cuda:0 (NVIDIA H200)" or "cpu (1 thread)": run_info.json's words
  bool is_cuda() const { return device.is_cuda(); }
};

/// The device of the rank with local rank `local_rank` of `local_size` on
/// its node and `threads_override` threads (0: one; see
/// distributed::threads_from_environment). Throws InputError for "cuda"
/// when LibTorch has no usable GPU (the message says what to change,
/// naming `what`). Pure apart from asking LibTorch for the GPU count.
ComputeDevice resolve_device(DeviceRequest request, int local_rank, int local_size, int threads_override,
                             std::string_view what = "device");

/// Makes glibc malloc keep freed memory for reuse instead of handing large
/// temporaries back to the kernel and faulting them in again at the next
/// step: blocks under 32 MiB come from the heap (mmap threshold 32 MiB),
/// whose top is returned only beyond 64 MiB (trim threshold; top pad
/// 16 MiB). glibc's default moves its thresholds as blocks are freed, but a
/// step that frees several temporaries at once still crosses its trim
/// threshold every time. Measured on one CPU core (docs/performance.md,
/// "Memory allocator"): a batched replicate step 2.6x faster at 64
/// replicates, an elastic-net study 1.2x, peak memory within -5% to +6%. Blocks of
/// 32 MiB and more are mapped as by default: on the heap they fragmented it.
/// Idempotent; nothing where the C library is not glibc.
void keep_freed_memory();

/// keep_freed_memory(), resolve_device(), then makes it current: LibTorch's intra-op thread
/// count, and on CUDA the current device (cuBLAS handles, default streams).
ComputeDevice configure_compute(DeviceRequest request, int local_rank, int local_size, int threads_override,
                                std::string_view what = "device");

/// "cuda:0 (NVIDIA H200)" (the GPU's name where LibTorch has CUDA) or "cpu (1 thread)".
std::string describe_device(const c10::Device& device, int threads);

/// While alive, lets cuBLAS compute float32 matrix products in TF32 (tensor
/// cores of A100 and later GPUs: a 10-bit mantissa instead of 23, inputs
/// rounded, sums kept in float32) when `allow`, or forbids it; restores the
/// previous setting (LibTorch's default: forbidden) when it ends. No effect
/// on the CPU or on float64. TrainOptions::tf32 opens one around training.
class Tf32Scope {
 public:
  explicit Tf32Scope(bool allow);
  ~Tf32Scope();
  Tf32Scope(const Tf32Scope&) = delete;
  Tf32Scope& operator=(const Tf32Scope&) = delete;

 private:
  bool previous_;
};

}  // namespace gradmatch::training
