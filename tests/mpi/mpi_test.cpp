#include "mpi/mpi.hpp"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include "core/errors.hpp"

namespace gradmatch::mpi {
namespace {

TEST(Collective, EveryRankAgreesOnTheLowestFailingRankAndItsMessage) {
  const Communicator world;
  // Every rank but rank 0 fails alike (rank 0 fails when alone): among equal
  // exit codes the lowest failing rank is named, with its own message.
  const int lowest = world.size() > 1 ? 1 : 0;
  try {
    collective(world, [&] {
      if (world.rank() >= lowest) throw InputError("bad.h5: something is wrong on rank " + std::to_string(world.rank()));
    });
    ADD_FAILURE() << "collective() did not throw on rank " << world.rank();
  } catch (const CollectiveFailure& f) {
    EXPECT_EQ(f.failed_rank(), lowest);
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_EQ(std::string(f.what()), "bad.h5: something is wrong on rank " + std::to_string(lowest));
  }
}

TEST(Collective, TheHighestExitCodeWinsWhenRanksFailDifferently) {
  const Communicator world;
  if (world.size() < 2) GTEST_SKIP() << "needs two ranks";
  // Rank 0 fails first in rank order but with the lower code (1, a library
  // error); rank 1's bad input (2) wins.
  try {
    collective(world, [&] {
      if (world.rank() == 0) throw std::runtime_error("library");
      if (world.rank() == 1) throw InputError("input");
    });
    ADD_FAILURE();
  } catch (const CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_EQ(f.failed_rank(), 1);
    EXPECT_EQ(std::string(f.what()), "input");
  }
}

TEST(Collective, SucceedsQuietlyWhenNoRankFails) {
  const Communicator world;
  int calls = 0;
  EXPECT_NO_THROW(collective(world, [&] { ++calls; }));
  EXPECT_EQ(calls, 1);
}

TEST(Communicator, AllreduceSumAddsEveryRanksValues) {
  const Communicator world;
  std::vector<double> v{1.0, static_cast<double>(world.rank())};
  world.allreduce_sum(v);
  const double n = world.size();
  EXPECT_DOUBLE_EQ(v[0], n);
  EXPECT_DOUBLE_EQ(v[1], n * (n - 1) / 2);
  EXPECT_EQ(world.broadcast(world.is_root() ? "from root" : "ignored"), "from root");
  EXPECT_GE(world.local_rank(), 0);
  EXPECT_LT(world.local_rank(), world.local_size());
}

TEST(BlockRange, PartitionsRowsIntoContiguousNearlyEqualBlocks) {
  for (int size : {1, 2, 3, 4, 7}) {
    for (std::int64_t m : {0, 1, 5, 10, 101}) {
      std::int64_t next = 0;
      for (int r = 0; r < size; ++r) {
        const auto [b, e] = block_range(m, r, size);
        EXPECT_EQ(b, next);
        EXPECT_LE(e - b, m / size + 1);
        EXPECT_GE(e - b, m / size);
        next = e;
      }
      EXPECT_EQ(next, m);
    }
  }
}

TEST(Communicator, GathersEveryRanksValueInRankOrder) {
  const Communicator world;
  const auto ints = world.allgather(static_cast<std::int64_t>(10 * world.rank() + 1));
  const auto doubles = world.allgather(0.5 * world.rank());
  ASSERT_EQ(ints.size(), static_cast<std::size_t>(world.size()));
  for (int r = 0; r < world.size(); ++r) {
    EXPECT_EQ(ints[static_cast<std::size_t>(r)], 10 * r + 1);
    EXPECT_EQ(doubles[static_cast<std::size_t>(r)], 0.5 * r);
  }
  const auto texts = world.gather(std::string(static_cast<std::size_t>(world.rank()), 'x'));
  if (world.is_root()) {
    ASSERT_EQ(texts.size(), static_cast<std::size_t>(world.size()));
    for (int r = 0; r < world.size(); ++r) EXPECT_EQ(texts[static_cast<std::size_t>(r)], std::string(r, 'x'));
  } else {
    EXPECT_TRUE(texts.empty());
  }
  EXPECT_FALSE(processor_name().empty());
}

}  // namespace
}  // namespace gradmatch::mpi

