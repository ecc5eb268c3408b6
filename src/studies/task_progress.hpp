#pragma once
// Progress lines from inside one long task.
//
// The task farm reports finished tasks; a study that trains a whole grid
// cell of replicates as one batched task (dropout: 80 classifiers of a cell
// on one GPU) would otherwise be silent for minutes. TaskProgress prints, to
// stderr of whichever rank runs the task, at most one line per interval:
//
//   dropout: task 1/6 (depth 3, width 128, 80 classifiers): epoch 120 of at most 500, 14 training, 0:05:12 so far, at most 0:16:28 to go
//   dropout: task 1/48 (depth 3, width 128, 10 classifiers): classifier 3 of 10, epoch 120 of at most 500, 0:05:12 so far, at most 0:50:26 to go
//   dropout: task 1/6 (depth 3, width 128, 80 classifiers): endpoint 5 of 80, 0:21:40 so far, about 0:04:24 to go
//
// The training bound assumes an epoch costs what the epochs so far cost on
// average (replicates that stop make later epochs cheaper, so it is an upper
// bound until a decay or a slower device intervenes); the endpoint estimate
// is the mean time per endpoint so far times those left. Nothing is printed
// before the first interval has passed, so short tasks stay quiet -- except
// the summary lines that end a stage, which say what it cost:
//
//   dropout: task 1/6 (depth 5, width 512, 80 classifiers): 80 classifiers trained, 0:02:31 so far
//   dropout: task 1/6 (depth 5, width 512, 80 classifiers): 80 endpoints in 41.2 s: per endpoint gradient and fit ..., 0:03:12 so far
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace gradmatch::studies {

/// "epoch 120 of at most 500, 14 training, 0:05:12 so far, at most 0:16:28 to go"
/// (`seconds`: spent training so far).
std::string training_progress_text(std::int64_t epoch, std::int64_t max_epochs, std::int64_t training, double seconds);
/// "classifier 3 of 10, epoch 120 of at most 500, 0:05:12 so far, at most 0:16:28 to go":
/// items trained one after another (`item` 1-based), the earlier ones having run
/// `epochs_before` epochs in all; the bound counts max_epochs for every later item.
std::string sequential_training_progress_text(const std::string& noun, std::int64_t item, std::int64_t items,
                                              std::int64_t epoch, std::int64_t max_epochs, std::int64_t epochs_before,
                                              double seconds);
/// "endpoint 5 of 16, 0:21:40 so far, about 0:04:24 to go" (`task_seconds`: the
/// whole task so far; `endpoint_seconds`: the part spent on these endpoints).
std::string endpoint_progress_text(std::int64_t done, std::int64_t total, double task_seconds, double endpoint_seconds);

class TaskProgress {
 public:
  /// Lines read "<study>: <label>: ..."; interval_s <= 0 prints nothing.
  TaskProgress(std::string study, std::string label, double interval_s = 30.0, std::FILE* out = stderr);

  /// After training epoch `epoch` of at most `max_epochs`; `training` replicates go on.
  void epoch(std::int64_t epoch, std::int64_t max_epochs, std::int64_t training);
  /// After epoch `epoch` of item `item` of `items` trained one after another (sequential_training_progress_text).
  void sequential_epoch(const std::string& noun, std::int64_t item, std::int64_t items, std::int64_t epoch,
                        std::int64_t max_epochs, std::int64_t epochs_before);
  /// Any other stage: "<text>, 0:05:12 so far".
  void note(const std::string& text);
  /// Marks the end of training: endpoint times are counted from here.
  void training_done();
  /// After `done` of `total` endpoints.
  void endpoint(std::int64_t done, std::int64_t total);
  /// A line at the end of a stage, printed whenever lines are (not held back by the interval).
  void summary(const std::string& text);

 private:
  using Clock = std::chrono::steady_clock;
  bool due();
  void print(const std::string& text);
  double since(Clock::time_point t) const;

  std::string prefix_;
  double interval_s_;
  std::FILE* out_;
  Clock::time_point start_, endpoints_start_, last_;
};

}  // namespace gradmatch::studies
