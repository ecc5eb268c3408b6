#include "studies/dropout.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <numeric>

#include "core/errors.hpp"
#include "core/fit.hpp"
#include "core/ols.hpp"
#include "core/resources.hpp"
#include "core/rng.hpp"
#include "core/statistics.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "io/provenance.hpp"
#include "studies/schema.hpp"
#include "studies/study.hpp"
#include "training/device.hpp"
#include "training/dropout_diagnostics.hpp"
#include "training/endpoint.hpp"
#include "training/idx.hpp"
#include "training/models.hpp"
#include "training/replicates.hpp"
#include "training/trainer.hpp"

namespace gradmatch::studies {
namespace {

constexpr const char* kStudy = "dropout";
// Stream kinds (bits 56..63 of a Philox stream id).
constexpr std::uint64_t kTaskKind = 1, kSplitKind = 2, kInitKind = 3, kOrderKind = 4, kSubsetKind = 5, kChunkKind = 6,
                        kAdamKind = 7, kMatchOrderKind = 8, kTrendKind = 9, kAdamShuffleKind = 10,
                        kAdamTailKind = 11;
// Offsets of the diagnostics' and matching rounds' mask keys from a replicate's training key.
constexpr std::uint64_t kDiagnosticMasks = 0x6469616700000000ULL, kMatchMasks = 0x6d61746300000000ULL;
constexpr std::int64_t kRateUnits = 10000;  // rates are stored in units of 1e-4


// (depth, width, seed) -> stream id of the initial weights or batch order.
std::uint64_t architecture_stream(std::uint64_t kind, const DropoutTask& t) {
  return kind << 56 | static_cast<std::uint64_t>(t.depth) << 48 | static_cast<std::uint64_t>(t.width) << 32 |
         static_cast<std::uint64_t>(t.seed_index);
}

// (replicate id) -> stream id of one of its own draws (the kind replaces the id's task kind).
std::uint64_t replicate_stream(std::uint64_t kind, const DropoutTask& t) {
  return kind << 56 | (t.id() & ((std::uint64_t{1} << 56) - 1));
}

std::vector<std::int64_t> subset(std::int64_t available, std::int64_t wanted, std::uint64_t seed,
                                 std::uint64_t stream) {
  if (wanted <= 0 || wanted >= available) {
    std::vector<std::int64_t> all(sz(available));
    std::iota(all.begin(), all.end(), 0);
    return all;
  }
  std::vector<std::int64_t> perm = training::permutation(available, seed, stream);
  perm.resize(sz(wanted));
  std::sort(perm.begin(), perm.end());  // keep the file's order
  return perm;
}

// The parity fit's mini-batches over n training rows: whether every epoch
// runs the same batches (fixed order, or one batch holding every row: the
// same batch in every order), and the rows of the last batch.
bool adam_one_partition(const DropoutConfig& c, std::int64_t n) {
  return c.adam_batches == "fixed" || n <= c.adam_batch_size;
}
std::int64_t adam_last_batch_rows(const DropoutConfig& c, std::int64_t n) {
  return n % c.adam_batch_size == 0 ? c.adam_batch_size : n % c.adam_batch_size;
}

// Float64 gradient passes over the training split after training, per
// replicate (the estimate's upper bound): the endpoint gradient, the margin
// identity, the mask draws, and the parity fit's mini-batches (a pass per
// shuffle; a fresh last batch per epoch of the pool).
double estimate_passes(const DropoutConfig& c, std::int64_t n_train) {
  double passes = static_cast<double>(c.mask_draws) + 2.0;
  if (!c.adam_parity) return passes;
  const double epochs = static_cast<double>(c.adam_max_epochs);
  if (adam_one_partition(c, n_train)) return passes + 1.0;
  if (c.adam_batches == "fresh") return passes + epochs;
  return passes + static_cast<double>(c.adam_shuffles) +
         epochs * static_cast<double>(adam_last_batch_rows(c, n_train)) / static_cast<double>(n_train);
}

// What a batched pass holds beyond the one-at-a-time estimates (the dry
// run's memory; a GPU's where fit.batched_gradients = auto): a pass of
// mask_draws / 2 x min(gradient_batch_size, n) rows keeps their activations
// (three float64 tensors per hidden unit and row), and the parity fit's pass
// one copy of the parameters, with its gradient, per mini-batch it holds
// (as many as full adam_batch_size batches fill the same rows).
double batched_pass_rows_bytes(const DropoutConfig& c, std::int64_t n_train, double w_max, double d_max, double p_max) {
  const std::int64_t rows = std::min<std::int64_t>(c.gradient_batch_size, n_train) * (c.mask_draws / 2);
  const double activations = 24.0 * static_cast<double>(rows) * w_max * d_max;
  if (!c.adam_parity) return activations;
  return activations + 16.0 * p_max * static_cast<double>(std::max<std::int64_t>(1, rows / c.adam_batch_size));
}

// The parameters of inputs -> depth x width ReLU -> classes, with biases.
double classifier_parameters(double inputs, double depth, double width, double classes) {
  return inputs * width + width + (depth - 1.0) * (width * width + width) + classes * width + classes;
}

FitOptions ridge() {
  FitOptions o;
  o.family.kind = FamilyKind::ridge;
  return o;
}

}  // namespace

// ---- config -------------------------------------------------------------------

DropoutConfig read_dropout_config(io::ConfigReader& r) {
  DropoutConfig c;
  c.seed = read_study_seed(r, kStudy, c.seed);
  c.depths = r.get_ints("grid.depths", c.depths, 1, 255);
  c.widths = r.get_ints("grid.widths", c.widths, 1, 65535);
  c.rates = r.get_doubles("grid.rates", c.rates, 0.0, 0.95);
  c.seeds = r.get_int("grid.seeds", c.seeds, 1, 65535);

  c.data_dir = r.get_string("data.dir", c.data_dir);
  // Here, so that --dry-run checks the folder and the subsets too.
  const training::IdxCounts images = check_idx_directory(r, "data.dir", c.data_dir, /*test=*/true);
  c.train_subset = r.get_int("data.train_subset", c.train_subset, 0, 100'000'000);
  c.test_subset = r.get_int("data.test_subset", c.test_subset, 0, 100'000'000);
  const auto at_most = [&](const char* key, const char* split, std::int64_t wanted, std::int64_t have) {
    if (wanted > have)
      config_error(r, key, cat(c.data_dir, " holds ", std::to_string(have), " ", split, " images; lower ", key,
                               " to at most ", std::to_string(have), " (0: all of them) or use a larger data set"));
  };
  at_most("data.train_subset", "training", c.train_subset, images.train);
  at_most("data.test_subset", "test", c.test_subset, images.test);
  c.validation_fraction = r.get_double("data.validation_fraction", c.validation_fraction, 1e-6, 0.9);

  c.learning_rate = r.get_double("training.learning_rate", c.learning_rate, 1e-300, 1e3);
  c.momentum = r.get_double("training.momentum", c.momentum, 0.0, 0.999999);
  c.batch_size = r.get_int("training.batch_size", c.batch_size, 1, 100'000'000);
  c.max_epochs = r.get_int("training.max_epochs", c.max_epochs, 1, 100'000'000);
  c.patience = r.get_int("training.patience", c.patience, 1, 100'000'000);
  c.min_delta = r.get_double("training.min_delta", c.min_delta, 0.0, 1e300);
  c.keep_best = r.get_bool("training.keep_best", c.keep_best);
  c.float64 = r.get_bool("training.float64", c.float64);
  c.tf32 = r.get_bool("training.tf32", c.tf32);
  if (c.tf32 && c.float64)
    config_error(r, "training.tf32", "TF32 is a precision of float32 matrix products, and training.float64 = true trains "
                                     "in float64; set one of them to false");
  c.milestones = r.get_ints("training.milestones", c.milestones, 1, 100'000'000);
  c.gamma = r.get_double("training.gamma", c.gamma, 1e-300, 1.0);
  c.replicates_per_task = r.get_int("training.replicates_per_task", c.replicates_per_task, 0, 100'000'000);

  c.gradient_batch_size = r.get_int("fit.gradient_batch_size", c.gradient_batch_size, 1, 100'000'000);
  c.mask_draws = r.get_int("fit.mask_draws", c.mask_draws, 2, 1'000'000);
  if (c.mask_draws % 2 != 0) config_error(r, "fit.mask_draws", "must be even (two independent halves of draws)");
  c.adam_parity = r.get_bool("fit.adam_parity", c.adam_parity);
  c.adam_learning_rate = r.get_double("fit.adam_learning_rate", c.adam_learning_rate, 1e-300, 1e3);
  c.adam_max_epochs = r.get_int("fit.adam_max_epochs", c.adam_max_epochs, 1, 100'000'000);
  c.adam_patience = r.get_int("fit.adam_patience", c.adam_patience, 1, 100'000'000);
  c.adam_batch_size = r.get_int("fit.adam_batch_size", c.adam_batch_size, 1, 100'000'000);
  c.adam_init_sd = r.get_double("fit.adam_init_sd", c.adam_init_sd, 0.0, 100.0);
  c.adam_epsilon = r.get_double("fit.adam_epsilon", c.adam_epsilon, 0.0, 1.0);
  c.adam_plateau_factor = r.get_double("fit.adam_plateau_factor", c.adam_plateau_factor, 1e-6, 0.999999);
  c.adam_plateau_patience = r.get_int("fit.adam_plateau_patience", c.adam_plateau_patience, 0, 100'000'000);
  // Until these keys existed the parity fit monitored the epoch mean of
  // one fixed partition of the rows (results differ: a store from then
  // resumes with both written out).
  if (c.adam_parity || r.has("fit.adam_monitor")) {
    c.adam_monitor = r.get_choice("fit.adam_monitor", c.adam_monitor, {"last_batch", "epoch_mean"});
    r.key_existed_since("fit.adam_monitor", "epoch_mean");
  }
  if (c.adam_parity || r.has("fit.adam_batches")) {
    c.adam_batches = r.get_choice("fit.adam_batches", c.adam_batches, {"fresh", "pool", "fixed"});
    r.key_existed_since("fit.adam_batches", "fixed");
  }
  if ((c.adam_parity && c.adam_batches == "pool") || r.has("fit.adam_shuffles"))
    c.adam_shuffles = r.get_int("fit.adam_shuffles", c.adam_shuffles, 1, 100'000);
  c.batched_gradients = r.get_choice("fit.batched_gradients", c.batched_gradients, {"auto", "on", "off"});
  c.max_dropout_grad_norm =
      r.get_double("diagnostics.max_dropout_grad_norm", c.max_dropout_grad_norm, 0.0, 1e300);
  c.match_stationarity = r.get_bool("stationarity.match", c.match_stationarity);
  c.match_target = r.get_double("stationarity.target", c.match_target, 1e-300, 1e300);
  c.match_learning_rate = r.get_double("stationarity.learning_rate", c.match_learning_rate, 1e-300, 1e3);
  c.match_decay = r.get_double("stationarity.decay", c.match_decay, 1e-6, 1.0);
  c.match_round_epochs = r.get_int("stationarity.round_epochs", c.match_round_epochs, 1, 100'000'000);
  c.match_max_rounds = r.get_int("stationarity.max_rounds", c.match_max_rounds, 0, 100'000'000);
  c.save_equations = r.get_bool("outputs.save_equations", c.save_equations);

  const auto strictly_increasing = [&](const std::string& key, const auto& v) {
    if (v.empty()) config_error(r, key, "is empty; give at least one value");
    for (std::size_t i = 1; i < v.size(); ++i)
      if (!(v[i] > v[i - 1])) config_error(r, key, "must be strictly increasing");
  };
  strictly_increasing("grid.depths", c.depths);
  strictly_increasing("grid.widths", c.widths);
  strictly_increasing("grid.rates", c.rates);
  for (std::size_t i = 1; i < c.milestones.size(); ++i)
    if (c.milestones[i] <= c.milestones[i - 1]) config_error(r, "training.milestones", "must be strictly increasing epochs");
  for (double rate : c.rates) {
    const double units = rate * static_cast<double>(kRateUnits);
    if (std::abs(units - std::round(units)) > 1e-6)
      config_error(r, "grid.rates", "rates must be multiples of 1e-4 (they are part of the task ids)");
  }
  r.finish();
  return c;
}

// ---- tasks --------------------------------------------------------------------

std::uint64_t DropoutTask::id() const {
  return kTaskKind << 56 | static_cast<std::uint64_t>(depth) << 48 | static_cast<std::uint64_t>(width) << 32 |
         static_cast<std::uint64_t>(rate_units) << 16 | static_cast<std::uint64_t>(seed_index);
}

std::string DropoutTask::label() const {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "d%lld_w%lld_r%04lld_s%lld", static_cast<long long>(depth),
                static_cast<long long>(width), static_cast<long long>(rate_units), static_cast<long long>(seed_index));
  return buffer;
}

std::vector<DropoutTask> enumerate_dropout_tasks(const DropoutConfig& c) {
  std::vector<DropoutTask> tasks;
  for (std::int64_t depth : c.depths)
    for (std::int64_t width : c.widths)
      for (std::size_t k = 0; k < c.rates.size(); ++k)
        for (std::int64_t s = 0; s < c.seeds; ++s) {
          const auto units = static_cast<std::int64_t>(std::llround(c.rates[k] * static_cast<double>(kRateUnits)));
          tasks.push_back({depth, width, static_cast<std::int64_t>(k), units, s});
        }
  return tasks;
}

DropoutData load_dropout_data(const DropoutConfig& c) {
  DropoutData d;
  // The subsets fit the splits: read_dropout_config checked them against the files' headers.
  const auto [train, test] = training::load_idx_splits(c.data_dir);
  d.train_indices = subset(train.size(), c.train_subset, c.seed, kSubsetKind << 56 | 0);
  d.test_indices = subset(test.size(), c.test_subset, c.seed, kSubsetKind << 56 | 1);
  d.train = train.take(d.train_indices);
  d.test = test.take(d.test_indices);
  d.inputs = train.x.size(1);
  d.classes = std::max(train.y.max().item<std::int64_t>(), test.y.max().item<std::int64_t>()) + 1;
  return d;
}

std::vector<DropoutChunk> enumerate_dropout_chunks(const DropoutConfig& c) {
  const std::int64_t per_cell = static_cast<std::int64_t>(c.rates.size()) * c.seeds;
  const std::int64_t size = c.replicates_per_task > 0 ? std::min(c.replicates_per_task, per_cell) : per_cell;
  std::vector<DropoutChunk> chunks;
  std::int64_t cell = 0;
  for (std::int64_t depth : c.depths)
    for (std::int64_t width : c.widths) {
      for (std::int64_t first = 0; first < per_cell; first += size)
        chunks.push_back({depth, width, cell * per_cell + first, std::min(size, per_cell - first)});
      ++cell;
    }
  return chunks;
}

double dropout_chunk_cost(const DropoutChunk& chunk, std::int64_t inputs, std::int64_t classes, bool gpu) {
  const double parameters = classifier_parameters(static_cast<double>(inputs), static_cast<double>(chunk.depth),
                                                  static_cast<double>(chunk.width), static_cast<double>(classes));
  const double layers = gpu ? kDropoutGpuLayerCost * static_cast<double>(chunk.depth + 1) : 0.0;
  return static_cast<double>(chunk.count) * (parameters + layers);
}

std::uint64_t DropoutChunk::id() const {
  return kChunkKind << 56 | static_cast<std::uint64_t>(depth) << 48 | static_cast<std::uint64_t>(width) << 32 |
         static_cast<std::uint64_t>(first);
}

namespace {

training::TrainOptions train_options(const DropoutConfig& c);

// Matched stationarity's target and training options (the stream is the replicate's).
training::StationarityTarget match_target(const DropoutConfig& c) {
  training::StationarityTarget target;
  target.target = c.match_target;
  target.start_learning_rate = c.match_learning_rate;
  target.decay = c.match_decay;
  target.round_epochs = c.match_round_epochs;
  target.max_rounds = c.match_max_rounds;
  target.draws = c.mask_draws;
  target.gradient_batch_size = c.gradient_batch_size;
  return target;
}
training::TrainOptions match_options(const DropoutConfig& c) {
  training::TrainOptions base = train_options(c);
  base.seed = c.seed;
  return base;
}

// A replicate's data for its endpoint: float64 on the model's device.
struct EndpointSets {
  training::Dataset train, validation, test;
};

// Wall seconds of an endpoint's parts, summed over the endpoints of a task
// (each part ends by copying a result to the host, so on a GPU its kernels
// are done when its clock stops).
struct EndpointClock {
  using Clock = std::chrono::steady_clock;
  double gradient = 0, mask_draws = 0, margin = 0, parity = 0, evaluation = 0;
  std::int64_t endpoints = 0;
  // Adds the time since `since` to `part` and restarts `since`.
  static void lap(double& part, Clock::time_point& since) {
    const Clock::time_point now = Clock::now();
    part += std::chrono::duration<double>(now - since).count();
    since = now;
  }
  // "80 endpoints in 31.2 s: per endpoint gradient and fit 0.041 s, mask draws 0.120 s, ..."
  std::string text() const {
    const double n = static_cast<double>(std::max<std::int64_t>(endpoints, 1));
    const auto fixed = [](double s, int digits) {
      char text[64];
      std::snprintf(text, sizeof text, "%.*f s", digits, s);
      return std::string(text);
    };
    const auto each = [&](double s) { return fixed(s / n, 3); };
    return cat(endpoints, endpoints == 1 ? " endpoint in " : " endpoints in ",
               fixed(gradient + mask_draws + margin + parity + evaluation, 1),
               ": per endpoint gradient and fit ", each(gradient), ", mask draws ", each(mask_draws), ", margin ",
               each(margin), ", parity fit ", each(parity), ", evaluation ", each(evaluation));
  }
};

// Whether the many-per-pass gradients (mask draws, the parity fit's
// mini-batches) are used on a GPU or a CPU (fit.batched_gradients).
bool batched_gradients_on(const DropoutConfig& c, bool on_gpu) {
  return c.batched_gradients == "on" || (c.batched_gradients == "auto" && on_gpu);
}

// The endpoint of one trained replicate: matched stationarity (when asked),
// then every estimate in float64 on the model's device.
DropoutEndpoint endpoint_of(const DropoutConfig& c, const EndpointSets& sets, training::Mlp mlp,
                            const training::TrainResult& trained, const DropoutTask& task, std::uint64_t mask_key,
                            const std::string& equations_path, const training::StationarityMatch* matched = nullptr,
                            EndpointClock* clock = nullptr) {
  using namespace gradmatch::training;
  DropoutEndpoint e;
  e.epochs = trained.epochs;
  e.best_epoch = trained.best_epoch;
  if (trained.status == TrainStatus::diverged) {
    e.diverged = true;
    return e;
  }
  const at::Device device = mlp->layers().front()->weight.device();
  if (c.match_stationarity) {
    const auto match_alone = [&] {
      TrainOptions base = match_options(c);
      base.stream = replicate_stream(kMatchOrderKind, task);
      const at::ScalarType dtype = mlp->layers().front()->weight.scalar_type();
      return train_to_dropout_stationarity(mlp, sets.train.to(device, dtype), base, match_target(c), mask_key + kMatchMasks);
    };
    const StationarityMatch m = matched ? *matched : match_alone();
    e.matched = m.reached;
    e.match_rounds = m.rounds;
    e.match_epochs = m.epochs;
    if (m.diverged) {
      e.diverged = true;
      return e;
    }
  }
  // On a GPU (fit.batched_gradients = auto) the mask draws and the parity
  // fit's mini-batch gradients come many to a pass: one at a time they are
  // bound by launching small kernels (the parity fit alone took about 1.2 s
  // per depth-3 x width-128 network on an H200, against 0.3 s for its
  // training and every other estimate). On a CPU, auto keeps one at a time,
  // and with it the CPU's numbers to the bit.
  const bool batched = batched_gradients_on(c, device.is_cuda());
  // Rows of one batched pass: a half's mask draws of a gradient batch each;
  // the parity fit's passes hold as many of its mini-batches as full ones
  // would fill that (each batch with its copy of the parameters).
  const std::int64_t pass_rows = std::min(c.gradient_batch_size, sets.train.size()) * (c.mask_draws / 2);
  const std::int64_t batches_per_pass = std::max<std::int64_t>(1, pass_rows / c.adam_batch_size);
  EndpointClock::Clock::time_point since = EndpointClock::Clock::now();
  EndpointClock ignored;
  EndpointClock& laps = clock ? *clock : ignored;
  ++laps.endpoints;
  mlp->to(at::kDouble);
  const ModelHandle model = make_handle(mlp);
  e.parameters = model.parameter_count();
  const Dataset& train = sets.train;
  EndpointOptions eo;
  eo.loss = LossKind::cross_entropy;
  eo.batch_size = c.gradient_batch_size;
  const Endpoint end = extract_endpoint(model, train, eo);
  const Equations eq = to_equations(std::span<const Endpoint>(&end, 1));
  const FitResult f = fit(eq, ridge());
  e.lambda_hat = f.coefficient();
  e.lambda_fit_se = f.standard_errors.empty() ? std::nan("") : f.standard_errors.front();
  e.residual_ratio = f.residual_ratio;
  e.cosine = f.cosine;
  e.relative_grad_norm = end.relative_gradient_norm;
  const at::Tensor theta = at::tensor(end.theta, at::kDouble), g_eval = at::tensor(end.grad_loss, at::kDouble);
  e.theta_squared = theta.dot(theta).item<double>();
  e.grad_norm = std::sqrt(g_eval.dot(g_eval).item<double>());
  e.theta_norm = std::sqrt(e.theta_squared);
  EndpointClock::lap(laps.gradient, since);

  // The dropout objective's gradient and the decomposition lambda-hat = lambda_R + lambda_ns.
  const DropoutObjectiveGradient gp =
      batched ? dropout_objective_gradient_batched(mlp, train, LossKind::cross_entropy, c.mask_draws,
                                                   mask_key + kDiagnosticMasks, c.gradient_batch_size, pass_rows)
              : dropout_objective_gradient(mlp, train, LossKind::cross_entropy, c.mask_draws,
                                           mask_key + kDiagnosticMasks, c.gradient_batch_size);
  const at::Tensor g_p = gp.mean();
  e.dropout_grad_norm = dropout_relative_grad_norm(gp, e.theta_norm);
  e.dropout_grad_norm_plugin = std::sqrt(gp.plugin_squared_norm()) / e.theta_norm;
  e.lambda_penalty = (g_p - g_eval).dot(theta).item<double>() / (2.0 * e.theta_squared);
  e.lambda_nonstationary = -g_p.dot(theta).item<double>() / (2.0 * e.theta_squared);
  EndpointClock::lap(laps.mask_draws, since);

  const MarginIdentity margin = margin_identity(mlp, train, end.grad_loss, c.gradient_batch_size);
  e.margin_mean = margin.margin_mean;
  e.margin_identity_error = margin.relative_error;
  EndpointClock::lap(laps.margin, since);

  e.lambda_adam = e.lambda_adam_exact = std::nan("");
  if (c.adam_parity) {
    // Each epoch's mini-batches (see fit.adam_batches): `fresh` a new
    // shuffle of the rows (the authors' loader), `pool` the first K - 1
    // batches of one of adam_shuffles shuffles in turn and a last batch of
    // rows drawn afresh (the monitored loss keeps its epoch-to-epoch noise at
    // a small part of a pass's cost), `fixed` the rows in order. Epochs are
    // made when first run; the draws are the task's, in epoch order.
    const std::int64_t n = train.size(), batch = c.adam_batch_size;
    const std::int64_t tail = adam_last_batch_rows(c, n);  // used where n > batch
    const bool one_partition = adam_one_partition(c, n);
    Rng shuffles(c.seed, replicate_stream(kAdamShuffleKind, task));
    Rng tails(c.seed, replicate_stream(kAdamTailKind, task));
    std::vector<std::vector<double>> pool_tb, pool_bb;  // the first K - 1 batches of each pool shuffle
    // Batched: batches_per_pass batches' gradients a pass (minibatch_gradients_batched).
    const auto reduce = [&](const MinibatchGradients& mb, std::vector<double>& tb, std::vector<double>& bb) {
      for (double v : mb.theta_dot_grad) tb.push_back(-v);  // b_k = -g_k
      bb.insert(bb.end(), mb.grad_squared.begin(), mb.grad_squared.end());
    };
    // The reduced gradients of batches given by their rows (of equal size).
    const auto add_batches = [&](const std::vector<std::vector<std::int64_t>>& rows, std::vector<double>& tb,
                                 std::vector<double>& bb) {
      if (rows.empty()) return;
      if (batched)
        return reduce(minibatch_gradients_batched(mlp, train, LossKind::cross_entropy, rows,
                                                  batches_per_pass * static_cast<std::int64_t>(rows.front().size())),
                      tb, bb);
      for (const auto& one : rows) reduce(minibatch_gradients(model, train, LossKind::cross_entropy, batch, one), tb, bb);
    };
    const auto append = [&](const std::vector<std::int64_t>& order, std::vector<double>& tb, std::vector<double>& bb) {
      if (!batched) return reduce(minibatch_gradients(model, train, LossKind::cross_entropy, batch, order), tb, bb);
      std::vector<std::vector<std::int64_t>> full, last;  // the batches of `batch` rows, and a shorter last one
      const std::int64_t rows = order.empty() ? n : static_cast<std::int64_t>(order.size());
      for (std::int64_t begin = 0; begin < rows; begin += batch) {
        const std::int64_t stop = std::min(rows, begin + batch);
        std::vector<std::int64_t> b(static_cast<std::size_t>(stop - begin));
        for (std::int64_t i = begin; i < stop; ++i)
          b[static_cast<std::size_t>(i - begin)] = order.empty() ? i : order[static_cast<std::size_t>(i)];
        (stop - begin == batch ? full : last).push_back(std::move(b));
      }
      add_batches(full, tb, bb);
      add_batches(last, tb, bb);
    };
    // The pool's last batches, drawn from their own stream in epoch order:
    // on a GPU as many at a time as one pass holds (the draws are those of
    // one epoch at a time; a fit that stops leaves its unused ones unread).
    std::vector<double> tail_tb, tail_bb;
    std::size_t tail_next = 0;
    const auto next_tail = [&](std::vector<double>& tb, std::vector<double>& bb) {
      if (tail_next == tail_tb.size()) {
        const std::int64_t count = batched ? std::min(batches_per_pass, c.adam_max_epochs) : 1;
        std::vector<std::vector<std::int64_t>> draws;
        for (std::int64_t k = 0; k < count; ++k) {
          draws.push_back(training::permutation(n, tails));
          draws.back().resize(static_cast<std::size_t>(tail));
        }
        tail_tb.clear();
        tail_bb.clear();
        tail_next = 0;
        add_batches(draws, tail_tb, tail_bb);
      }
      tb.push_back(tail_tb[tail_next]);
      bb.push_back(tail_bb[tail_next]);
      ++tail_next;
    };
    const auto source = [&](std::int64_t epoch, std::vector<double>& theta_dot_b, std::vector<double>& b_squared) {
      theta_dot_b.clear();
      b_squared.clear();
      if (one_partition) return append({}, theta_dot_b, b_squared);
      if (c.adam_batches == "fresh") return append(training::permutation(n, shuffles), theta_dot_b, b_squared);
      const auto r = static_cast<std::size_t>(epoch % c.adam_shuffles);
      if (r == pool_tb.size()) {
        std::vector<std::int64_t> order = training::permutation(n, shuffles);
        order.resize(static_cast<std::size_t>(n - tail));
        pool_tb.emplace_back();
        pool_bb.emplace_back();
        if (!order.empty()) append(order, pool_tb.back(), pool_bb.back());
      }
      theta_dot_b = pool_tb[r];
      b_squared = pool_bb[r];
      next_tail(theta_dot_b, b_squared);
    };
    ols::MinibatchAdamOptions ao;
    ao.learning_rate = c.adam_learning_rate;
    ao.max_epochs = c.adam_max_epochs;
    ao.patience = c.adam_patience;
    ao.epsilon = c.adam_epsilon;
    ao.plateau_factor = c.adam_plateau_factor;
    ao.plateau_patience = c.adam_plateau_patience;
    ao.monitor = c.adam_monitor == "epoch_mean" ? ols::AdamMonitor::epoch_mean : ols::AdamMonitor::last_batch;
    Rng start(c.seed, replicate_stream(kAdamKind, task));
    ao.init_log_lambda = c.adam_init_sd * start.normal();
    const at::Tensor flat = flat_parameters(model);  // ||theta||^2 as minibatch_gradients() takes it
    const ols::MinibatchAdamFit adam = ols::fit_ridge_adam_minibatch(
        flat.dot(flat).item<double>(), flat.numel(), one_partition ? 1 : c.adam_max_epochs, source, ao);
    e.lambda_adam = adam.lambda;
    e.lambda_adam_exact = adam.lambda_exact;
    e.adam_epochs = adam.epochs;
  }
  EndpointClock::lap(laps.parity, since);
  e.train_loss = end.loss;
  // Evaluation in the model's float64 (the trainer's helpers do not convert).
  const Dataset& validation = sets.validation;
  const Dataset& test = sets.test;
  e.validation_loss = evaluate_loss(model, validation, LossKind::cross_entropy, c.gradient_batch_size);
  e.test_loss = evaluate_loss(model, test, LossKind::cross_entropy, c.gradient_batch_size);
  const at::Tensor predicted = predict(model, test.x, c.gradient_batch_size).argmax(1);
  e.test_accuracy = predicted.eq(test.y).to(at::kDouble).mean().item<double>();
  EndpointClock::lap(laps.evaluation, since);
  if (c.save_equations && !equations_path.empty()) io::write_equation_file(equations_path, eq);
  return e;
}

training::TrainOptions train_options(const DropoutConfig& c) {
  using namespace gradmatch::training;
  TrainOptions o;
  o.loss = LossKind::cross_entropy;
  o.optimizer.kind = OptimizerKind::sgd;
  o.optimizer.learning_rate = c.learning_rate;
  o.optimizer.momentum = c.momentum;
  o.optimizer.milestones = c.milestones;
  o.optimizer.gamma = c.gamma;
  o.max_epochs = c.max_epochs;
  o.batch_size = c.batch_size;
  o.shuffle = true;
  o.early_stopping = EarlyStoppingOptions{c.patience, c.min_delta, Monitor::validation};
  o.keep_best = c.keep_best;
  o.tf32 = c.tf32;
  return o;
}

training::ReplicateSpec replicate_spec(const DropoutConfig& c, const DropoutTask& task) {
  training::ReplicateSpec s;
  s.init_seed = c.seed;
  s.init_stream = architecture_stream(kInitKind, task);
  s.order_seed = c.seed;
  s.order_stream = architecture_stream(kOrderKind, task);
  s.dropout = c.rates[sz(task.rate_index)];
  const auto words = Philox(c.seed, task.id()).block(0);
  s.dropout_key = static_cast<std::uint64_t>(words[0]) << 32 | words[1];
  return s;
}

// The train/validation split of a seed: keyed by (study seed, seed).
std::uint64_t split_stream(std::int64_t seed_index) { return kSplitKind << 56 | sz(seed_index); }

training::Split split_of(const DropoutConfig& c, const DropoutData& data, std::int64_t seed_index) {
  return training::split(data.train, c.validation_fraction, c.seed, split_stream(seed_index));
}

}  // namespace

DropoutEndpoint run_dropout_task(const DropoutConfig& c, const DropoutData& data, const DropoutTask& task,
                                 const std::string& equations_path, const at::Device& device) {
  using namespace gradmatch::training;
  const Split parts = split_of(c, data, task.seed_index);
  const ReplicateSpec spec = replicate_spec(c, task);
  Mlp mlp = make_mlp(classifier_options(data.inputs, task.depth, task.width, data.classes, *spec.dropout), spec.init_seed,
                     spec.init_stream, device, c.float64 ? at::kDouble : at::kFloat);
  mlp->seed_dropout(spec.dropout_key);
  TrainOptions o = train_options(c);
  o.seed = spec.order_seed;
  o.stream = spec.order_stream;
  const at::ScalarType dtype = c.float64 ? at::kDouble : at::kFloat;
  const TrainResult trained =
      train(make_handle(mlp), parts.train.to(device, dtype), parts.validation.to(device, dtype), o);
  const EndpointSets sets{parts.train.to(device, at::kDouble), parts.validation.to(device, at::kDouble),
                          data.test.to(device, at::kDouble)};
  return endpoint_of(c, sets, mlp, trained, task, spec.dropout_key, equations_path);
}

ChunkTraining chunk_training_for(const at::Device& device) {
  return device.is_cpu() ? ChunkTraining::one_at_a_time : ChunkTraining::batched;
}

std::vector<DropoutEndpoint> run_dropout_chunk(const DropoutConfig& c, const DropoutData& data,
                                               const std::vector<DropoutTask>& tasks, const DropoutChunk& chunk,
                                               const at::Device& device, const std::string& equations_dir,
                                               TaskProgress* progress, ChunkTraining how) {
  using namespace gradmatch::training;
  const at::ScalarType dtype = c.float64 ? at::kDouble : at::kFloat;
  std::vector<ReplicateSpec> specs;
  std::vector<at::Tensor> train_rows, validation_rows;
  for (std::int64_t k = 0; k < chunk.count; ++k) {
    const DropoutTask& t = tasks[sz(chunk.first + k)];
    specs.push_back(replicate_spec(c, t));
    // The same rows as split_of's, as indices into the shared pool.
    const SplitIndices rows =
        split_indices(data.train.size(), c.validation_fraction, c.seed, split_stream(t.seed_index));
    train_rows.push_back(at::tensor(rows.train, at::kLong));
    validation_rows.push_back(at::tensor(rows.validation, at::kLong));
  }
  const DropoutTask& first = tasks[sz(chunk.first)];
  const Dataset pool = data.train.to(device, dtype);  // shared by the groups
  const TrainOptions options = train_options(c);

  // Replicates [k0, k0 + n) of the chunk as one batched model: trained, then
  // (matched stationarity) trained on in rounds to the target.
  struct Group {
    BatchedMlp model{nullptr};
    std::vector<TrainResult> trained;
    std::vector<StationarityMatch> matched;
  };
  const auto train_group = [&](std::int64_t k0, std::int64_t n, const EpochHook& on_epoch, const std::string& who) {
    const std::span<const ReplicateSpec> group_specs(specs.data() + k0, sz(n));
    Group g;
    g.model = BatchedMlp(classifier_options(data.inputs, first.depth, first.width, data.classes, 0.0), group_specs, dtype);
    g.model->to(device);
    ReplicateData rd;
    rd.pool = pool;
    rd.train = at::stack(std::vector<at::Tensor>(train_rows.begin() + k0, train_rows.begin() + k0 + n)).to(device);
    rd.validation =
        at::stack(std::vector<at::Tensor>(validation_rows.begin() + k0, validation_rows.begin() + k0 + n)).to(device);
    g.trained = train_replicates(g.model, rd, options, group_specs, nullptr, on_epoch);
    if (c.match_stationarity) {
      std::vector<std::uint64_t> streams, keys;
      std::vector<char> skip;
      for (std::int64_t k = k0; k < k0 + n; ++k) {
        streams.push_back(replicate_stream(kMatchOrderKind, tasks[sz(chunk.first + k)]));
        keys.push_back(specs[sz(k)].dropout_key + kMatchMasks);
        skip.push_back(g.trained[sz(k - k0)].status == TrainStatus::diverged ? 1 : 0);
      }
      g.matched = train_replicates_to_dropout_stationarity(
          g.model, rd, match_options(c), streams, match_target(c), keys, skip,
          [&](std::int64_t round, std::int64_t above, double median) {
            if (progress)
              progress->note(cat(who, "matching stationarity: round ", round + 1, " of at most ", c.match_max_rounds,
                                 ", ", above, " of ", n, " above the target ", short_number(c.match_target),
                                 " (median ||g_p||/||theta|| ", short_number(std::round(median * 1e6) / 1e6), ")"));
          });
    }
    return g;
  };
  // Batched: one group, replicate k its row k; one at a time: group k, row 0.
  const bool batched = how == ChunkTraining::batched;
  std::vector<Group> groups;
  if (batched) {
    EpochHook on_epoch;
    if (progress)
      on_epoch = [&](std::int64_t epoch, std::int64_t training) { progress->epoch(epoch, options.max_epochs, training); };
    groups.push_back(train_group(0, chunk.count, on_epoch, ""));
  } else {
    std::int64_t epochs_before = 0;
    for (std::int64_t k = 0; k < chunk.count; ++k) {
      EpochHook on_epoch;
      if (progress)
        on_epoch = [&, k](std::int64_t epoch, std::int64_t) {
          progress->sequential_epoch("classifier", k + 1, chunk.count, epoch, options.max_epochs, epochs_before);
        };
      groups.push_back(train_group(k, 1, on_epoch, chunk.count > 1 ? cat("classifier ", k + 1, " of ", chunk.count, ", ") : ""));
      epochs_before += groups.back().trained.front().epochs;
    }
  }
  if (progress) {
    progress->summary(cat(chunk.count, chunk.count == 1 ? " classifier" : " classifiers", " trained"));
    progress->training_done();
  }

  // The endpoints' data in float64 on the device, converted once for the
  // chunk: each replicate's training and validation rows are taken from the
  // pool there (the values of its split's, converted: float32 to float64 is exact).
  const Dataset pool64 = data.train.to(device, at::kDouble);
  const Dataset test64 = data.test.to(device, at::kDouble);
  EndpointClock clock;
  std::vector<DropoutEndpoint> out;
  for (std::int64_t k = 0; k < chunk.count; ++k) {
    const DropoutTask& t = tasks[sz(chunk.first + k)];
    const Group& g = groups[sz(batched ? 0 : k)];
    const std::int64_t row = batched ? k : 0;
    const std::string equations =
        equations_dir.empty() ? std::string() : (std::filesystem::path(equations_dir) / ("equations_" + t.label() + ".h5")).string();
    const EndpointSets sets{pool64.take(train_rows[sz(k)].to(device)), pool64.take(validation_rows[sz(k)].to(device)),
                            test64};
    out.push_back(endpoint_of(c, sets, g.model->replicate(row), g.trained[sz(row)], t, specs[sz(k)].dropout_key,
                              equations, g.matched.empty() ? nullptr : &g.matched[sz(row)], &clock));
    if (progress) progress->endpoint(k + 1, chunk.count);
  }
  if (progress) progress->summary(clock.text());
  return out;
}

// ---- assembly -----------------------------------------------------------------

std::vector<DropoutCell> assemble_dropout(const DropoutConfig& c, const std::vector<DropoutTask>& tasks,
                                          const std::vector<DropoutEndpoint>& endpoints) {
  std::vector<DropoutCell> cells;
  for (std::size_t first = 0; first < tasks.size(); first += sz(c.seeds)) {
    const DropoutTask& t = tasks[first];
    DropoutCell cell;
    cell.depth = t.depth;
    cell.width = t.width;
    cell.rate = c.rates[sz(t.rate_index)];
    std::vector<double> lambda, penalty, nonstationary, dropout_norm, cosine, residual, relative, margin, theta2,
        accuracy, adam, epochs, best;
    cell.margin_identity_max_error = 0.0;
    for (std::size_t k = first; k < first + sz(c.seeds); ++k) {
      const DropoutEndpoint& e = endpoints[k];
      epochs.push_back(static_cast<double>(e.epochs + e.match_epochs));
      if (e.diverged) {
        ++cell.diverged;
        continue;
      }
      ++cell.seeds;
      cell.matched += e.matched;
      lambda.push_back(e.lambda_hat);
      penalty.push_back(e.lambda_penalty);
      nonstationary.push_back(e.lambda_nonstationary);
      dropout_norm.push_back(e.dropout_grad_norm);
      cosine.push_back(e.cosine);
      residual.push_back(e.residual_ratio);
      relative.push_back(e.relative_grad_norm);
      margin.push_back(e.margin_mean);
      theta2.push_back(e.theta_squared);
      accuracy.push_back(e.test_accuracy);
      adam.push_back(e.lambda_adam);
      best.push_back(static_cast<double>(e.best_epoch));
      cell.margin_identity_max_error = std::max(cell.margin_identity_max_error, e.margin_identity_error);
    }
    cell.lambda_hat_median = stats::finite_median(lambda);
    cell.lambda_penalty_median = stats::finite_median(penalty);
    cell.lambda_nonstationary_median = stats::finite_median(nonstationary);
    cell.dropout_grad_norm_median = stats::finite_median(dropout_norm);
    cell.cosine_median = stats::finite_median(cosine);
    cell.residual_ratio_median = stats::finite_median(residual);
    cell.relative_grad_norm_median = stats::finite_median(relative);
    cell.margin_mean_median = stats::finite_median(margin);
    cell.theta_squared_median = stats::finite_median(theta2);
    cell.test_accuracy_median = stats::finite_median(accuracy);
    cell.adam_lambda_median = stats::finite_median(adam);
    cell.epochs_median = stats::finite_median(epochs);
    cell.best_epoch_median = stats::finite_median(best);
    if (cell.seeds == 0) cell.margin_identity_max_error = std::nan("");
    cell.trusted = cell.seeds > 0 && cell.dropout_grad_norm_median <= c.max_dropout_grad_norm;
    cells.push_back(cell);
  }
  return cells;
}

namespace {
const Schema<DropoutCell>& cell_schema();  // with the store's codec below
}  // namespace

namespace {

// The within-seed trend test of one endpoint quantity against the rate, per
// (depth, width): one block per seed (its rates share the initial weights and
// batch order), a diverged endpoint left out; Monte Carlo draws keyed by
// (study seed, depth, width, quantity).
nlohmann::json seed_trend(const DropoutConfig& c, const std::vector<DropoutTask>& tasks,
                          const std::vector<DropoutEndpoint>& endpoints, std::int64_t depth, std::int64_t width,
                          double DropoutEndpoint::*quantity, std::uint64_t quantity_index) {
  std::vector<stats::TrendBlock> blocks(sz(c.seeds));
  for (std::size_t k = 0; k < tasks.size(); ++k) {
    const DropoutTask& t = tasks[k];
    if (t.depth != depth || t.width != width) continue;
    const DropoutEndpoint& e = endpoints[k];
    blocks[sz(t.seed_index)].x.push_back(c.rates[sz(t.rate_index)]);
    blocks[sz(t.seed_index)].y.push_back(e.diverged ? std::nan("") : e.*quantity);
  }
  const std::uint64_t stream = kTrendKind << 56 | static_cast<std::uint64_t>(depth) << 48 |
                               static_cast<std::uint64_t>(width) << 32 | quantity_index;
  const stats::TrendTest test = stats::blocked_trend_test(blocks, c.seed, stream);
  return {{"statistic", test.statistic}, {"p_increasing", test.p_increasing}, {"p_decreasing", test.p_decreasing},
          {"seeds", test.blocks},        {"permutations", test.permutations},  {"exact", test.exact}};
}

}  // namespace

nlohmann::json dropout_summary(const DropoutConfig& c, const std::vector<DropoutTask>& tasks,
                               const std::vector<DropoutEndpoint>& endpoints, const std::vector<DropoutCell>& cells) {
  nlohmann::json out_cells = nlohmann::json::array();
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<const DropoutCell*>> by_architecture;
  std::int64_t untrusted = 0;
  for (const DropoutCell& cell : cells) {
    by_architecture[{cell.depth, cell.width}].push_back(&cell);
    untrusted += !cell.trusted;
    out_cells.push_back(cell_schema().json(cell));
  }
  nlohmann::json trends = nlohmann::json::array();
  for (const auto& [arch, list] : by_architecture) {
    std::vector<double> rate, lambda, penalty, nonstationary;
    for (const DropoutCell* cell : list) {
      rate.push_back(cell->rate);
      lambda.push_back(cell->lambda_hat_median);
      penalty.push_back(cell->lambda_penalty_median);
      nonstationary.push_back(cell->lambda_nonstationary_median);
    }
    bool monotone = true;
    for (std::size_t i = 1; i < lambda.size(); ++i) monotone = monotone && lambda[i] > lambda[i - 1];
    trends.push_back({{"depth", arch.first},
                      {"width", arch.second},
                      {"spearman", stats::spearman(rate, lambda)},
                      {"spearman_penalty", stats::spearman(rate, penalty)},
                      {"spearman_nonstationary", stats::spearman(rate, nonstationary)},
                      {"seed_trend", seed_trend(c, tasks, endpoints, arch.first, arch.second, &DropoutEndpoint::lambda_hat, 0)},
                      {"seed_trend_penalty",
                       seed_trend(c, tasks, endpoints, arch.first, arch.second, &DropoutEndpoint::lambda_penalty, 1)},
                      {"seed_trend_nonstationary", seed_trend(c, tasks, endpoints, arch.first, arch.second,
                                                              &DropoutEndpoint::lambda_nonstationary, 2)},
                      {"monotone_increasing", monotone},
                      {"lambda_hat_median_first_rate", lambda.front()},
                      {"lambda_hat_median_last_rate", lambda.back()}});
  }
  return {
      {"study", kStudy},
      {"gradmatch_version", io::gradmatch_version()},
      {"data_dir", c.data_dir},
      {"seeds", c.seeds},
      {"depths", c.depths},
      {"widths", c.widths},
      {"rates", c.rates},
      {"milestones", c.milestones},
      {"gamma", c.gamma},
      {"training_precision", c.float64 ? "float64" : c.tf32 ? "float32, TF32 matrix products" : "float32"},
      {"matched_stationarity", c.match_stationarity ? nlohmann::json(c.match_target) : nlohmann::json(nullptr)},
      {"trust_rule", {{"max_dropout_grad_norm", c.max_dropout_grad_norm}}},
      {"untrusted_cells", untrusted},
      {"trends", trends},
      {"cells", out_cells}};
}

// ---- the run ------------------------------------------------------------------

namespace {

using DE = DropoutEndpoint;

/// One endpoint: the store row, results.h5 `endpoints/*` [depth, width, rate, seed].
const Schema<DE>& endpoint_schema() {
  static const Schema<DE> schema{
      scalar("lambda_hat", &DE::lambda_hat, "", "closed-form ridge <theta, b> / (2 ||theta||^2), b = -grad L (eval mode)"),
      scalar("lambda_fit_se", &DE::lambda_fit_se, "", "regression standard error of lambda_hat"),
      scalar("residual_ratio", &DE::residual_ratio, "", "||b - 2 lambda-hat theta|| / ||b||"),
      scalar("cosine", &DE::cosine, "", "|cos(b, theta)|"),
      scalar("relative_grad_norm", &DE::relative_grad_norm, "", "||grad L|| / ||theta|| (eval mode)"),
      scalar("grad_norm", &DE::grad_norm, "", "||grad L|| (eval mode, full batch)"),
      scalar("theta_norm", &DE::theta_norm, "", "||theta||"),
      scalar("theta_squared", &DE::theta_squared, "", "||theta||^2"),
      scalar("lambda_penalty", &DE::lambda_penalty, "", "lambda_R = <g_p - g_eval, theta> / (2 ||theta||^2): dropout's penalty projected on ridge"),
      scalar("lambda_nonstationary", &DE::lambda_nonstationary, "", "lambda_ns = -<g_p, theta> / (2 ||theta||^2): the part due to non-stationarity"),
      scalar("dropout_grad_norm", &DE::dropout_grad_norm, "", "sqrt(max(<g_A, g_B>, 0)) / ||theta||: unbiased ||g_p|| / ||theta|| of the dropout objective"),
      scalar("dropout_grad_norm_plugin", &DE::dropout_grad_norm_plugin, "", "||(g_A + g_B) / 2|| / ||theta||: biased upward by tr Sigma / K"),
      scalar("margin_mean", &DE::margin_mean, "nats", "M = mean <e_y - softmax(z), z> (eval mode)"),
      scalar("margin_identity_error", &DE::margin_identity_error, "", "relative error of -<grad L, theta> = (D+1) M + sum (k-1) <dL/db_k, b_k>"),
      scalar("lambda_adam", &DE::lambda_adam, "", "lambda by the authors' Adam fit (NaN without adam_parity)"),
      scalar("lambda_adam_exact", &DE::lambda_adam_exact, "", "exact minimiser of the Adam fit's loss over the mini-batches it ran (NaN without adam_parity)"),
      scalar("train_loss", &DE::train_loss, "nats", "full-batch training cross-entropy (eval mode)"),
      scalar("validation_loss", &DE::validation_loss, "nats", "validation cross-entropy"),
      scalar("test_loss", &DE::test_loss, "nats", "test cross-entropy"),
      scalar("test_accuracy", &DE::test_accuracy, "", "test accuracy"),
      scalar("epochs", &DE::epochs, "epochs", "epochs trained"),
      scalar("best_epoch", &DE::best_epoch, "epochs", "epoch of the best validation loss (by the early-stopping rule); its parameters were kept with training.keep_best, else the last epoch's; 0 without early stopping or for a diverged network"),
      scalar("parameters", &DE::parameters, "", "parameters of the network"),
      scalar("adam_epochs", &DE::adam_epochs, "epochs", "epochs of the Adam fit (0 without adam_parity)"),
      scalar("matched", &DE::matched, "", "reached the matched-stationarity target (stationarity.match)"),
      scalar("match_rounds", &DE::match_rounds, "", "matched-stationarity training rounds"),
      scalar("match_epochs", &DE::match_epochs, "epochs", "epochs trained in those rounds"),
      scalar("diverged", &DE::diverged, "", "training diverged (the estimates are NaN)")};
  return schema;
}

/// What the store and the outputs hold of an endpoint: a diverged one keeps
/// its flag and counts, every estimate NaN.
DE published(const DE& e) { return e.diverged ? endpoint_schema().without_estimates(e) : e; }

/// The Adam parity fit's lambda is NaN where fit.adam_parity is off, in a
/// network that trained: not a divergence.
std::vector<double> encode(const DE& e) {
  return e.diverged ? endpoint_schema().encode(published(e)) : endpoint_schema().encode_finished(e);
}
DE decode(std::span<const double> v) { return endpoint_schema().decode(v); }

using DC = DropoutCell;

/// One (depth, width, rate) cell: results.h5 `cells/*` and summary.json `cells`.
const Schema<DC>& cell_schema() {
  static const Schema<DC> schema{
      scalar("depth", &DC::depth, "", "hidden layers"),
      scalar("width", &DC::width, "units", "hidden units per layer"),
      scalar("rate", &DC::rate, "", "dropout rate"),
      scalar("lambda_hat_median", &DC::lambda_hat_median, "", "median over seeds of lambda_hat"),
      scalar("lambda_penalty_median", &DC::lambda_penalty_median, "", "median over seeds of lambda_R"),
      scalar("lambda_nonstationary_median", &DC::lambda_nonstationary_median, "", "median over seeds of lambda_ns"),
      scalar("dropout_grad_norm_median", &DC::dropout_grad_norm_median, "", "median over seeds of the unbiased ||g_p|| / ||theta||"),
      scalar("cosine_median", &DC::cosine_median, "", "median over seeds of the cosine (how ridge-shaped the endpoint gradient is)"),
      scalar("residual_ratio_median", &DC::residual_ratio_median, "", "median over seeds of the residual ratio"),
      scalar("relative_grad_norm_median", &DC::relative_grad_norm_median, "", "median over seeds of ||grad L|| / ||theta||"),
      scalar("margin_mean_median", &DC::margin_mean_median, "nats", "median over seeds of the mean margin M"),
      scalar("theta_squared_median", &DC::theta_squared_median, "", "median over seeds of ||theta||^2"),
      scalar("margin_identity_max_error", &DC::margin_identity_max_error, "", "largest relative error of the margin identity"),
      scalar("test_accuracy_median", &DC::test_accuracy_median, "", "median over seeds of the test accuracy"),
      scalar("adam_lambda_median", &DC::adam_lambda_median, "", "median over seeds of the Adam-fit lambda"),
      scalar("epochs_median", &DC::epochs_median, "epochs", "median over seeds of the epochs trained (matching rounds included)"),
      scalar("best_epoch_median", &DC::best_epoch_median, "epochs",
             "median over seeds that did not diverge of the epoch of the best validation loss (0 without early stopping)"),
      scalar("seeds", &DC::seeds, "", "seeds that did not diverge"),
      scalar("matched", &DC::matched, "", "seeds that reached the matched-stationarity target"),
      scalar("diverged", &DC::diverged, "", "seeds that diverged"),
      scalar("trusted", &DC::trusted, "", "median dropout_grad_norm <= diagnostics.max_dropout_grad_norm")};
  return schema;
}

void write_results(const std::string& path, const DropoutConfig& c, const std::string& config_text,
                   const std::vector<DropoutEndpoint>& endpoints, const std::vector<DropoutCell>& cells,
                   const DropoutData& data) {
  io::ResultsWriter w(path, kStudy);
  const auto nd = static_cast<std::int64_t>(c.depths.size()), nw = static_cast<std::int64_t>(c.widths.size()),
             nr = static_cast<std::int64_t>(c.rates.size());
  w.write("config", config_text, {"the study's TOML config as given", "", {}});
  w.write("grid/depths", c.depths, {"hidden layers", "", {"depth"}});
  w.write("grid/widths", c.widths, {"hidden units per layer", "units", {"width"}});
  w.write("grid/rates", c.rates, {"dropout rate", "", {"rate"}});
  w.write("grid/seeds", c.seeds, {"seeds per cell", "", {}});
  w.write("data/train_images", data.train.size(), {"training images used", "", {}});
  w.write("data/test_images", data.test.size(), {"test images used", "", {}});
  std::vector<DE> shown;
  for (const DE& e : endpoints) shown.push_back(published(e));
  endpoint_schema().write(w, "endpoints", shown, Axes{{"depth", "width", "rate", "seed"}, {nd, nw, nr, c.seeds}});
  cell_schema().write(w, "cells", cells, Axes{{"depth", "width", "rate"}, {nd, nw, nr}});
  w.commit();
}

}  // namespace

namespace {

class DropoutStudy final : public Study {
 public:
  void configure(io::ConfigReader& reader) override {
    config_ = read_dropout_config(reader);
    config_text_ = reader.text();
    // estimate() runs before prepare() says the device: what `device` will give.
    const std::string request = reader.get_choice(kDeviceKey, "auto", device_choices());
    will_use_gpu_ = request == "cuda" || (request == "auto" && training::cuda_device_count() > 0);
  }
  void prepare(const StudyContext& context) override {
    out_dir_ = context.out_dir;
    device_ = context.device;
    tasks_ = enumerate_dropout_tasks(config_);
    chunks_ = enumerate_dropout_chunks(config_);
    widest_ = 0;
    for (const DropoutChunk& ch : chunks_) widest_ = std::max(widest_, ch.count);
    data_ = load_dropout_data(config_);
  }
  std::vector<TaskTable> tables() const override {
    TaskTable table{"chunks", endpoint_schema().width() * widest_, {}, {}};
    for (const DropoutChunk& ch : chunks_) {
      table.ids.push_back(ch.id());
      table.costs.push_back(dropout_chunk_cost(ch, data_.inputs, data_.classes, will_use_gpu_));  // the dearest first
    }
    return {table};
  }
  std::vector<std::pair<std::string, std::string>> input_files() const override {
    std::vector<std::pair<std::string, std::string>> out;
    add_idx_inputs(out, "data.dir", config_.data_dir, /*test=*/true);
    return out;
  }
  std::vector<TaskFile> task_files() const override {
    std::vector<TaskFile> out;
    if (!config_.save_equations) return out;
    for (std::size_t row = 0; row < chunks_.size(); ++row)
      for (std::int64_t k = 0; k < chunks_[row].count; ++k)
        out.push_back({0, static_cast<std::int64_t>(row),
                       cat("equations_", tasks_[sz(chunks_[row].first + k)].label(), ".h5")});
    return out;
  }
  std::vector<std::string> task_labels() const override {
    const DropoutConfig& c = config_;
    const std::vector<DropoutTask> tasks = enumerate_dropout_tasks(c);
    const auto per_cell = static_cast<std::int64_t>(c.rates.size()) * c.seeds;
    const auto classifier = [&](std::int64_t k) {
      const DropoutTask& t = tasks[sz(k)];
      return cat("rate ", label_number(c.rates[sz(t.rate_index)]), " seed ", std::to_string(t.seed_index));
    };
    std::vector<std::string> labels;
    for (const DropoutChunk& ch : enumerate_dropout_chunks(c)) {
      std::string label = cat("depth ", std::to_string(ch.depth), ", width ", std::to_string(ch.width), ": ");
      if (ch.count == per_cell)
        label += cat("all ", std::to_string(per_cell), " classifiers");
      else if (ch.count == 1)
        label += classifier(ch.first);
      else
        label += cat(classifier(ch.first), " to ", classifier(ch.first + ch.count - 1), " (", std::to_string(ch.count),
                     " classifiers)");
      labels.push_back(std::move(label));
    }
    return labels;
  }
  std::string describe() const override {
    return cat(std::to_string(tasks_.size()), " classifiers (", std::to_string(config_.depths.size()), " depths x ",
               std::to_string(config_.widths.size()), " widths x ", std::to_string(config_.rates.size()),
               " rates x ", std::to_string(config_.seeds), " seeds) in ", std::to_string(chunks_.size()),
               " tasks, ", std::to_string(data_.train.size()), " training images");
  }
  ResourceEstimate estimate() const override {
    const DropoutConfig& c = config_;
    const std::vector<DropoutChunk> chunks = enumerate_dropout_chunks(c);
    std::int64_t widest = 0;
    for (const DropoutChunk& ch : chunks) widest = std::max(widest, ch.count);
    // Before the IDX headers are read: Fashion-MNIST's sizes (60,000 + 10,000 images of 784 pixels, 10 classes).
    const double n = static_cast<double>(c.train_subset > 0 ? std::min<std::int64_t>(c.train_subset, 60000) : 60000);
    const double n_test = static_cast<double>(c.test_subset > 0 ? std::min<std::int64_t>(c.test_subset, 10000) : 10000);
    const double inputs = 784.0, classes = 10.0;
    double p_max = 0.0, flops = 0.0, flops64 = 0.0;
    for (std::int64_t depth : c.depths)
      for (std::int64_t width : c.widths) {
        const double p = classifier_parameters(inputs, static_cast<double>(depth), static_cast<double>(width), classes);
        p_max = std::max(p_max, p);
        // Training: 6 n p flops per replicate-epoch, at most max_epochs epochs
        // plus, with matched stationarity, max_rounds rounds of round_epochs.
        const double epochs = static_cast<double>(c.max_epochs) +
                              (c.match_stationarity ? static_cast<double>(c.match_max_rounds * c.match_round_epochs) : 0.0);
        flops += 6.0 * n * (1.0 - c.validation_fraction) * p * epochs * static_cast<double>(c.rates.size() * sz(c.seeds));
        // The estimates: float64 gradient passes over the training split (the
        // endpoint's, the margin identity's, the mask draws' and the parity
        // fit's), counted at twice float32's cost.
        const double n_train = n * (1.0 - c.validation_fraction);
        flops64 += 6.0 * n_train * p * estimate_passes(c, std::llround(n_train)) *
                   static_cast<double>(c.rates.size() * sz(c.seeds));
      }
    const double replicates = static_cast<double>(c.depths.size() * c.widths.size() * c.rates.size() * sz(c.seeds));
    const double w_max = static_cast<double>(*std::max_element(c.widths.begin(), c.widths.end()));
    const double d_max = static_cast<double>(*std::max_element(c.depths.begin(), c.depths.end()));
    ResourceEstimate e;
    e.tasks = static_cast<std::int64_t>(chunks.size());
    e.model_parameters = p_max;
    e.tasks_text = cat(static_cast<std::int64_t>(replicates), " classifiers in ", chunks.size(),
                       " tasks of up to ", widest, " (p up to ", resources::count_text(p_max), ")");
    e.store_bytes = store_bytes(static_cast<double>(chunks.size()), static_cast<double>(endpoint_schema().width() * widest));
    const double batch = static_cast<double>(std::min<std::int64_t>(c.batch_size, static_cast<std::int64_t>(n)));
    e.memory_bytes = 4.0 * (n + n_test) * inputs * 2.0          // images (float32), with a split copy
                     + 8.0 * (2.0 * n + n_test) * inputs        // the pool and test set in float64 for the endpoints, and a split taken from it
                     + 256.0 * 1024.0 * 1024.0                  // LibTorch's own heap (measured ~250 MB)
                     + 16.0 * p_max * static_cast<double>(widest)  // weights, gradients, momentum, a copy
                     + 16.0 * batch * w_max * d_max * static_cast<double>(widest)  // activations and masks
                     + 8.0 * 8.0 * p_max                        // the endpoint's float64 vectors
                     + (batched_gradients_on(c, will_use_gpu_)
                            ? batched_pass_rows_bytes(c, std::llround(n * (1.0 - c.validation_fraction)), w_max, d_max, p_max)
                            : 0.0);
    e.memory_keys = "data.train_subset, grid.widths, grid.depths, training.replicates_per_task";
    e.output_bytes = 8.0 * replicates * static_cast<double>(endpoint_schema().width()) + 65536.0 +
                     (c.save_equations ? 16.0 * p_max * replicates : 0.0);
    e.disk_keys = c.save_equations ? "outputs.save_equations, grid sizes" : "grid sizes";
    // Batched float32 training ran at 5-6e10 flop/s on one core of a 2-core x86 machine (depth 3 and 5,
    // widths 128-256, the full training set); most networks stop long before max_epochs.
    e.seconds_per_task = (flops / 5e10 + flops64 / 2.5e10) / static_cast<double>(chunks.size());
    e.time_basis = cat(c.match_stationarity
                           ? "an upper bound: every replicate runs training.max_epochs and stationarity.max_rounds x "
                             "round_epochs epochs at 6 n p flops each, 5e10 flop/s per CPU core (a GPU is faster)"
                           : "an upper bound: every replicate runs training.max_epochs at 6 n p flops each, 5e10 flop/s "
                             "per CPU core (a GPU is faster)",
                       "; then fit.mask_draws + 2 float64 gradient passes for the estimates",
                       c.adam_parity ? (c.adam_batches == "fresh" ? " and up to fit.adam_max_epochs for the parity fit"
                                                                  : " and a few for the parity fit")
                                     : "",
                       ", at 2.5e10 flop/s");
    e.outputs = {"results.h5", "summary.json"};
    if (c.save_equations) e.outputs.push_back(cat("equations_d*_w*_r*_s*.h5 (", static_cast<std::int64_t>(replicates), " files)"));
    return e;
  }

