#pragma once
// The run store: DIR/store.h5, the durable task table of one study run, so
// that re-running the same command on the same DIR resumes.
//
// A study expands into tasks grouped in tables (one per task kind); row i of
// a table is one task whose result is `width` doubles. Per table the store
// holds
//
//   tables/<name>/id       uint64  [n]          the study's task ids, in row order
//   tables/<name>/data     float64 [n, width]   the results (NaN until finished)
//   tables/<name>/status   int8    [n]          0 pending, 1 done, 2 diverged
//   tables/<name>/attempt  int32   [n]          which invocation finished the row
//
// the dataset config (ConfigReader::effective(): the config as the study read
// it) and the root attributes format = "gradmatch.run_store", version, study,
// tasks and fingerprint = FNV-1a-64(version, study, config).
//
// Crash safety. The store is created collectively through MPI-IO (parallel
// HDF5) as store.h5.partial with every dataset contiguous and allocated and
// filled at creation (H5D_ALLOC_TIME_EARLY), closed, and renamed to store.h5.
// From then on a run only overwrites raw data in place, so no metadata ever
// changes and a SIGKILL at any moment cannot corrupt the file (the default
// file-format version keeps no "file is open" flags in the superblock). A
// finished task writes its row, then its attempt, then its status byte
// (independent I/O from the rank that ran it): a task killed before its status
// lands is pending on reopen and is run again (tasks are deterministic, so
// the row gets the same bytes); a finished task is never run again. Durability
// against a killed process is the page cache's; a node crash may lose the
// last rows written, which are then simply pending.
//
// Reopening. The same study with the same effective config resumes (comments,
// key order and spelled-out defaults do not matter). A store made by an
// earlier gradmatch, before some config keys existed, also resumes when each
// of those keys has what gradmatch did before it existed (by rule its
// default, unless the study declared otherwise: ConfigReader::key_existed_since);
// the store keeps the config it was made with. Another study or config is an InputError naming the keys that
// differ; another task layout for the
// same config (another gradmatch version) likewise. A directory that holds
// study outputs but no store is refused rather than overwritten. Rank 0 holds
// an flock on DIR/store.lock while the store is open, so a second run on the
// same directory at the same time is refused instead of doing tasks twice.
// A store with no pending task is opened read-only: "nothing to do" writes
// nothing.
//
// DIR must be on a file system every rank sees (a cluster's shared or
// parallel file system); MPI-IO does the rest.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace gradmatch::io {

enum class TaskStatus : std::int8_t { pending = 0, done = 1, diverged = 2 };

/// One table of tasks: every task of one kind.
struct TaskTableSpec {
  std::string name;                ///< plain name (letters, digits, '_'); the HDF5 group tables/<name>
  std::int64_t width = 0;          ///< doubles in one task's result (>= 1)
  std::vector<std::uint64_t> ids;  ///< the study's id of the task in each row
};

/// What a study declares before it runs anything.
struct RunStoreSpec {
  std::string study;   ///< study name, e.g. "ols_early_stopping"
  std::string config;  ///< the effective config text (ConfigReader::effective())
  /// Every defaulted key's default (ConfigReader::defaults()); empty: a store
  /// resumes only with exactly the same config.
  std::string defaults;
  std::vector<TaskTableSpec> tables;
  /// The files the config names, one `key = "digest"` line each (file_digest();
  /// effective()'s form, sorted). A store that recorded them refuses to resume
  /// when one changed, naming it: rows of two inputs never mix. Older stores
  /// recorded none and are not checked.
  std::string inputs{};
  /// How this run computes (gradmatch commit, a rank's device and threads);
  /// recorded at creation, reported by made_with() for the runner to compare.
  std::string compute{};
  /// Rows to run again although the store may have them done, as (table,
  /// row, why): a task whose own files in DIR are missing or cut short. The
  /// store sets them pending when it opens (reopened() lists them).
  struct Redo {
    std::size_t table = 0;
    std::int64_t row = 0;
    std::string why;
  };
  std::vector<Redo> redo{};
};

/// "fnv1a64:<16 hex digits>, <N> bytes" of a file's content (read in 1 MiB
/// pieces); std::runtime_error naming the file when it cannot be read.
std::string file_digest(const std::string& path);

/// "fnv1a64:<16 hex digits>" over the store format version, study and config.
std::string store_fingerprint(const std::string& study, const std::string& config);

/// The names of the lines `key = value` that differ between two effective
/// configs, as "key: A there, B now" (at most `limit`, then "...").
/// A key absent there whose `defaults` value (what gradmatch did before the
/// key existed) differs from now's says so and how to resume.
std::string describe_config_difference(const std::string& there, const std::string& now, std::size_t limit = 3,
                                       const std::string& defaults = "");

