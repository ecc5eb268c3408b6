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

TEST(Device, ARankKeepsFreedMemorySoAStepsTemporariesStopFaultingIn) {
  // A step's temporaries: eight 4 MiB tensors (1,024 pages of 4 KiB each)
  // alive at once, then all dropped. glibc's default returns the heap's top
  // once it holds twice the largest block freed so far, so every round
  // faults about 7,000 pages in again. Kept, the rounds stop faulting once
  // the heap has grown: the last 10 of 40 together fault in less than one
  // tensor's pages.
  keep_freed_memory();
  constexpr std::int64_t kFloats = 1 << 20;
  constexpr long kPages = (kFloats * 4) / 4096;
  std::vector<long> faults;
  double sum = 0.0;
  for (int round = 0; round < 40; ++round) {
    const long before = minor_page_faults();
    {
      std::vector<torch::Tensor> temporaries;
      for (int k = 0; k < 8; ++k) temporaries.push_back(torch::empty({kFloats}, torch::kFloat).fill_(1.0));
      for (const auto& t : temporaries) sum += t[round].item<double>();
    }
    faults.push_back(minor_page_faults() - before);
  }
  EXPECT_EQ(sum, 8.0 * 40);
  long last = 0;
  std::string each;
  for (std::size_t r = 0; r < faults.size(); ++r) {
    if (r >= 30) last += faults[r];
    each += std::to_string(faults[r]) + " ";
  }
  EXPECT_LT(last, kPages) << "page faults of each round: " << each;
}

}  // namespace
}  // namespace gradmatch::training
