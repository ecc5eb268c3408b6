#pragma once
// The task farm: ranks pull tasks dynamically from one shared counter.
//
// A stage has n items, indices 0..n-1 into a list every rank holds
// identically (for a study, the tasks its run store lists as pending). A
// counter in an MPI window on rank 0 (MPI_Win_allocate) hands out the next
// index: a rank takes one with MPI_Fetch_and_op(+1) inside a passive-target
// epoch (MPI_Win_lock_all), runs it, and takes the next, until the counter
// passes n. Under early stopping tasks cost anything from a few steps to
// max_steps; pulling keeps every rank busy until the list runs out, so ranks
// finish within about one task of each other, where a static split leaves
// the rank with the expensive block working alone. Rank 0 computes too: on a
// 2-core machine a dedicated master would waste half of it.
//
// Results never depend on which rank ran what: a task's random draws are
// keyed by (study seed, task id) (core Rng), and the run store keeps results
// by row, so 1, 2 or 4 ranks give identical outputs.
//
// Progress: a second counter slot counts finished items; rank 0 prints
//   gradmatch: <stage> 1234/8435 tasks (14.6%), 812.3 tasks/s, 0:00:01 elapsed, ETA 0:00:09
// to stderr at most once per interval when it finishes a task of its own,
// at least once per heartbeat while tasks run (a thread of rank 0 reads the
// counter in rank 0's own window memory, no MPI call: between rank 0's MPI
// calls it may lag on networks where rank 0 serves the atomics), and once at
// the end. Tasks a resumed run found done count in D and T; the rate and
// ETA are this run's.
//
// Failure: a task that throws stops its rank and moves the counter to n, so
// every other rank stops after its current task; then the ranks agree
// (collective()) and every rank throws the same CollectiveFailure naming the
// failing rank and its message. Results already written stay on disk.
//
// RMA progress: on one node (shared memory) and on RDMA networks the atomics
// need nothing from rank 0; over plain TCP an MPI library may serve them only
// when rank 0 enters MPI, i.e. between its own tasks: still correct, only
// slower to hand out work.
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mpi/mpi.hpp"

namespace gradmatch::io {
class RunStore;
}

namespace gradmatch::distributed {

struct FarmOptions {
  std::string stage = "tasks";          ///< the stage's name in progress lines
  double progress_interval_s = 2.0;     ///< at most one line per interval; <= 0: no lines
  /// While tasks run, a line every heartbeat_interval(heartbeat_s, elapsed)
  /// seconds; <= 0: none.
  double heartbeat_s = 10.0;
  std::int64_t resumed = 0;             ///< items done before this run (shown in D/T)
  std::FILE* progress_stream = stderr;  ///< rank 0 prints here
  /// farm_table only: run just the pending rows that are in this list (rows
  /// of the table, ascending); nullopt: every pending row.
  std::optional<std::vector<std::int64_t>> only_rows;
  /// farm_table only: a relative cost for every row of the table. Pending
  /// rows are then handed out dearest first, ties in row order (longest
  /// processing time first: on a grid of unequal tasks the slow ones do not
  /// start last while the other ranks run out of work). Empty: row order.
  /// Only the order changes: each row's result is its own.
  std::vector<double> row_costs;
  /// run_task_farm: a relative cost for every item (farm_table sets them
  /// from row_costs, in hand-out order). The ETA then weights the finished
  /// items by their costs: with the dearest handed out first, a count of
  /// finished items overstates what is left; the time the running items
  /// have had counts as work done at the finished items' rate (cost_eta).
  /// It is only as good as the costs: the dropout grid on a GPU, first cell
  /// of six done at 231 s on two ranks, about 6 min left: 19 min by count,
  /// 5.5 min by its costs. Empty, or costs that do not sum to a positive
  /// number: by count.
  std::vector<double> item_costs;
};

/// What a farm did, identical on every rank.
struct FarmStats {
  std::int64_t items = 0;
  std::vector<std::int64_t> done_per_rank;  ///< items each rank ran
  std::vector<double> busy_per_rank;        ///< seconds each rank spent inside work()
  std::vector<double> cpu_per_rank;         ///< CPU seconds of those (less than busy: the rank was descheduled)
  double wall_seconds = 0.0;                ///< start to the last rank's finish
  std::int64_t diverged = 0;                ///< results with non-finite values (farm_table only)
  /// Busy time over ranks x wall time: 1 when no rank ever waited.
  double efficiency() const;
};

/// Collective: runs work(i) for every i in [0, items) exactly once over the
/// ranks of `comm`, handing items out dynamically. Throws CollectiveFailure
/// on every rank when work() threw on any.
FarmStats run_task_farm(const Communicator& comm, std::int64_t items, const std::function<void(std::int64_t)>& work,
                        const FarmOptions& options = {});

/// Collective: runs the rows of `table` that were pending when `store` was
/// opened (those of them in options.only_rows, when given): compute(row) returns the row's result (store.width(table)
/// values), which the rank that computed it writes to the store at once
/// (status diverged when a value is not finite). Stage name: the table's.
FarmStats farm_table(const Communicator& comm, io::RunStore& store, std::size_t table,
                     const std::function<std::vector<double>(std::int64_t row)>& compute, FarmOptions options = {});

/// The wait before the next heartbeat line: heartbeat_s at first, then a
/// tenth of the time elapsed (a line a minute after 10 minutes), never more
/// than 300 s unless heartbeat_s is larger -- long tasks do not flood the log.
double heartbeat_interval(double heartbeat_s, double elapsed_s);

/// The time left when the finished items hold `work_done` (in (0, 1]) of
/// this run's cost. With their run times summed (busy_done_s > 0) on
/// `ranks` ranks: the busy time the rest needs at the finished items' rate,
/// busy_done_s x (1 - work_done) / work_done, less what the running items
/// have had (ranks x elapsed_s - busy_done_s), over the ranks, at least 0
/// (with the dearest first, a rank's long item is then not counted as not
/// begun). Without: elapsed_s x (1 - work_done) / work_done.
double cost_eta(double work_done, double elapsed_s, double busy_done_s = -1.0, int ranks = 1);

/// "gradmatch: <stage> D/T tasks (P%), R tasks/s (below 1/s: "S s/task", "M min/task", "H h/task"), H:MM:SS elapsed, ETA H:MM:SS"
/// with D = resumed + done and T = resumed + total; the rate and ETA from
/// this run's `done`, left out while it is 0. With work_done, the fraction
/// of this run's work (by cost) that is finished, in (0, 1], the ETA is
/// cost_eta(work_done, elapsed_s, busy_done_s, ranks) instead, and the line
/// names it: "..., ETA H:MM:SS by cost (W% of the work)".
std::string progress_line(const std::string& stage, std::int64_t done, std::int64_t total, double elapsed_s,
                          std::int64_t resumed = 0, double work_done = -1.0, double busy_done_s = -1.0,
                          int ranks = 1);

/// Seconds as H:MM:SS (rounded down; "0:00:00" below one second).
std::string clock_time(double seconds);

}  // namespace gradmatch::distributed