/// The keys of `now` that `there` lacks, when they are all that differs and
/// each is at its default in `defaults` (the three in effective()'s form):
/// a store made with `there` may resume under `now`. std::nullopt otherwise
/// (a key changed or removed, or an added key away from its default or with
/// no default). Empty when the two are the same.
std::optional<std::vector<std::string>> keys_added_at_default(const std::string& there, const std::string& now,
                                                              const std::string& defaults);

/// What a run store holds, read without MPI and without knowing the study's
/// config (for `gradmatch report` on a directory whose run has not finished).
struct RunStoreProgress {
  struct Table {
    std::string name;
    std::int64_t rows = 0, done = 0, diverged = 0;  ///< done excludes diverged
  };
  std::string study;
  std::vector<Table> tables;
  std::int64_t rows() const;      ///< every table's rows
  std::int64_t finished() const;  ///< done or diverged, every table
  std::int64_t diverged() const;  ///< diverged, every table
};

/// Reads DIR/store.h5 (`path`) read-only with the serial HDF5 driver.
/// InputError naming the file when it is not a gradmatch run store.
RunStoreProgress inspect_run_store(const std::string& path);

/// What a run into DIR would find there, checked as RunStore's constructor
/// checks it -- the directory, the store's format, study, config (or keys
/// added at their defaults) and input files -- but read-only, on one
/// process, without taking the lock or knowing the task tables: for
/// `gradmatch run --dry-run`. `inputs` gives spec.inputs (the input files'
/// digests, which read every file) and is called only where a store exists
/// to compare them with. InputError with the run's own message where the
/// run would refuse.
struct StoreCheck {
  bool exists = false;                  ///< DIR/store.h5 exists (the run resumes it)
  std::int64_t total = 0, finished = 0; ///< its tasks, done or diverged
  std::vector<std::string> keys_added;  ///< keys the store's config lacks, now at their defaults
};
StoreCheck check_run_store(const std::string& dir, RunStoreSpec spec, const std::function<std::string()>& inputs);

class RunStore {
 public:
  /// Collective over `comm`. Opens DIR/store.h5 for `spec`, creating DIR and
  /// the store when absent. Throws InputError (the same on every rank) when
  /// DIR belongs to another study, config or task layout, holds outputs but no
  /// store, or is in use by another run.
  RunStore(MPI_Comm comm, const std::string& dir, const RunStoreSpec& spec);
  ~RunStore();  ///< collective, like close()
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;

  /// Collective: closes the file (and releases the directory lock).
  void close();

  const std::string& dir() const;
  const std::string& path() const;  ///< DIR/store.h5
  bool created() const;             ///< this invocation created the store
  /// This invocation's number: 1 for a new store, else one more than the
  /// highest attempt recorded in it. Rows this invocation finishes record it.
  std::int32_t attempt() const;
  /// The fingerprint the store was made with (store_fingerprint of its own
  /// study and config).
  const std::string& fingerprint() const;
  /// Config keys the store's config lacks and that are at their default now
  /// (keys_added_at_default); empty for a store made with this config.
  const std::vector<std::string>& keys_added() const;
  /// The `compute` the store was made with ("" for a store from before it
  /// was recorded).
  const std::string& made_with() const;
  /// Rows that were done and were set pending again when the store opened:
  /// spec.redo's, and rows marked done whose values are not all finite (the
  /// status byte reached the disk, the data did not: a node crash). One line
  /// each, "task N (table 'T'): why", N numbered as --tasks numbers the tasks.
  const std::vector<std::string>& reopened() const;

  std::size_t table_count() const;
  /// Index of the table called `name`; std::out_of_range when there is none.
  std::size_t table_index(const std::string& name) const;
  const std::string& table_name(std::size_t table) const;
  std::int64_t rows(std::size_t table) const;
  std::int64_t width(std::size_t table) const;

  /// Rows that were pending when the store was opened, ascending; the same
  /// on every rank.
  const std::vector<std::int64_t>& pending(std::size_t table) const;
  std::int64_t total_rows() const;        ///< over all tables
  std::int64_t finished_at_open() const;  ///< done or diverged when opened (resumed)
  bool complete_at_open() const { return finished_at_open() == total_rows(); }

  /// Independent (any rank, alone): writes row `row` of `table` (`values`
  /// holds width() doubles), then this attempt, then the status: diverged
  /// when a value is not finite, else done. Returns the status written.
  TaskStatus write(std::size_t table, std::int64_t row, std::span<const double> values);

  /// Independent reads of what the file holds now.
  std::vector<double> read_data(std::size_t table) const;  ///< [rows, width] row-major
  std::vector<TaskStatus> read_status(std::size_t table) const;
  std::vector<std::int32_t> read_attempts(std::size_t table) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gradmatch::io
