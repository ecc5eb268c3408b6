#pragma once
// A study and the one runner every study goes through.
//
// A study is a small type with five steps (and an optional sixth); the
// runner does everything else:
//
//   configure(reader)      every rank: read and check the config keys
//   prepare(context)       every rank: shared inputs (data, canonical runs)
//   tables()               the tasks, one table per result shape
//   compute(table, row)    any rank: one task's result row (a pure function
//                          of config, shared inputs and task id)
//   collective_step(context, rows)
//                          every rank, optional: work over the finished rows
//                          that all ranks take part in (a distributed
//                          solve); the rows are on rank 0 only
//   write(rows, out)       rank 0: assemble every row, write the outputs
//
// run_study() reads the top-level keys every config shares (`study`,
// `device`), lets the study read the rest, rejects keys nobody read, opens
// the run store DIR/store.h5 (one table per task table; rows in table order),
// farms the pending rows over the ranks, reads every row back on rank 0,
// calls collective_step() on every rank and write() on rank 0, and records
// DIR/run_info.json last. Resume, refusal of another config and "nothing to
// do" are the run store's: a re-run on the same DIR
// computes only pending rows, and since a task is pure the outputs equal an
// uninterrupted run's byte for byte, for any number of ranks. The files a
// finished run holds are the ones write() actually wrote (OutputDir records
// them, run_info.json lists them), so "nothing to do" never depends on a list
// kept by hand. Failures are agreed: every rank throws the same
// CollectiveFailure. A run given a task selection (RunOptions::tasks) farms
// only the selected pending rows; it writes the outputs only when that
// completes the store, and otherwise says how many tasks are left -- the
// same rows with the same keyed draws as a whole run, so a cell can be rerun
// alone into a fresh DIR, or a run done in parts.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/text.hpp"
#include "distributed/device.hpp"
#include "mpi/mpi.hpp"
#include "training/idx.hpp"

namespace gradmatch::io {
class ConfigReader;
}

