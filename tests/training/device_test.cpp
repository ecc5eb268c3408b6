// The rank's compute device: "auto" | "cpu" | "cuda" against what LibTorch
// sees (on a machine without a usable GPU: the CPU, and "cuda" refused).
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <string>

#include "core/errors.hpp"
#include "training/device.hpp"

namespace gradmatch::training {
namespace {

TEST(Device, ParsesTheThreeRequestsAndNamesTheKeyOtherwise) {
  EXPECT_EQ(parse_device_request("auto"), DeviceRequest::automatic);
  EXPECT_EQ(parse_device_request("cpu"), DeviceRequest::cpu);
  EXPECT_EQ(parse_device_request("cuda"), DeviceRequest::cuda);
  try {
    parse_device_request("gpu", "run.toml: key 'device'");
    ADD_FAILURE() << "\"gpu\" was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("run.toml: key 'device'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("\"cuda\""), std::string::npos) << e.what();
  }
}

TEST(Device, CpuIsTheCpuWithTheRanksThreads) {
  const ComputeDevice d = resolve_device(DeviceRequest::cpu, 1, 2, 0);
  EXPECT_TRUE(d.device.is_cpu());
  EXPECT_EQ(d.description, "cpu (1 thread)");
  EXPECT_EQ(resolve_device(DeviceRequest::cpu, 0, 1, 4).description, "cpu (4 threads)");
}

TEST(Device, AutoTakesTheRanksGpuWhenLibTorchSeesOneElseTheCpu) {
  const int gpus = cuda_device_count();
  if (!built_with_cuda()) {
    EXPECT_EQ(gpus, 0);
  }
  const ComputeDevice d = resolve_device(DeviceRequest::automatic, 0, 1, 0);
  if (gpus == 0) {
    EXPECT_TRUE(d.device.is_cpu());
    EXPECT_EQ(d.description, "cpu (1 thread)");
  } else {
    EXPECT_TRUE(d.device.is_cuda());
    EXPECT_EQ(d.device.index(), 0);
    EXPECT_EQ(d.description.rfind("cuda:0 (", 0), 0u) << d.description;  // cuda:0 (<the GPU's name>)
    // local rank 3 of 4: device 3 mod G
    EXPECT_EQ(resolve_device(DeviceRequest::automatic, 3, 4, 0).device.index(), 3 % gpus);
  }
}

TEST(Device, CudaWithoutAUsableGpuIsBadInputSayingWhatToChange) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  try {
    resolve_device(DeviceRequest::cuda, 0, 1, 0, "run.toml: key 'device'");
    ADD_FAILURE() << "device = \"cuda\" was accepted without a GPU";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("run.toml: key 'device'"), std::string::npos) << m;
    EXPECT_NE(m.find("device = \"cpu\""), std::string::npos) << m;
  }
}

// LibTorch's TF32 switch is process-wide: a scope sets it and gives back
// whatever was there, nested or not.
TEST(Device, ATf32ScopeSetsLibTorchsSwitchAndRestoresWhatWasThere) {
  const bool before = at::globalContext().allowTF32CuBLAS();
  {
    const Tf32Scope on(true);
    EXPECT_TRUE(at::globalContext().allowTF32CuBLAS());
    {
      const Tf32Scope off(false);
      EXPECT_FALSE(at::globalContext().allowTF32CuBLAS());
    }
    EXPECT_TRUE(at::globalContext().allowTF32CuBLAS());
  }
  EXPECT_EQ(at::globalContext().allowTF32CuBLAS(), before);
}

long minor_page_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

TEST(Device, ARankKeepsFreedMemorySoARepeatedLargeTensorStopsFaulting) {
  // A 64 MiB tensor (16,384 pages of 4 KiB) made, written and dropped, as a
  // training step does with its temporaries. glibc's default mmaps anything
  // above 32 MiB afresh and unmaps it when freed: 16,384 faults every time.
  // Kept, the heap's pages are faulted in over the first few rounds and then
  // reused: rounds 11-30 together fault in less than one tensor's pages.
  keep_freed_memory();
  constexpr std::int64_t kFloats = 16 << 20;
  constexpr long kPages = (kFloats * 4) / 4096;
  const auto round = [&](int i) { return torch::empty({kFloats}, torch::kFloat).fill_(1.0)[i].item<double>(); };
  for (int i = 0; i < 10; ++i) round(i);
  const long before = minor_page_faults();
  double sum = 0.0;
  for (int i = 0; i < 20; ++i) sum += round(i);
  const long faults = minor_page_faults() - before;
  EXPECT_EQ(sum, 20.0);
  EXPECT_LT(faults, kPages) << "20 rounds faulted " << faults << " pages (without keep_freed_memory: ~" << 20 * kPages
                            << ")";
}

}  // namespace
}  // namespace gradmatch::training
