// Dynamic task farm over an MPI RMA counter (see task_farm.hpp).
#include "distributed/task_farm.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <ctime>
#include <cmath>
#include <exception>
#include <iterator>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "io/run_store.hpp"

namespace gradmatch::distributed {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// CPU seconds this thread has run.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// int64 counters in a window on rank 0, updated atomically by any rank.
class SharedCounters {
 public:
  SharedCounters(MPI_Comm comm, int slots) {
    int rank = 0;
    GRADMATCH_MPI_CHECK(MPI_Comm_rank(comm, &rank));
    const MPI_Aint bytes = rank == 0 ? static_cast<MPI_Aint>(slots * sizeof(std::int64_t)) : 0;
    GRADMATCH_MPI_CHECK(MPI_Win_allocate(bytes, sizeof(std::int64_t), MPI_INFO_NULL, comm, &base_, &win_));
    GRADMATCH_MPI_CHECK(MPI_Win_set_errhandler(win_, MPI_ERRORS_RETURN));
    GRADMATCH_MPI_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_));
    locked_ = true;
    if (rank == 0)
      for (int s = 0; s < slots; ++s) exchange(s, 0);  // atomic stores: the window's memory starts undefined
    GRADMATCH_MPI_CHECK(MPI_Barrier(comm));
  }
  ~SharedCounters() {
    if (locked_) MPI_Win_unlock_all(win_);
    if (win_ != MPI_WIN_NULL) MPI_Win_free(&win_);
  }
  SharedCounters(const SharedCounters&) = delete;
  SharedCounters& operator=(const SharedCounters&) = delete;

  /// Adds `value` to slot `slot`; returns the previous value.
  std::int64_t fetch_add(int slot, std::int64_t value) { return op(slot, value, MPI_SUM); }
  /// Stores `value` in slot `slot`; returns the previous value.
  std::int64_t exchange(int slot, std::int64_t value) { return op(slot, value, MPI_REPLACE); }
  /// Rank 0 only, from any thread: slot `slot` as rank 0's own memory holds
  /// it now, read without an MPI call (for progress display; it may lag).
  std::int64_t peek(int slot) const {
    return std::atomic_ref<std::int64_t>(static_cast<std::int64_t*>(base_)[slot]).load(std::memory_order_relaxed);
  }

  /// Collective: ends the epoch and frees the window.
  void free() {
    locked_ = false;
    GRADMATCH_MPI_CHECK(MPI_Win_unlock_all(win_));
    GRADMATCH_MPI_CHECK(MPI_Win_free(&win_));
  }

 private:
  std::int64_t op(int slot, std::int64_t value, MPI_Op operation) {
    std::int64_t previous = 0;
    GRADMATCH_MPI_CHECK(MPI_Fetch_and_op(&value, &previous, MPI_INT64_T, 0, slot, operation, win_));
    GRADMATCH_MPI_CHECK(MPI_Win_flush(0, win_));
    return previous;
  }

  void* base_ = nullptr;
  MPI_Win win_ = MPI_WIN_NULL;
  bool locked_ = false;
};

constexpr int kNext = 0;      // the next item to hand out
constexpr int kDone = 1;      // items finished
constexpr int kDoneWork = 2;  // the finished items' costs, in units of kWorkUnit of the whole
constexpr int kBusyMs = 3;    // the finished items' run times, milliseconds (with costs)
constexpr double kWorkUnit = 1e-12;

/// Rank 0's progress lines: at most one per interval at task completions,
/// one per heartbeat from a thread of its own, and the last.
class ProgressMeter {
 public:
  /// by_cost: the items' costs weight the progress (their sum is positive);
  /// ranks: how many run items at once.
  ProgressMeter(const FarmOptions& o, std::int64_t total, bool root, bool by_cost, int ranks)
      : options_(o),
        total_(total),
        by_cost_(by_cost),
        ranks_(ranks),
        enabled_(root && o.progress_interval_s > 0 && o.progress_stream),
        start_(Clock::now()),
        last_(start_) {}
  ~ProgressMeter() { stop_heartbeat(); }
  ProgressMeter(const ProgressMeter&) = delete;
  ProgressMeter& operator=(const ProgressMeter&) = delete;

