// Rank -> device: GPU = local rank mod GPUs per node, else CPU with one
// compute thread per rank unless configured.
#include "distributed/device.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

#include "core/errors.hpp"

namespace gradmatch::distributed {
namespace {

TEST(AssignDevice, GivesEachLocalRankTheGpuOfItsRankModuloTheGpusPerNode) {
  for (int r = 0; r < 8; ++r) {
    const DeviceAssignment a = assign_device(r, 8, 4, 0);
    EXPECT_EQ(a.kind, DeviceKind::cuda);
    EXPECT_EQ(a.index, r % 4);
    EXPECT_EQ(a.threads, 1);
  }
  EXPECT_EQ(assign_device(3, 4, 4, 0).describe(), "cuda:3 (1 thread)");
  // --gpus-per-task=1: every rank sees one GPU, its own.
  EXPECT_EQ(assign_device(5, 8, 1, 0).index, 0);
}

TEST(AssignDevice, WithoutGpusEveryRankGetsTheCpuWithOneThreadUnlessConfigured) {
  EXPECT_EQ(assign_device(1, 2, 0, 0), (DeviceAssignment{DeviceKind::cpu, 0, 1}));
  EXPECT_EQ(assign_device(0, 1, 0, 6), (DeviceAssignment{DeviceKind::cpu, 0, 6}));
  EXPECT_EQ(assign_device(0, 1, 0, 6).describe(), "cpu (6 threads)");
  EXPECT_EQ(assign_device(1, 2, 2, 4).threads, 4);
}

TEST(AssignDevice, RejectsALocalRankOutsideTheNode) {
  EXPECT_THROW(assign_device(2, 2, 0, 0), std::invalid_argument);
  EXPECT_THROW(assign_device(-1, 2, 0, 0), std::invalid_argument);
  EXPECT_THROW(assign_device(0, 0, 0, 0), std::invalid_argument);
  EXPECT_THROW(assign_device(0, 1, -1, 0), std::invalid_argument);
}

TEST(AssignDevice, ReadsTheThreadCountFromTheEnvironment) {
  ::unsetenv("GRADMATCH_THREADS_PER_RANK");
  EXPECT_EQ(threads_from_environment(), 0);
  ::setenv("GRADMATCH_THREADS_PER_RANK", "3", 1);
  EXPECT_EQ(threads_from_environment(), 3);
  ::setenv("GRADMATCH_THREADS_PER_RANK", "three", 1);
  EXPECT_THROW(threads_from_environment(), InputError);
  ::setenv("GRADMATCH_THREADS_PER_RANK", "0", 1);
  EXPECT_THROW(threads_from_environment(), InputError);
  ::unsetenv("GRADMATCH_THREADS_PER_RANK");
}

}  // namespace
}  // namespace gradmatch::distributed
