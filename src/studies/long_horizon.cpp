#include "studies/long_horizon.hpp"

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <limits>

#include "core/errors.hpp"
#include "io/config.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "io/provenance.hpp"
#include "studies/schema.hpp"
#include "training/data.hpp"
#include "training/models.hpp"
#include "training/objective.hpp"

namespace gradmatch::studies {
namespace {

constexpr const char* kStudy = "long_horizon";
constexpr std::uint64_t kDataStream = 0;  // task ids are eta_index + 1


}  // namespace

LongHorizonConfig read_long_horizon_config(io::ConfigReader& r) {
  LongHorizonConfig c;
  c.seed = read_study_seed(r, kStudy, c.seed);
  c.n = r.get_int("data.n", c.n, 2, 10'000'000);
  c.p = r.get_int("data.p", c.p, 1, 10'000);
  c.theta_sd = r.get_double("data.theta_sd", c.theta_sd, 1e-300, 1e150);
  c.noise_sd = r.get_double("data.noise_sd", c.noise_sd, 0.0, 1e150);
  c.learning_rates = r.get_doubles("gd.learning_rates", c.learning_rates, 1e-300, 1e3);
  c.steps = r.get_int("gd.steps", c.steps, 1, 1'000'000);
  c.integrator = training::parse_integrator(
      r.get_choice("reference.integrator", training::to_string(c.integrator), {"rk4", "euler"}));
  c.substeps = r.get_int("reference.substeps", c.substeps, 1, 1'000'000);
  if (c.learning_rates.empty()) config_error(r, "gd.learning_rates", "is empty; give at least one step size");
  reject_repeats(r, "gd.learning_rates", c.learning_rates, "step size");
  r.finish();
  return c;
}

LongHorizonResult run_long_horizon_task(const LongHorizonConfig& c, std::int64_t eta_index, torch::Device device) {
  using namespace training;
  const double eta = c.learning_rates.at(sz(eta_index));
  LinearDataOptions d;
  d.n = c.n;
  d.d = c.p;
  d.theta_sd = c.theta_sd;
  d.noise_sd = c.noise_sd;
  const SyntheticData data = linear_regression(d, c.seed, kDataStream);
  MlpOptions mo;
  mo.inputs = c.p;
  mo.outputs = 1;
  mo.activation = Activation::identity;
  mo.output_bias = false;
  const ModelHandle model = make_handle(make_mlp(mo, c.seed, 0, device, at::kDouble));
  const Objective f(model, data.data.to(device, at::kDouble), LossKind::mse);

  at::Tensor gd = at::zeros({c.p}, at::TensorOptions().dtype(at::kDouble).device(device)), flow = gd.clone(),
             modified = gd.clone();
  LongHorizonResult out;
  const auto record = [&] {
    out.dist_flow.push_back((gd - flow).norm().item<double>());
    out.dist_modified.push_back((gd - modified).norm().item<double>());
    out.loss_gd.push_back(f.value(gd));
  };
  record();
  for (std::int64_t t = 0; t < c.steps; ++t) {
    gd = gd - eta * f.gradient(gd);
    flow = flow + objective_flow_displacement(f, flow, eta, c.substeps, c.integrator);
    modified = modified + objective_flow_displacement(f, modified, eta, c.substeps, c.integrator, eta);
    record();
  }
  return out;
}

nlohmann::json long_horizon_summary(const LongHorizonConfig& c, std::span<const LongHorizonResult> results) {
  nlohmann::json runs = nlohmann::json::array();
  for (std::size_t i = 0; i < results.size(); ++i) {
    const double flow = results[i].dist_flow.back(), modified = results[i].dist_modified.back();
    runs.push_back({{"eta", c.learning_rates[i]},
                    {"final_dist_flow", flow},
                    {"final_dist_modified", modified},
                    {"ratio", modified / flow},
                    {"final_loss_gd", results[i].loss_gd.back()}});
  }
  return {{"study", kStudy},
          {"gradmatch_version", io::gradmatch_version()},
          {"steps", c.steps},
          {"reference", {{"integrator", training::to_string(c.integrator)}, {"substeps", c.substeps}}},
          {"runs", runs}};
}

namespace {

/// One run's trajectories: the stored row and results.h5's datasets.
Schema<LongHorizonResult> run_schema(std::int64_t points) {
  using R = LongHorizonResult;
  return {vector("dist_flow", &R::dist_flow, "step", points, "", "||theta_GD(t) - theta_flow(t eta)||"),
          vector("dist_modified", &R::dist_modified, "step", points, "",
                 "||theta_GD(t) - theta_modified(t eta)||, the flow of L + (eta/4)||grad L||^2"),
          vector("loss_gd", &R::loss_gd, "step", points, "", "L(theta_GD(t))")};
}

class LongHorizonStudy final : public Study {
 public:
  void configure(io::ConfigReader& reader) override {
    config_ = read_long_horizon_config(reader);
    config_text_ = reader.text();
  }
  void prepare(const StudyContext& context) override { device_ = context.device; }
  std::vector<TaskTable> tables() const override {
    TaskTable table{"runs", schema().width(), {}, {}};
    for (std::size_t i = 0; i < config_.learning_rates.size(); ++i) table.ids.push_back(i + 1);
    return {table};
  }
  std::vector<std::string> task_labels() const override {
    std::vector<std::string> labels;
    for (const double eta : config_.learning_rates) labels.push_back(cat("eta ", label_number(eta)));
    return labels;
  }
  /// One run per step size; memory: the data and one run's rows. Time unknown.
  ResourceEstimate estimate() const override {
    ResourceEstimate e;
    e.tasks = static_cast<std::int64_t>(config_.learning_rates.size());
    e.model_parameters = static_cast<double>(config_.p);
    e.tasks_text = cat("gradient-descent runs of ", config_.steps, " steps against the flows (n = ", config_.n,
                       ", p = ", config_.p, "), one per step size");
    const auto width = static_cast<double>(schema().width());
    e.store_bytes = store_bytes(static_cast<double>(e.tasks), width);
    e.memory_bytes = 8.0 * (3.0 * static_cast<double>(config_.n) * static_cast<double>(config_.p) + 2.0 * width);
    e.memory_keys = "data.n, data.p";
    e.output_bytes = 8.0 * width * static_cast<double>(e.tasks) + 8192.0;
    e.disk_keys = "gd.steps, data.p";
    e.outputs = {"results.h5", "summary.json"};
    return e;
  }

  std::vector<double> compute(std::size_t, std::int64_t row) override {
    return schema().encode(run_long_horizon_task(config_, row, device_));
  }
  nlohmann::json write(const std::vector<std::vector<double>>& rows, OutputDir& out) override {
    const std::vector<LongHorizonResult> results = schema().decode_all(rows.front());
    io::ResultsWriter w(out.path("results.h5"), kStudy);
    w.write("config", config_text_, {"the study's TOML config as given", "", {}});
    std::vector<std::int64_t> step(sz(config_.steps + 1));
    for (std::size_t t = 0; t < step.size(); ++t) step[t] = static_cast<std::int64_t>(t);
    w.write("step", step, {"GD step t", "steps", {"step"}});
    w.write("eta", config_.learning_rates, {"GD step size eta", "", {"eta"}});
    schema().write(w, "", results, Axes{{"eta"}, {static_cast<std::int64_t>(results.size())}});
    w.commit();
    io::write_json_file(out.path("summary.json"), long_horizon_summary(config_, results));
    return nlohmann::json::object();
  }

 private:
  Schema<LongHorizonResult> schema() const { return run_schema(config_.steps + 1); }

  LongHorizonConfig config_;
  std::string config_text_;
  torch::Device device_ = torch::Device(torch::kCPU);
};

}  // namespace

std::unique_ptr<Study> make_long_horizon_study() { return std::make_unique<LongHorizonStudy>(); }

}  // namespace gradmatch::studies
