#include "studies/long_horizon.hpp"

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <limits>

#include "core/errors.hpp"
#include "io/config.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "studies/farm_study.hpp"
#include "training/data.hpp"
#include "training/models.hpp"
#include "training/objective.hpp"

namespace gradmatch::studies {
namespace {

constexpr const char* kStudy = "long_horizon";
constexpr std::uint64_t kDataStream = 0;  // task ids are eta_index + 1

std::size_t sz(std::int64_t i) { return static_cast<std::size_t>(i); }

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
  r.finish();
  return c;
}

LongHorizonResult run_long_horizon_task(const LongHorizonConfig& c, std::int64_t eta_index) {
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
  const ModelHandle model = make_handle(make_mlp(mo, c.seed, 0, torch::kCPU, at::kDouble));
  const Objective f(model, data.data, LossKind::mse);

  at::Tensor gd = at::zeros({c.p}, at::kDouble), flow = gd.clone(), modified = gd.clone();
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
          {"steps", c.steps},
          {"reference", {{"integrator", training::to_string(c.integrator)}, {"substeps", c.substeps}}},
          {"runs", runs}};
}

void run_long_horizon(const std::string& config_path, const std::string& out_dir,
                      const distributed::Communicator& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  const distributed::RankDevice device = configure_study_device(comm);
  LongHorizonConfig config;
  std::string config_text, effective;
  distributed::collective(comm, [&] {
    io::ConfigReader reader(config_path);
    config = read_long_horizon_config(reader);
    config_text = reader.text();
    effective = reader.effective();
  });
  const std::int64_t etas = static_cast<std::int64_t>(config.learning_rates.size());
  const std::int64_t points = config.steps + 1;

  StudyRunSpec spec;
  spec.study = kStudy;
  spec.effective_config = effective;
  StudyTable table{"runs", 3 * points, {}};
  for (std::int64_t i = 0; i < etas; ++i) table.ids.push_back(static_cast<std::uint64_t>(i) + 1);
  spec.tables.push_back(std::move(table));
  spec.outputs = {"results.h5", "summary.json"};
  spec.shared_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const auto compute = [&](std::size_t, std::int64_t row) {
    const LongHorizonResult r = run_long_horizon_task(config, row);
    std::vector<double> out(r.dist_flow);
    out.insert(out.end(), r.dist_modified.begin(), r.dist_modified.end());
    out.insert(out.end(), r.loss_gd.begin(), r.loss_gd.end());
    return out;
  };
  const auto write = [&](const std::vector<std::vector<double>>& data) {
    std::vector<LongHorizonResult> results(sz(etas));
    Matrix flow(etas, points), modified(etas, points), loss(etas, points);
    for (std::int64_t i = 0; i < etas; ++i) {
      const double* row = data[0].data() + i * 3 * points;
      results[sz(i)].dist_flow.assign(row, row + points);
      results[sz(i)].dist_modified.assign(row + points, row + 2 * points);
      results[sz(i)].loss_gd.assign(row + 2 * points, row + 3 * points);
      for (std::int64_t t = 0; t < points; ++t) {
        flow(i, t) = row[t];
        modified(i, t) = row[points + t];
        loss(i, t) = row[2 * points + t];
      }
    }
    const std::filesystem::path dir(out_dir);
    io::ResultsWriter w((dir / "results.h5").string());
    w.write("config", config_text);
    std::vector<std::int64_t> step(sz(points));
    for (std::int64_t t = 0; t < points; ++t) step[sz(t)] = t;
    w.write("step", step);
    w.write("eta", config.learning_rates);
    w.write("dist_flow", flow);
    w.write("dist_modified", modified);
    w.write("loss_gd", loss);
    w.commit();
    io::write_json_file((dir / "summary.json").string(), long_horizon_summary(config, results));
    return nlohmann::json::object();
  };
  run_farm_study(comm, device, out_dir, spec, compute, write);
}

}  // namespace gradmatch::studies
