#include "distributed/mpi.hpp"

#include <gtest/gtest.h>

#include "core/errors.hpp"

namespace gradmatch::distributed {
namespace {

TEST(Collective, EveryRankAgreesOnTheLowestFailingRankAndItsMessage) {
  const Communicator world;
  const int failing = world.size() - 1;  // the last rank fails (rank 0 when alone)
  try {
    collective(world, [&] {
      if (world.rank() == failing) throw InputError("bad.h5: something is wrong on rank " + std::to_string(failing));
    });
    ADD_FAILURE() << "collective() did not throw on rank " << world.rank();
  } catch (const CollectiveFailure& f) {
    EXPECT_EQ(f.failed_rank(), failing);
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_EQ(std::string(f.what()), "bad.h5: something is wrong on rank " + std::to_string(failing));
  }
}

TEST(Collective, TheHighestExitCodeWinsWhenRanksFailDifferently) {
  const Communicator world;
  if (world.size() < 2) GTEST_SKIP() << "needs two ranks";
  try {
    collective(world, [&] {
      if (world.rank() == 0) throw InputError("input");
      if (world.rank() == 1) throw std::runtime_error("library");
    });
    ADD_FAILURE();
  } catch (const CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_EQ(f.failed_rank(), 0);
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
}  // namespace gradmatch::distributed
