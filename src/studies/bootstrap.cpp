#include "studies/bootstrap.hpp"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/family.hpp"
#include "core/resources.hpp"
#include "core/fit.hpp"
#include "core/rng.hpp"
#include "distributed/distributed_fit.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "io/provenance.hpp"
#include "studies/schema.hpp"
#include "training/endpoint.hpp"
#include "training/host_data.hpp"
#include "training/idx.hpp"
#include "training/tensor_bridge.hpp"
#include "training/torchscript.hpp"
#include "training/trainer.hpp"

namespace gradmatch::studies {
namespace {

namespace fs = std::filesystem;
constexpr const char* kStudy = "bootstrap";
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Keyed streams of replicate r: (seed, kind << 40 | r).
constexpr std::uint64_t kInitStream = 1, kResampleStream = 2, kSplitStream = 3, kOrderStream = 4;

std::uint64_t stream(std::uint64_t kind, std::int64_t r) { return (kind << 40) | static_cast<std::uint64_t>(r); }

/// `path` relative to the config file's directory unless absolute.
std::string beside(const std::string& config_path, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(config_path).parent_path() / path).string();
}

std::string fit_file_name(std::string family) {
  std::replace(family.begin(), family.end(), ':', '_');
  return cat("fit_", family, ".json");
}

/// Everything the replicates share, built once per rank.
struct Shared {
  std::vector<training::Dataset> sets;         ///< data.file / data.dir: one; data.files: one per file
  std::vector<std::size_t> scope;              ///< indices into the trainable parameters
  std::vector<ParameterBlock> blocks;          ///< the scope's names and shapes
  std::int64_t p = 0;                          ///< scalars in the scope
  std::vector<training::Candidate> candidates;
  std::vector<std::string> feature_names;      ///< candidate columns, in order
  at::Tensor lambda;                           ///< explicit penalty (float64, on the device), undefined without
  at::Device device = at::Device(at::kCPU);    ///< the rank's device: model, samples and training live there
};

training::ModelHandle load_model(const BootstrapConfig& c, const at::Device& device = at::Device(at::kCPU)) {
  return at_key(c.model_where, [&] { return training::load_torchscript(c.model_file, device, /*to_double=*/false); });
}

/// The handle restricted to the scope parameters (same tensors).
training::ModelHandle scope_handle(const training::ModelHandle& model, const std::vector<std::size_t>& scope) {
  training::ModelHandle h = model;
  h.parameters.clear();
  h.parameter_names.clear();
  for (std::size_t i : scope) {
    h.parameters.push_back(model.parameters[i]);
    h.parameter_names.push_back(model.parameter_names[i]);
  }
  return h;
}

/// The model's parameters the scope globs select (all of them without globs).
std::vector<std::size_t> scope_indices(const training::ModelHandle& model, const BootstrapConfig& c) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < model.parameters.size(); ++i) {
    bool chosen = c.scope.empty();
    for (const std::string& g : c.scope) chosen = chosen || training::name_matches(g, model.parameter_names[i]);
    if (chosen) out.push_back(i);
  }
  return out;
}

/// Bytes the training data takes in memory, from the files' sizes: HDF5
/// float64 as stored; IDX bytes become float32 (x4), a gzipped file
/// counted as 4x its size unpacked.
double data_bytes(const BootstrapConfig& c) {
  double bytes = 0.0;
  if (!c.data_dir.empty()) {
    const training::IdxFiles f = training::find_idx_files(c.data_dir, training::IdxPart::train);
    const double raw = static_cast<double>(fs::file_size(f.images));
    bytes = 4.0 * (f.images.ends_with(".gz") ? 4.0 * raw : raw);
  } else {
    for (const std::string& file : c.data_files) bytes += static_cast<double>(fs::file_size(file));
  }
  return bytes;
}

