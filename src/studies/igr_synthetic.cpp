#include "studies/igr_synthetic.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>
#include <numeric>
#include <set>
#include <vector>

#include "core/errors.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "io/provenance.hpp"
#include "studies/schema.hpp"
#include "core/statistics.hpp"
#include "training/curvature.hpp"
#include "training/data.hpp"
#include "training/models.hpp"
#include "training/objective.hpp"
#include "training/tensor_bridge.hpp"
#include "training/trajectory.hpp"

namespace gradmatch::studies {
namespace {

constexpr const char* kStudy = "igr_synthetic";
constexpr std::int64_t kMaxField = (std::int64_t{1} << 20) - 1;


std::string equation_file_name(const IgrSyntheticConfig& c, const IgrSyntheticTask& t) {
  return cat("equations_p", std::to_string(c.dims[sz(t.p_index)]), "_eta",
             short_number(c.learning_rates[sz(t.eta_index)]), "_seed", std::to_string(t.replicate), ".h5");
}

// ---- a run's record and its stored row --------------------------------------

/// results.h5 `runs/*` and summary.json `runs`: one record per run.
std::vector<Field<IgrSyntheticResult>> run_fields(std::int64_t checkpoints) {
  using R = IgrSyntheticResult;
  using training::IgrEstimate;
  return {scalar("p", &R::p, "parameters", "dimension p of the linear model"),
          scalar("eta", &R::eta, "", "GD step size eta"),
          scalar("seed", &R::seed, "", "replicate index of the (p, eta) cell"),
          scalar("diverged", &R::diverged, "", "the GD loss did not decrease (estimates are NaN)"),
          scalar("lambda_hat", &R::estimate, &IgrEstimate::lambda_hat, "", "Eq. 6 pooled over every step"),
          scalar("lambda_theory", &R::lambda_theory, "", "eta p / 4"),
          scalar("ratio", &R::ratio, "", "lambda_hat / lambda_theory"),
          scalar("finite_step_factor_spectral", &R::finite_step_factor_spectral, "",
                 "sum_t <u_t, r(eta H) u_t> / sum_t ||u_t||^2 over the rows, u_t = H g_t, r(x) = 2 (e^-x - 1 + x) / x^2: "
                 "the exact ratio on this quadratic (Lanczos quadrature)"),
          scalar("residual_ratio", &R::estimate, &IgrEstimate::residual_ratio, "", "||T - lambda-hat (2/p) H g|| / ||T||"),
          scalar("cosine", &R::estimate, &IgrEstimate::cosine, "", "cosine between T and (2/p) H g"),
          scalar("rows", &R::estimate, &IgrEstimate::rows, "steps", "trajectory rows pooled"),
          scalar("r_ig", &R::r_ig, "", "||grad L(theta_0)||^2 / p"),
          scalar("loss_start", &R::loss_start, "", "L at the first row"),
          scalar("loss_end", &R::loss_end, "", "L at the last row"),
          vector("lambda_checkpoints", &R::lambda_checkpoints, "checkpoint", checkpoints, "",
                 "Eq. 6 on the row of each checkpoint step alone"),
          vector("ratio_checkpoints", &R::ratio_checkpoints, "checkpoint", checkpoints, "",
                 "lambda_checkpoints / lambda_theory")};
}

/// The stored row: the run's record, then its [steps, p] equations.
Schema<IgrSyntheticResult> row_schema(std::int64_t checkpoints, std::int64_t steps, std::int64_t p) {
  using R = IgrSyntheticResult;
  std::vector<Field<R>> fields = run_fields(checkpoints);
  const std::vector<std::string> dims{"step", "parameter"};
  fields.push_back(matrix<R>("theta", [](R& r) -> Matrix& { return r.equations.theta; }, dims, steps, p, "", "theta_t"));
  fields.push_back(
      matrix<R>("grad_loss", [](R& r) -> Matrix& { return r.equations.grad_loss; }, dims, steps, p, "", "grad L(theta_t)"));
  fields.push_back(matrix<R>(
      "target",
      [](R& r) -> Matrix& {
        if (!r.equations.target) r.equations.target.emplace();
        return *r.equations.target;
      },
      dims, steps, p, "", "trajectory target T_t"));
  fields.push_back(matrix<R>(
      "gradient_penalty",
      [](R& r) -> Matrix& {
        if (r.equations.features.empty()) r.equations.features.emplace_back(training::kGradientPenaltyFeature, Matrix());
        return r.equations.features.front().second;
      },
      dims, steps, p, "", "(2/p) H g_t"));
  return Schema<R>(std::move(fields));
}

}  // namespace

// ---- config -----------------------------------------------------------------

IgrSyntheticConfig read_igr_synthetic_config(io::ConfigReader& r) {
  IgrSyntheticConfig c;
  c.seed = read_study_seed(r, kStudy, c.seed);
  c.n = r.get_int("data.n", c.n, 2, 10'000'000);
  c.dims = r.get_ints("data.p", c.dims, 1, 10'000);
  c.theta_sd = r.get_double("data.theta_sd", c.theta_sd, 1e-300, 1e150);
  c.noise_sd = r.get_double("data.noise_sd", c.noise_sd, 0.0, 1e150);
  c.learning_rates = r.get_doubles("gd.learning_rates", c.learning_rates, 1e-300, 1e3);
  c.steps = r.get_int("gd.steps", c.steps, 1, 1'000'000);
  c.integrator = training::parse_integrator(
      r.get_choice("reference.integrator", training::to_string(c.integrator), {"rk4", "euler"}));
  c.substeps = r.get_int("reference.substeps", c.substeps, 1, 1'000'000);
  c.replicates = r.get_int("gd.seeds", c.replicates, 1, kMaxField);
  c.checkpoints = r.get_int("output.checkpoints", c.checkpoints, 2, 10'000);
  if (c.dims.empty()) config_error(r, "data.p", "is empty; give at least one dimension");
  reject_repeats(r, "data.p", c.dims, "p");
  if (c.learning_rates.empty()) config_error(r, "gd.learning_rates", "is empty; give at least one step size");
  reject_repeats(r, "gd.learning_rates", c.learning_rates, "step size");
  if (static_cast<std::int64_t>(c.learning_rates.size()) > kMaxField)
    config_error(r, "gd.learning_rates", "holds too many values");
  r.finish();
  return c;
}

// ---- tasks ------------------------------------------------------------------

std::uint64_t IgrSyntheticTask::id(const IgrSyntheticConfig& c) const {
  return (static_cast<std::uint64_t>(c.dims[sz(p_index)]) << 40) | (static_cast<std::uint64_t>(eta_index) << 20) |
         static_cast<std::uint64_t>(replicate);
}

std::uint64_t IgrSyntheticTask::data_stream(const IgrSyntheticConfig& c) const {
  return (static_cast<std::uint64_t>(c.dims[sz(p_index)]) << 20) | static_cast<std::uint64_t>(replicate);
}

std::vector<IgrSyntheticTask> enumerate_igr_synthetic_tasks(const IgrSyntheticConfig& c) {
  std::vector<IgrSyntheticTask> tasks;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(c.dims.size()); ++i)
    for (std::int64_t j = 0; j < static_cast<std::int64_t>(c.learning_rates.size()); ++j)
      for (std::int64_t r = 0; r < c.replicates; ++r) tasks.push_back({i, j, r});
  return tasks;
}

std::vector<std::int64_t> igr_synthetic_checkpoints(const IgrSyntheticConfig& c) {
  return training::log_spaced_steps(c.steps, c.checkpoints);
}

IgrSyntheticResult run_igr_synthetic_task(const IgrSyntheticConfig& c, const IgrSyntheticTask& task,
                                          torch::Device device) {
  using namespace training;
  const std::int64_t p = c.dims[sz(task.p_index)];
  const double eta = c.learning_rates[sz(task.eta_index)];
  LinearDataOptions d;
  d.n = c.n;
  d.d = p;
  d.theta_sd = c.theta_sd;
  d.noise_sd = c.noise_sd;
  const SyntheticData data = linear_regression(d, c.seed, task.data_stream(c));

  MlpOptions mo;  // the bias-free linear model f(x) = x^T theta
  mo.inputs = p;
  mo.outputs = 1;
  mo.activation = Activation::identity;
  mo.output_bias = false;
  const ModelHandle model = make_handle(make_mlp(mo, c.seed, task.id(c), device, at::kDouble));
  set_flat_parameters(model, at::zeros({p}, at::TensorOptions().dtype(at::kDouble).device(device)));  // GD from theta = 0, as in the OLS study

  TrajectoryOptions o;
  o.mode = TrajectoryMode::flow;
  o.loss = LossKind::mse;
  o.learning_rate = eta;
  o.steps = c.steps;
  o.checkpoints.resize(sz(c.steps));
  std::iota(o.checkpoints.begin(), o.checkpoints.end(), std::int64_t{0});
  o.integrator = c.integrator;
  o.substeps = c.substeps;
  const Dataset on_device = data.data.to(device, at::kDouble);
  TrajectoryRows rows = trajectory_rows(model, on_device, o);

  IgrSyntheticResult out;
  out.p = p;
  out.eta = eta;
  out.seed = task.replicate;
  out.lambda_theory = igr_theory(eta, p);
  out.loss_start = rows.loss.front();
  out.loss_end = rows.loss.back();
  out.r_ig = igr_r(rows.equations.grad_loss.row(0));
  const std::vector<std::int64_t> checkpoints = igr_synthetic_checkpoints(c);
  // Gradient descent on least squares with a stable step lowers the loss at
  // every step; a loss that did not fall (or overflowed) marks a diverged run,
  // whose estimates mean nothing and are left out of every cell.
  out.diverged = !(out.loss_end <= out.loss_start);
  if (out.diverged) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    out.estimate = {nan, nan, nan, nan, rows.hvp.rows(), p};
    out.lambda_checkpoints.assign(checkpoints.size(), nan);
    out.finite_step_factor_spectral = nan;
  } else {
    out.estimate = igr_closed_form(rows.hvp, *rows.equations.target);
    const Objective objective(model, on_device, LossKind::mse);
    std::vector<StepFactor> factors;
    for (std::int64_t t = 0; t < rows.equations.theta.rows(); ++t)  // each row already holds theta_t and H g_t
      factors.push_back(quadratic_step_factor(objective, to_tensor(rows.equations.theta.row(t), {p}).to(device, at::kDouble),
                                              to_tensor(rows.hvp.row(t), {p}).to(device, at::kDouble), eta));
    out.finite_step_factor_spectral = pooled_step_factor(factors);
    for (const std::int64_t t : checkpoints)
      out.lambda_checkpoints.push_back(
          igr_closed_form(rows.hvp.row_block(t, t + 1), rows.equations.target->row_block(t, t + 1)).lambda_hat);
  }
  out.ratio = out.estimate.lambda_hat / out.lambda_theory;
  for (double l : out.lambda_checkpoints) out.ratio_checkpoints.push_back(l / out.lambda_theory);
  out.equations = std::move(rows.equations);
  return out;
}

// ---- outputs ----------------------------------------------------------------

nlohmann::json igr_synthetic_summary(const IgrSyntheticConfig& c, std::span<const IgrSyntheticResult> results) {
  const Schema<IgrSyntheticResult> runs(run_fields(static_cast<std::int64_t>(igr_synthetic_checkpoints(c).size())));
  nlohmann::json cells = nlohmann::json::array();
  for (const std::int64_t p : c.dims)
    for (const double eta : c.learning_rates) {
      std::vector<double> ratios, residuals;
      std::int64_t diverged = 0;
      for (const IgrSyntheticResult& r : results)
        if (r.p == p && r.eta == eta) {
          diverged += r.diverged;
          if (r.diverged) continue;
          ratios.push_back(r.ratio);
          residuals.push_back(r.estimate.residual_ratio);
        }
      const stats::MeanSe ratio = stats::finite_mean_se(ratios);
      nlohmann::json cell = {{"p", p},
                             {"eta", eta},
                             {"runs", static_cast<std::int64_t>(ratios.size())},
                             {"diverged", diverged},
                             {"ratio_mean", ratio.mean},
                             {"ratio_min", nullptr},
                             {"ratio_max", nullptr},
                             {"residual_ratio_mean", stats::finite_mean_se(residuals).mean}};
      if (!ratios.empty()) {
        cell["ratio_min"] = *std::min_element(ratios.begin(), ratios.end());
        cell["ratio_max"] = *std::max_element(ratios.begin(), ratios.end());
      }
      cells.push_back(cell);
    }
  return {{"study", kStudy},
          {"gradmatch_version", io::gradmatch_version()},
          {"reference", {{"integrator", training::to_string(c.integrator)}, {"substeps", c.substeps}}},
          {"steps", c.steps},
          {"runs", runs.json(results)},
          {"cells", cells}};
}

namespace {

class IgrSyntheticStudy final : public Study {
 public:
  void configure(io::ConfigReader& reader) override {
    config_ = read_igr_synthetic_config(reader);
    config_text_ = reader.text();
    checkpoints_ = static_cast<std::int64_t>(igr_synthetic_checkpoints(config_).size());
  }
  void prepare(const StudyContext& context) override {
    device_ = context.device;
    tasks_ = enumerate_igr_synthetic_tasks(config_);
    members_.assign(config_.dims.size(), {});
    for (std::size_t i = 0; i < tasks_.size(); ++i) members_[sz(tasks_[i].p_index)].push_back(i);
  }
  /// One table per p (a row holds the run's [steps, p] equations).
  std::vector<TaskTable> tables() const override {
    std::vector<TaskTable> out;
    for (std::size_t k = 0; k < config_.dims.size(); ++k) {
      TaskTable table{cat("p", std::to_string(config_.dims[k])), schema(k).width(), {}, {}};
      for (std::size_t i : members_[k]) table.ids.push_back(tasks_[i].id(config_));
      out.push_back(std::move(table));
    }
    return out;
  }
  std::vector<std::string> task_labels() const override {
    std::vector<std::string> labels;  // p-major like the tables
    for (const IgrSyntheticTask& t : enumerate_igr_synthetic_tasks(config_))
      labels.push_back(cat("p ", std::to_string(config_.dims[sz(t.p_index)]), ", eta ",
                           label_number(config_.learning_rates[sz(t.eta_index)]), ", replicate ",
                           std::to_string(t.replicate)));
    return labels;
  }
  /// Disk: each run's [steps, p] equations, in the store and again as its
  /// equation file; memory: the data and one run's trajectory. Time unknown.
  ResourceEstimate estimate() const override {
    const std::vector<IgrSyntheticTask> tasks = enumerate_igr_synthetic_tasks(config_);
    double store = 0.0, widest = 0.0;
    for (const IgrSyntheticTask& t : tasks) {
      const auto w = static_cast<double>(schema(sz(t.p_index)).width());
      store += 8.0 * w + 13.0;
      widest = std::max(widest, w);
    }
    const double max_p = static_cast<double>(*std::max_element(config_.dims.begin(), config_.dims.end()));
    ResourceEstimate e;
    e.tasks = static_cast<std::int64_t>(tasks.size());
    e.model_parameters = max_p;
    e.tasks_text = cat("gradient-descent runs of linear regression (", config_.dims.size(), " dimensions x ",
                       config_.learning_rates.size(), " step sizes x ", config_.replicates, " seeds), ", config_.steps,
                       " steps each");
    e.store_bytes = store + 64.0 * 1024.0;
    e.memory_bytes = 8.0 * (3.0 * static_cast<double>(config_.n) * max_p + 2.0 * widest);
    e.memory_keys = "data.n, data.p, gd.steps";
    e.output_bytes = store + 4096.0 * static_cast<double>(tasks.size());
    e.disk_keys = "gd.steps, data.p, gd.seeds, gd.learning_rates";
    e.outputs = {"results.h5", "summary.json", cat("equations_*.h5 (", tasks.size(), " files)")};
    return e;
  }

