#include "studies/elastic_net.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "core/errors.hpp"
#include "core/resources.hpp"
#include "core/fit.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "io/provenance.hpp"
#include "studies/schema.hpp"
#include "core/statistics.hpp"
#include "training/data.hpp"
#include "training/endpoint.hpp"
#include "training/models.hpp"
#include "training/replicates.hpp"
#include "training/trainer.hpp"

namespace gradmatch::studies {
namespace {

constexpr const char* kStudy = "elastic_net";
// Stream kinds (bits 56..63 of a Philox stream id); the low bits hold the seed index.
constexpr std::uint64_t kTaskKind = 1, kDataKind = 2, kSplitKind = 3, kInitKind = 4, kOrderKind = 5;
constexpr std::int64_t kMaxSeeds = (std::int64_t{1} << 24) - 1;
constexpr std::int64_t kMaxBlocks = (std::int64_t{1} << 24) - 1;

std::uint64_t stream(std::uint64_t kind, std::int64_t seed_index) {
  return kind << 56 | static_cast<std::uint64_t>(seed_index);
}

void check_grid(const io::ConfigReader& r, const std::string& key, const std::vector<double>& values) {
  if (values.empty()) config_error(r, key, "is empty; give at least one penalty weight");
  for (std::size_t i = 1; i < values.size(); ++i)
    if (values[i] <= values[i - 1]) config_error(r, key, "must be strictly increasing");
}

FitOptions fit_options(const ElasticNetConfig& c) {
  FitOptions o;
  o.family.kind = FamilyKind::elastic_net;
  o.family.beta = c.beta;
  o.normalize = c.normalize;
  o.nonneg = c.nonneg;
  return o;
}

training::LinearDataOptions data_options(const ElasticNetConfig& c) {
  training::LinearDataOptions o;
  o.n = c.n;
  o.d = c.d;
  o.theta_sd = c.theta_sd;
  o.noise_sd = c.noise_sd;
  return o;
}

// Cell index -> (lambda1 index, lambda2 index), lambda1-major.
std::int64_t cell_i1(const ElasticNetConfig& c, std::int64_t cell) {
  return cell / static_cast<std::int64_t>(c.lambda2.size());
}
std::int64_t cell_i2(const ElasticNetConfig& c, std::int64_t cell) {
  return cell % static_cast<std::int64_t>(c.lambda2.size());
}

std::string equation_file_name(std::int64_t i1, std::int64_t i2) {
  return "equations_l1_" + std::to_string(i1) + "_l2_" + std::to_string(i2) + ".h5";
}

}  // namespace

// ---- config -------------------------------------------------------------------

ElasticNetConfig read_elastic_net_config(io::ConfigReader& r) {
  ElasticNetConfig c;
  c.seed = read_study_seed(r, kStudy, c.seed);
  c.lambda1 = r.get_doubles("grid.lambda1", c.lambda1, 0.0, 1e6);
  c.lambda2 = r.get_doubles("grid.lambda2", c.lambda2, 0.0, 1e6);
  c.beta = r.get_double("grid.beta", c.beta, 1e-300, 1e6);
  c.seeds = r.get_int("grid.seeds", c.seeds, 1, kMaxSeeds);

  c.n = r.get_int("data.n", c.n, 4, 100'000'000);
  c.d = r.get_int("data.d", c.d, 1, 100'000);
  c.theta_sd = r.get_double("data.theta_sd", c.theta_sd, 0.0, 1e150);
  c.noise_sd = r.get_double("data.noise_sd", c.noise_sd, 0.0, 1e150);
  c.test_fraction = r.get_double("data.test_fraction", c.test_fraction, 1e-6, 0.9);

  c.hidden = r.get_int("model.hidden", c.hidden, 1, 1'000'000);

  c.learning_rate = r.get_double("training.learning_rate", c.learning_rate, 1e-300, 1e3);
  c.momentum = r.get_double("training.momentum", c.momentum, 0.0, 0.999999);
  c.batch_size = r.get_int("training.batch_size", c.batch_size, 1, 100'000'000);
  c.max_epochs = r.get_int("training.max_epochs", c.max_epochs, 1, 100'000'000);
  c.patience = r.get_int("training.patience", c.patience, 1, 100'000'000);
  c.min_delta = r.get_double("training.min_delta", c.min_delta, 0.0, 1e300);
  c.keep_best = r.get_bool("training.keep_best", c.keep_best);
  c.float64 = r.get_choice("training.dtype", "float32", {"float32", "float64"}) == "float64";
  c.cells_per_task = r.get_int("training.cells_per_task", c.cells_per_task, 0, kMaxBlocks);

  c.normalize = r.get_bool("fit.normalize", c.normalize);
  c.nonneg = r.get_bool("fit.nonneg", c.nonneg);

  check_grid(r, "grid.lambda1", c.lambda1);
  check_grid(r, "grid.lambda2", c.lambda2);
  r.finish();
  return c;
}

// ---- tasks --------------------------------------------------------------------

std::uint64_t ElasticNetTask::id() const {
  return kTaskKind << 56 | static_cast<std::uint64_t>(seed_index) << 24 | static_cast<std::uint64_t>(block);
}

std::vector<ElasticNetTask> enumerate_elastic_net_tasks(const ElasticNetConfig& c) {
  std::vector<ElasticNetTask> tasks;
  for (std::int64_t s = 0; s < c.seeds; ++s)
    for (std::int64_t b = 0; b < c.blocks(); ++b) tasks.push_back({s, b});
  return tasks;
}

std::vector<ElasticNetEndpoint> run_elastic_net_task(const ElasticNetConfig& c, const ElasticNetTask& task,
                                                     torch::Device device) {
  using namespace gradmatch::training;
  const std::int64_t s = task.seed_index;
  const SyntheticData data = linear_regression(data_options(c), c.seed, stream(kDataKind, s));
  const Split drawn = split(data.data, c.test_fraction, c.seed, stream(kSplitKind, s));
  const at::ScalarType dtype = c.float64 ? at::kDouble : at::kFloat;
  // On the rank's device, in the generated float64: training casts to its
  // dtype, the endpoint equations are float64.
  const Split parts{drawn.train.to(device, drawn.train.x.scalar_type()),
                    drawn.validation.to(device, drawn.validation.x.scalar_type())};

  const std::int64_t first = c.block_first(task.block), last = c.block_end(task.block);
  std::vector<ReplicateSpec> specs;
  for (std::int64_t cell = first; cell < last; ++cell) {
    ReplicateSpec spec;
    spec.init_seed = c.seed;
    spec.init_stream = stream(kInitKind, s);
    spec.order_seed = c.seed;
    spec.order_stream = stream(kOrderKind, s);
    spec.penalty = Penalty::elastic_net(c.lambda1[sz(cell_i1(c, cell))], c.lambda2[sz(cell_i2(c, cell))], c.beta);
    specs.push_back(spec);
  }
  const auto replicates = static_cast<std::int64_t>(specs.size());

  BatchedMlp model(regression_net_options(c.d, c.hidden), specs, dtype);
  model->to(device);
  TrainOptions o;
  o.loss = LossKind::mse;
  o.optimizer.kind = OptimizerKind::sgd;
  o.optimizer.learning_rate = c.learning_rate;
  o.optimizer.momentum = c.momentum;
  o.max_epochs = c.max_epochs;
  o.batch_size = c.batch_size;
  o.shuffle = true;
  o.early_stopping = EarlyStoppingOptions{c.patience, c.min_delta, Monitor::train};
  o.keep_best = c.keep_best;
  const std::vector<Dataset> train_sets(sz(replicates), parts.train);
  const std::vector<TrainResult> trained = train_replicates(model, train_sets, {}, o, specs);

  EndpointOptions eo;
  eo.loss = LossKind::mse;
  const FitOptions fo = fit_options(c);
  std::vector<ElasticNetEndpoint> out(sz(replicates));
  for (std::int64_t r = 0; r < replicates; ++r) {
    ElasticNetEndpoint& e = out[sz(r)];
    const TrainResult& t = trained[sz(r)];
    e.epochs = t.epochs;
    if (t.status == TrainStatus::diverged) {
      e.diverged = true;
      continue;
    }
    Mlp single = model->replicate(r);
    single->to(at::kDouble);
    const ModelHandle handle = make_handle(single);
    const Endpoint end = extract_endpoint(handle, parts.train, eo);
    const Equations eq = to_equations(std::span<const Endpoint>(&end, 1));
    const FitResult f = fit(eq, fo);
    e.lambda1_hat = f.coefficient(0);
    e.lambda2_hat = f.coefficient(1);
    e.lambda1_fit_se = f.standard_errors.size() == 2 ? f.standard_errors[0] : std::nan("");
    e.lambda2_fit_se = f.standard_errors.size() == 2 ? f.standard_errors[1] : std::nan("");
    e.residual_ratio = f.residual_ratio;
    e.cosine = f.cosine;
    e.condition_number = f.condition_number;
    e.relative_grad_norm = end.relative_gradient_norm;
    e.train_loss = end.loss;
    e.test_loss = evaluate_loss(handle, parts.validation, LossKind::mse);
    e.theta = end.theta;
    e.grad_loss = end.grad_loss;
  }
  return out;
}

// ---- schemas ------------------------------------------------------------------

namespace {

using EP = ElasticNetEndpoint;

/// An endpoint's estimates: results.h5 `endpoints/*` [lambda1, lambda2, seed].
std::vector<Field<EP>> endpoint_fields() {
  // A rank-deficient design has an infinite condition number (stored through
  // Schema::encode_finished). Run stores written before that held -1: read as inf.
  Field<EP> condition = scalar("condition_number", &EP::condition_number, "",
                               "condition number of the p x 2 design [h'_beta(theta), 2 theta] (inf: rank deficient)");
  condition.set = [](EP& e, const double* in) {
    e.condition_number = *in == -1.0 ? std::numeric_limits<double>::infinity() : *in;
  };
  return {scalar("diverged", &EP::diverged, "", "training diverged (the estimates are NaN)"),
          scalar("epochs", &EP::epochs, "epochs", "epochs trained"),
          scalar("lambda1_hat", &EP::lambda1_hat, "", "fitted Huber weight lambda1"),
          scalar("lambda2_hat", &EP::lambda2_hat, "", "fitted ridge weight lambda2"),
          scalar("lambda1_fit_se", &EP::lambda1_fit_se, "", "regression standard error of lambda1_hat"),
          scalar("lambda2_fit_se", &EP::lambda2_fit_se, "", "regression standard error of lambda2_hat"),
          scalar("residual_ratio", &EP::residual_ratio, "", "||b - grad R-hat|| / ||b||"),
          scalar("cosine", &EP::cosine, "", "cosine between b and grad R-hat"),
          condition,
          scalar("relative_grad_norm", &EP::relative_grad_norm, "", "||grad L|| / ||theta||"),
          scalar("train_loss", &EP::train_loss, "", "full-batch training MSE"),
          scalar("test_loss", &EP::test_loss, "", "held-out MSE")};
}

/// The stored form of an endpoint: its estimates, then theta and grad L.
Schema<EP> endpoint_row_schema(std::int64_t p) {
  std::vector<Field<EP>> fields = endpoint_fields();
  fields.push_back(vector("theta", &EP::theta, "parameter", p, "", "theta at the endpoint"));
  fields.push_back(vector("grad_loss", &EP::grad_loss, "parameter", p, "", "grad L at the endpoint"));
  return Schema<EP>(std::move(fields));
}

/// What the store and outputs hold of an endpoint: a diverged one keeps its
/// flag and epochs, every estimate (theta and grad L included) NaN.
EP published(const EP& e, std::int64_t p) {
  if (!e.diverged) return e;
  EP sized = e;  // a diverged endpoint has no theta: give the vectors their length first
  sized.theta.resize(sz(p));
  sized.grad_loss.resize(sz(p));
  return endpoint_row_schema(p).without_estimates(sized);
}

using EC = ElasticNetCell;

/// results.h5 `cells/*` [lambda1, lambda2] and summary.json `cells`.
Schema<EC> cell_schema() {
  return {scalar("lambda1", &EC::lambda1, "", "true Huber weight lambda1"),
          scalar("lambda2", &EC::lambda2, "", "true ridge weight lambda2"),
          scalar("lambda1_hat_mean", &EC::lambda1_hat_mean, "", "mean over seeds of lambda1_hat"),
          scalar("lambda1_hat_se", &EC::lambda1_hat_se, "", "standard error of that mean"),
          scalar("lambda2_hat_mean", &EC::lambda2_hat_mean, "", "mean over seeds of lambda2_hat"),
          scalar("lambda2_hat_se", &EC::lambda2_hat_se, "", "standard error of that mean"),
          scalar("residual_ratio_median", &EC::residual_ratio_median, "", "median over seeds"),
          scalar("cosine_median", &EC::cosine_median, "", "median over seeds"),
          scalar("condition_number_median", &EC::condition_number_median, "", "median over seeds (inf counts as largest)"),
          scalar("relative_grad_norm_median", &EC::relative_grad_norm_median, "", "median over seeds"),
          scalar("test_loss_median", &EC::test_loss_median, "", "median over seeds"),
          scalar("lambda1_pooled", &EC::lambda1_pooled, "", "lambda1 fitted to every seed's equations at once"),
          scalar("lambda2_pooled", &EC::lambda2_pooled, "", "lambda2 fitted to every seed's equations at once"),
          scalar("residual_ratio_pooled", &EC::residual_ratio_pooled, "", "residual ratio of the pooled fit"),
          scalar("seeds", &EC::seeds, "", "seeds that did not diverge"),
          scalar("diverged", &EC::diverged, "", "seeds that diverged")};
}

}  // namespace

// ---- assembly -----------------------------------------------------------------

ElasticNetResults assemble_elastic_net(const ElasticNetConfig& c,
                                       const std::vector<std::vector<ElasticNetEndpoint>>& endpoints) {
  ElasticNetResults r;
  const std::int64_t cells = c.cells(), seeds = c.seeds;
  const double nan = std::nan("");
  const FitOptions fo = fit_options(c);
  for (std::int64_t cell = 0; cell < cells; ++cell) {
    ElasticNetCell out;
    out.lambda1 = c.lambda1[sz(cell_i1(c, cell))];
    out.lambda2 = c.lambda2[sz(cell_i2(c, cell))];
    std::vector<const ElasticNetEndpoint*> ok;
    std::vector<double> l1, l2, residual, cosine, condition, relative, test;
    for (std::int64_t s = 0; s < seeds; ++s) {
      const ElasticNetEndpoint& e = endpoints[sz(cell)][sz(s)];
      r.endpoints.push_back(published(e, c.parameters()));
      if (e.diverged) {
        ++out.diverged;
        continue;
      }
      ok.push_back(&e);
      l1.push_back(e.lambda1_hat);
      l2.push_back(e.lambda2_hat);
      residual.push_back(e.residual_ratio);
      cosine.push_back(e.cosine);
      condition.push_back(e.condition_number);
      relative.push_back(e.relative_grad_norm);
      test.push_back(e.test_loss);
    }
    out.seeds = static_cast<std::int64_t>(ok.size());
    const stats::MeanSe m1 = stats::finite_mean_se(l1), m2 = stats::finite_mean_se(l2);
    out.lambda1_hat_mean = m1.mean;
    out.lambda1_hat_se = m1.se;
    out.lambda2_hat_mean = m2.mean;
    out.lambda2_hat_se = m2.se;
    out.residual_ratio_median = stats::finite_median(residual);
    out.cosine_median = stats::finite_median(cosine);
    {  // an infinite condition number (rank-deficient design) counts as the largest
      std::sort(condition.begin(), condition.end());
      const std::size_t h = condition.size() / 2;
      out.condition_number_median =
          condition.empty() ? nan : (condition.size() % 2 == 1 ? condition[h] : 0.5 * (condition[h - 1] + condition[h]));
    }
    out.relative_grad_norm_median = stats::finite_median(relative);
    out.test_loss_median = stats::finite_median(test);
    out.lambda1_pooled = out.lambda2_pooled = out.residual_ratio_pooled = nan;
    if (!ok.empty()) {
      const auto m = static_cast<std::int64_t>(ok.size());
      const std::int64_t p = static_cast<std::int64_t>(ok.front()->theta.size());
      Equations eq;
      eq.theta = Matrix(m, p);
      eq.grad_loss = Matrix(m, p);
      for (std::int64_t k = 0; k < m; ++k) {
        std::copy(ok[sz(k)]->theta.begin(), ok[sz(k)]->theta.end(), eq.theta.row(k).begin());
        std::copy(ok[sz(k)]->grad_loss.begin(), ok[sz(k)]->grad_loss.end(), eq.grad_loss.row(k).begin());
      }
      const FitResult f = fit(eq, fo);
      out.lambda1_pooled = f.coefficient(0);
      out.lambda2_pooled = f.coefficient(1);
      out.residual_ratio_pooled = f.residual_ratio;
      r.equations.push_back(std::move(eq));
    } else {
      r.equations.emplace_back();
    }
    r.cells.push_back(out);
  }
  for (std::int64_t s = 0; s < seeds; ++s) {
    const training::SyntheticData data = training::linear_regression(data_options(c), c.seed, stream(kDataKind, s));
    r.theta_true.insert(r.theta_true.end(), data.theta_true.begin(), data.theta_true.end());
  }
  return r;
}

nlohmann::json elastic_net_summary(const ElasticNetConfig& c, const ElasticNetResults& r) {
  // Cells whose mean estimate lies within a factor 2 of the truth, per penalty.
  std::int64_t within1 = 0, within2 = 0;
  for (const ElasticNetCell& cell : r.cells) {
    const auto near = [](double hat, double truth) { return hat > 0.5 * truth && hat < 2.0 * truth; };
    within1 += near(cell.lambda1_hat_mean, cell.lambda1);
    within2 += near(cell.lambda2_hat_mean, cell.lambda2);
  }
  return {{"study", kStudy},
          {"gradmatch_version", io::gradmatch_version()},
          {"beta", c.beta},
          {"seeds", c.seeds},
          {"parameters", c.parameters()},
          {"lambda1", c.lambda1},
          {"lambda2", c.lambda2},
          {"cells_lambda1_within_factor_2", within1},
          {"cells_lambda2_within_factor_2", within2},
          {"cells", cell_schema().json(std::span<const ElasticNetCell>(r.cells))}};
}

// ---- the study on the runner ---------------------------------------------------

namespace {

void write_results(const std::string& path, const ElasticNetConfig& c, const std::string& config_text,
                   const ElasticNetResults& r) {
  io::ResultsWriter w(path, kStudy);
  const auto n1 = static_cast<std::int64_t>(c.lambda1.size()), n2 = static_cast<std::int64_t>(c.lambda2.size());
  w.write("config", config_text, {"the study's TOML config as given", "", {}});
  w.write("grid/lambda1", c.lambda1, {"true Huber weights lambda1", "", {"lambda1"}});
  w.write("grid/lambda2", c.lambda2, {"true ridge weights lambda2", "", {"lambda2"}});
  w.write("grid/beta", c.beta, {"Huber transition beta", "", {}});
  w.write("grid/seeds", c.seeds, {"seeds per cell", "", {}});
  Schema<EP>(endpoint_fields()).write(w, "endpoints", r.endpoints, Axes{{"lambda1", "lambda2", "seed"}, {n1, n2, c.seeds}});
  cell_schema().write(w, "cells", r.cells, Axes{{"lambda1", "lambda2"}, {n1, n2}});
  w.write("data/theta_true", r.theta_true, {"true coefficients of each seed's data", "", {"seed", "input"}},
          {c.seeds, c.d});
  w.commit();
}

class ElasticNetStudy final : public Study {
 public:
  void configure(io::ConfigReader& reader) override {
    config_ = read_elastic_net_config(reader);
    config_text_ = reader.text();
    schema_ = endpoint_row_schema(config_.parameters());
  }
  void prepare(const StudyContext& context) override {
    device_ = context.device;
    tasks_ = enumerate_elastic_net_tasks(config_);
  }
  /// A row holds block_size endpoints (cells past the grid's end in the last
  /// block: zeros).
  std::vector<TaskTable> tables() const override {
    TaskTable table{"endpoints", config_.block_size() * schema_.width(), {}, {}};
    for (const ElasticNetTask& t : tasks_) table.ids.push_back(t.id());
    return {table};
  }
  std::vector<std::string> task_labels() const override {
    const ElasticNetConfig& c = config_;
    const auto cell_text = [&](std::int64_t cell) {
      return cat("(", label_number(c.lambda1[sz(cell_i1(c, cell))]), ", ", label_number(c.lambda2[sz(cell_i2(c, cell))]), ")");
    };
    std::vector<std::string> labels;
    for (const ElasticNetTask& t : enumerate_elastic_net_tasks(c)) {
      const std::int64_t first = c.block_first(t.block), last = c.block_end(t.block) - 1;
      labels.push_back(cat("seed ", std::to_string(t.seed_index), ", (lambda1, lambda2) ", cell_text(first),
                           last > first ? cat(" to ", cell_text(last), " (", std::to_string(last - first + 1), " cells)")
                                        : std::string()));
    }
    return labels;
  }
  std::string describe() const override {
    return cat(std::to_string(config_.cells()), " cells x ", std::to_string(config_.seeds), " seeds as ",
               std::to_string(tasks_.size()), " tasks of ", std::to_string(config_.block_size()),
               " batched replicates (p = ", std::to_string(config_.parameters()), ")");
  }
  /// Memory: the data and, per batched replicate, the parameters with their
  /// gradients, momentum and best copy (5 x p doubles); disk: the store rows
  /// and one equation file per cell (seeds x p x 2 doubles). Time unknown.
  ResourceEstimate estimate() const override {
    const ElasticNetConfig& c = config_;
    const double p = static_cast<double>(c.parameters()), tasks = static_cast<double>(c.seeds * c.blocks());
    ResourceEstimate e;
    e.tasks = c.seeds * c.blocks();
    e.model_parameters = p;
    e.tasks_text = cat(c.cells(), " cells x ", c.seeds, " seeds in tasks of ", c.block_size(),
                       " batched MLP trainings (p = ", resources::count_text(p), " parameters each)");
    e.store_bytes = store_bytes(tasks, static_cast<double>(c.block_size() * schema_.width()));
    e.memory_bytes = 8.0 * static_cast<double>(c.n) * static_cast<double>(c.d) * 2.0 +
                     8.0 * 5.0 * p * static_cast<double>(c.block_size());
    e.memory_keys = "model.hidden, data.d, data.n";
    e.output_bytes = 16.0 * p * static_cast<double>(c.cells() * c.seeds) + 4096.0 * static_cast<double>(c.cells()) +
                     8.0 * p * static_cast<double>(c.cells() * c.seeds);
    e.disk_keys = "model.hidden, data.d, grid sizes, grid.seeds";
    e.outputs = {"results.h5", "summary.json", cat("equations_l1_*_l2_*.h5 (", c.cells(), " files)")};
    return e;
  }

  std::vector<double> compute(std::size_t, std::int64_t row) override {
    std::vector<double> out(sz(config_.block_size() * schema_.width()), 0.0);
    const std::vector<ElasticNetEndpoint> endpoints = run_elastic_net_task(config_, tasks_[sz(row)], device_);
    for (std::size_t k = 0; k < endpoints.size(); ++k) {
      const ElasticNetEndpoint& e = endpoints[k];
      // A rank-deficient design leaves standard errors NaN in a network that trained.
      const std::vector<double> one = e.diverged ? schema_.encode(published(e, config_.parameters()))
                                                 : schema_.encode_finished(e);
      std::copy(one.begin(), one.end(), out.begin() + static_cast<std::ptrdiff_t>(k * one.size()));
    }
    return out;
  }
  nlohmann::json write(const std::vector<std::vector<double>>& rows, OutputDir& out) override {
    const std::int64_t width = config_.block_size() * schema_.width();
    std::vector<std::vector<ElasticNetEndpoint>> endpoints(sz(config_.cells()),
                                                           std::vector<ElasticNetEndpoint>(sz(config_.seeds)));
    for (std::size_t row = 0; row < tasks_.size(); ++row) {
      const std::span<const double> values = table_row(rows.front(), width, row);
      const std::int64_t first = config_.block_first(tasks_[row].block), last = config_.block_end(tasks_[row].block);
      for (std::int64_t cell = first; cell < last; ++cell)
        endpoints[sz(cell)][sz(tasks_[row].seed_index)] =
            schema_.decode(values.subspan(sz((cell - first) * schema_.width()), sz(schema_.width())));
    }
    const ElasticNetResults r = assemble_elastic_net(config_, endpoints);
    write_results(out.path("results.h5"), config_, config_text_, r);
    for (std::int64_t cell = 0; cell < config_.cells(); ++cell)
      if (r.equations[sz(cell)].theta.rows() > 0)  // every seed diverged: no equations to write
        io::write_equation_file(out.path(equation_file_name(cell_i1(config_, cell), cell_i2(config_, cell))),
                                r.equations[sz(cell)]);
    io::write_json_file(out.path("summary.json"), elastic_net_summary(config_, r));
    return {{"replicates_per_task", config_.block_size()}, {"parameters", config_.parameters()}};
  }
  std::optional<TrainingCount> count_trainings(const std::vector<std::vector<double>>& rows) const override {
    TrainingCount count;
    const std::int64_t width = config_.block_size() * schema_.width();
    for (std::size_t row = 0; row < tasks_.size(); ++row) {
      const std::span<const double> values = table_row(rows.front(), width, row);
      const std::int64_t cells = config_.block_end(tasks_[row].block) - config_.block_first(tasks_[row].block);
      for (std::int64_t k = 0; k < cells; ++k, ++count.total)
        if (schema_.decode(values.subspan(sz(k * schema_.width()), sz(schema_.width()))).diverged) ++count.diverged;
    }
    return count;
  }

 private:
  ElasticNetConfig config_;
  std::string config_text_;
  std::vector<ElasticNetTask> tasks_;
  Schema<EP> schema_ = endpoint_row_schema(0);  ///< set by configure() from p
  torch::Device device_ = torch::Device(torch::kCPU);
};

}  // namespace

std::unique_ptr<Study> make_elastic_net_study() { return std::make_unique<ElasticNetStudy>(); }

}  // namespace gradmatch::studies
