// GoogleTest main for MPI tests: every rank runs every test; only rank 0
// prints, and the verdict is all-reduced so rank 0 reports a failure that
// happened on any rank (and every rank exits with the same code).
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi/mpi.hpp"

int main(int argc, char** argv) {
  gradmatch::mpi::Environment env(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  const gradmatch::mpi::Communicator world;
  if (!world.is_root()) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int local = RUN_ALL_TESTS();
  int global = local;
  MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (world.is_root() && global != local)
    std::fprintf(stderr, "[  FAILED  ] a test failed on another rank (see its output above)\n");
  return global;
}
