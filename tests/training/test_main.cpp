// gtest main for the training tests: one LibTorch (and BLAS) thread, so test
// timings do not depend on the machine and ranks never oversubscribe cores.
// cuBLAS is deterministic (as the GPU tests ask) only with a fixed workspace,
// read when its first handle is made: set it first, unless the caller did.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdlib>

int main(int argc, char** argv) {
  ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  at::set_num_threads(1);
  at::set_num_interop_threads(1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
