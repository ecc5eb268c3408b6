// Batched dropout classifiers (scripts/bench_dropout_gpu.sh): R replicates of
// appendix H.4's classifier (784 -> depth x width ReLU -> 10, dropout after
// every hidden block but the last, SGD momentum 0.9, lr 0.05, batch 2048,
// cross-entropy) trained as one batched model (train_replicates) on a device,
// rates 0, 0.05, ..., 0.5 cycling over the replicates, each replicate on all
// training images in its own order (--rates 0: no dropout, which separates the
// masks' cost from the rest). Prints one JSON line per variant with the time
// per model-epoch, wall and process CPU time (one warm-up epoch first,
// untimed), and "phases": one more epoch with BatchStats::time_phases, which
// synchronizes the device between the parts of a step (gather, forward,
// backward, optimizer, ...), in ms per model-epoch. The PyTorch baselines are
// scripts/bench_dropout_torch.py.
//
//   dropout_gpu_bench [--device auto|cpu|cuda] [--depth D] [--width W] [--replicates R]
//                     [--images N] [--epochs E] [--data DIR] [--float64] [--threads T]
//                     [--rates r1,r2,...]   (cycled over the replicates; default 0,.05,.1,.15,.2,.3,.4,.5)
//                     [--tf32]              (float32 matrix products in TF32 on a GPU: TrainOptions::tf32)
//                     [--batch B]           (default 2048; a tiny model with a small batch times
//                                            the host's work per step, which bounds a GPU's step from below)
//                     [--variants V1,V2,...] (several runs in one process, one line each, sharing the
//                                            device set-up and the images: "base" (the flags above),
//                                            "tf32" (base with --tf32), "rates0" (base with every rate 0);
//                                            a process start with a CUDA LibTorch costs seconds)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "training/data.hpp"
#include "training/device.hpp"
#include "training/idx.hpp"
#include "training/models.hpp"
#include "training/replicates.hpp"
#include "training/trainer.hpp"

using namespace gradmatch::training;