Shared build_shared(const BootstrapConfig& c, const at::Device& device) {
  Shared s;
  s.device = device;
  const training::LossKind loss = training::parse_loss(c.loss);
  at_key(c.data_where, [&] {
    if (!c.data_dir.empty()) {
      if (loss != training::LossKind::cross_entropy)
        throw InputError(c.data_dir + ": an IDX directory holds class labels; use loss = \"ce\"");
      s.sets.push_back(training::load_idx(c.data_dir, training::IdxPart::train));
      return;
    }
    for (const std::string& file : c.data_files) {
      training::HostArray x, y;
      x.values = io::read_doubles(file, "X", &x.shape);
      y.values = io::read_doubles(file, "y", &y.shape);
      try {
        s.sets.push_back(training::dataset_from_arrays(x, y, loss));
      } catch (const InputError& e) {
        throw InputError(cat(file, ": ", e.what(), " (loss = \"", c.loss, "\")"));
      }
      if (s.sets.back().x.sizes() != s.sets.front().x.sizes() || s.sets.back().y.sizes() != s.sets.front().y.sizes())
        throw InputError(cat(file, ": X and y must have the shapes of ", c.data_files.front(), "'s"));
    }
  });
  const training::ModelHandle model = load_model(c, device);
  for (training::Dataset& d : s.sets) d = d.to(device, model.parameters.front().scalar_type());
  // The model against the data before the run store exists: a width, output
  // or class-count mismatch is bad input named here, not a LibTorch error
  // from inside the first replicate's training.
  for (std::size_t k = 0; k < s.sets.size(); ++k) {
    const std::string data_name = c.data_dir.empty() ? c.data_files[k] : c.data_dir;
    training::check_model_fits_data(model, s.sets[k], loss,
                                    cat(c.model_where, ": ", c.model_file, " with ", c.data_files_key, " ", data_name));
  }
  for (std::size_t i : scope_indices(model, c)) {
    s.scope.push_back(i);
    s.blocks.push_back({model.parameter_names[i], model.parameters[i].sizes().vec()});
    s.p += model.parameters[i].numel();
  }
  if (s.scope.empty()) {
    std::string names;
    for (const auto& n : model.parameter_names) names += (names.empty() ? "" : ", ") + n;
    throw InputError(cat(c.model_where, ": ", c.model_file, ": scope selects none of the trainable parameters (", names,
                         "); change scope"));
  }
  for (const std::string& text : c.candidates) s.candidates.push_back(training::Candidate::parse(text));
  if (!s.candidates.empty()) {
    const training::ModelHandle h = scope_handle(model, s.scope);
    for (const auto& [name, col] : training::candidate_columns(h, s.candidates, s.sets.front())) s.feature_names.push_back(name);
  }
  if (c.penalty_family != "none") {
    std::vector<std::int64_t> shape;
    const std::vector<double> values =
        at_key(c.penalty_where, [&] { return io::read_doubles(c.penalty_file, "lambda", &shape); });
    std::int64_t count = 1;
    for (std::int64_t d : shape) count *= d;
    const bool ok = (c.penalty_family == "ridge" && count == 1) ||
                    (c.penalty_family == "diag" && shape.size() == 1 && shape[0] == s.p) ||
                    (c.penalty_family == "sym" && shape.size() == 2 && shape[0] == s.p && shape[1] == s.p);
    const auto bad = [&](const std::string& what) {
      throw InputError(cat(c.penalty_where, ": ", c.penalty_file, ": dataset 'lambda' ", what));
    };
    if (!ok)
      bad(cat("has ", count, " values but penalty.family = \"", c.penalty_family, "\" over a scope of p = ", s.p,
              " parameters needs a scalar (ridge), [p] (diag) or [p, p] (sym)"));
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) bad(cat("holds ", values[i], " at index ", i, "; write finite values"));
      // A negative ridge or diag entry rewards large weights: the training
      // objective is unbounded below along that direction.
      if (c.penalty_family != "sym" && values[i] < 0.0)
        bad(cat("holds ", values[i], " at index ", i, "; a ", c.penalty_family,
                " penalty needs lambda >= 0 (a negative one makes the training objective unbounded below)"));
    }
    s.lambda = training::to_tensor(values, {count}).to(device);
    if (c.penalty_family == "sym") s.lambda = s.lambda.reshape({s.p, s.p});
  }
  return s;
}

/// The explicit penalty of training: the scope penalty plus weight decay.
training::Penalty training_penalty(const BootstrapConfig& c, const Shared& s) {
  if (c.penalty_family == "none" && c.weight_decay == 0.0) return training::Penalty::none();
  const std::string family = c.penalty_family;
  const at::Tensor lambda = s.lambda;
  const std::vector<std::size_t> scope = s.scope;
  const double decay = c.weight_decay;
  return training::Penalty::custom(
      [=](const std::vector<at::Tensor>& params) {
        at::Tensor total = at::zeros({}, params.front().options());
        if (decay != 0.0)
          for (const auto& p : params) total = total + 0.5 * decay * p.square().sum();
        if (family == "none") return total;
        std::vector<at::Tensor> parts;
        for (std::size_t i : scope) parts.push_back(params[i].reshape({-1}));
        const at::Tensor theta = at::cat(parts);
        const at::Tensor l = lambda.to(theta.options());
        if (family == "ridge") return total + l.reshape({}) * theta.square().sum();
        if (family == "diag") return total + (l * theta.square()).sum();
        return total + at::dot(theta, at::mv(l, theta));
      },
      cat("bootstrap(", family, ", weight_decay=", short_number(decay), ")"));
}

