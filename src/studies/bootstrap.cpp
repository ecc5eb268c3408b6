#include "studies/bootstrap.hpp"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/family.hpp"
#include "core/fit.hpp"
#include "core/rng.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
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
  at::Tensor lambda;                           ///< explicit penalty (float64), undefined without
};

training::ModelHandle load_model(const BootstrapConfig& c) {
  return training::load_torchscript(c.model_file, at::Device(at::kCPU), /*to_double=*/false);
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

Shared build_shared(const BootstrapConfig& c) {
  Shared s;
  const training::LossKind loss = training::parse_loss(c.loss);
  if (!c.data_dir.empty()) {
    if (loss != training::LossKind::cross_entropy)
      throw InputError(c.data_dir + ": an IDX directory holds class labels; use loss = \"ce\"");
    s.sets.push_back(training::load_idx(c.data_dir, training::IdxPart::train));
  } else {
    for (const std::string& file : c.data_files) {
      training::HostArray x, y;
      x.values = io::read_doubles(file, "X", &x.shape);
      y.values = io::read_doubles(file, "y", &y.shape);
      s.sets.push_back(training::dataset_from_arrays(x, y, loss));
      if (s.sets.back().x.sizes() != s.sets.front().x.sizes() || s.sets.back().y.sizes() != s.sets.front().y.sizes())
        throw InputError(cat(file, ": X and y must have the shapes of ", c.data_files.front(), "'s"));
    }
  }
  const training::ModelHandle model = load_model(c);
  for (training::Dataset& d : s.sets) {
    d.x = d.x.to(model.parameters.front().scalar_type());
    if (d.y.is_floating_point()) d.y = d.y.to(model.parameters.front().scalar_type());
  }
  for (std::size_t i = 0; i < model.parameters.size(); ++i) {
    bool chosen = c.scope.empty();
    for (const std::string& g : c.scope) chosen = chosen || training::name_matches(g, model.parameter_names[i]);
    if (!chosen) continue;
    s.scope.push_back(i);
    s.blocks.push_back({model.parameter_names[i], model.parameters[i].sizes().vec()});
    s.p += model.parameters[i].numel();
  }
  if (s.scope.empty()) {
    std::string names;
    for (const auto& n : model.parameter_names) names += (names.empty() ? "" : ", ") + n;
    throw InputError(cat(c.model_file, ": scope selects none of the trainable parameters (", names, ")"));
  }
  for (const std::string& text : c.candidates) s.candidates.push_back(training::Candidate::parse(text));
  if (!s.candidates.empty()) {
    const training::ModelHandle h = scope_handle(model, s.scope);
    for (const auto& [name, col] : training::candidate_columns(h, s.candidates, s.sets.front())) s.feature_names.push_back(name);
  }
  if (c.penalty_family != "none") {
    std::vector<std::int64_t> shape;
    const std::vector<double> values = io::read_doubles(c.penalty_file, "lambda", &shape);
    std::int64_t count = 1;
    for (std::int64_t d : shape) count *= d;
    const bool ok = (c.penalty_family == "ridge" && count == 1) ||
                    (c.penalty_family == "diag" && shape.size() == 1 && shape[0] == s.p) ||
                    (c.penalty_family == "sym" && shape.size() == 2 && shape[0] == s.p && shape[1] == s.p);
    if (!ok)
      throw InputError(cat(c.penalty_file, ": dataset 'lambda' has ", count, " values but penalty.family = \"",
                           c.penalty_family, "\" over a scope of p = ", s.p,
                           " parameters needs a scalar (ridge), [p] (diag) or [p, p] (sym)"));
    s.lambda = training::to_tensor(values, {count});
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

std::int64_t row_width(const Shared& s) {
  return (2 + static_cast<std::int64_t>(s.feature_names.size())) * s.p + 4;
}

std::vector<double> run_replicate(const BootstrapConfig& c, const Shared& s, std::int64_t r) {
  const training::LossKind loss = training::parse_loss(c.loss);
  const training::ModelHandle model = load_model(c);
  if (c.init == "keyed") keyed_init(model, c.seed, r);

  const training::Dataset& data = s.sets[sz(r % static_cast<std::int64_t>(s.sets.size()))];
  const std::int64_t n = data.size();
  std::vector<std::int64_t> sample(sz(n));
  if (c.resample == "bootstrap") {
    Rng rng(c.seed, stream(kResampleStream, r));
    for (auto& i : sample) i = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(n)));
  } else {
    for (std::int64_t i = 0; i < n; ++i) sample[sz(i)] = i;
  }
  training::Dataset train = data.take(sample), validation;
  if (c.stop == "early_stopping") {
    Rng rng(c.seed, stream(kSplitStream, r));
    for (std::int64_t i = n - 1; i > 0; --i)  // Fisher-Yates
      std::swap(sample[sz(i)], sample[rng.below(static_cast<std::uint64_t>(i + 1))]);
    const auto held = std::max<std::int64_t>(1, static_cast<std::int64_t>(c.validation_fraction * static_cast<double>(n)));
    validation = data.take(std::vector<std::int64_t>(sample.end() - held, sample.end()));
    train = data.take(std::vector<std::int64_t>(sample.begin(), sample.end() - held));
  }

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

  std::vector<double> row(sz(row_width(s)), kNaN);
  if (tr.status == training::TrainStatus::diverged) return row;  // non-finite: recorded as diverged
  training::EndpointOptions eo;
  eo.loss = loss;
  eo.candidates = s.candidates;
  const training::Endpoint e = training::extract_endpoint(scope_handle(model, s.scope), train, eo);
  auto out = row.begin();
  out = std::copy(e.theta.begin(), e.theta.end(), out);
  out = std::copy(e.grad_loss.begin(), e.grad_loss.end(), out);
  for (const auto& [name, col] : e.features) out = std::copy(col.begin(), col.end(), out);
  *out++ = e.loss;
  *out++ = e.relative_gradient_norm;
  *out++ = static_cast<double>(tr.epochs);
  *out++ = tr.status == training::TrainStatus::stopped_early || (c.stop == "gradient_norm" && tr.epochs < c.epochs) ? 1.0 : 0.0;
  return row;
}

}  // namespace

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
  c.loss = r.get_choice("loss", c.loss, {"mse", "ce", "bce"});
  c.replicates = r.get_int("replicates", c.replicates, 1, std::int64_t{1} << 30);
  c.resample = r.get_choice("resample", c.resample, {"bootstrap", "none"});
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
  c.gradient_tolerance = r.get_double("training.gradient_tolerance", c.gradient_tolerance, 0.0, 1e300);
  c.penalty_family = r.get_choice("penalty.family", c.penalty_family, {"none", "ridge", "diag", "sym"});
  c.penalty_file = beside(path, r.get_string("penalty.file", ""));
  if ((c.penalty_family == "none") != c.penalty_file.empty())
    config_error(r, "penalty.file",
                 "give penalty.file (HDF5 with dataset lambda) exactly when penalty.family is ridge, diag or sym");
  c.families = r.get_strings("fit.families", c.families);
  c.candidates = r.get_strings("fit.candidates", c.candidates);
  if (c.families.empty()) config_error(r, "fit.families", "is empty; list at least one family, e.g. [\"ridge\"]");
  for (const std::string& f : c.families) {
    if (f == "layerwise-ridge") continue;
    try {
      FamilySpec::parse(f);
    } catch (const InputError& e) {
      config_error(r, "fit.families", e.what());
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

class BootstrapStudy final : public Study {
 public:
  bool has_figures() const override { return false; }  // summary.json and fit_<family>.json are the results
  void configure(io::ConfigReader& reader) override {
    config_ = read_bootstrap_config(reader);
    config_text_ = reader.text();
  }
  void prepare(const StudyContext&) override { shared_ = build_shared(config_); }
  std::vector<TaskTable> tables() const override {
    TaskTable table{"replicates", row_width(shared_), {}};
    for (std::int64_t r = 0; r < config_.replicates; ++r) table.ids.push_back(static_cast<std::uint64_t>(r));
    return {table};
  }
  std::vector<double> compute(std::size_t, std::int64_t row) override { return run_replicate(config_, shared_, row); }
  nlohmann::json write(const std::vector<std::vector<double>>& data, OutputDir& out) override;
  std::string describe() const override {
    return cat(std::to_string(config_.replicates), " replicates, scope of ", std::to_string(shared_.p), " parameters");
  }

 private:
  BootstrapConfig config_;
  std::string config_text_;
  Shared shared_;
};

nlohmann::json BootstrapStudy::write(const std::vector<std::vector<double>>& data, OutputDir& out) {
  const BootstrapConfig& c = config_;
  const Shared& shared = shared_;
  const std::string& config_text = config_text_;
    const std::int64_t p = shared.p, width = row_width(shared), nf = static_cast<std::int64_t>(shared.feature_names.size());
    const std::vector<double>& rows = data.front();
    std::vector<std::int64_t> kept, diverged(sz(c.replicates), 0);
    Matrix theta_all(c.replicates, p), grad_all(c.replicates, p);
    std::vector<double> losses, rel, epochs;
    for (std::int64_t r = 0; r < c.replicates; ++r) {
      const double* row = rows.data() + r * width;
      std::copy(row, row + p, theta_all.data() + r * p);
      std::copy(row + p, row + 2 * p, grad_all.data() + r * p);
      const double* tail = row + (2 + nf) * p;
      losses.push_back(tail[0]);
      rel.push_back(tail[1]);
      epochs.push_back(tail[2]);
      if (std::isfinite(row[0])) kept.push_back(r);
      else diverged[sz(r)] = 1;
    }
    const auto m = static_cast<std::int64_t>(kept.size());
    nlohmann::json fits = nlohmann::json::object();
    if (m > 0) {
      Equations eq;
      eq.theta = Matrix(m, p);
      eq.grad_loss = Matrix(m, p);
      for (std::int64_t f = 0; f < nf; ++f) eq.features.emplace_back(shared.feature_names[sz(f)], Matrix(m, p));
      for (std::int64_t k = 0; k < m; ++k) {
        const double* row = rows.data() + kept[sz(k)] * width;
        std::copy(row, row + p, eq.theta.data() + k * p);
        std::copy(row + p, row + 2 * p, eq.grad_loss.data() + k * p);
        for (std::int64_t f = 0; f < nf; ++f)
          std::copy(row + (2 + f) * p, row + (3 + f) * p, eq.features[sz(f)].second.data() + k * p);
      }
      eq.parameters = shared.blocks;
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
        const FitResult result = fit(view, fo);
        nlohmann::json doc = io::fit_result_json(result, 1);
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
    w.write("config", config_text, {"the study's TOML config as given", "", {}});
    w.write("theta", theta_all, {"each replicate's scope parameters (NaN: diverged)", "", {"replicate", "parameter"}});
    w.write("grad_loss", grad_all,
            {"full-batch mean data-loss gradient over the scope on the replicate's sample", "", {"replicate", "parameter"}});
    w.write("loss", losses, {"full-batch mean data loss on the replicate's sample", "", {"replicate"}});
    w.write("relative_gradient_norm", rel, {"||grad L|| / ||theta|| over the scope", "", {"replicate"}});
    w.write("epochs", epochs, {"training epochs run", "epochs", {"replicate"}});
    w.write("diverged", diverged, {"1 when training diverged (left out of the fits)", "", {"replicate"}});
    w.commit();
    nlohmann::json scope = nlohmann::json::array();
    for (const auto& b : shared.blocks) scope.push_back({{"name", b.name}, {"shape", b.shape}});
    const nlohmann::json summary = {{"study", kStudy},       {"replicates", c.replicates}, {"diverged", c.replicates - m},
                                    {"p_scope", p},         {"scope", scope},             {"fits", fits}};
    io::write_json_file(out.path("summary.json"), summary);
    return nlohmann::json::object();
  }

}  // namespace

std::unique_ptr<Study> make_bootstrap_study() { return std::make_unique<BootstrapStudy>(); }

}  // namespace gradmatch::studies
