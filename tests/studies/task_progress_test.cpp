// Progress lines from inside a long task: the texts and their bounds, the
// rate limit that keeps short tasks quiet, and the summary lines it spares.
#include "studies/task_progress.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace gradmatch::studies {
namespace {

TEST(TaskProgress, TrainingBoundIsTheMeanEpochTimesTheEpochsLeft) {
  // 312 s for 120 epochs: 2.6 s each, 380 left -> 988 s = 0:16:28.
  EXPECT_EQ(training_progress_text(120, 500, 14, 312.0),
            "epoch 120 of at most 500, 14 training, 0:05:12 so far, at most 0:16:28 to go");
  // Nothing left to bound once no replicate trains or the limit is reached.
  EXPECT_EQ(training_progress_text(87, 500, 0, 100.0), "epoch 87 of at most 500, 0 training, 0:01:40 so far");
  EXPECT_EQ(training_progress_text(500, 500, 3, 3600.0), "epoch 500 of at most 500, 3 training, 1:00:00 so far, at most 0:00:00 to go");
}

TEST(TaskProgress, SequentialTrainingBoundCountsEveryLaterItemAtTheEpochLimit) {
  // Two classifiers ran 280 epochs, the third 120: 400 in 312 s, 0.78 s each;
  // 380 left for it and 500 for each of the 7 after it -> 3,880 epochs, 3,026 s.
  EXPECT_EQ(sequential_training_progress_text("classifier", 3, 10, 120, 500, 280, 312.0),
            "classifier 3 of 10, epoch 120 of at most 500, 0:05:12 so far, at most 0:50:26 to go");
  EXPECT_EQ(sequential_training_progress_text("classifier", 10, 10, 500, 500, 900, 70.0),
            "classifier 10 of 10, epoch 500 of at most 500, 0:01:10 so far, at most 0:00:00 to go");
  EXPECT_EQ(sequential_training_progress_text("classifier", 1, 2, 0, 500, 0, 1.0), "classifier 1 of 2, epoch 0 of at most 500, 0:00:01 so far");
}

TEST(TaskProgress, EndpointEstimateIsTheMeanEndpointTimeTimesThoseLeft) {
  // The task ran 1300 s, 120 of them on 5 endpoints: 24 s each, 11 left -> 264 s.
  EXPECT_EQ(endpoint_progress_text(5, 16, 1300.0, 120.0), "endpoint 5 of 16, 0:21:40 so far, about 0:04:24 to go");
  EXPECT_EQ(endpoint_progress_text(0, 16, 10.0, 0.0), "endpoint 0 of 16, 0:00:10 so far");
}

std::string read_all(std::FILE* f) {
  std::rewind(f);
  std::string text;
  for (int ch = std::fgetc(f); ch != EOF; ch = std::fgetc(f)) text.push_back(static_cast<char>(ch));
  return text;
}

TEST(TaskProgress, PrintsPrefixedLinesOnlyOnceItsIntervalHasPassed) {
  std::FILE* quiet_file = std::tmpfile();
  std::FILE* chatty_file = std::tmpfile();
  ASSERT_NE(quiet_file, nullptr);
  ASSERT_NE(chatty_file, nullptr);
  {
    TaskProgress quiet("dropout", "task 1/2", 3600.0, quiet_file);  // a short task: nothing
    quiet.epoch(1, 10, 4);
    quiet.training_done();
    quiet.endpoint(1, 4);
    TaskProgress off("dropout", "task 1/2", 0.0, quiet_file);  // interval <= 0: never
    off.epoch(1, 10, 4);
    TaskProgress chatty("dropout", "task 2/2 (depth 3, width 8, 4 classifiers)", 1e-12, chatty_file);
    chatty.epoch(1, 10, 4);
    chatty.note("matching stationarity: round 1 of at most 10, 3 of 4 above the target");
    chatty.training_done();
    chatty.endpoint(1, 4);
  }
  EXPECT_EQ(read_all(quiet_file), "");
  const std::string text = read_all(chatty_file);
  EXPECT_EQ(text.rfind("dropout: task 2/2 (depth 3, width 8, 4 classifiers): epoch 1 of at most 10, 4 training, ", 0), 0u)
      << text;
  EXPECT_NE(text.find("\ndropout: task 2/2 (depth 3, width 8, 4 classifiers): matching stationarity: round 1 of at "
                      "most 10, 3 of 4 above the target, 0:00:00 so far\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\ndropout: task 2/2 (depth 3, width 8, 4 classifiers): endpoint 1 of 4, "), std::string::npos)
      << text;
  std::fclose(quiet_file);
  std::fclose(chatty_file);
}

TEST(TaskProgress, SummaryLinesPrintWithinTheIntervalButNeverWhenLinesAreOff) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    TaskProgress long_interval("dropout", "task 1/6", 3600.0, file);
    long_interval.epoch(1, 10, 4);  // within the interval: held back
    long_interval.summary("80 classifiers trained");
    long_interval.summary("80 endpoints in 2.0 s");
    TaskProgress off("dropout", "task 2/6", 0.0, file);
    off.summary("80 classifiers trained");
  }
  EXPECT_EQ(read_all(file), "dropout: task 1/6: 80 classifiers trained, 0:00:00 so far\n"
                            "dropout: task 1/6: 80 endpoints in 2.0 s, 0:00:00 so far\n");
  std::fclose(file);
}

}  // namespace
}  // namespace gradmatch::studies
