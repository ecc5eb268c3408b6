// Batched dropout classifiers (scripts/bench_dropout_gpu.sh): R replicates of
// appendix H.4's classifier (784 -> depth x width ReLU -> 10, dropout after
// every hidden block but the last, SGD momentum 0.9, lr 0.05, batch 2048,
// cross-entropy) trained as one batched model (train_replicates) on a device,
// rates 0, 0.05, ..., 0.5 cycling over the replicates, each replicate on all
// training images in its own order (--rates 0: no dropout, which separates the
// masks' cost from the rest). Prints one JSON line with the time per
// model-epoch, wall and process CPU time (one warm-up epoch first, untimed),
// and "phases": one more epoch with BatchStats::time_phases, which
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

int main(int argc, char** argv) {
  std::string device_text = "auto", data_dir = "/usr/share/datasets/fashion-mnist";
  std::int64_t depth = 3, width = 128, replicates = 80, images = 54000, epochs = 3, batch = 2048;
  bool float64 = false, tf32 = false;
  int threads = 1;
  std::vector<double> rate_grid{0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5};
  std::string rates_text = "grid";
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
    else if (key == "--depth") depth = std::atoll(value().c_str());
    else if (key == "--width") width = std::atoll(value().c_str());
    else if (key == "--replicates") replicates = std::atoll(value().c_str());
    else if (key == "--images") images = std::atoll(value().c_str());
    else if (key == "--epochs") epochs = std::atoll(value().c_str());
    else if (key == "--data") data_dir = value();
    else if (key == "--threads") threads = std::atoi(value().c_str());
    else if (key == "--batch") batch = std::atoll(value().c_str());
    else if (key == "--float64") float64 = true;
    else if (key == "--tf32") tf32 = true;
    else if (key == "--rates") {
      rates_text = value();
      rate_grid.clear();
      std::stringstream list(rates_text);
      for (std::string item; std::getline(list, item, ',');) rate_grid.push_back(std::atof(item.c_str()));
      if (rate_grid.empty()) rate_grid.push_back(0.0);
    }
    else {
      std::fprintf(stderr,
                   "usage: %s [--device auto|cpu|cuda] [--depth D] [--width W] [--replicates R] [--images N] "
                   "[--epochs E] [--data DIR] [--float64] [--threads T] [--rates r1,r2,...] [--batch B] [--tf32]\n",
                   argv[0]);
      return 2;
    }
  }
  try {
    const ComputeDevice device = configure_compute(parse_device_request(device_text, "--device"), 0, 1, threads);
    const at::ScalarType dtype = float64 ? at::kDouble : at::kFloat;
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
    std::vector<ReplicateSpec> specs(static_cast<std::size_t>(replicates));
    for (std::size_t r = 0; r < specs.size(); ++r) {
      specs[r].init_seed = 2605;
      specs[r].init_stream = r;
      specs[r].order_seed = 2605;
      specs[r].order_stream = 1000 + r;
      specs[r].dropout = rate_grid[r % rate_grid.size()];
      specs[r].dropout_key = 5000 + r;
    }
    BatchedMlp model(classifier_options(784, depth, width, 10, 0.0), specs, dtype);
    model->to(device.device);
    ReplicateData data;
    data.pool = pool.to(device.device, dtype);
    data.train = at::arange(images, at::TensorOptions().dtype(at::kLong).device(device.device))
                     .unsqueeze(0)
                     .expand({replicates, images})
                     .contiguous();
    TrainOptions o;
    o.loss = LossKind::cross_entropy;
    o.optimizer.learning_rate = 0.05;
    o.optimizer.momentum = 0.9;
    o.batch_size = batch;
    o.max_epochs = 1;
    o.tf32 = tf32;
    train_replicates(model, data, o, specs);  // warm-up: allocations, kernels, cuBLAS handles
    if (device.is_cuda()) torch::cuda::synchronize();
    o.max_epochs = epochs;
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
    const double per = 1e3 / static_cast<double>(replicates);  // s per epoch -> ms per model-epoch
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
        tf32 ? "batched tf32" : "batched", device.description.c_str(), float64 ? "float64" : "float32", static_cast<long long>(depth),
        static_cast<long long>(width), static_cast<long long>(replicates), static_cast<long long>(images),
        source.c_str(), static_cast<long long>(epochs), static_cast<long long>(batch), rates_text.c_str(), seconds, 1e3 * seconds / static_cast<double>(model_epochs),
        1e3 * cpu_seconds / static_cast<double>(model_epochs), phases);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dropout_gpu_bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