  /// Starts the heartbeat thread (rank 0), which reads the finished items
  /// (and their work) every heartbeat.
  void start_heartbeat(const SharedCounters& counters) {
    if (!enabled_ || options_.heartbeat_s <= 0 || total_ == 0) return;
    heartbeat_ = std::thread([this, &counters] {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!stopping_) {
        const double wait = heartbeat_interval(options_.heartbeat_s, seconds_since(start_));
        if (stop_.wait_for(lock, std::chrono::duration<double>(wait), [this] { return stopping_; })) break;
        // The count first: every finished item added its run time and work before its count.
        const std::int64_t done = counters.peek(kDone);
        const std::int64_t work = counters.peek(kDoneWork);
        const std::int64_t busy_ms = counters.peek(kBusyMs);
        print(done, work, busy_ms);
      }
    });
  }
  void stop_heartbeat() {
    if (!heartbeat_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    stop_.notify_all();
    heartbeat_.join();
  }
  void update(std::int64_t done, std::int64_t work_units, std::int64_t busy_ms) {
    if (!enabled_ || std::chrono::duration<double>(Clock::now() - last_.load()).count() < options_.progress_interval_s)
      return;
    print(done, work_units, busy_ms);
  }
  void finish(std::int64_t done) {
    stop_heartbeat();
    if (enabled_ && printed_ != done) print(done, -1, -1);  // the last line once (all the work when done == total)
  }

 private:
  void print(std::int64_t done, std::int64_t work_units, std::int64_t busy_ms) {
    last_ = Clock::now();
    printed_ = done;
    // By cost when the items have costs (and some of the work is done).
    // All of it once every item is done (the shares' rounding aside, and a
    // count read after another rank's finish can run ahead of its work).
    const double work = !by_cost_          ? -1.0
                        : done == total_    ? 1.0
                        : work_units < 0    ? -1.0
                                            : std::min(1.0, static_cast<double>(work_units) * kWorkUnit);
    std::fprintf(options_.progress_stream, "%s\n",
                 progress_line(options_.stage, done, total_, seconds_since(start_), options_.resumed, work,
                               busy_ms < 0 ? -1.0 : 1e-3 * static_cast<double>(busy_ms), ranks_)
                     .c_str());
    std::fflush(options_.progress_stream);
  }
  const FarmOptions& options_;
  std::int64_t total_;
  bool by_cost_;
  int ranks_;
  bool enabled_;
  Clock::time_point start_;
  std::atomic<Clock::time_point> last_;
  std::atomic<std::int64_t> printed_{-1};  ///< `done` of the last line printed
  std::thread heartbeat_;
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
};

}  // namespace

double FarmStats::efficiency() const {
  if (busy_per_rank.empty() || wall_seconds <= 0) return 1.0;
  const double busy = std::accumulate(busy_per_rank.begin(), busy_per_rank.end(), 0.0);
  return busy / (static_cast<double>(busy_per_rank.size()) * wall_seconds);
}