namespace gradmatch::mpi {
namespace {

TEST(Environment, ProvidesAtLeastTheFunneledThreadLevel) {
  int provided = MPI_THREAD_SINGLE;
  ASSERT_EQ(MPI_Query_thread(&provided), MPI_SUCCESS);
  EXPECT_GE(provided, MPI_THREAD_FUNNELED);
}

TEST(Environment, ASecondEnvironmentReportsTheLevelInForceAndLeavesMpiRunning) {
  int provided = MPI_THREAD_SINGLE;
  ASSERT_EQ(MPI_Query_thread(&provided), MPI_SUCCESS);
  {
    const Environment nested(nullptr, nullptr);
    EXPECT_EQ(nested.thread_level(), provided);
  }
  int finalized = 1;
  MPI_Finalized(&finalized);
  EXPECT_EQ(finalized, 0);  // only the Environment that initialised MPI finalises it
  const Communicator world;
  EXPECT_NO_THROW(world.barrier());
}

TEST(Environment, RefusesALowerThreadLevelThanRequiredNamingBoth) {
  EXPECT_NO_THROW(require_thread_level(MPI_THREAD_FUNNELED, MPI_THREAD_FUNNELED));
  EXPECT_NO_THROW(require_thread_level(MPI_THREAD_MULTIPLE, MPI_THREAD_FUNNELED));
  try {
    require_thread_level(MPI_THREAD_SINGLE, MPI_THREAD_FUNNELED);
    ADD_FAILURE() << "no MpiError";
  } catch (const MpiError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("provides thread support MPI_THREAD_SINGLE"), std::string::npos) << what;
    EXPECT_NE(what.find("needs MPI_THREAD_FUNNELED"), std::string::npos) << what;
  }
  int provided = MPI_THREAD_SINGLE;
  ASSERT_EQ(MPI_Query_thread(&provided), MPI_SUCCESS);
  if (provided < MPI_THREAD_MULTIPLE) {
    EXPECT_THROW(Environment(nullptr, nullptr, MPI_THREAD_MULTIPLE), MpiError);
  }
}

TEST(Check, AFailingCallThrowsMpiErrorWithTheCallAndLocation) {
  const Communicator world;
  int out = 0;
  try {
    // Root rank -1 is invalid: MPI_ERRORS_RETURN hands back an error code.
    GRADMATCH_MPI_CHECK(MPI_Bcast(&out, 1, MPI_INT, -1, world.get()));
    ADD_FAILURE() << "no MpiError";
  } catch (const MpiError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("MPI_Bcast(&out, 1, MPI_INT, -1, world.get()) failed at ", 0), 0u) << what;
    EXPECT_NE(what.find("mpi_test.cpp:"), std::string::npos) << what;
  }
}

TEST(Communicator, BroadcastsTheRootsIntegerAndNamesTheMpiLibrary) {
  const Communicator world;
  const int root = world.size() - 1;  // the last rank (rank 0 when alone)
  EXPECT_EQ(world.broadcast(std::int64_t{world.rank()} * 7 + 3, root), std::int64_t{root} * 7 + 3);
  // A vector, of another length on the other ranks: the root's, whole.
  const std::vector<double> mine(static_cast<std::size_t>(world.rank() + 2), 0.5 + world.rank());
  EXPECT_EQ(world.broadcast(mine, root), std::vector<double>(static_cast<std::size_t>(root + 2), 0.5 + root));
  const std::string version = library_version();
  EXPECT_FALSE(version.empty());
  EXPECT_EQ(version.find('\n'), std::string::npos);
  EXPECT_EQ(thread_level_name(MPI_THREAD_SERIALIZED), "MPI_THREAD_SERIALIZED");
}

// The suite runs many mpirun jobs side by side (ctest -j). Open MPI binds
// each job's rank r to core r unless told otherwise, so on a 16-core GPU
// host every two-rank test computed on cores 0 and 1 while fourteen stayed
// idle: the MPI tests ran 25x longer there than on a 2-core machine. The
// tests' launcher therefore binds to nothing (tests/CMakeLists.txt); a rank
// may run on every core its launcher (the parent process) may.
TEST(TestLaunch, RanksMayUseEveryCoreTheirLauncherMaySoSideBySideJobsDoNotShareCores) {
  cpu_set_t own;
  cpu_set_t launcher;
  CPU_ZERO(&own);
  CPU_ZERO(&launcher);
  ASSERT_EQ(sched_getaffinity(0, sizeof own, &own), 0);
  ASSERT_EQ(sched_getaffinity(getppid(), sizeof launcher, &launcher), 0) << "the launcher's (pid " << getppid() << ") cores";
  EXPECT_TRUE(CPU_EQUAL(&own, &launcher))
      << "rank " << Communicator().rank() << " may run on " << CPU_COUNT(&own) << " of its launcher's "
      << CPU_COUNT(&launcher) << " cores: the launcher bound it (Open MPI: --bind-to none)";
}

}  // namespace
}  // namespace gradmatch::mpi
