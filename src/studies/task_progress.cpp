#include "studies/task_progress.hpp"

#include <utility>

#include "distributed/task_farm.hpp"

namespace gradmatch::studies {

using distributed::clock_time;

std::string training_progress_text(std::int64_t epoch, std::int64_t max_epochs, std::int64_t training, double seconds) {
  std::string text = "epoch " + std::to_string(epoch) + " of at most " + std::to_string(max_epochs) + ", " +
                     std::to_string(training) + " training, " + clock_time(seconds) + " so far";
  if (epoch > 0 && epoch <= max_epochs && training > 0)
    text += ", at most " +
            clock_time(seconds / static_cast<double>(epoch) * static_cast<double>(max_epochs - epoch)) + " to go";
  return text;
}

std::string sequential_training_progress_text(const std::string& noun, std::int64_t item, std::int64_t items,
                                              std::int64_t epoch, std::int64_t max_epochs, std::int64_t epochs_before,
                                              double seconds) {
  std::string text = noun + " " + std::to_string(item) + " of " + std::to_string(items) + ", epoch " +
                     std::to_string(epoch) + " of at most " + std::to_string(max_epochs) + ", " + clock_time(seconds) +
                     " so far";
  const std::int64_t done = epochs_before + epoch;
  if (done > 0 && epoch <= max_epochs && item <= items) {
    const std::int64_t left = (max_epochs - epoch) + (items - item) * max_epochs;
    text += ", at most " + clock_time(seconds / static_cast<double>(done) * static_cast<double>(left)) + " to go";
  }
  return text;
}

std::string endpoint_progress_text(std::int64_t done, std::int64_t total, double task_seconds, double endpoint_seconds) {
  std::string text = "endpoint " + std::to_string(done) + " of " + std::to_string(total) + ", " +
                     clock_time(task_seconds) + " so far";
  if (done > 0 && done <= total)
    text += ", about " + clock_time(endpoint_seconds / static_cast<double>(done) * static_cast<double>(total - done)) +
            " to go";
  return text;
}

TaskProgress::TaskProgress(std::string study, std::string label, double interval_s, std::FILE* out)
    : prefix_(std::move(study) + ": " + std::move(label) + ": "),
      interval_s_(interval_s),
      out_(out),
      start_(Clock::now()),
      endpoints_start_(start_),
      last_(start_) {}

double TaskProgress::since(Clock::time_point t) const { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool TaskProgress::due() { return interval_s_ > 0 && out_ != nullptr && since(last_) >= interval_s_; }

void TaskProgress::print(const std::string& text) {
  last_ = Clock::now();
  std::fprintf(out_, "%s%s\n", prefix_.c_str(), text.c_str());
  std::fflush(out_);
}

void TaskProgress::epoch(std::int64_t epoch, std::int64_t max_epochs, std::int64_t training) {
  if (due()) print(training_progress_text(epoch, max_epochs, training, since(start_)));
}

void TaskProgress::sequential_epoch(const std::string& noun, std::int64_t item, std::int64_t items, std::int64_t epoch,
                                    std::int64_t max_epochs, std::int64_t epochs_before) {
  if (due())
    print(sequential_training_progress_text(noun, item, items, epoch, max_epochs, epochs_before, since(start_)));
}

void TaskProgress::note(const std::string& text) {
  if (due()) print(text + ", " + clock_time(since(start_)) + " so far");
}

void TaskProgress::summary(const std::string& text) {
  if (interval_s_ > 0.0 && out_ != nullptr) print(text + ", " + clock_time(since(start_)) + " so far");
}

void TaskProgress::training_done() { endpoints_start_ = Clock::now(); }

void TaskProgress::endpoint(std::int64_t done, std::int64_t total) {
  if (due()) print(endpoint_progress_text(done, total, since(start_), since(endpoints_start_)));
}

}  // namespace gradmatch::studies