/// Re-draws the trainable parameters from the stream (seed, r) (see the top).
void keyed_init(const training::ModelHandle& model, std::uint64_t seed, std::int64_t r) {
  Rng rng(seed, stream(kInitStream, r));
  at::NoGradGuard no_grad;
  std::int64_t fan_in = 0;
  for (const at::Tensor& p : model.parameters) {
    if (p.dim() >= 2) fan_in = p.numel() / p.size(0);
    const std::int64_t f = fan_in > 0 ? fan_in : p.numel();
    const double bound = 1.0 / std::sqrt(static_cast<double>(f));
    std::vector<double> v(sz(p.numel()));
    for (double& x : v) x = bound * (2.0 * rng.uniform() - 1.0);
    p.copy_(training::to_tensor(v, p.sizes().vec()).to(p.options()));
  }
}

/// Stops once the full-batch gradient of the training objective is small.
class GradientNormStop : public training::Callback {
 public:
  GradientNormStop(const training::ModelHandle& model, const training::Dataset& data, training::LossKind loss,
                   const training::Penalty& penalty, double tolerance)
      : model_(model), data_(data), loss_(loss), penalty_(penalty), tolerance_(tolerance) {}
  bool end_epoch(const training::EpochRecord&) override {
    const at::Tensor objective = training::mean_loss(loss_, model_.forward(data_.x), data_.y) +
                                 training::penalty_value(penalty_, model_.parameters);
    const auto grads = torch::autograd::grad({objective}, model_.parameters);
    double sq = 0.0;
    for (const auto& g : grads) sq += g.square().sum().item<double>();
    return std::sqrt(sq) <= tolerance_;
  }

 private:
  const training::ModelHandle& model_;
  const training::Dataset& data_;
  training::LossKind loss_;
  const training::Penalty& penalty_;
  double tolerance_;
};

/// One replicate's result: its run-store row and its results.h5 datasets
/// (replicate_schema).
struct Replicate {
  std::vector<double> theta;      ///< [p] the scope's parameters at the endpoint
  std::vector<double> grad_loss;  ///< [p] full-batch mean data-loss gradient
  Matrix features;                ///< [candidate columns, p]
  double loss = kNaN;
  double relative_gradient_norm = kNaN;
  std::int64_t epochs = 0;
  bool stopped = false;   ///< stopped before training.epochs (early stopping or the gradient norm)
  bool diverged = false;  ///< non-finite training; no estimates, left out of the fits
};

Schema<Replicate> replicate_schema(const Shared& s) {
  const std::int64_t p = s.p, nf = static_cast<std::int64_t>(s.feature_names.size());
  std::vector<Field<Replicate>> fields{
      vector("theta", &Replicate::theta, "parameter", p, "", "each replicate's scope parameters (NaN: diverged)"),
      vector("grad_loss", &Replicate::grad_loss, "parameter", p, "",
             "full-batch mean data-loss gradient over the scope on the replicate's sample")};
  if (nf > 0)
    fields.push_back(matrix<Replicate>(
        "features", [](Replicate& r) -> Matrix& { return r.features; }, {"candidate", "parameter"}, nf, p, "",
        "candidate regularizer gradients over the scope, one per column named in `candidates`"));
  fields.push_back(scalar("loss", &Replicate::loss, "", "full-batch mean data loss on the replicate's sample"));
  fields.push_back(scalar("relative_gradient_norm", &Replicate::relative_gradient_norm, "",
                          "||grad L|| / ||theta|| over the scope"));
  fields.push_back(scalar("epochs", &Replicate::epochs, "epochs", "training epochs run"));
  fields.push_back(scalar("stopped", &Replicate::stopped, "",
                          "training stopped before training.epochs, by early stopping or the gradient-norm tolerance"));
  fields.push_back(scalar("diverged", &Replicate::diverged, "", "training diverged; left out of the fits"));
  return Schema<Replicate>(std::move(fields));
}

/// A replicate with the scope's sizes and no values yet.
Replicate empty_replicate(const Shared& s) {
  Replicate r;
  r.theta.assign(sz(s.p), kNaN);
  r.grad_loss.assign(sz(s.p), kNaN);
  r.features = Matrix(static_cast<std::int64_t>(s.feature_names.size()), s.p);
  return r;
}

/// A rank's sample tensors, reused from replicate to replicate.
struct SampleBuffers {
  training::Dataset train, validation;
};

/// data's examples at `indices` into `buffer`, whose storage is reused when
/// it is large enough: a fresh 60,000-image sample per replicate costs as
/// much in page faults as in copying.
training::Dataset take_into(const training::Dataset& data, std::vector<std::int64_t> indices,
                            training::Dataset& buffer) {
  const at::Tensor i = at::from_blob(indices.data(), {static_cast<std::int64_t>(indices.size())}, at::kLong)
                           .to(data.x.device());
  if (!buffer.x.defined() || buffer.x.scalar_type() != data.x.scalar_type() ||
      buffer.y.scalar_type() != data.y.scalar_type() || buffer.x.device() != data.x.device())
    buffer = {at::empty({0}, data.x.options()), at::empty({0}, data.y.options())};
  at::index_select_out(buffer.x, data.x, 0, i);
  at::index_select_out(buffer.y, data.y, 0, i);
  return buffer;
}

