#include "studies/igr_calibration.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "core/errors.hpp"
#include "io/config.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "studies/farm_study.hpp"
#include "training/idx.hpp"
#include "training/igr.hpp"
#include "training/models.hpp"
#include "training/trainer.hpp"

namespace gradmatch::studies {
namespace {

constexpr const char* kStudy = "igr_calibration";
constexpr std::int64_t kMaxField = (std::int64_t{1} << 20) - 1;
constexpr std::int64_t kHead = 14;  // scalar fields at the start of a stored row

std::size_t sz(std::int64_t i) { return static_cast<std::size_t>(i); }

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

std::vector<double> encode(const IgrCalibrationResult& r) {
  std::vector<double> row{static_cast<double>(r.status),
                          static_cast<double>(r.p),
                          static_cast<double>(r.epochs_run),
                          static_cast<double>(r.selected_epoch),
                          r.train_accuracy,
                          r.validation_accuracy,
                          r.test_accuracy,
                          r.r_ig,
                          r.probe_loss,
                          r.lambda_hat,
                          r.lambda_per_parameter,
                          r.residual_ratio,
                          r.cosine,
                          r.best_train_accuracy};
  row.insert(row.end(), r.lambda_step.begin(), r.lambda_step.end());
  return row;
}

IgrCalibrationResult decode(std::span<const double> row) {
  IgrCalibrationResult r;
  r.status = static_cast<IgrRunStatus>(static_cast<int>(row[0]));
  r.p = static_cast<std::int64_t>(row[1]);
  r.epochs_run = static_cast<std::int64_t>(row[2]);
  r.selected_epoch = static_cast<std::int64_t>(row[3]);
  r.train_accuracy = row[4];
  r.validation_accuracy = row[5];
  r.test_accuracy = row[6];
  r.r_ig = row[7];
  r.probe_loss = row[8];
  r.lambda_hat = row[9];
  r.lambda_per_parameter = row[10];
  r.residual_ratio = row[11];
  r.cosine = row[12];
  r.best_train_accuracy = row[13];
  r.lambda_step.assign(row.begin() + kHead, row.end());
  return r;
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
  c.train = r.get_int("data.train", c.train, 1, 10'000'000);
  c.validation = r.get_int("data.validation", c.validation, 1, 10'000'000);
  c.test = r.get_int("data.test", c.test, 1, 10'000'000);
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
  if (c.widths.empty()) config_error(r, "model.widths", "is empty; give at least one width");
  if (std::set<std::int64_t>(c.widths.begin(), c.widths.end()).size() != c.widths.size())
    config_error(r, "model.widths", "holds a width twice; list each width once");
  if (c.learning_rates.empty()) config_error(r, "training.learning_rates", "is empty; give at least one step size");
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
  const Dataset all_train = load_idx(c.data_dir, IdxPart::train);
  const Dataset all_test = load_idx(c.data_dir, IdxPart::test);
  const auto too_few = [&](const char* part, std::int64_t have, std::int64_t want) {
    throw InputError(cat("igr_calibration: ", c.data_dir, " holds ", std::to_string(have), " ", part,
                         " images; the config asks for ", std::to_string(want)));
  };
  if (c.train + c.validation > all_train.size()) too_few("training", all_train.size(), c.train + c.validation);
  if (c.test > all_test.size()) too_few("test", all_test.size(), c.test);
  const std::vector<std::int64_t> order = permutation(all_train.size(), c.seed, 0);
  const std::vector<std::int64_t> test_order = permutation(all_test.size(), c.seed, 1);
  IgrCalibrationShared s;
  s.train = all_train.take(std::vector<std::int64_t>(order.begin(), order.begin() + c.train));
  s.validation =
      all_train.take(std::vector<std::int64_t>(order.begin() + c.train, order.begin() + c.train + c.validation));
  s.test = all_test.take(std::vector<std::int64_t>(test_order.begin(), test_order.begin() + c.test));
  s.probe = s.train.slice(0, c.probe);
  s.inputs = s.train.x.size(1);
  s.classes = std::max(all_train.y.max().item<std::int64_t>(), all_test.y.max().item<std::int64_t>()) + 1;
  return s;
}

std::uint64_t IgrCalibrationTask::id(const IgrCalibrationConfig& c) const {
  return (static_cast<std::uint64_t>(c.widths[sz(width_index)]) << 40) |
         (static_cast<std::uint64_t>(eta_index) << 20) | static_cast<std::uint64_t>(replicate);
}

std::vector<IgrCalibrationTask> enumerate_igr_calibration_tasks(const IgrCalibrationConfig& c) {
  std::vector<IgrCalibrationTask> tasks;
  for (std::int64_t w = 0; w < static_cast<std::int64_t>(c.widths.size()); ++w)
    for (std::int64_t e = 0; e < static_cast<std::int64_t>(c.learning_rates.size()); ++e)
      for (std::int64_t r = 0; r < c.replicates; ++r) tasks.push_back({w, e, r});
  return tasks;
}

IgrCalibrationResult run_igr_calibration_task(const IgrCalibrationConfig& c, const IgrCalibrationShared& s,
                                              const IgrCalibrationTask& task) {
  using namespace training;
  const std::int64_t width = c.widths[sz(task.width_index)];
  const double eta = c.learning_rates[sz(task.eta_index)];
  const std::uint64_t id = task.id(c);
  const at::ScalarType train_dtype = c.train_float64 ? at::kDouble : at::kFloat;
  const MlpOptions options = network(c, s, width);
  const ModelHandle model = make_handle(make_mlp(options, c.seed, id, torch::kCPU, train_dtype));
  const Dataset train_data = s.train.to(at::kCPU, train_dtype);
  const Dataset validation = s.validation.to(at::kCPU, train_dtype);

  TrainOptions o;
  o.loss = LossKind::cross_entropy;
  o.optimizer.kind = OptimizerKind::sgd;
  o.optimizer.learning_rate = eta;
  o.max_epochs = c.epochs;
  o.batch_size = c.batch_size;
  o.seed = c.seed;
  o.stream = id;
  CheckpointSelector selector(model, train_data, validation, c.train_accuracy_threshold);
  training::Callback* callbacks[] = {&selector};
  const TrainResult trained = train(model, train_data, Dataset{}, o, callbacks);

  IgrCalibrationResult out;
  out.p = model.parameter_count();
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
  const ModelHandle probe_model = make_handle(make_mlp(options, c.seed, id, torch::kCPU, probe_dtype));
  set_flat_parameters(probe_model, flat_parameters(model, /*keep_dtype=*/true).to(probe_dtype));
  out.test_accuracy = accuracy(probe_model, s.test.to(at::kCPU, probe_dtype));

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
  out.lambda_per_parameter = probe.estimate.lambda_per_parameter;
  out.residual_ratio = probe.estimate.residual_ratio;
  out.cosine = probe.estimate.cosine;
  out.lambda_step = probe.lambda_step;
  return out;
}

// ---- outputs ----------------------------------------------------------------

nlohmann::json igr_calibration_summary(const IgrCalibrationConfig& c, std::span<const IgrCalibrationTask> tasks,
                                       std::span<const IgrCalibrationResult> results) {
  nlohmann::json runs = nlohmann::json::array();
  std::vector<double> ratios;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const IgrCalibrationResult& r = results[i];
    const double eta = c.learning_rates[sz(tasks[i].eta_index)];
    const double theory = training::igr_theory(eta, r.p);
    const bool ok = r.status == IgrRunStatus::ok;
    const auto value = [&](double v) { return ok ? nlohmann::json(v) : nlohmann::json(nullptr); };
    if (ok) ratios.push_back(r.lambda_hat / theory);
    runs.push_back({{"width", c.widths[sz(tasks[i].width_index)]},
                    {"eta", eta},
                    {"seed", tasks[i].replicate},
                    {"p", r.p},
                    {"status", to_string(r.status)},
                    {"lambda_hat", value(r.lambda_hat)},
                    {"lambda_theory", theory},
                    {"ratio", value(r.lambda_hat / theory)},
                    {"residual_ratio", value(r.residual_ratio)},
                    {"r_ig", value(r.r_ig)},
                    {"test_accuracy", value(r.test_accuracy)},
                    {"train_accuracy", value(r.train_accuracy)},
                    {"validation_accuracy", value(r.validation_accuracy)},
                    {"best_train_accuracy", r.best_train_accuracy},
                    {"selected_epoch", r.selected_epoch},
                    {"epochs_run", r.epochs_run}});
  }
  nlohmann::json median = nullptr;
  if (!ratios.empty()) {
    std::sort(ratios.begin(), ratios.end());
    const std::size_t h = ratios.size() / 2;
    median = ratios.size() % 2 == 1 ? ratios[h] : 0.5 * (ratios[h - 1] + ratios[h]);
  }
  return {{"study", kStudy},
          {"data_dir", c.data_dir},
          {"probe",
           {{"steps", c.probe_steps},
            {"substeps", c.probe_substeps},
            {"integrator", training::to_string(c.probe_integrator)},
            {"examples", c.probe}}},
          {"runs_ok", static_cast<std::int64_t>(ratios.size())},
          {"ratio_median", median},
          {"runs", runs}};
}

void run_igr_calibration(const std::string& config_path, const std::string& out_dir,
                         const distributed::Communicator& comm) {
  const distributed::RankDevice device = configure_study_device(comm);
  IgrCalibrationConfig config;
  std::string config_text, effective;
  IgrCalibrationShared shared;
  std::vector<IgrCalibrationTask> tasks;
  double shared_s = 0.0;
  distributed::collective(comm, [&] {
    io::ConfigReader reader(config_path);
    config = read_igr_calibration_config(reader);
    config_text = reader.text();
    effective = reader.effective();
    const auto t = std::chrono::steady_clock::now();
    shared = prepare_igr_calibration_shared(config);
    shared_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    tasks = enumerate_igr_calibration_tasks(config);
  });

  StudyRunSpec spec;
  spec.study = kStudy;
  spec.effective_config = effective;
  StudyTable table{"runs", kHead + config.probe_steps, {}};
  for (const auto& t : tasks) table.ids.push_back(t.id(config));
  spec.tables.push_back(std::move(table));
  spec.outputs = {"results.h5", "summary.json"};
  spec.shared_seconds = shared_s;

  const auto compute = [&](std::size_t, std::int64_t row) {
    return encode(run_igr_calibration_task(config, shared, tasks[sz(row)]));
  };
  const auto write = [&](const std::vector<std::vector<double>>& data) {
    const std::size_t width = sz(kHead + config.probe_steps);
    std::vector<IgrCalibrationResult> results;
    for (std::size_t i = 0; i < tasks.size(); ++i)
      results.push_back(decode(std::span<const double>(data[0]).subspan(i * width, width)));

    const std::filesystem::path dir(out_dir);
    io::ResultsWriter w((dir / "results.h5").string());
    w.write("config", config_text);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::vector<std::int64_t> widths, seeds, ps, status, selected;
    std::vector<double> etas, lambda_hat, theory, ratio, residual, cosine, r_ig, test_acc, train_acc, val_acc, best_acc;
    Matrix steps(static_cast<std::int64_t>(tasks.size()), config.probe_steps);
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      const IgrCalibrationResult& r = results[i];
      const bool ok = r.status == IgrRunStatus::ok;
      widths.push_back(config.widths[sz(tasks[i].width_index)]);
      seeds.push_back(tasks[i].replicate);
      ps.push_back(r.p);
      status.push_back(static_cast<std::int64_t>(r.status));
      selected.push_back(r.selected_epoch);
      etas.push_back(config.learning_rates[sz(tasks[i].eta_index)]);
      theory.push_back(training::igr_theory(etas.back(), r.p));
      lambda_hat.push_back(ok ? r.lambda_hat : nan);
      ratio.push_back(ok ? r.lambda_hat / theory.back() : nan);
      residual.push_back(ok ? r.residual_ratio : nan);
      cosine.push_back(ok ? r.cosine : nan);
      r_ig.push_back(ok ? r.r_ig : nan);
      test_acc.push_back(ok ? r.test_accuracy : nan);
      train_acc.push_back(ok ? r.train_accuracy : nan);
      val_acc.push_back(ok ? r.validation_accuracy : nan);
      best_acc.push_back(r.best_train_accuracy);
      for (std::int64_t k = 0; k < config.probe_steps; ++k)
        steps(static_cast<std::int64_t>(i), k) = ok ? r.lambda_step[sz(k)] : nan;
    }
    w.write("runs/width", widths);
    w.write("runs/eta", etas);
    w.write("runs/seed", seeds);
    w.write("runs/p", ps);
    w.write("runs/status", status);
    w.write("runs/selected_epoch", selected);
    w.write("runs/lambda_hat", lambda_hat);
    w.write("runs/lambda_theory", theory);
    w.write("runs/ratio", ratio);
    w.write("runs/residual_ratio", residual);
    w.write("runs/cosine", cosine);
    w.write("runs/r_ig", r_ig);
    w.write("runs/test_accuracy", test_acc);
    w.write("runs/train_accuracy", train_acc);
    w.write("runs/validation_accuracy", val_acc);
    w.write("runs/best_train_accuracy", best_acc);
    w.write("runs/lambda_step", steps);
    w.commit();
    io::write_json_file((dir / "summary.json").string(), igr_calibration_summary(config, tasks, results));
    return nlohmann::json::object();
  };
  run_farm_study(comm, device, out_dir, spec, compute, write);
}

}  // namespace gradmatch::studies
