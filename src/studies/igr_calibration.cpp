#include "studies/igr_calibration.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <string_view>
#include <vector>

#include "core/errors.hpp"
#include "io/config.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "io/provenance.hpp"
#include "studies/schema.hpp"
#include "core/statistics.hpp"
#include "training/idx.hpp"
#include "training/curvature.hpp"
#include "training/igr.hpp"
#include "training/objective.hpp"
#include "training/models.hpp"
#include "training/tensor_bridge.hpp"
#include "training/trainer.hpp"

namespace gradmatch::studies {
namespace {

constexpr const char* kStudy = "igr_calibration";
constexpr std::int64_t kMaxField = (std::int64_t{1} << 20) - 1;


double accuracy(const training::ModelHandle& model, const training::Dataset& data) {
  const at::Tensor scores = training::predict(model, data.x, 2048);
  return scores.argmax(1).eq(data.y).to(at::kDouble).mean().item<double>();
}

// Keeps the parameters of the epoch with the best validation accuracy among
// those whose train accuracy reaches the threshold (appendix H.5).
class CheckpointSelector : public training::Callback {
 public:
  CheckpointSelector(const training::ModelHandle& model, const training::Dataset& train,
                     const training::Dataset& validation, double threshold)
      : model_(model), train_(train), validation_(validation), threshold_(threshold) {}
  bool end_epoch(const training::EpochRecord& record) override {
    const double train_acc = accuracy(model_, train_);
    best_train_accuracy_ = std::max(best_train_accuracy_, train_acc);
    if (train_acc < threshold_) return false;
    const double val_acc = accuracy(model_, validation_);
    if (epoch_ == 0 || val_acc > validation_accuracy_) {
      epoch_ = record.epoch;
      train_accuracy_ = train_acc;
      validation_accuracy_ = val_acc;
      best_ = training::snapshot_parameters(model_);
    }
    return false;
  }
  std::int64_t epoch() const { return epoch_; }
  double train_accuracy() const { return train_accuracy_; }
  double validation_accuracy() const { return validation_accuracy_; }
  double best_train_accuracy() const { return best_train_accuracy_; }
  const std::vector<at::Tensor>& best() const { return best_; }

