// Replicate batching benchmark (scripts/bench_replicates.sh): trains R
// replicates of the appendix H.2 elastic-net network (10 -> 200 ReLU -> 1,
// MSE, lambda1 sum h_beta + lambda2 sum theta^2, SGD lr 1e-3, batch 32, 4000
// training examples each, float32) either all at once (train_replicates) or
// one at a time (train), and prints one JSON line with the per-replicate
// throughput. The Python baseline is scripts/bench_replicates.py.
//
//   replicate_training_bench [--mode batched|single] [--replicates R] [--epochs E] [--threads T]
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "training/data.hpp"
#include "training/device.hpp"
#include "training/models.hpp"
#include "training/replicates.hpp"
#include "training/trainer.hpp"

using namespace gradmatch::training;

int main(int argc, char** argv) {
  std::string mode = "batched";
  std::int64_t replicates = 16, epochs = 5;
  int threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--mode") mode = argv[i + 1];
    else if (key == "--replicates") replicates = std::atoll(argv[i + 1]);
    else if (key == "--epochs") epochs = std::atoll(argv[i + 1]);
    else if (key == "--threads") threads = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--mode batched|single] [--replicates R] [--epochs E] [--threads T]\n", argv[0]);
      return 2;
    }
  }
  // As every training rank does (configure_compute): glibc malloc would return and
  // re-fault large temporaries between steps, which made batched timings swing 2x.
  keep_freed_memory();
  at::set_num_threads(threads);
  at::set_num_interop_threads(1);

  const MlpOptions mlp = regression_net_options(10, 200);
  std::vector<ReplicateSpec> specs(static_cast<std::size_t>(replicates));
  std::vector<Dataset> data;
  for (std::int64_t r = 0; r < replicates; ++r) {
    auto& s = specs[static_cast<std::size_t>(r)];
    s.init_seed = s.order_seed = 1;
    s.init_stream = s.order_stream = static_cast<std::uint64_t>(r);
    s.penalty = Penalty::elastic_net(1e-3 * static_cast<double>(r + 1), 1e-3, 1e-3);
    const Split sp = split(linear_regression({}, 1, static_cast<std::uint64_t>(r)).data, 0.2, 1, static_cast<std::uint64_t>(r));
    data.push_back(sp.train.to(torch::Device(torch::kCPU), at::kFloat));
  }
  TrainOptions options;
  options.optimizer.learning_rate = 1e-3;
  options.batch_size = 32;
  options.max_epochs = epochs;
  const std::int64_t n = data.front().size();

  // Warm-up (allocator, BLAS) on a short run.
  {
    TrainOptions w = options;
    w.max_epochs = 1;
    std::vector<ReplicateSpec> s1(specs.begin(), specs.begin() + 1);
    std::vector<Dataset> d1 = {data.front().slice(0, 256)};
    BatchedMlp b(mlp, s1);
    train_replicates(b, d1, {}, w, s1);
  }
  const auto start = std::chrono::steady_clock::now();
  if (mode == "batched") {
    BatchedMlp model(mlp, specs);
    train_replicates(model, data, {}, options, specs);
  } else if (mode == "single") {
    for (std::int64_t r = 0; r < replicates; ++r) {
      const auto& s = specs[static_cast<std::size_t>(r)];
      TrainOptions o = options;
      o.seed = s.order_seed;
      o.stream = s.order_stream;
      o.penalty = s.penalty;
      train(make_handle(make_mlp(mlp, s.init_seed, s.init_stream, torch::Device(torch::kCPU))), data[static_cast<std::size_t>(r)],
            Dataset{}, o);
    }
  } else {
    std::fprintf(stderr, "unknown mode '%s'\n", mode.c_str());
    return 2;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double steps = static_cast<double>(replicates * epochs * ((n + 31) / 32));
  std::printf(
      "{\"impl\": \"C++ %s\", \"replicates\": %lld, \"epochs\": %lld, \"threads\": %d, \"seconds\": %.4f, "
      "\"replicate_epochs_per_s\": %.3f, \"us_per_replicate_step\": %.2f}\n",
      mode.c_str(), static_cast<long long>(replicates), static_cast<long long>(epochs), threads, seconds,
      static_cast<double>(replicates * epochs) / seconds, 1e6 * seconds / steps);
  return 0;
}
