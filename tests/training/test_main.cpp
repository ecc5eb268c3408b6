// gtest main for the training tests: one LibTorch (and BLAS) thread, so test
// timings do not depend on the machine and ranks never oversubscribe cores.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  at::set_num_threads(1);
  at::set_num_interop_threads(1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
