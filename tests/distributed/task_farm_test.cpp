// The task farm at 1, 2 and 4 ranks: every item exactly once, balance under
// unequal task costs, agreement on a failing task, and the farm over a run
// store's pending rows, dearest first when the rows have costs.
#include "distributed/task_farm.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <thread>

#include "core/errors.hpp"
#include "io/run_store.hpp"

namespace gradmatch::distributed {
namespace {

using Clock = std::chrono::steady_clock;

/// How many times each item ran, summed over ranks (on every rank).
std::vector<double> run_counts(const Communicator& world, std::int64_t items, const std::vector<std::int64_t>& mine) {
  std::vector<double> counts(static_cast<std::size_t>(items), 0.0);
  for (std::int64_t i : mine) counts[static_cast<std::size_t>(i)] += 1.0;
  world.allreduce_sum(counts);
  return counts;
}

TEST(TaskFarm, RunsEveryItemExactlyOnceOverAllRanks) {
  const Communicator world;
  const std::int64_t items = 1000;
  std::vector<std::int64_t> mine;
  FarmOptions quiet;
  quiet.progress_interval_s = 0;
  const FarmStats stats = run_task_farm(
      world, items, [&](std::int64_t i) { mine.push_back(i); }, quiet);
  EXPECT_EQ(run_counts(world, items, mine), std::vector<double>(items, 1.0));
  ASSERT_EQ(stats.done_per_rank.size(), static_cast<std::size_t>(world.size()));
  EXPECT_EQ(stats.done_per_rank[static_cast<std::size_t>(world.rank())], static_cast<std::int64_t>(mine.size()));
  EXPECT_EQ(std::accumulate(stats.done_per_rank.begin(), stats.done_per_rank.end(), std::int64_t{0}), items);
  EXPECT_EQ(stats.items, items);
}

TEST(TaskFarm, AnEmptyListAndMoreRanksThanItemsWork) {
  const Communicator world;
  std::int64_t ran = 0;
  FarmOptions quiet;
  quiet.progress_interval_s = 0;
  run_task_farm(
      world, 0, [&](std::int64_t) { ++ran; }, quiet);
  EXPECT_EQ(ran, 0);
  std::vector<std::int64_t> mine;
  run_task_farm(
      world, 3, [&](std::int64_t i) { mine.push_back(i); }, quiet);
  EXPECT_EQ(run_counts(world, 3, mine), std::vector<double>(3, 1.0));
}

// Ten 60 ms tasks first, then thirty 2 ms ones (600 + 60 ms of work). A
// static split gives rank 0 of 2 all the expensive ones (620 ms); pulled
// dynamically, every rank's share of the work stays within about one
// expensive task of the ideal. The check is on the work each rank was handed
// (the sum of its tasks' costs), not on wall-clock times, which a loaded
// machine stretches (timings belong to scripts/bench_task_farm.sh).
TEST(TaskFarm, BalancesTasksOfVeryDifferentCosts) {
  const Communicator world;
  const auto cost_ms = [](std::int64_t i) { return i < 10 ? 60 : 2; };
  const double total_ms = 10 * 60 + 30 * 2;
  FarmOptions quiet;
  quiet.progress_interval_s = 0;
  world.barrier();
  double my_cost_ms = 0.0;
  const FarmStats stats = run_task_farm(
      world, 40,
      [&](std::int64_t i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(cost_ms(i)));
        my_cost_ms += cost_ms(i);
      },
      quiet);
  const std::vector<double> costs = world.allgather(my_cost_ms);
  EXPECT_DOUBLE_EQ(std::accumulate(costs.begin(), costs.end(), 0.0), total_ms);  // every task once
  const double ideal_ms = total_ms / world.size();
  const double largest = *std::max_element(costs.begin(), costs.end());
  EXPECT_LE(largest, ideal_ms + 2 * 60) << "ranks " << world.size();
  if (world.size() >= 2) {
    EXPECT_LT(largest, 10 * 60 + 10 * 2);  // less than what a static split's first rank is handed
    for (std::int64_t d : stats.done_per_rank) EXPECT_GT(d, 0);
  }
}

TEST(TaskFarm, AFailingTaskStopsEveryRankWhoAgreesOnTheFailure) {
  const Communicator world;
  FarmOptions quiet;
  quiet.progress_interval_s = 0;
  std::int64_t ran = 0;
  int failed_rank = -1;
  try {
    run_task_farm(
        world, 10'000,
        [&](std::int64_t i) {
          if (i == 5) throw InputError("task 5: bad input");
          ++ran;
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        },
        quiet);
    ADD_FAILURE() << "no failure on rank " << world.rank();
  } catch (const CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_EQ(std::string(f.what()), "task 5: bad input");
    failed_rank = f.failed_rank();
  }
  const std::vector<std::int64_t> ranks = world.allgather(static_cast<std::int64_t>(failed_rank));
  for (std::int64_t r : ranks) EXPECT_EQ(r, ranks[0]);  // one verdict everywhere
  EXPECT_GE(ranks[0], 0);
  std::vector<double> total{static_cast<double>(ran)};
  world.allreduce_sum(total);
  EXPECT_LT(total[0], 10'000.0);  // the others stopped early
}

TEST(TaskFarm, ProgressLinesShowDoneTotalRateAndEta) {
  EXPECT_EQ(progress_line("bootstrap", 250, 1000, 2.0),
            "gradmatch: bootstrap 250/1000 tasks (25.0%), 125.0 tasks/s, 0:00:02 elapsed, ETA 0:00:06");
  EXPECT_EQ(progress_line("bootstrap", 0, 1000, 0.5), "gradmatch: bootstrap 0/1000 tasks (0.0%), 0:00:00 elapsed");
  EXPECT_EQ(progress_line("sweep", 7, 7, 1.4),
            "gradmatch: sweep 7/7 tasks (100.0%), 5.0 tasks/s, 0:00:01 elapsed, ETA 0:00:00");
}

TEST(TaskFarm, ProgressLinesCountResumedTasksButTimeOnlyThisRun) {
  // 3 of 8 were done before; 1 of the remaining 5 took 10 s: 4 left at 0.1/s.
  EXPECT_EQ(progress_line("endpoints", 1, 5, 10.0, 3),
            "gradmatch: endpoints 4/8 tasks (50.0%), 10.0 s/task, 0:00:10 elapsed, ETA 0:00:40");
  EXPECT_EQ(clock_time(3 * 3600 + 25 * 60 + 7.9), "3:25:07");
}

TEST(TaskFarm, ProgressLinesOfSlowTasksGiveTheTimePerTask) {
  EXPECT_EQ(progress_line("chunks", 3, 80, 3 * 150.0, 0),
            "gradmatch: chunks 3/80 tasks (3.8%), 2.5 min/task, 0:07:30 elapsed, ETA 3:12:30");
  EXPECT_EQ(progress_line("cells", 2, 4, 2 * 5400.0, 0),
            "gradmatch: cells 2/4 tasks (50.0%), 1.5 h/task, 3:00:00 elapsed, ETA 3:00:00");
  EXPECT_EQ(clock_time(-1.0), "0:00:00");
}

/// Runs `run` with the options' progress lines written to memory; returns them.
std::string progress_of(FarmOptions o, const std::function<void(const FarmOptions&)>& run) {
  char* buf = nullptr;
  std::size_t len = 0;
  std::FILE* mem = open_memstream(&buf, &len);
  o.progress_stream = mem;
  run(o);
  std::fclose(mem);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

/// Runs the farm with its progress lines written to memory; returns them.
std::string farm_progress(const Communicator& world, std::int64_t items, const std::function<void(std::int64_t)>& work,
                          const FarmOptions& o) {
  return progress_of(o, [&](const FarmOptions& with) { run_task_farm(world, items, work, with); });
}

TEST(TaskFarm, ProgressLinesWithCostsTakeTheEtaFromTheWorkDone) {
  // The dearest of six first: one done in 231 s holds a quarter of the work,
  // so three times as long is left (by count it would be five tasks' worth).
  EXPECT_EQ(progress_line("chunks", 1, 6, 231.0, 0, 0.25),
            "gradmatch: chunks 1/6 tasks (16.7%), 3.9 min/task, 0:03:51 elapsed, ETA 0:11:33 by cost (25% of the work)");
  EXPECT_EQ(progress_line("chunks", 1, 6, 231.0, 0, -1.0),
            "gradmatch: chunks 1/6 tasks (16.7%), 3.9 min/task, 0:03:51 elapsed, ETA 0:19:15");
  EXPECT_EQ(progress_line("chunks", 0, 6, 5.0, 0, 0.0), "gradmatch: chunks 0/6 tasks (0.0%), 0:00:05 elapsed");
}

TEST(TaskFarm, TheCostEtaCountsWhatTheRunningItemsHaveHad) {
  // One rank, always busy: the rest at the finished items' rate.
  EXPECT_DOUBLE_EQ(cost_eta(0.25, 231.0), 693.0);
  EXPECT_DOUBLE_EQ(cost_eta(0.25, 231.0, 231.0, 1), 693.0);
  // Two ranks at 231 s, one item of a quarter of the work done in 231 s:
  // 693 s of busy time left, of which the other rank's running item has had
  // 231 s; over 2 ranks, 231 s.
  EXPECT_DOUBLE_EQ(cost_eta(0.25, 231.0, 231.0, 2), 231.0);
  EXPECT_EQ(progress_line("chunks", 1, 6, 231.0, 0, 0.25, 231.0, 2),
            "gradmatch: chunks 1/6 tasks (16.7%), 3.9 min/task, 0:03:51 elapsed, ETA 0:03:51 by cost (25% of the work)");
  // Never below zero, and unknown before any work is done.
  EXPECT_DOUBLE_EQ(cost_eta(0.9, 100.0, 150.0, 2), 0.0);
  EXPECT_TRUE(std::isinf(cost_eta(0.0, 10.0, 5.0, 2)));
}

TEST(TaskFarm, ItemCostsWeightTheProgressOfFinishedItems) {
  const Communicator world;
  FarmOptions o;
  o.stage = "cells";
  o.progress_interval_s = 1e-9;  // a line at every completion
  o.heartbeat_s = 0;
  o.item_costs = {3.0, 1.0};
  // Item 1 takes longer, so item 0 (three quarters of the work) finishes first.
  const std::string out = farm_progress(world, 2, [](std::int64_t i) {
    if (i != 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }, o);
  if (world.is_root()) {
    EXPECT_NE(out.find("2/2 tasks (100.0%)"), std::string::npos) << out;
    EXPECT_NE(out.find("by cost (100% of the work)"), std::string::npos) << out;
    if (world.size() == 1) {
      EXPECT_NE(out.find("1/2 tasks (50.0%)"), std::string::npos) << out;
      EXPECT_NE(out.find("by cost (75% of the work)"), std::string::npos) << out;
    }
  }
  FarmOptions wrong = o;
  wrong.item_costs.pop_back();
  EXPECT_THROW(run_task_farm(world, 2, [](std::int64_t) {}, wrong), std::invalid_argument);
}

TEST(TaskFarm, HeartbeatsStretchToATenthOfTheElapsedTimeAndAtMostFiveMinutes) {
  EXPECT_DOUBLE_EQ(heartbeat_interval(10.0, 5.0), 10.0);      // at first: the configured beat
  EXPECT_DOUBLE_EQ(heartbeat_interval(10.0, 600.0), 60.0);    // after 10 minutes: a line a minute
  EXPECT_DOUBLE_EQ(heartbeat_interval(10.0, 7200.0), 300.0);  // after 2 hours: every 5 minutes
  EXPECT_DOUBLE_EQ(heartbeat_interval(900.0, 7200.0), 900.0); // a longer beat asked for is kept
  EXPECT_DOUBLE_EQ(heartbeat_interval(0.05, 0.2), 0.05);
}

TEST(TaskFarm, RootPrintsAHeartbeatWhileATaskRuns) {
  const Communicator world;
  FarmOptions o;
  o.stage = "slow";
  o.progress_interval_s = 100.0;  // no completion lines: only heartbeats and the last
  o.heartbeat_s = 0.05;
  const std::string text = farm_progress(
      world, world.size(), [](std::int64_t) { std::this_thread::sleep_for(std::chrono::milliseconds(400)); }, o);
  if (!world.is_root()) return;
  std::size_t lines = 0;
  for (std::size_t at = 0; (at = text.find("gradmatch: slow ", at)) != std::string::npos; ++at) ++lines;
  EXPECT_GE(lines, 3u) << text;  // 400 ms of work at 50 ms heartbeats, plus the last line
  EXPECT_NE(text.find(std::to_string(world.size()) + "/" + std::to_string(world.size()) + " tasks (100.0%)"),
            std::string::npos)
      << text;
}

TEST(TaskFarm, RootPrintsAProgressLineAtTheEnd) {
  const Communicator world;
  FarmOptions o;
  o.stage = "demo";
  const std::string out = farm_progress(world, 12, [](std::int64_t) {}, o);
  if (world.is_root()) {
    EXPECT_NE(out.find("gradmatch: demo 12/12 tasks (100.0%)"), std::string::npos) << out;
  } else {
    EXPECT_EQ(out, "");
  }
}

/// A fresh run-store directory (rank 0's name on every rank) and the spec of
/// one table of `rows` rows, `width` values each.
struct ToyStore {
  ToyStore(const Communicator& world, const std::string& name, std::uint64_t rows, std::int64_t width)
      : dir(world.broadcast(
            (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()))).string())),
        spec{"toy", "seed = 1\n", "", {{"rows", width, {}}}} {
    if (world.is_root()) std::filesystem::remove_all(dir);
    world.barrier();
    for (std::uint64_t i = 0; i < rows; ++i) spec.tables[0].ids.push_back(i);
  }
  /// Closes `store` (collective) and removes the directory once every rank has.
  void remove(const Communicator& world, io::RunStore& store) const {
    store.close();
    world.barrier();
    if (world.is_root()) std::filesystem::remove_all(dir);
  }
  std::string dir;
  io::RunStoreSpec spec;
};

/// farm_table over table 0 of `store`, every row's result {1}: the rows
/// this rank ran, in the order it ran them.
std::vector<std::int64_t> rows_run_here(const Communicator& world, io::RunStore& store, const FarmOptions& options) {
  std::vector<std::int64_t> mine;
  farm_table(world, store, 0, [&](std::int64_t row) {
    mine.push_back(row);
    return std::vector<double>{1.0};
  }, options);
  return mine;
}

TEST(TaskFarm, FarmsTheStoresPendingRowsAndRecordsDivergedOnes) {
  const Communicator world;
  const ToyStore toy(world, "gradmatch-farm", 50, 2);
  FarmOptions quiet;
  quiet.progress_interval_s = 0;
  const auto compute = [](std::int64_t row) {
    return std::vector<double>{static_cast<double>(row), row == 7 ? std::nan("") : 2.0 * static_cast<double>(row)};
  };
  {
    io::RunStore store(world.get(), toy.dir, toy.spec);
    // First invocation: only rows below 20 get done (the rest "killed").
    const FarmStats stats = run_task_farm(
        world, 20, [&](std::int64_t i) { store.write(0, i, compute(i)); }, quiet);
    EXPECT_EQ(stats.items, 20);
  }
  io::RunStore store(world.get(), toy.dir, toy.spec);
  EXPECT_EQ(store.pending(0).size(), 30u);
  std::vector<double> counts(50, 0.0);
  const FarmStats stats = farm_table(
      world, store, 0,
      [&](std::int64_t row) {
        counts[static_cast<std::size_t>(row)] += 1;
        return compute(row);
      },
      quiet);
  world.allreduce_sum(counts);
  for (std::int64_t r = 0; r < 50; ++r) EXPECT_EQ(counts[static_cast<std::size_t>(r)], r < 20 ? 0.0 : 1.0) << r;
  EXPECT_EQ(stats.items, 30);
  EXPECT_EQ(stats.diverged, 0);  // row 7 diverged in the first invocation
  world.barrier();
  const auto status = store.read_status(0);
  const auto data = store.read_data(0);
  for (std::int64_t r = 0; r < 50; ++r) {
    EXPECT_EQ(status[static_cast<std::size_t>(r)], r == 7 ? io::TaskStatus::diverged : io::TaskStatus::done);
    EXPECT_EQ(data[static_cast<std::size_t>(2 * r)], static_cast<double>(r));
  }
  const auto attempts = store.read_attempts(0);
  EXPECT_EQ(attempts[0], 1);
  EXPECT_EQ(attempts[49], 2);
  toy.remove(world, store);
}

TEST(TaskFarm, HandsOutTheDearestPendingRowsFirstAndEachRowOnce) {
  // 30 rows, the first 6 done before; costs with ties. Each rank claims
  // items in the farm's order, so the rows a rank computes come dearest
  // first (ties in row order); on one rank that is the whole order.
  const Communicator world;
  const ToyStore toy(world, "gradmatch-farm-order", 30, 1);
  FarmOptions options;
  options.progress_interval_s = 0;
  for (std::int64_t r = 0; r < 30; ++r) options.row_costs.push_back(static_cast<double>((r * 7) % 10));
  {
    io::RunStore store(world.get(), toy.dir, toy.spec);
    const std::vector<double> zero{0.0};
    const FarmStats done = run_task_farm(world, 6, [&](std::int64_t i) { store.write(0, i, zero); }, options);
    EXPECT_EQ(done.items, 6);
  }
  io::RunStore store(world.get(), toy.dir, toy.spec);
  const std::vector<std::int64_t> mine = rows_run_here(world, store, options);
  const auto cost = [&](std::int64_t r) { return options.row_costs[static_cast<std::size_t>(r)]; };
  for (std::size_t k = 1; k < mine.size(); ++k) {
    EXPECT_GE(cost(mine[k - 1]), cost(mine[k])) << "rank " << world.rank() << ", claim " << k;
    if (cost(mine[k - 1]) == cost(mine[k])) {
      EXPECT_LT(mine[k - 1], mine[k]);
    }
  }
  const std::vector<double> counts = run_counts(world, 30, mine);
  for (std::int64_t r = 0; r < 30; ++r) EXPECT_EQ(counts[static_cast<std::size_t>(r)], r < 6 ? 0.0 : 1.0) << r;
  if (world.size() == 1) {
    std::vector<std::int64_t> expected;
    for (int c = 9; c >= 0; --c)
      for (std::int64_t r = 6; r < 30; ++r)
        if (cost(r) == c) expected.push_back(r);
    EXPECT_EQ(mine, expected);
  }
  // A cost list of the wrong length is a programming error, said as such.
  FarmOptions wrong = options;
  wrong.row_costs.pop_back();
  EXPECT_THROW(farm_table(world, store, 0, [](std::int64_t) { return std::vector<double>{1.0}; }, wrong),
               std::invalid_argument);
  toy.remove(world, store);
}

TEST(TaskFarm, RanksThatSeeOtherCostsTakeRankZerosSoEachRowRunsOnce) {
  // A study's costs may depend on what a rank sees (a GPU or not): each
  // rank's own costs here, but the hand-out order is rank 0's on all.
  const Communicator world;
  const ToyStore toy(world, "gradmatch-farm-rank-costs", 20, 1);
  FarmOptions options;
  options.progress_interval_s = 0;
  for (std::int64_t r = 0; r < 20; ++r) options.row_costs.push_back(static_cast<double>((r * 7 + world.rank() * 3) % 10));
  io::RunStore store(world.get(), toy.dir, toy.spec);
  const std::vector<std::int64_t> mine = rows_run_here(world, store, options);
  const std::vector<double> counts = run_counts(world, 20, mine);
  for (std::int64_t r = 0; r < 20; ++r) EXPECT_EQ(counts[static_cast<std::size_t>(r)], 1.0) << r;
  for (std::size_t k = 1; k < mine.size(); ++k)  // rank 0's costs: (7 row) mod 10, dearest first
    EXPECT_GE((mine[k - 1] * 7) % 10, (mine[k] * 7) % 10) << "rank " << world.rank() << ", claim " << k;
  toy.remove(world, store);
}

TEST(TaskFarm, FarmTableWeighsTheProgressByTheCostsOfTheRowsInTheOrderItHandsThemOut) {
  // Row 1 costs three times row 0 and goes first: on one rank the line after
  // it says three quarters of the work (a quarter if the costs were taken in
  // row order).
  const Communicator world;
  const ToyStore toy(world, "gradmatch-farm-costs", 2, 1);
  FarmOptions o;
  o.progress_interval_s = 1e-9;
  o.heartbeat_s = 0;
  o.row_costs = {1.0, 3.0};
  io::RunStore store(world.get(), toy.dir, toy.spec);
  const std::string out = progress_of(o, [&](const FarmOptions& with) {
    farm_table(world, store, 0, [](std::int64_t) { return std::vector<double>{1.0}; }, with);
  });
  if (world.is_root() && world.size() == 1) {
    EXPECT_NE(out.find("1/2 tasks (50.0%)"), std::string::npos) << out;
    EXPECT_NE(out.find("by cost (75% of the work)"), std::string::npos) << out;
    EXPECT_EQ(out.find("by cost (25% of the work)"), std::string::npos) << out;
  }
  if (world.is_root()) {
    EXPECT_NE(out.find("by cost (100% of the work)"), std::string::npos) << out;
  }
  toy.remove(world, store);
}

TEST(TaskFarm, FarmTableSaysNothingOfATableNoneOfWhoseTasksAreSelected) {
  const Communicator world;
  const ToyStore toy(world, "gradmatch-farm-selection", 3, 1);
  FarmOptions o;
  o.progress_interval_s = 1e-9;
  o.heartbeat_s = 0;
  io::RunStore store(world.get(), toy.dir, toy.spec);
  o.only_rows = std::vector<std::int64_t>{};
  const std::string none = progress_of(o, [&](const FarmOptions& with) {
    farm_table(world, store, 0, [](std::int64_t) { return std::vector<double>{1.0}; }, with);
  });
  EXPECT_EQ(none, "");
  o.only_rows = std::vector<std::int64_t>{1};
  const std::string one = progress_of(o, [&](const FarmOptions& with) {
    farm_table(world, store, 0, [](std::int64_t) { return std::vector<double>{1.0}; }, with);
  });
  if (world.is_root()) {
    EXPECT_NE(one.find("(selected) 1/1 tasks (100.0%)"), std::string::npos) << one;
  }
  toy.remove(world, store);
}

}  // namespace
}  // namespace gradmatch::distributed