  // One chunk: its classifiers' rows side by side; a short last chunk is padded with zeros.
  std::vector<double> compute(std::size_t, std::int64_t row) override {
    std::vector<double> out(sz(endpoint_schema().width() * widest_), 0.0);
    const DropoutChunk& chunk = chunks_[sz(row)];
    TaskProgress progress("dropout", cat("task ", row + 1, "/", chunks_.size(), " (depth ", chunk.depth, ", width ",
                                         chunk.width, ", ", chunk.count, chunk.count == 1 ? " classifier)" : " classifiers)"));
    const std::vector<DropoutEndpoint> endpoints =
        run_dropout_chunk(config_, data_, tasks_, chunk, device_, config_.save_equations ? out_dir_.string() : std::string(),
                          &progress, chunk_training_for(device_));
    for (std::size_t k = 0; k < endpoints.size(); ++k) {
      const std::vector<double> e = encode(endpoints[k]);
      std::copy(e.begin(), e.end(), out.begin() + static_cast<std::ptrdiff_t>(k * sz(endpoint_schema().width())));
    }
    return out;
  }
  nlohmann::json write(const std::vector<std::vector<double>>& rows, OutputDir& out) override {
    std::vector<DropoutEndpoint> endpoints;
    for (std::size_t row = 0; row < chunks_.size(); ++row) {
      const std::span<const double> chunk = table_row(rows.front(), endpoint_schema().width() * widest_, row);
      for (std::int64_t k = 0; k < chunks_[row].count; ++k) endpoints.push_back(decode(chunk.subspan(sz(k * endpoint_schema().width()), sz(endpoint_schema().width()))));
    }
    const std::vector<DropoutCell> cells = assemble_dropout(config_, tasks_, endpoints);
    write_results(out.path("results.h5"), config_, config_text_, endpoints, cells, data_);
    io::write_json_file(out.path("summary.json"), dropout_summary(config_, tasks_, endpoints, cells));
    // Equation files were written by the tasks themselves; list those that exist.
    if (config_.save_equations)
      for (const DropoutTask& t : tasks_)
        if (std::filesystem::exists(equations_path(t))) out.path(cat("equations_", t.label(), ".h5"));
    return {{"training_images", data_.train.size()},
            {"test_images", data_.test.size()},
            {"classifiers", tasks_.size()},
            {"batched_tasks", chunks_.size()}};
  }
  std::optional<TrainingCount> count_trainings(const std::vector<std::vector<double>>& rows) const override {
    TrainingCount count;
    const std::int64_t width = endpoint_schema().width();
    for (std::size_t row = 0; row < chunks_.size(); ++row) {
      const std::span<const double> chunk = table_row(rows.front(), width * widest_, row);
      for (std::int64_t k = 0; k < chunks_[row].count; ++k, ++count.total)
        if (decode(chunk.subspan(sz(k * width), sz(width))).diverged) ++count.diverged;
    }
    return count;
  }

 private:
  std::string equations_path(const DropoutTask& t) const {
    return (out_dir_ / cat("equations_", t.label(), ".h5")).string();
  }

  std::filesystem::path out_dir_;  ///< tasks write their equation files here
  torch::Device device_ = torch::Device(torch::kCPU);
  bool will_use_gpu_ = false;  ///< from the config's `device` (for estimate(), before prepare())
  DropoutConfig config_;
  std::string config_text_;
  std::vector<DropoutTask> tasks_;
  std::vector<DropoutChunk> chunks_;
  std::int64_t widest_ = 0;
  DropoutData data_;
};

}  // namespace

std::unique_ptr<Study> make_dropout_study() { return std::make_unique<DropoutStudy>(); }

}  // namespace gradmatch::studies
