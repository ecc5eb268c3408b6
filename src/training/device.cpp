#include "training/device.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if GRADMATCH_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "core/errors.hpp"

namespace gradmatch::training {

DeviceRequest parse_device_request(std::string_view text, std::string_view what) {
  if (text == "auto") return DeviceRequest::automatic;
  if (text == "cpu") return DeviceRequest::cpu;
  if (text == "cuda") return DeviceRequest::cuda;
  std::string msg(what);
  msg += ": unknown device '";
  msg += text;
  msg += "'; use \"auto\" (a GPU when LibTorch sees one, else the CPU), \"cpu\" or \"cuda\"";
  throw InputError(msg);
}

std::string to_string(DeviceRequest request) {
  switch (request) {
    case DeviceRequest::automatic: return "auto";
    case DeviceRequest::cpu: return "cpu";
    case DeviceRequest::cuda: return "cuda";
  }
  return "?";
}

bool built_with_cuda() { return GRADMATCH_WITH_CUDA != 0; }

int cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

std::string describe_device(const c10::Device& device, int threads) {
  if (device.is_cuda()) {
    std::string s = "cuda:" + std::to_string(device.index());
#if GRADMATCH_WITH_CUDA
    s += " (";
    s += at::cuda::getDeviceProperties(device.index())->name;
    s += ")";
#endif
    return s;
  }
  return distributed::DeviceAssignment{distributed::DeviceKind::cpu, 0, threads}.describe();
}

ComputeDevice resolve_device(DeviceRequest request, int local_rank, int local_size, int threads_override,
                             std::string_view what) {
  const int gpus = request == DeviceRequest::cpu ? 0 : cuda_device_count();
  if (request == DeviceRequest::cuda && gpus == 0) {
    std::string msg(what);
    msg += ": device = \"cuda\" but ";
    msg += built_with_cuda() ? "LibTorch sees no usable GPU on this node (check CUDA_VISIBLE_DEVICES, the driver and "
                               "the job's GPU request)"
                             : "this gradmatch was built with a LibTorch without CUDA (configure it with a CUDA "
                               "LibTorch, see docs/gpu.md)";
    msg += "; use device = \"cpu\" or \"auto\"";
    throw InputError(msg);
  }
  ComputeDevice out;
  out.assignment = distributed::assign_device(local_rank, local_size, gpus, threads_override);
  if (out.assignment.kind == distributed::DeviceKind::cuda)
    out.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(out.assignment.index));
  out.description = describe_device(out.device, out.assignment.threads);
  return out;
}

Tf32Scope::Tf32Scope(bool allow) : previous_(at::globalContext().allowTF32CuBLAS()) {
  at::globalContext().setAllowTF32CuBLAS(allow);
}

Tf32Scope::~Tf32Scope() { at::globalContext().setAllowTF32CuBLAS(previous_); }

void keep_freed_memory() {
#if defined(__GLIBC__)
  // Blocks from 32 MiB on (glibc's own upper limit for moving its threshold)
  // stay mapped and unmapped as by default: on the heap, a 64 MiB temporary
  // made and dropped in a loop left the heap fragmented and the process
  // 690 MB resident instead of 223 MB.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
#endif
}

ComputeDevice configure_compute(DeviceRequest request, int local_rank, int local_size, int threads_override,
                                std::string_view what) {
  keep_freed_memory();
  ComputeDevice out = resolve_device(request, local_rank, local_size, threads_override, what);
  at::set_num_threads(out.assignment.threads);
#if GRADMATCH_WITH_CUDA
  if (out.is_cuda()) c10::cuda::set_device(out.device.index());
#endif
  return out;
}

}  // namespace gradmatch::training