namespace {

/// One timed run: what the flags or a variant fix.
struct Run {
  std::vector<double> rates;
  std::string rates_text;
  bool tf32 = false;
};

struct Shape {
  std::int64_t depth = 3, width = 128, replicates = 80, epochs = 3, batch = 2048;
  bool float64 = false;
};

/// Trains a fresh batched model (warm-up epoch, timed epochs, one phase-timed
/// epoch) and prints its JSON line.
void run_once(const Shape& shape, const Run& run, const ComputeDevice& device, const ReplicateData& data,
              std::int64_t images, const std::string& source) {
  const at::ScalarType dtype = shape.float64 ? at::kDouble : at::kFloat;
  std::vector<ReplicateSpec> specs(static_cast<std::size_t>(shape.replicates));
  for (std::size_t r = 0; r < specs.size(); ++r) {
    specs[r].init_seed = 2605;
    specs[r].init_stream = r;
    specs[r].order_seed = 2605;
    specs[r].order_stream = 1000 + r;
    specs[r].dropout = run.rates[r % run.rates.size()];
    specs[r].dropout_key = 5000 + r;
  }
  BatchedMlp model(classifier_options(784, shape.depth, shape.width, 10, 0.0), specs, dtype);
  model->to(device.device);
  TrainOptions o;
  o.loss = LossKind::cross_entropy;
  o.optimizer.learning_rate = 0.05;
  o.optimizer.momentum = 0.9;
  o.batch_size = shape.batch;
  o.max_epochs = 1;
  o.tf32 = run.tf32;
  train_replicates(model, data, o, specs);  // warm-up: allocations, kernels, cuBLAS handles
  if (device.is_cuda()) torch::cuda::synchronize();
  o.max_epochs = shape.epochs;
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  const std::vector<TrainResult> r = train_replicates(model, data, o, specs);
  if (device.is_cuda()) torch::cuda::synchronize();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu_seconds = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  std::int64_t model_epochs = 0;
  for (const TrainResult& t : r) model_epochs += t.epochs;
  // Where an epoch's time goes: one more epoch, synchronized between its parts.
  BatchStats stats;
  stats.time_phases = true;
  o.max_epochs = 1;
  train_replicates(model, data, o, specs, &stats);
  const BatchStats::Phases& ph = stats.phases;
  const double per = 1e3 / static_cast<double>(shape.replicates);  // s per epoch -> ms per model-epoch
  char phases[512];
  std::snprintf(phases, sizeof phases,
                "{\"setup\": %.4f, \"orders\": %.4f, \"batch\": %.4f, \"forward\": %.4f, \"backward\": %.4f, "
                "\"optimizer\": %.4f, \"epoch_end\": %.4f}",
                per * ph.setup, per * ph.orders, per * ph.batch, per * ph.forward, per * ph.backward, per * ph.optimizer,
                per * ph.epoch_end);
  std::printf(
      "{\"tool\": \"gradmatch\", \"mode\": \"%s\", \"device\": \"%s\", \"dtype\": \"%s\", \"depth\": %lld, "
      "\"width\": %lld, \"replicates\": %lld, \"images\": %lld, \"data\": \"%s\", \"epochs\": %lld, "
      "\"batch\": %lld, \"rates\": \"%s\", \"seconds\": %.4f, \"ms_per_model_epoch\": %.4f, \"cpu_ms_per_model_epoch\": %.4f, \"phases\": %s}\n",
      run.tf32 ? "batched tf32" : "batched", device.description.c_str(), shape.float64 ? "float64" : "float32",
      static_cast<long long>(shape.depth), static_cast<long long>(shape.width), static_cast<long long>(shape.replicates),
      static_cast<long long>(images), source.c_str(), static_cast<long long>(shape.epochs),
      static_cast<long long>(shape.batch), run.rates_text.c_str(), seconds, 1e3 * seconds / static_cast<double>(model_epochs),
      1e3 * cpu_seconds / static_cast<double>(model_epochs), phases);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_text = "auto", data_dir = "/usr/share/datasets/fashion-mnist", variants_text = "base";
  Shape shape;
  std::int64_t images = 54000;
  int threads = 1;
  Run base;
  base.rates = {0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5};
  base.rates_text = "grid";
  const auto usage = [&] {
    std::fprintf(stderr,
                 "usage: %s [--device auto|cpu|cuda] [--depth D] [--width W] [--replicates R] [--images N] "
                 "[--epochs E] [--data DIR] [--float64] [--threads T] [--rates r1,r2,...] [--batch B] [--tf32] "
                 "[--variants base,tf32,rates0]\n",
                 argv[0]);
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", key.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (key == "--device") device_text = value();
    else if (key == "--depth") shape.depth = std::atoll(value().c_str());
    else if (key == "--width") shape.width = std::atoll(value().c_str());
    else if (key == "--replicates") shape.replicates = std::atoll(value().c_str());
    else if (key == "--images") images = std::atoll(value().c_str());
    else if (key == "--epochs") shape.epochs = std::atoll(value().c_str());
    else if (key == "--data") data_dir = value();
    else if (key == "--threads") threads = std::atoi(value().c_str());
    else if (key == "--batch") shape.batch = std::atoll(value().c_str());
    else if (key == "--float64") shape.float64 = true;
    else if (key == "--tf32") base.tf32 = true;
    else if (key == "--variants") variants_text = value();
    else if (key == "--rates") {
      base.rates_text = value();
      base.rates.clear();
      std::stringstream list(base.rates_text);
      for (std::string item; std::getline(list, item, ',');) base.rates.push_back(std::atof(item.c_str()));
      if (base.rates.empty()) base.rates.push_back(0.0);
    }
    else return usage();
  }
  std::vector<Run> runs;
  std::stringstream list(variants_text);
  for (std::string item; std::getline(list, item, ',');) {
    Run run = base;
    if (item == "tf32") run.tf32 = true;
    else if (item == "rates0") {
      run.rates.assign(1, 0.0);
      run.rates_text.assign(1, '0');
    }
    else if (item != "base") {
      std::fprintf(stderr, "dropout_gpu_bench: --variants: unknown variant '%s' (base, tf32 or rates0)\n", item.c_str());
      return 2;
    }
    runs.push_back(run);
  }
  if (runs.empty()) return usage();
  try {
    const ComputeDevice device = configure_compute(parse_device_request(device_text, "--device"), 0, 1, threads);
    const at::ScalarType dtype = shape.float64 ? at::kDouble : at::kFloat;
    Dataset pool;
    std::string source = data_dir;
    if (is_idx_directory(data_dir)) {
      pool = load_idx(data_dir, IdxPart::train);
      pool = pool.slice(0, std::min(images, pool.size()));
    } else {  // the same shapes, random pixels and labels
      source = "synthetic";
      pool = {at::rand({images, 784}, at::kFloat), at::randint(10, {images}, at::kLong)};
    }
    images = pool.size();
    ReplicateData data;
    data.pool = pool.to(device.device, dtype);
    data.train = at::arange(images, at::TensorOptions().dtype(at::kLong).device(device.device))
                     .unsqueeze(0)
                     .expand({shape.replicates, images})
                     .contiguous();
    for (const Run& run : runs) run_once(shape, run, device, data, images, source);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dropout_gpu_bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