std::vector<double> run_replicate(const BootstrapConfig& c, const Shared& s, std::int64_t r, SampleBuffers& buffers) {
  const training::LossKind loss = training::parse_loss(c.loss);
  const training::ModelHandle model = load_model(c, s.device);
  if (c.init == "keyed") keyed_init(model, c.seed, r);

  const training::Dataset& data = s.sets[sz(r % static_cast<std::int64_t>(s.sets.size()))];
  const std::int64_t n = data.size();
  ReplicateSample sample = replicate_sample(c, n, r);
  training::Dataset train = data, validation;  // sample.whole: the data itself
  if (!sample.validation.empty()) validation = take_into(data, std::move(sample.validation), buffers.validation);
  if (!sample.whole) train = take_into(data, std::move(sample.train), buffers.train);

  training::TrainOptions o;
  o.loss = loss;
  o.optimizer.kind = training::parse_optimizer(c.optimizer);
  o.optimizer.learning_rate = c.learning_rate;
  o.optimizer.momentum = c.momentum;
  o.optimizer.step_size = c.step_size;
  o.optimizer.gamma = c.gamma;
  o.optimizer.lbfgs_max_iter = c.lbfgs_max_iter;
  o.max_epochs = c.epochs;
  o.batch_size = c.batch_size;
  o.seed = c.seed;
  o.stream = stream(kOrderStream, r);
  o.penalty = training_penalty(c, s);
  if (c.stop == "early_stopping") {
    o.early_stopping = training::EarlyStoppingOptions{c.patience, 0.0, training::Monitor::validation};
    o.keep_best = true;
  }
  GradientNormStop grad_stop(model, train, loss, o.penalty, c.gradient_tolerance);
  std::vector<training::Callback*> callbacks;
  if (c.stop == "gradient_norm") callbacks.push_back(&grad_stop);
  const training::TrainResult tr = training::train(model, train, validation, o, callbacks);

  const Schema<Replicate> schema = replicate_schema(s);
  Replicate rep = empty_replicate(s);
  rep.epochs = tr.epochs;
  rep.stopped = tr.status == training::TrainStatus::stopped_early || (c.stop == "gradient_norm" && tr.epochs < c.epochs);
  rep.diverged = tr.status == training::TrainStatus::diverged;
  if (!rep.diverged) {
    training::EndpointOptions eo;
    eo.loss = loss;
    eo.candidates = s.candidates;
    const training::Endpoint e = training::extract_endpoint(scope_handle(model, s.scope), train, eo);
    rep.theta = e.theta;
    rep.grad_loss = e.grad_loss;
    for (std::size_t f = 0; f < e.features.size(); ++f)
      std::copy(e.features[f].second.begin(), e.features[f].second.end(), rep.features.row(static_cast<std::int64_t>(f)).begin());
    rep.loss = e.loss;
    rep.relative_gradient_norm = e.relative_gradient_norm;
  }
  std::vector<double> row = schema.encode(rep);
  // An endpoint that overflowed (or a zero theta_s: an infinite relative
  // gradient norm) is no equation either.
  rep.diverged = rep.diverged || !std::all_of(row.begin(), row.end(), [](double x) { return std::isfinite(x); });
  // A diverged replicate keeps its epochs and flags; its NaN estimates mark
  // it diverged in the run store.
  if (rep.diverged) row = schema.encode(schema.without_estimates(rep));
  return row;
}

}  // namespace

ReplicateSample replicate_sample(const BootstrapConfig& c, std::int64_t n, std::int64_t r) {
  // Algorithm 1: replicate 0 is the procedure on the data itself.
  const bool resample = c.resample == "bootstrap" && !(c.include_original && r == 0);
  const auto draws_from = [&](const std::vector<std::int64_t>& rows, std::int64_t count) {
    Rng rng(c.seed, stream(kResampleStream, r));
    std::vector<std::int64_t> out(sz(count));
    for (auto& i : out) i = rows[sz(static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(rows.size()))))];
    return out;
  };
  std::vector<std::int64_t> rows(sz(n));
  for (std::int64_t i = 0; i < n; ++i) rows[sz(i)] = i;
  ReplicateSample out;
  if (c.stop == "early_stopping") {
    // "rows": shuffle the rows, hold out the last `held`, resample the rest;
    // "draws": resample n draws, shuffle them, hold out the last `held`.
    std::vector<std::int64_t> sample = resample && c.validation_split == "draws" ? draws_from(rows, n) : rows;
    Rng rng(c.seed, stream(kSplitStream, r));
    for (std::int64_t i = n - 1; i > 0; --i)  // Fisher-Yates
      std::swap(sample[sz(i)], sample[rng.below(static_cast<std::uint64_t>(i + 1))]);
    const auto held = std::max<std::int64_t>(1, static_cast<std::int64_t>(c.validation_fraction * static_cast<double>(n)));
    out.validation.assign(sample.end() - held, sample.end());
    out.train.assign(sample.begin(), sample.end() - held);
    if (resample && c.validation_split == "rows") out.train = draws_from(out.train, n - held);
  } else if (resample) {
    out.train = draws_from(rows, n);
  } else {
    out.train = std::move(rows);
    out.whole = true;
  }
  return out;
}