 private:
  const training::ModelHandle& model_;
  const training::Dataset& train_;
  const training::Dataset& validation_;
  double threshold_;
  std::int64_t epoch_ = 0;
  double train_accuracy_ = 0.0, validation_accuracy_ = 0.0, best_train_accuracy_ = 0.0;
  std::vector<at::Tensor> best_;
};

training::MlpOptions network(const IgrCalibrationConfig& c, const IgrCalibrationShared& s, std::int64_t width) {
  training::MlpOptions o;
  o.inputs = s.inputs;
  o.hidden.assign(sz(c.depth), width);
  o.outputs = s.classes;
  o.activation = training::Activation::tanh;
  o.hidden_bias = c.hidden_bias;
  o.output_bias = c.output_bias;
  return o;
}

/// The stored row, results.h5 `runs/*` and summary.json `runs` of one run.
Schema<IgrCalibrationResult> run_schema(std::int64_t probe_steps) {
  using R = IgrCalibrationResult;
  return {scalar("width", &R::width, "units", "hidden width of the MLP"),
          scalar("eta", &R::eta, "", "SGD step size eta"),
          scalar("seed", &R::seed, "", "replicate index of the (width, eta) cell"),
          scalar("p", &R::p, "parameters", "number of parameters"),
          enumeration("status", &R::status, {"ok", "below_threshold", "diverged"},
                      "ok, or excluded: train accuracy below the threshold, or diverged"),
          scalar("epochs_run", &R::epochs_run, "epochs", "epochs trained"),
          scalar("selected_epoch", &R::selected_epoch, "epochs", "epoch of theta* (0 unless ok)"),
          scalar("lambda_hat", &R::lambda_hat, "", "Eq. 6 closed form pooled over the probe rows, lambda = p * per-parameter"),
          scalar("lambda_per_parameter", &R::lambda_per_parameter, "", "lambda-hat / p"),
          scalar("lambda_theory", &R::lambda_theory, "", "eta p / 4"),
          scalar("ratio", &R::ratio, "", "lambda_hat / lambda_theory"),
          scalar("s_eff", &R::s_eff, "", "<Hg, H Hg> / ||Hg||^2 at theta* on the probe set"),
          scalar("lambda_max", &R::lambda_max, "", "top Hessian eigenvalue at theta* on the probe set (power iteration)"),
          scalar("finite_step_factor", &R::finite_step_factor, "",
                 "r(eta s_eff) = 2 (e^-x - 1 + x) / x^2: the ratio curvature alone predicts"),
          scalar("finite_step_factor_spectral", &R::finite_step_factor_spectral, "",
                 "sum_t <u_t, r(eta H) u_t> / sum_t ||u_t||^2 over the probe rows, u_t = H g at theta_t: the ratio "
                 "of an exact quadratic with the probe's curvature (Lanczos quadrature)"),
          scalar("third_order_term", &R::third_order_term, "",
                 "-(eta/3) sum_t <u_t, D3L[g_t, g_t]> / sum_t ||u_t||^2: the leading part of the ratio beyond "
                 "finite_step_factor_spectral (the loss's third derivative along g)"),
          scalar("residual_ratio", &R::residual_ratio, "", "||b - lambda-hat (2/p) H g|| / ||b||"),
          scalar("cosine", &R::cosine, "", "cosine between the target and the gradient-penalty feature"),
          scalar("r_ig", &R::r_ig, "", "R_IG = ||grad L(theta*)||^2 / p on the probe set"),
          scalar("probe_loss", &R::probe_loss, "nats", "cross-entropy on the probe set at theta*"),
          scalar("train_accuracy", &R::train_accuracy, "", "training accuracy at theta*"),
          scalar("validation_accuracy", &R::validation_accuracy, "", "validation accuracy at theta*"),
          scalar("test_accuracy", &R::test_accuracy, "", "test accuracy at theta*"),
          scalar("best_train_accuracy", &R::best_train_accuracy, "", "highest training accuracy of any epoch"),
          vector("lambda_step", &R::lambda_step, "probe_step", probe_steps, "",
                 "Eq. 6 on each probe row alone")};
}

/// What the outputs show of a run: the estimates of a run that was not
/// selected (below threshold, diverged) are NaN (null in summary.json).
IgrCalibrationResult published(const IgrCalibrationResult& r, std::int64_t probe_steps) {
  if (r.status == IgrRunStatus::ok) return r;
  return run_schema(probe_steps).without_estimates(r, {"eta", "lambda_theory", "best_train_accuracy"});
}

}  // namespace

std::string to_string(IgrRunStatus status) {
  switch (status) {
    case IgrRunStatus::ok: return "ok";
    case IgrRunStatus::below_threshold: return "below_threshold";
    case IgrRunStatus::diverged: return "diverged";
  }
  return "?";
}

// ---- config -----------------------------------------------------------------

IgrCalibrationConfig read_igr_calibration_config(io::ConfigReader& r) {
  IgrCalibrationConfig c;
  c.seed = read_study_seed(r, kStudy, c.seed);
  c.data_dir = r.get_string("data.dir", training::kFashionMnistDir);
  // Here, so that --dry-run checks the folder and the counts too.
  const training::IdxCounts images = check_idx_directory(r, "data.dir", c.data_dir, /*test=*/true);
  c.train = r.get_int("data.train", c.train, 1, 10'000'000);
  c.validation = r.get_int("data.validation", c.validation, 1, 10'000'000);
  c.test = r.get_int("data.test", c.test, 1, 10'000'000);
  if (c.train + c.validation > images.train)
    config_error(r, "data.train",
                 cat(c.data_dir, " holds ", std::to_string(images.train), " training images; data.train + data.validation = ",
                     std::to_string(c.train + c.validation), ": lower them or use a larger data set"));
  if (c.test > images.test)
    config_error(r, "data.test", cat(c.data_dir, " holds ", std::to_string(images.test), " test images; lower data.test to at most ",
                                     std::to_string(images.test), " or use a larger data set"));
  c.probe = r.get_int("data.probe", c.probe, 1, 10'000'000);
  c.depth = r.get_int("model.depth", c.depth, 1, 100);
  c.widths = r.get_ints("model.widths", c.widths, 1, 1'000'000);
  c.hidden_bias = r.get_bool("model.hidden_bias", c.hidden_bias);
  c.output_bias = r.get_bool("model.output_bias", c.output_bias);
  c.learning_rates = r.get_doubles("training.learning_rates", c.learning_rates, 1e-300, 1e3);
  c.batch_size = r.get_int("training.batch_size", c.batch_size, 1, 10'000'000);
  c.epochs = r.get_int("training.epochs", c.epochs, 1, 1'000'000);
  c.train_accuracy_threshold = r.get_double("training.train_accuracy_threshold", c.train_accuracy_threshold, 0.0, 1.0);
  c.train_float64 = r.get_choice("training.dtype", "float32", {"float32", "float64"}) == "float64";
  c.replicates = r.get_int("training.seeds", c.replicates, 1, kMaxField);
  c.probe_steps = r.get_int("probe.steps", c.probe_steps, 1, 100'000);
  c.probe_substeps = r.get_int("probe.substeps", c.probe_substeps, 1, 100'000);
  c.probe_integrator = training::parse_integrator(
      r.get_choice("probe.integrator", training::to_string(c.probe_integrator), {"rk4", "euler"}));
  c.probe_float64 = r.get_choice("probe.dtype", "float64", {"float32", "float64"}) == "float64";
  c.standardize = r.get_bool("data.standardize", c.standardize);
  c.curvature_iterations = r.get_int("probe.power_iterations", c.curvature_iterations, 1, 100'000);
  // Until this key existed the draws were keyed by the step size's position
  // in the list (a store from then resumes with draw_key = "position").
  c.draw_key = r.get_choice("training.draw_key", c.draw_key, {"value", "position"});
  r.key_existed_since("training.draw_key", "position");
  if (c.widths.empty()) config_error(r, "model.widths", "is empty; give at least one width");
  reject_repeats(r, "model.widths", c.widths, "width");
  if (c.learning_rates.empty()) config_error(r, "training.learning_rates", "is empty; give at least one step size");
  reject_repeats(r, "training.learning_rates", c.learning_rates, "step size");
  if (static_cast<std::int64_t>(c.learning_rates.size()) > kMaxField)
    config_error(r, "training.learning_rates", "holds too many values");
  if (c.probe > c.train)
    config_error(r, "data.probe", cat(std::to_string(c.probe), " exceeds data.train = ", std::to_string(c.train),
                                      "; the probe set is a subset of the training images"));
  r.finish();
  return c;
}

// ---- shared data and tasks --------------------------------------------------

IgrCalibrationShared prepare_igr_calibration_shared(const IgrCalibrationConfig& c) {
  using namespace training;
  // The counts fit the splits: read_igr_calibration_config checked them against the files' headers.
  const auto [all_train, all_test] = load_idx_splits(c.data_dir);
  const std::vector<std::int64_t> order = permutation(all_train.size(), c.seed, 0);
  const std::vector<std::int64_t> test_order = permutation(all_test.size(), c.seed, 1);
  IgrCalibrationShared s;
  s.train = all_train.take(std::vector<std::int64_t>(order.begin(), order.begin() + c.train));
  s.validation =
      all_train.take(std::vector<std::int64_t>(order.begin() + c.train, order.begin() + c.train + c.validation));
  s.test = all_test.take(std::vector<std::int64_t>(test_order.begin(), test_order.begin() + c.test));
  if (c.standardize) {  // fitted on the training split, applied to every split
    const Normalizer normalizer = Normalizer::fit(s.train.x);
    s.train = normalizer.apply(s.train);
    s.validation = normalizer.apply(s.validation);
    s.test = normalizer.apply(s.test);
  }
  s.probe = s.train.slice(0, c.probe);
  s.inputs = s.train.x.size(1);
  s.classes = std::max(all_train.y.max().item<std::int64_t>(), all_test.y.max().item<std::int64_t>()) + 1;
  return s;
}

std::uint64_t IgrCalibrationTask::id(const IgrCalibrationConfig& c) const {
  return (static_cast<std::uint64_t>(c.widths[sz(width_index)]) << 40) |
         (static_cast<std::uint64_t>(eta_index) << 20) | static_cast<std::uint64_t>(replicate);
}

std::uint64_t IgrCalibrationTask::draw_stream(const IgrCalibrationConfig& c) const {
  if (c.draw_key == "position") return id(c);
  const double eta = c.learning_rates[sz(eta_index)];
  const auto key = (static_cast<std::uint64_t>(c.widths[sz(width_index)]) << 32) | static_cast<std::uint64_t>(replicate);
  return value_keyed_stream(eta, key);
}

std::vector<IgrCalibrationTask> enumerate_igr_calibration_tasks(const IgrCalibrationConfig& c) {
  std::vector<IgrCalibrationTask> tasks;
  for (std::int64_t w = 0; w < static_cast<std::int64_t>(c.widths.size()); ++w)
    for (std::int64_t e = 0; e < static_cast<std::int64_t>(c.learning_rates.size()); ++e)
      for (std::int64_t r = 0; r < c.replicates; ++r) tasks.push_back({w, e, r});
  return tasks;
}

IgrCalibrationResult run_igr_calibration_task(const IgrCalibrationConfig& c, const IgrCalibrationShared& s,
                                              const IgrCalibrationTask& task, torch::Device device) {
  using namespace training;
  const std::int64_t width = c.widths[sz(task.width_index)];
  const double eta = c.learning_rates[sz(task.eta_index)];
  const std::uint64_t stream = task.draw_stream(c);
  const at::ScalarType train_dtype = c.train_float64 ? at::kDouble : at::kFloat;
  const MlpOptions options = network(c, s, width);
  const ModelHandle model = make_handle(make_mlp(options, c.seed, stream, device, train_dtype));
  const Dataset train_data = s.train.to(device, train_dtype);
  const Dataset validation = s.validation.to(device, train_dtype);

  TrainOptions o;
  o.loss = LossKind::cross_entropy;
  o.optimizer.kind = OptimizerKind::sgd;
  o.optimizer.learning_rate = eta;
  o.max_epochs = c.epochs;
  o.batch_size = c.batch_size;
  o.seed = c.seed;
  o.stream = stream;
  CheckpointSelector selector(model, train_data, validation, c.train_accuracy_threshold);
  training::Callback* callbacks[] = {&selector};
  const TrainResult trained = train(model, train_data, Dataset{}, o, callbacks);

  IgrCalibrationResult out;
  out.width = width;
  out.eta = eta;
  out.seed = task.replicate;
  out.p = model.parameter_count();
  out.lambda_theory = igr_theory(eta, out.p);
  out.epochs_run = trained.epochs;
  out.lambda_step.assign(sz(c.probe_steps), 0.0);
  out.best_train_accuracy = selector.best_train_accuracy();
  if (selector.epoch() == 0) {
    out.status = trained.status == TrainStatus::diverged ? IgrRunStatus::diverged : IgrRunStatus::below_threshold;
    return out;
  }
  restore_parameters(model, selector.best());
  out.selected_epoch = selector.epoch();
  out.train_accuracy = selector.train_accuracy();
  out.validation_accuracy = selector.validation_accuracy();

  // theta* in the probe dtype: a fresh network of the same shape holding it.
  const at::ScalarType probe_dtype = c.probe_float64 ? at::kDouble : at::kFloat;
  const ModelHandle probe_model = make_handle(make_mlp(options, c.seed, stream, device, probe_dtype));
  set_flat_parameters(probe_model, flat_parameters(model, /*keep_dtype=*/true).to(probe_dtype));
  out.test_accuracy = accuracy(probe_model, s.test.to(device, probe_dtype));

  IgrProbeOptions po;
  po.loss = LossKind::cross_entropy;
  po.eta = eta;
  po.steps = c.probe_steps;
  po.integrator = c.probe_integrator;
  po.substeps = c.probe_substeps;
  const IgrProbe probe = igr_probe(probe_model, s.probe, po);
  out.r_ig = probe.r_ig;
  out.probe_loss = probe.loss;
  out.lambda_hat = probe.estimate.lambda_hat;
  out.ratio = out.lambda_hat / out.lambda_theory;
  out.lambda_per_parameter = probe.estimate.lambda_per_parameter;
  out.residual_ratio = probe.estimate.residual_ratio;
  out.cosine = probe.estimate.cosine;
  out.lambda_step = probe.lambda_step;

  const Objective probe_objective(probe_model, s.probe, LossKind::cross_entropy, {}, po.batch_size);
  CurvatureOptions co;
  co.max_iterations = c.curvature_iterations;
  const Curvature k = curvature(probe_objective, probe_objective.current(), co);
  out.s_eff = k.s_eff;
  out.lambda_max = k.lambda_max;
  out.finite_step_factor = training::finite_step_factor(eta * k.s_eff);
  // The same ratio with H's whole spectrum, at every probe row, pooled as Eq. 6 pools them.
  // And the leading part beyond any quadratic: the third derivative along g.
  // Each probe row already holds theta_t, g_t and H g_t.
  std::vector<training::StepFactor> rows, third;
  const auto row_tensor = [&](const Matrix& m, std::int64_t t) {
    return training::to_tensor(m.row(t), {out.p}).to(device, probe_dtype);
  };
  for (std::int64_t t = 0; t < probe.theta.rows(); ++t) {
    const at::Tensor theta_t = row_tensor(probe.theta, t);
    const training::GradientAndHvp at_theta{row_tensor(probe.grad_loss, t), row_tensor(probe.hvp, t)};
    rows.push_back(training::quadratic_step_factor(probe_objective, theta_t, at_theta.hvp, eta));
    third.push_back(training::third_order_step_term(probe_objective, theta_t, at_theta, eta));
  }
  out.finite_step_factor_spectral = training::pooled_step_factor(rows);
  out.third_order_term = training::pooled_step_factor(third);
  return out;
}

// ---- outputs ----------------------------------------------------------------

nlohmann::json igr_calibration_summary(const IgrCalibrationConfig& c, std::span<const IgrCalibrationResult> results) {
  const Schema<IgrCalibrationResult> schema = run_schema(c.probe_steps);
  std::vector<IgrCalibrationResult> shown;
  std::vector<double> ratios;
  for (const IgrCalibrationResult& r : results) {
    shown.push_back(published(r, c.probe_steps));
    if (r.status == IgrRunStatus::ok) ratios.push_back(r.ratio);
  }
  nlohmann::json median = nullptr;
  if (!ratios.empty()) median = stats::finite_median(ratios);
  return {{"study", kStudy},
          {"gradmatch_version", io::gradmatch_version()},
          {"data_dir", c.data_dir},
          {"probe",
           {{"steps", c.probe_steps},
            {"substeps", c.probe_substeps},
            {"integrator", training::to_string(c.probe_integrator)},
            {"examples", c.probe}}},
          {"standardize", c.standardize},
          {"runs_ok", static_cast<std::int64_t>(ratios.size())},
          {"ratio_median", median},
          {"runs", schema.json(std::span<const IgrCalibrationResult>(shown))}};
}

namespace {

class IgrCalibrationStudy final : public Study {
 public:
  void configure(io::ConfigReader& reader) override {
    config_ = read_igr_calibration_config(reader);
    config_text_ = reader.text();
    config_path_ = reader.path();
  }
  void prepare(const StudyContext& context) override {
    device_ = context.device;
    try {
      shared_ = prepare_igr_calibration_shared(config_);
    } catch (const InputError& e) {  // too few images: name the config that asked for them
      if (std::string_view(e.what()).starts_with("key '")) throw InputError(cat(config_path_, ": ", e.what()));
      throw;
    }
    tasks_ = enumerate_igr_calibration_tasks(config_);
  }
  std::vector<TaskTable> tables() const override {
    TaskTable table{"runs", run_schema(config_.probe_steps).width(), {}, {}};
    for (const auto& t : tasks_) {
      table.ids.push_back(t.id(config_));
      // A run's parameters grow with its width: the widest runs are handed out first.
      table.costs.push_back(static_cast<double>(config_.widths[sz(t.width_index)]));
    }
    return {table};
  }
  std::vector<std::pair<std::string, std::string>> input_files() const override {
    std::vector<std::pair<std::string, std::string>> out;
    add_idx_inputs(out, "data.dir", config_.data_dir, /*test=*/true);
    return out;
  }
  std::vector<std::string> task_labels() const override {
    std::vector<std::string> labels;
    for (const IgrCalibrationTask& t : enumerate_igr_calibration_tasks(config_))
      labels.push_back(cat("width ", std::to_string(config_.widths[sz(t.width_index)]), ", eta ",
                           label_number(config_.learning_rates[sz(t.eta_index)]), ", seed ", std::to_string(t.replicate)));
    return labels;
  }
  /// Memory: the images (bytes and float32) and the widest MLP with its
  /// gradients and Hessian-vector products (~6 copies); disk: the run rows.
  /// Time unknown.
  ResourceEstimate estimate() const override {
    const IgrCalibrationConfig& c = config_;
    const double images = static_cast<double>(c.train + c.validation + c.test + c.probe);
    const double widest = static_cast<double>(*std::max_element(c.widths.begin(), c.widths.end()));
    const double params = 784.0 * widest + static_cast<double>(c.depth - 1) * widest * widest + 10.0 * widest;
    ResourceEstimate e;
    e.tasks = static_cast<std::int64_t>(enumerate_igr_calibration_tasks(c).size());
    e.model_parameters = params;
    e.tasks_text = cat("MLP trainings on ", c.data_dir, " (", c.widths.size(), " widths x ", c.learning_rates.size(),
                       " step sizes x ", c.replicates, " seeds), each probed for ", c.probe_steps, " steps");
    const auto width = static_cast<double>(run_schema(c.probe_steps).width());
    e.store_bytes = store_bytes(static_cast<double>(e.tasks), width);
    e.memory_bytes = 784.0 * 9.0 * images + 8.0 * 6.0 * params;
    e.memory_keys = "data.train, data.validation, data.test, data.probe, model.widths, model.depth";
    e.output_bytes = 8.0 * width * static_cast<double>(e.tasks) + 8192.0;
    e.disk_keys = "probe.steps, model.widths, training.seeds";
    e.outputs = {"results.h5", "summary.json"};
    return e;
  }

  std::string describe() const override {
    return cat(std::to_string(tasks_.size()), " runs (", std::to_string(config_.widths.size()), " widths x ",
               std::to_string(config_.learning_rates.size()), " step sizes x ", std::to_string(config_.replicates),
               " seeds)");
  }
  std::vector<double> compute(std::size_t, std::int64_t row) override {
    return run_schema(config_.probe_steps).encode(run_igr_calibration_task(config_, shared_, tasks_[sz(row)], device_));
  }
  nlohmann::json write(const std::vector<std::vector<double>>& rows, OutputDir& out) override {
    const Schema<IgrCalibrationResult> schema = run_schema(config_.probe_steps);
    const std::vector<IgrCalibrationResult> results = schema.decode_all(rows.front());
    std::vector<IgrCalibrationResult> shown;
    for (const IgrCalibrationResult& r : results) shown.push_back(published(r, config_.probe_steps));
    io::ResultsWriter w(out.path("results.h5"), kStudy);
    w.write("config", config_text_, {"the study's TOML config as given", "", {}});
    schema.write(w, "runs", shown, Axes{{"run"}, {static_cast<std::int64_t>(shown.size())}});
    w.commit();
    io::write_json_file(out.path("summary.json"), igr_calibration_summary(config_, results));
    return nlohmann::json::object();
  }

 private:
  IgrCalibrationConfig config_;
  std::string config_text_, config_path_;
  IgrCalibrationShared shared_;
  std::vector<IgrCalibrationTask> tasks_;
  torch::Device device_ = torch::Device(torch::kCPU);
};

}  // namespace

std::unique_ptr<Study> make_igr_calibration_study() { return std::make_unique<IgrCalibrationStudy>(); }

}  // namespace gradmatch::studies