  std::vector<double> compute(std::size_t table, std::int64_t row) override {
    return schema(table).encode(run_igr_synthetic_task(config_, tasks_[members_[table][sz(row)]], device_));
  }
  nlohmann::json write(const std::vector<std::vector<double>>& rows, OutputDir& out) override {
    std::vector<IgrSyntheticResult> results(tasks_.size());
    for (std::size_t k = 0; k < members_.size(); ++k) {
      std::vector<IgrSyntheticResult> decoded = schema(k).decode_all(rows[k]);
      for (std::size_t row = 0; row < decoded.size(); ++row) results[members_[k][row]] = std::move(decoded[row]);
    }
    io::ResultsWriter w(out.path("results.h5"), kStudy);
    w.write("config", config_text_, {"the study's TOML config as given", "", {}});
    w.write("reference/integrator", training::to_string(config_.integrator),
            {"integrator of the reference gradient flow", "", {}});
    w.write("reference/substeps", config_.substeps, {"integrator substeps per GD step", "", {}});
    w.write("checkpoints/step", igr_synthetic_checkpoints(config_),
            {"GD step of each checkpoint", "steps", {"checkpoint"}});
    Schema<IgrSyntheticResult>(run_fields(checkpoints_))
        .write(w, "runs", results, Axes{{"run"}, {static_cast<std::int64_t>(results.size())}});
    w.commit();
    for (std::size_t i = 0; i < tasks_.size(); ++i)
      io::write_equation_file(out.path(equation_file_name(config_, tasks_[i])), results[i].equations);
    io::write_json_file(out.path("summary.json"), igr_synthetic_summary(config_, results));
    return nlohmann::json::object();
  }

 private:
  Schema<IgrSyntheticResult> schema(std::size_t table) const {
    return row_schema(checkpoints_, config_.steps, config_.dims[table]);
  }

  IgrSyntheticConfig config_;
  std::string config_text_;
  std::int64_t checkpoints_ = 0;
  std::vector<IgrSyntheticTask> tasks_;
  std::vector<std::vector<std::size_t>> members_;  ///< task indices per table (per p), row order
  torch::Device device_ = torch::Device(torch::kCPU);
};

}  // namespace

std::unique_ptr<Study> make_igr_synthetic_study() { return std::make_unique<IgrSyntheticStudy>(); }

}  // namespace gradmatch::studies