BootstrapConfig read_bootstrap_config(io::ConfigReader& r) {
  BootstrapConfig c;
  c.seed = read_study_seed(r, kStudy, c.seed);
  const std::string& path = r.path();
  c.model_file = beside(path, r.get_string("model.file"));
  const std::string file = r.get_string("data.file", "");
  c.data_files = r.get_strings("data.files", {});
  c.data_dir = beside(path, r.get_string("data.dir", ""));
  if (!file.empty()) c.data_files.insert(c.data_files.begin(), file);
  for (std::string& f : c.data_files) f = beside(path, f);
  if (c.data_files.empty() == c.data_dir.empty() || (!file.empty() && c.data_files.size() > 1))
    config_error(r, "data.file",
                 "give exactly one of data.file (HDF5 with X and y), data.files (a list of them: replicate r trains "
                 "on file r mod count) and data.dir (an IDX directory)");
  // Relative paths are read beside the config file.
  check_input_file(r, "model.file", c.model_file);
  c.model_where = r.where("model.file");
  const std::string data_key = !c.data_dir.empty() ? "data.dir" : !file.empty() ? "data.file" : "data.files";
  c.data_files_key = data_key;
  c.data_where = r.where(data_key);
  if (!c.data_dir.empty()) check_idx_directory(r, data_key, c.data_dir, /*test=*/false);
  for (const std::string& f : c.data_files) check_input_file(r, data_key, f);
  c.loss = r.get_choice("loss", c.loss, {"mse", "ce", "bce"});
  c.replicates = r.get_int("replicates", c.replicates, 1, std::int64_t{1} << 30);
  c.resample = r.get_choice("resample", c.resample, {"bootstrap", "none"});
  // Keys that change results on purpose: a store made before they existed
  // resumes only with their former behaviour written out (design.md, 6).
  // Each is read where it matters or is written, so that stores of configs
  // it does not affect resume as before.
  if (c.resample == "bootstrap" || r.has("include_original")) {
    c.include_original = r.get_bool("include_original", c.include_original);
    r.key_existed_since("include_original", false);
  }
  c.init = r.get_choice("init", c.init, {"keyed", "file"});
  c.scope = r.get_strings("scope", c.scope);
  c.optimizer = r.get_choice("training.optimizer", c.optimizer, {"sgd", "adam", "lbfgs"});
  c.learning_rate = r.get_double("training.learning_rate", c.learning_rate, 1e-300, 1e6);
  c.momentum = r.get_double("training.momentum", c.momentum, 0.0, 1.0);
  c.weight_decay = r.get_double("training.weight_decay", c.weight_decay, 0.0, 1e6);
  c.step_size = r.get_int("training.step_size", c.step_size, 0, 1'000'000'000);
  c.gamma = r.get_double("training.gamma", c.gamma, 1e-300, 1e6);
  c.batch_size = r.get_int("training.batch_size", c.batch_size, 0, std::int64_t{1} << 40);
  c.epochs = r.get_int("training.epochs", c.epochs, 1, 1'000'000'000);
  c.lbfgs_max_iter = r.get_int("training.lbfgs_max_iter", c.lbfgs_max_iter, 1, 1'000'000'000);
  c.stop = r.get_choice("training.stop", c.stop, {"epochs", "early_stopping", "gradient_norm"});
  c.patience = r.get_int("training.patience", c.patience, 1, 1'000'000'000);
  c.validation_fraction = r.get_double("training.validation_fraction", c.validation_fraction, 1e-6, 0.9);
  if ((c.resample == "bootstrap" && c.stop == "early_stopping") || r.has("training.validation_split")) {
    c.validation_split = r.get_choice("training.validation_split", c.validation_split, {"rows", "draws"});
    r.key_existed_since("training.validation_split", "draws");
  }
  c.gradient_tolerance = r.get_double("training.gradient_tolerance", c.gradient_tolerance, 0.0, 1e300);
  c.penalty_family = r.get_choice("penalty.family", c.penalty_family, {"none", "ridge", "diag", "sym"});
  c.penalty_file = beside(path, r.get_string("penalty.file", ""));
  if ((c.penalty_family == "none") != c.penalty_file.empty())
    config_error(r, "penalty.file",
                 "give penalty.file (HDF5 with dataset lambda) exactly when penalty.family is ridge, diag or sym");
  if (!c.penalty_file.empty()) {
    check_input_file(r, "penalty.file", c.penalty_file);
    c.penalty_where = r.where("penalty.file");
  }
  c.families = r.get_strings("fit.families", c.families);
  c.candidates = r.get_strings("fit.candidates", c.candidates);
  for (const std::string& text : c.candidates) {
    try {
      training::Candidate::parse(text);
    } catch (const InputError& e) {
      config_error(r, "fit.candidates", e.what());
    }
  }
  c.scalapack_min_p = r.get_int("fit.scalapack_min_p", c.scalapack_min_p, 0, std::int64_t{1} << 40);
  if (c.families.empty()) config_error(r, "fit.families", "is empty; list at least one family, e.g. [\"ridge\"]");
  for (const std::string& f : c.families) {
    if (f == "layerwise-ridge") continue;
    try {
      FamilySpec::parse(f);
    } catch (const InputError& e) {
      // The fit command's words without its flag; the list with the study's own family.
      std::string why = e.what();
      if (why.rfind("--family ", 0) == 0) why.erase(0, 9);
      if (why.find("is not a family") != std::string::npos)
        why = cat("'", f, "' is not a family; the families: ridge, diag, sym, features, huber:beta=B, elastic-net:beta=B, "
                          "layerwise-ridge");
      config_error(r, "fit.families", why);
    }
  }
  if (std::find(c.families.begin(), c.families.end(), "features") != c.families.end() && c.candidates.empty())
    config_error(r, "fit.candidates", "the family \"features\" needs candidate columns, e.g. [\"ridge\", \"nuclear\"]");
  if (std::find(c.families.begin(), c.families.end(), "layerwise-ridge") != c.families.end() &&
      std::find(c.candidates.begin(), c.candidates.end(), "layerwise-ridge") == c.candidates.end()) {
    c.candidates.push_back("layerwise-ridge");
    c.features_skip_layerwise = true;
  }
  if (std::set<std::string>(c.families.begin(), c.families.end()).size() != c.families.size())
    config_error(r, "fit.families", "lists a family twice");
  r.finish();
  return c;
}

namespace {

/// The kept (not diverged) replicates' equation rows.
Equations pooled_equations(const Shared& shared, const std::vector<Replicate>& replicates) {
  const std::int64_t p = shared.p, nf = static_cast<std::int64_t>(shared.feature_names.size());
  std::vector<const Replicate*> kept;
  for (const Replicate& r : replicates)
    if (!r.diverged) kept.push_back(&r);
  const auto m = static_cast<std::int64_t>(kept.size());
  Equations eq;
  eq.theta = Matrix(m, p);
  eq.grad_loss = Matrix(m, p);
  for (std::int64_t f = 0; f < nf; ++f) eq.features.emplace_back(shared.feature_names[sz(f)], Matrix(m, p));
  for (std::int64_t k = 0; k < m; ++k) {
    const Replicate& r = *kept[sz(k)];
    std::copy(r.theta.begin(), r.theta.end(), eq.theta.row(k).begin());
    std::copy(r.grad_loss.begin(), r.grad_loss.end(), eq.grad_loss.row(k).begin());
    for (std::int64_t f = 0; f < nf; ++f) {
      const auto col = r.features.row(f);
      std::copy(col.begin(), col.end(), eq.features[sz(f)].second.row(k).begin());
    }
  }
  eq.parameters = shared.blocks;
  return eq;
}

class BootstrapStudy final : public Study {
 public:
  bool has_figures() const override { return false; }  // summary.json and fit_<family>.json are the results
  void configure(io::ConfigReader& reader) override {
    config_ = read_bootstrap_config(reader);
    config_text_ = reader.text();
  }
  void prepare(const StudyContext& context) override {
    shared_ = build_shared(config_, context.device);
    schema_ = std::make_unique<Schema<Replicate>>(replicate_schema(shared_));
  }
  std::vector<TaskTable> tables() const override {
    TaskTable table{"replicates", schema_->width(), {}, {}};
    for (std::int64_t r = 0; r < config_.replicates; ++r) table.ids.push_back(static_cast<std::uint64_t>(r));
    return {table};
  }
  std::vector<std::pair<std::string, std::string>> input_files() const override {
    const BootstrapConfig& c = config_;
    std::vector<std::pair<std::string, std::string>> out{{"model.file", c.model_file}};
    if (!c.data_dir.empty()) add_idx_inputs(out, "data.dir", c.data_dir, /*test=*/false);
    for (std::size_t i = 0; i < c.data_files.size(); ++i)
      out.emplace_back(c.data_files_key == "data.file" ? "data.file" : cat("data.files[", i, "]"), c.data_files[i]);
    if (!c.penalty_file.empty()) out.emplace_back("penalty.file", c.penalty_file);
    return out;
  }
  std::vector<std::string> task_labels() const override {
    std::vector<std::string> labels;
    for (std::int64_t r = 0; r < config_.replicates; ++r) {
      const bool original = config_.resample == "bootstrap" && config_.include_original && r == 0;
      labels.push_back(cat("bootstrap replicate ", std::to_string(r), original ? " (the data set itself)" : ""));
    }
    return labels;
  }
  std::vector<double> compute(std::size_t, std::int64_t row) override {
    return run_replicate(config_, shared_, row, buffers_);
  }
  void collective_step(const StudyContext& context, const std::vector<std::vector<double>>& rows) override;
  nlohmann::json write(const std::vector<std::vector<double>>& data, OutputDir& out) override;
  std::string describe() const override {
    return cat(std::to_string(config_.replicates), " replicates, scope of ", std::to_string(shared_.p), " parameters");
  }
  // From the model's parameter counts and the data files' sizes (no data is
  // read); the training time depends on the model: unknown.
  ResourceEstimate estimate() const override {
    const BootstrapConfig& c = config_;
    const training::ModelHandle model = load_model(c);
    double p_scope = 0.0, p_model = 0.0;
    for (const at::Tensor& t : model.parameters) p_model += static_cast<double>(t.numel());
    for (std::size_t i : scope_indices(model, c)) p_scope += static_cast<double>(model.parameters[i].numel());
    const double replicates = static_cast<double>(c.replicates);
    const double columns = 2.0 + static_cast<double>(c.candidates.size());  // theta, grad_loss, candidate columns
    const double width = columns * p_scope + 16.0;
    const bool sym = std::find(c.families.begin(), c.families.end(), "sym") != c.families.end();
    ResourceEstimate e;
    e.tasks = c.replicates;
    e.model_parameters = p_model;
    e.tasks_text = cat(c.replicates, " trainings of ", c.model_file, " (", resources::count_text(p_model),
                       " parameters, a scope of ", resources::count_text(p_scope), ")");
    e.store_bytes = store_bytes(replicates, width);
    e.memory_bytes = 256.0 * 1024.0 * 1024.0            // LibTorch's own heap
                     + 2.0 * data_bytes(c)              // the data and a rank's resample
                     + 8.0 * 6.0 * p_model              // parameters, gradients, optimizer state, copies
                     + 8.0 * replicates * width * 2.0   // rank 0: the pooled rows and the equations
                     + (sym ? 8.0 * 4.0 * p_scope * p_scope : 0.0);  // sym: Gram and eigenvectors
    e.memory_keys = sym ? "replicates, scope, fit.families (sym)" : "replicates, scope, data";
    e.output_bytes = 2.0 * 8.0 * replicates * width + (sym ? 25.0 * p_scope * p_scope : 0.0) + 65536.0;
    e.disk_keys = "replicates, scope";
    e.outputs = {"equations.h5", "results.h5", "summary.json"};
    for (const std::string& f : c.families) e.outputs.push_back(fit_file_name(f));
    return e;
  }

 private:
  BootstrapConfig config_;
  std::string config_text_;
  Shared shared_;
  std::unique_ptr<Schema<Replicate>> schema_;
  SampleBuffers buffers_;  ///< this rank's, reused by each replicate it trains
  std::optional<FitResult> distributed_sym_;  ///< rank 0: the sym fit of collective_step, when it ran one
  int sym_ranks_ = 1;
  double sym_seconds_ = 0.0;  ///< its wall time, scatter included
};

// The sym fit over several ranks: the pooled rows are on rank 0; above the
// crossover (fit.scalapack_min_p, the one of `gradmatch fit`) they are
// scattered in point blocks and solved by ScaLAPACK (PDGEMM, PDSYEVD). Below
// it, or on one rank, write() fits on rank 0 alone: the rows are already
// there, and the result is then the same bytes for any number of ranks.
void BootstrapStudy::collective_step(const StudyContext& context, const std::vector<std::vector<double>>& rows) {
  const mpi::Communicator& comm = *context.comm;
  distributed_sym_.reset();
  sym_ranks_ = 1;
  const bool sym = std::find(config_.families.begin(), config_.families.end(), "sym") != config_.families.end();
  if (!sym || comm.size() == 1 || shared_.p < config_.scalapack_min_p) return;
  const std::int64_t p = shared_.p;
  Matrix theta, grad;
  std::int64_t m = 0;
  mpi::collective(comm, [&] {
    if (!comm.is_root()) return;
    const Equations eq = pooled_equations(shared_, schema_->decode_all(rows.front()));
    theta = eq.theta;
    grad = eq.grad_loss;
    m = eq.m();
  });
  m = comm.broadcast(m);
  if (m == 0) return;  // every replicate diverged: no fit
  Equations layout, block;
  layout.theta = Matrix(0, p);
  layout.grad_loss = Matrix(0, p);
  layout.parameters = shared_.blocks;
  block.theta = distributed::scatter_rows(comm, theta, m, p);
  block.grad_loss = distributed::scatter_rows(comm, grad, m, p);
  FitOptions options;
  options.family = FamilySpec::parse("sym");
  distributed::SolverTuning tuning;
  tuning.structured_scalapack_min_p = config_.scalapack_min_p;
  const auto t0 = std::chrono::steady_clock::now();
  const FitResult result = distributed::fit_distributed(comm, layout, block, m, options, tuning);
  if (comm.is_root()) {
    distributed_sym_ = result;
    sym_ranks_ = comm.size();
    sym_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
}

nlohmann::json BootstrapStudy::write(const std::vector<std::vector<double>>& data, OutputDir& out) {
  const BootstrapConfig& c = config_;
  const std::vector<Replicate> replicates = schema_->decode_all(data.front());
  const Equations eq = pooled_equations(shared_, replicates);
  const std::int64_t m = eq.m();
  nlohmann::json fits = nlohmann::json::object(), fit_seconds = nlohmann::json::object();
  if (m > 0) {
    io::write_equation_file(out.path("equations.h5"), eq);
    for (const std::string& family : c.families) {
      FitOptions fo;
      Equations view = eq;
      const auto layerwise = [](const auto& f) { return f.first.rfind("layerwise_ridge.", 0) == 0; };
      if (family == "layerwise-ridge") {
        fo.family = FamilySpec::parse("features");
        std::erase_if(view.features, [&](const auto& f) { return !layerwise(f); });
      } else {
        if (c.features_skip_layerwise) std::erase_if(view.features, layerwise);
        fo.family = FamilySpec::parse(family);
      }
      const bool distributed = family == "sym" && distributed_sym_.has_value();
      const auto t0 = std::chrono::steady_clock::now();
      FitResult result = distributed ? *distributed_sym_ : fit(view, fo);
      if (family == "layerwise-ridge")  // its warnings name the study's family, not the features fit it runs
        for (std::string& w : result.warnings)
          if (const auto at = w.find("the features family"); at != std::string::npos)
            w.replace(at, std::string("the features family").size(), "the layerwise-ridge family");
      fit_seconds[family] = distributed ? sym_seconds_
                                        : std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      nlohmann::json doc = io::fit_result_json(result, distributed ? sym_ranks_ : 1);
      doc["study"] = kStudy;
      doc["replicates"] = c.replicates;
      doc["diverged"] = c.replicates - m;
      io::write_json_file(out.path(fit_file_name(family)), doc);
      fits[family] = {{"file", fit_file_name(family)},   {"residual_ratio", doc["residual_ratio"]},
                      {"cosine", doc["cosine"]},         {"rank", result.rank},
                      {"unknowns", result.unknowns},     {"warnings", result.warnings}};
    }
  }
  io::ResultsWriter w(out.path("results.h5"), kStudy);
  w.write("config", config_text_, {"the study's TOML config as given", "", {}});
  if (!shared_.feature_names.empty()) {
    std::string names;
    for (const std::string& n : shared_.feature_names) names += (names.empty() ? "" : ", ") + n;
    w.write("candidates", names, {"the candidate columns of `features`, in order (comma-separated)", "", {}});
  }
  schema_->write(w, "", replicates, Axes{{"replicate"}, {c.replicates}});
  w.commit();
  nlohmann::json scope = nlohmann::json::array();
  for (const auto& b : shared_.blocks) scope.push_back({{"name", b.name}, {"shape", b.shape}});
  nlohmann::json warnings = nlohmann::json::array();
  if (m == 0)
    warnings.push_back(cat("all ", c.replicates, " replicates diverged: no equations and no fits; lower ",
                           "training.learning_rate (or check penalty.file and the data) and run again into a new --out"));
  else if (m < c.replicates)
    warnings.push_back(cat(c.replicates - m, " of ", c.replicates,
                           " replicates diverged; the equations and fits leave them out"));
  const nlohmann::json summary = {{"study", kStudy},      {"gradmatch_version", io::gradmatch_version()},
                                  {"replicates", c.replicates}, {"diverged", c.replicates - m},
                                  {"p_scope", shared_.p}, {"scope", scope},             {"fits", fits},
                                  {"warnings", warnings}};
  io::write_json_file(out.path("summary.json"), summary);
  // Timings belong to run_info.json: the fits' wall seconds, and on how many
  // ranks sym was solved.
  return {{"fit_seconds", fit_seconds}, {"sym_ranks", sym_ranks_}};
}

}  // namespace

std::unique_ptr<Study> make_bootstrap_study() { return std::make_unique<BootstrapStudy>(); }

}  // namespace gradmatch::studies
