// Which cores each rank may run on, and crowded hosts.
#include "distributed/placement.hpp"

#include <gtest/gtest.h>
#include <sched.h>

#include <stdexcept>

namespace gradmatch::distributed {
namespace {

TEST(CpuList, WritesRunsOfConsecutiveCoresAsRanges) {
  EXPECT_EQ(cpu_list_text({}), "");
  EXPECT_EQ(cpu_list_text({0}), "0");
  EXPECT_EQ(cpu_list_text({0, 1}), "0-1");
  EXPECT_EQ(cpu_list_text({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(cpu_list_text({5, 7, 9}), "5,7,9");
}

TEST(CpuList, ReadsBackWhatItWritesAndRefusesAnythingElse) {
  for (const std::vector<int>& cpus : std::vector<std::vector<int>>{{}, {0}, {3, 4, 5, 9}, {0, 2, 4, 5, 6, 127}})
    EXPECT_EQ(parse_cpu_list(cpu_list_text(cpus)), cpus) << cpu_list_text(cpus);
  for (const char* bad : {"a", "1-", "-1", "3-1", "1,,2", "1,", "2,1", "1-3,2", " 1", "1 "})
    EXPECT_THROW(parse_cpu_list(bad), std::invalid_argument) << bad;
}

TEST(CrowdedHosts, NamesAHostWhoseRanksComputeWithMoreThreadsThanTheyMayUseCores) {
  // Host a: one thread per rank, each rank on its own core: fine. Host b:
  // two ranks of four threads, each bound to one core (mpirun's default
  // binding with GRADMATCH_THREADS_PER_RANK=4): 8 threads on 2 cores.
  // Host c: four one-thread ranks allowed the same two cores. Host d: a
  // rank whose cores are unknown is never judged.
  const std::vector<RankPlacement> ranks{{"a", 1, {0}}, {"a", 1, {1}},    {"b", 4, {0}}, {"b", 4, {1}},
                                         {"c", 1, {0, 1}}, {"c", 1, {0, 1}}, {"c", 1, {0, 1}}, {"c", 1, {0, 1}},
                                         {"d", 8, {}}};
  const std::vector<std::string> lines = crowded_hosts(ranks);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("host b: 2 ranks compute with 8 threads in all on 2 cores (0-1): their threads take turns", 0),
            0u)
      << lines[0];
  EXPECT_EQ(lines[1].rfind("host c: 4 ranks compute with 4 threads in all on 2 cores (0-1)", 0), 0u) << lines[1];
  EXPECT_NE(lines[0].find("--map-by slot:PE=<threads>"), std::string::npos);
  // One rank alone, one thread per core it may use: fine; the same threads
  // on fewer cores: named.
  EXPECT_TRUE(crowded_hosts({{"e", 4, {0, 1, 2, 3}}}).empty());
  EXPECT_EQ(crowded_hosts({{"e", 4, {2}}}).at(0).rfind("host e: 1 rank computes with 4 threads in all on 1 core (2)", 0), 0u);
}

TEST(AllowedCpus, FollowsTheCallingThreadsAffinity) {
  const std::vector<int> all = allowed_cpus();
  ASSERT_FALSE(all.empty());
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(all.back(), &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const std::vector<int> bound = allowed_cpus();
  ASSERT_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
  EXPECT_EQ(bound, std::vector<int>{all.back()});
  EXPECT_EQ(allowed_cpus(), all);
}

TEST(GatherPlacement, GivesTheRootEveryRanksHostThreadsAndCoresInRankOrder) {
  const Communicator comm;
  const std::vector<RankPlacement> placement = gather_placement(comm, 1 + comm.rank());
  if (!comm.is_root()) {
    EXPECT_TRUE(placement.empty());
    return;
  }
  ASSERT_EQ(static_cast<int>(placement.size()), comm.size());
  for (int r = 0; r < comm.size(); ++r) {
    EXPECT_EQ(placement[static_cast<std::size_t>(r)].host, mpi::processor_name()) << r;  // one machine here
    EXPECT_EQ(placement[static_cast<std::size_t>(r)].threads, 1 + r);
    EXPECT_FALSE(placement[static_cast<std::size_t>(r)].cpus.empty()) << r;
  }
  EXPECT_EQ(placement[0].cpus, allowed_cpus());
}

}  // namespace
}  // namespace gradmatch::distributed