std::string clock_time(double seconds) {
  const auto s = static_cast<long long>(seconds > 0 && std::isfinite(seconds) ? seconds : 0.0);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

double heartbeat_interval(double heartbeat_s, double elapsed_s) {
  return std::max(heartbeat_s, std::min(0.1 * elapsed_s, 300.0));
}

double cost_eta(double work_done, double elapsed_s, double busy_done_s, int ranks) {
  if (!(work_done > 0.0)) return std::numeric_limits<double>::infinity();
  const double left = (1.0 - std::min(1.0, work_done)) / work_done;
  if (!(busy_done_s > 0.0) || ranks < 1) return elapsed_s * left;
  // Busy time the rest needs at the finished items' rate, less what the
  // running items have had (all the ranks' time not spent on finished ones).
  const double running = std::max(0.0, ranks * elapsed_s - busy_done_s);
  return std::max(0.0, busy_done_s * left - running) / ranks;
}

std::string progress_line(const std::string& stage, std::int64_t done, std::int64_t total, double elapsed_s,
                          std::int64_t resumed, double work_done, double busy_done_s, int ranks) {
  char buf[256];
  const std::int64_t shown = resumed + done, of = resumed + total;
  const double percent = of > 0 ? 100.0 * static_cast<double>(shown) / static_cast<double>(of) : 100.0;
  if (done <= 0 || elapsed_s <= 0) {
    std::snprintf(buf, sizeof buf, "%lld/%lld tasks (%.1f%%), %s elapsed", static_cast<long long>(shown),
                  static_cast<long long>(of), percent, clock_time(elapsed_s).c_str());
  } else {
    const double rate = static_cast<double>(done) / elapsed_s;
    const bool by_cost = work_done > 0.0 && work_done <= 1.0;
    const double eta =
        by_cost ? cost_eta(work_done, elapsed_s, busy_done_s, ranks) : static_cast<double>(total - done) / rate;
    // Below one task a second, the time per task ("0.0 tasks/s" reads as stalled).
    char speed[48];
    const double per_task = 1.0 / rate;
    if (rate >= 1.0)
      std::snprintf(speed, sizeof speed, "%.1f tasks/s", rate);
    else if (per_task < 60.0)
      std::snprintf(speed, sizeof speed, "%.1f s/task", per_task);
    else if (per_task < 3600.0)
      std::snprintf(speed, sizeof speed, "%.1f min/task", per_task / 60.0);
    else
      std::snprintf(speed, sizeof speed, "%.1f h/task", per_task / 3600.0);
    char cost[48] = "";
    if (by_cost) std::snprintf(cost, sizeof cost, " by cost (%.0f%% of the work)", 100.0 * work_done);
    std::snprintf(buf, sizeof buf, "%lld/%lld tasks (%.1f%%), %s, %s elapsed, ETA %s%s", static_cast<long long>(shown),
                  static_cast<long long>(of), percent, speed, clock_time(elapsed_s).c_str(), clock_time(eta).c_str(),
                  cost);
  }
  std::string line = "gradmatch: ";
  line += stage;
  line += " ";
  line += buf;
  return line;
}

FarmStats run_task_farm(const Communicator& comm, std::int64_t items, const std::function<void(std::int64_t)>& work,
                        const FarmOptions& options) {
  if (items < 0) throw std::invalid_argument("run_task_farm: negative item count");
  if (!options.item_costs.empty() && static_cast<std::int64_t>(options.item_costs.size()) != items)
    throw std::invalid_argument("run_task_farm: item_costs must give one cost per item");
  // Each item's share of the work, in kWorkUnit (the costs' sum is the
  // whole); none (progress by count) unless the sum is positive and finite.
  std::vector<std::int64_t> work_units;
  const double cost_sum = std::accumulate(options.item_costs.begin(), options.item_costs.end(), 0.0);
  if (cost_sum > 0.0 && std::isfinite(cost_sum))
    for (double c : options.item_costs) work_units.push_back(c > 0.0 ? std::llround(c / cost_sum / kWorkUnit) : 0);
  const auto start = Clock::now();
  ProgressMeter meter(options, items, comm.is_root(), !work_units.empty(), comm.size());
  std::exception_ptr error;
  std::int64_t done_here = 0;
  double busy = 0.0, cpu = 0.0;
  {
    SharedCounters counters(comm.get(), 4);
    if (comm.is_root()) meter.start_heartbeat(counters);
    try {
      for (;;) {
        const std::int64_t i = counters.fetch_add(kNext, 1);
        if (i >= items) break;
        const auto t = Clock::now();
        const double c = thread_cpu_seconds();
        try {
          work(i);
        } catch (...) {
          error = std::current_exception();
          counters.exchange(kNext, items);  // every rank stops after its current task
          break;
        }
        const double took = seconds_since(t);
        busy += took;
        cpu += thread_cpu_seconds() - c;
        ++done_here;
        // Run time and work before the count (the heartbeat reads them the other way round).
        std::int64_t busy_ms = -1, work_done = -1;
        if (!work_units.empty()) {
          const std::int64_t ms = std::llround(1e3 * took), units = work_units[static_cast<std::size_t>(i)];
          busy_ms = counters.fetch_add(kBusyMs, ms) + ms;
          work_done = counters.fetch_add(kDoneWork, units) + units;
        }
        meter.update(counters.fetch_add(kDone, 1) + 1, work_done, busy_ms);
      }
    } catch (...) {  // the counters themselves failed
      if (!error) error = std::current_exception();
    }
    meter.stop_heartbeat();  // before the window it reads goes away
    counters.free();         // collective: every rank is out of the loop
  }
  const double wall_here = seconds_since(start);
  collective(comm, [&] {
    if (error) std::rethrow_exception(error);
  });
  FarmStats stats;
  stats.items = items;
  stats.done_per_rank = comm.allgather(done_here);
  stats.busy_per_rank = comm.allgather(busy);
  stats.cpu_per_rank = comm.allgather(cpu);
  stats.wall_seconds = comm.allreduce_max(wall_here);
  meter.finish(std::accumulate(stats.done_per_rank.begin(), stats.done_per_rank.end(), std::int64_t{0}));
  return stats;
}

FarmStats farm_table(const Communicator& comm, io::RunStore& store, std::size_t table,
                     const std::function<std::vector<double>(std::int64_t row)>& compute, FarmOptions options) {
  if (options.stage == FarmOptions{}.stage) options.stage = store.table_name(table);
  std::vector<std::int64_t> rows = store.pending(table);
  options.resumed = store.rows(table) - static_cast<std::int64_t>(rows.size());
  if (options.only_rows) {
    // Progress counts the selection alone ("runs (selected) 1/2 tasks").
    std::vector<std::int64_t> kept;
    std::set_intersection(rows.begin(), rows.end(), options.only_rows->begin(), options.only_rows->end(),
                          std::back_inserter(kept));
    rows = std::move(kept);
    options.resumed = 0;
    options.stage += " (selected)";
    // A table none of whose tasks are selected is not a stage of this run:
    // no "0/0 tasks" line.
    if (rows.empty()) options.progress_stream = nullptr;
  }
  // Rank 0's costs on every rank: a study's costs may depend on what a rank
  // sees (a GPU), but the order the items map to rows in must be one.
  options.row_costs = comm.broadcast(options.row_costs);
  if (!options.row_costs.empty()) {
    if (static_cast<std::int64_t>(options.row_costs.size()) != store.rows(table))
      throw std::invalid_argument("farm_table: row_costs must give one cost per row of the table");
    const std::vector<double>& cost = options.row_costs;
    std::stable_sort(rows.begin(), rows.end(), [&](std::int64_t a, std::int64_t b) {
      return cost[static_cast<std::size_t>(a)] > cost[static_cast<std::size_t>(b)];
    });
  }
  options.item_costs.clear();  // the items are the pending rows, in hand-out order
  if (!options.row_costs.empty())
    for (std::int64_t row : rows) options.item_costs.push_back(options.row_costs[static_cast<std::size_t>(row)]);
  std::int64_t diverged = 0;
  FarmStats stats = run_task_farm(
      comm, static_cast<std::int64_t>(rows.size()),
      [&](std::int64_t i) {
        const std::int64_t row = rows[static_cast<std::size_t>(i)];
        if (store.write(table, row, compute(row)) == io::TaskStatus::diverged) ++diverged;
      },
      options);
  const auto all = comm.allgather(diverged);
  stats.diverged = std::accumulate(all.begin(), all.end(), std::int64_t{0});
  return stats;
}

}  // namespace gradmatch::distributed