namespace gradmatch::studies {

/// What a rank computes with, decided before any study code runs (the BLAS
/// thread count changes the last bits of products, so it is set first).
struct StudyContext {
  const mpi::Communicator* comm = nullptr;
  distributed::RankDevice rank;                  ///< assignment and BLAS setting
  torch::Device device = torch::Device(torch::kCPU);  ///< where tensors of this rank live
  std::string description = "cpu (1 thread)";       ///< "cuda:0 (NVIDIA H200)": run_info.json's `devices`
  std::filesystem::path out_dir;  ///< DIR; tasks that write files of their own write them here
};

/// One table of tasks whose results share a row width.
struct TaskTable {
  std::string name;                ///< store table name (letters, digits, '_')
  std::int64_t width = 0;          ///< doubles per task result
  std::vector<std::uint64_t> ids;  ///< stable task ids, row order
  /// A relative cost per row (row order), e.g. parameters x networks: the
  /// farm hands out pending rows dearest first. Empty: row order.
  std::vector<double> costs;
};

/// The output directory as write() sees it: every file goes through path(),
/// which records it, so the runner knows what a finished run holds.
class OutputDir {
 public:
  explicit OutputDir(std::filesystem::path dir) : dir_(std::move(dir)) {}
  /// DIR/file as a string; `file` is recorded as one of the run's outputs.
  std::string path(const std::string& file);
  const std::vector<std::string>& files() const { return files_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<std::string> files_;
};

/// What a run of a study will need, estimated from its config alone (before
/// prepare() allocates anything): checked against the machine before a run
/// starts and printed by `gradmatch run --dry-run`. Negative: unknown.
struct ResourceEstimate {
  std::int64_t tasks = -1;         ///< tasks in all tables
  std::string tasks_text;          ///< one line: what the tasks are ("8435 GD runs of OLS, n = 1000, p = 10")
  double store_bytes = -1;         ///< the run store DIR/store.h5
  double output_bytes = -1;        ///< results.h5, equation files, summary.json together
  double memory_bytes = -1;        ///< peak memory of one rank (shared inputs + one task)
  std::string memory_keys;         ///< the config keys memory grows with ("data.n, data.p")
  std::string disk_keys;           ///< the config keys disk grows with
  double seconds_per_task = -1;    ///< rough single-core time per task
  std::string time_basis;          ///< how seconds_per_task was estimated (a rough model)
  std::vector<std::string> outputs;  ///< the files write() would write, DIR-relative (globs allowed)
  double model_parameters = -1;    ///< parameters of the largest model a task trains (LibTorch studies)
};

/// The line a run prints when its ranks compute on a GPU and its models are
/// small enough to be bound by kernel launches there (`model_parameters`
/// below kSmallModelParameters): the smoke studies' models of 600 to a few
/// thousand parameters ran 15-70x slower on an NVIDIA H200 than on one CPU
/// core. Empty otherwise (on a CPU, a large model, or an unknown size).
inline constexpr double kSmallModelParameters = 10000;
std::string small_model_note(double model_parameters, bool on_gpu);

/// Bytes of a run store holding `rows` rows of `width` doubles (data, id,
/// status and attempt per row).
inline double store_bytes(double rows, double width) { return rows * (8.0 * width + 13.0) + 64.0 * 1024.0; }

class Study {
 public:
  virtual ~Study() = default;
  /// Every rank: reads every key of the config (read_study_seed() for the
  /// keys all studies share) and calls reader.finish(). InputError for bad
  /// values.
  virtual void configure(io::ConfigReader& reader) = 0;
  /// Every rank: shared inputs, computed identically everywhere.
  virtual void prepare(const StudyContext& context) = 0;
  /// The tasks, after prepare().
  virtual std::vector<TaskTable> tables() const = 0;
  /// One task's result (table's width doubles; a non-finite value marks the
  /// task diverged in the store).
  virtual std::vector<double> compute(std::size_t table, std::int64_t row) = 0;
  /// Every rank, after the farm and before write(), whenever write() will
  /// run (a resumed run whose outputs are incomplete too): a step over
  /// context.comm that every rank takes, e.g. a distributed solve of the
  /// pooled rows whose result write() then publishes. `rows` is every
  /// table's rows on rank 0 (as write() gets them) and empty elsewhere; the
  /// study moves what the other ranks need. Failures must be agreed
  /// (mpi::collective). Default: nothing.
  virtual void collective_step(const StudyContext& context, const std::vector<std::vector<double>>& rows) {
    (void)context;
    (void)rows;
  }
  /// Rank 0: every table's rows, row-major [rows, width]. Writes each output
  /// atomically through `out`; returns extra run_info.json entries.
  virtual nlohmann::json write(const std::vector<std::vector<double>>& rows, OutputDir& out) = 0;
  /// One progress line after prepare() ("480 tasks (2 depths x ...)"); may be empty.
  virtual std::string describe() const { return {}; }
  /// Whether scripts/plot_<study>.py draws this study's figures (named in
  /// the closing "next:" line).
  virtual bool has_figures() const { return true; }
  /// After configure(), before prepare(): what the run needs (see
  /// ResourceEstimate). The default knows nothing; the runner still checks
  /// the run store's size against the disk once tables() are known.
  virtual ResourceEstimate estimate() const { return {}; }
  /// After configure(): one short line per task, in table order (table 0's
  /// rows first), saying what the task is ("width 1600, eta 0.1, seed 0"):
  /// `gradmatch run --dry-run` numbers them from 1 for `--tasks`. Empty: the
  /// study does not label its tasks (they are still numbered in table order).
  virtual std::vector<std::string> task_labels() const { return {}; }
  /// After configure(): the files the tasks read, as (name, path), the name
  /// the config key ("data.file", "data.files[3]", "data.dir/train-images-
  /// idx3-ubyte.gz"). The run store records their digests and refuses to
  /// resume when one changed.
  virtual std::vector<std::pair<std::string, std::string>> input_files() const { return {}; }
  /// A file a task writes into DIR itself (an equation file): its table,
  /// row and name. A re-run finds a done task's missing or cut-short file
  /// and runs the task again.
  struct TaskFile {
    std::size_t table = 0;
    std::int64_t row = 0;
    std::string name;
  };
  /// After prepare(): every file the tasks write themselves; empty when the
  /// outputs are all written from the store.
  virtual std::vector<TaskFile> task_files() const { return {}; }
  /// Whether the study computes with LibTorch on the rank's device. A study
  /// whose numerics are the core's alone (ols_early_stopping) says false:
  /// its ranks are CPU ranks under device = "auto" (no GPU is claimed or
  /// initialised, and run_info.json says "cpu"), and device = "cuda" is an
  /// input error naming the key (see device_request_for()).
  virtual bool uses_libtorch() const { return true; }
  /// Where one task trains several networks (the dropout and elastic-net
  /// studies train a block of them per task), how many of them diverged.
  struct TrainingCount {
    std::int64_t diverged = 0;
    std::int64_t total = 0;
  };
  /// Rank 0, over every table's rows as write() gets them. nullopt (the
  /// default) where a task is one training: the run store's count of
  /// diverged tasks then says it all, while a task of several networks is
  /// stored as diverged when any one of them did.
  virtual std::optional<TrainingCount> count_trainings(const std::vector<std::vector<double>>& rows) const {
    (void)rows;
    return std::nullopt;
  }
};

/// The device request a study's ranks are configured with, from the
/// config's `device` (read through `reader`): its value, or "cpu" for a study
/// that computes without LibTorch (Study::uses_libtorch() false), which
/// refuses "cuda" with an InputError naming the file, line and key.
std::string device_request_for(const Study& study, const std::string& name, io::ConfigReader& reader);

/// How `gradmatch run` runs a study beyond its config.
struct RunOptions {
  /// `--tasks`: 1-based task numbers over all tables in order, "6" or
  /// "1-3,7"; empty: every task. With a selection only the selected tasks
  /// that are not yet done run, and the outputs are written once every task
  /// of the run is done (by this or an earlier run).
  std::string tasks;
  /// The command that started gradmatch, for the closing "next: ... report
  /// OUT" hint ("gradmatch" when it was found on PATH).
  std::string program = "gradmatch";
};

/// "6", "1-3,7" -> the distinct 0-based task indices, ascending. InputError
/// "--tasks: ..." naming the part that is malformed or outside 1..total.
std::vector<std::int64_t> parse_task_selection(const std::string& text, std::int64_t total);

/// The run store's record of the study's input files (Study::input_files()):
/// one `name = "digest"` line each, sorted. Reads every file; one process.
std::string input_digest_lines(const Study& study);

/// `gradmatch run CONFIG --out DIR` for one study; collective over `comm`
/// (see the top). `name` is the config's `study` value.
void run_study(Study& study, const std::string& name, const std::string& config_path, const std::string& out_dir,
               const mpi::Communicator& comm, const RunOptions& options = {});

// ---- helpers the studies share ----------------------------------------------

/// The shortest "%g" form that reads back as the same double ("0.001",
/// "3e-05"): numbers in output file names.
std::string short_number(double value);

/// "%.6g" ("10", "0.0005", "1e-07"): numbers in task labels.
std::string label_number(double value);

using text::cat;
using text::sz;

/// InputError "FILE:LINE: key 'KEY': WHAT" (ConfigReader::where).
[[noreturn]] void config_error(const io::ConfigReader& reader, const std::string& key, const std::string& what);

/// config_error at `key` when `values` holds a value twice ("holds 0.01
/// twice; list each WHAT once"): a repeated grid value would repeat its
/// tasks and give two rows (and files) for one value.
template <class T>
void reject_repeats(const io::ConfigReader& reader, const std::string& key, const std::vector<T>& values,
                    const std::string& what) {
  for (std::size_t i = 0; i < values.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (values[j] == values[i])
        config_error(reader, key, cat("holds ", values[i], " twice; list each ", what, " once"));
}

/// config_error at `key` unless `path` (the key's value, resolved) is a
/// regular file: read at configure time, so that --dry-run catches it too.
void check_input_file(const io::ConfigReader& reader, const std::string& key, const std::string& path);

/// config_error at `key` unless `dir` is an MNIST-format IDX directory with
/// the training files (and the t10k files when `test`, their images the
/// training images' size); returns the splits' image counts (from the
/// files' headers), for the keys that ask for some of them.
training::IdxCounts check_idx_directory(const io::ConfigReader& reader, const std::string& key, const std::string& dir,
                                        bool test);

/// The IDX files of `dir` a study reads (training split; with `test`, t10k
/// too) as Study::input_files() entries named "<key>/<file name>".
void add_idx_inputs(std::vector<std::pair<std::string, std::string>>& out, const std::string& key,
                    const std::string& dir, bool test);

/// Runs `f`; an InputError it throws (about a file a key names, found wrong
/// once read) comes out prefixed with `where` (ConfigReader::where(key)).
template <class F>
auto at_key(const std::string& where, F&& f) -> decltype(f()) {
  if (where.empty()) return f();
  try {
    return f();
  } catch (const InputError& e) {
    throw InputError(cat(where, ": ", e.what()));
  }
}

/// The keys every study config starts with: checks that `study` names
/// `study`, checks `device` ("auto", "cpu" or "cuda"; the runner applies it),
/// and returns `seed` (default `fallback`).
std::uint64_t read_study_seed(io::ConfigReader& reader, const char* study, std::uint64_t fallback);

/// The `device` key's choices and default.
inline constexpr const char* kDeviceKey = "device";
inline const std::vector<std::string>& device_choices() {
  static const std::vector<std::string> choices{"auto", "cpu", "cuda"};
  return choices;
}

/// Row `row` of a row-major table of `width` doubles.
inline std::span<const double> table_row(const std::vector<double>& table, std::int64_t width, std::size_t row) {
  return std::span<const double>(table).subspan(row * static_cast<std::size_t>(width), static_cast<std::size_t>(width));
}

}  // namespace gradmatch::studies
