#include "studies/igr_synthetic.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>
#include <numeric>
#include <set>

#include "core/errors.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "studies/farm_study.hpp"
#include "training/data.hpp"
#include "training/models.hpp"
#include "training/trajectory.hpp"

namespace gradmatch::studies {
namespace {

constexpr const char* kStudy = "igr_synthetic";
constexpr std::int64_t kMaxField = (std::int64_t{1} << 20) - 1;
constexpr std::int64_t kHead = 8;  // scalar fields at the start of a stored row

std::size_t sz(std::int64_t i) { return static_cast<std::size_t>(i); }

std::string equation_file_name(const IgrSyntheticConfig& c, const IgrSyntheticTask& t) {
  return cat("equations_p", std::to_string(c.dims[sz(t.p_index)]), "_eta",
             short_number(c.learning_rates[sz(t.eta_index)]), "_seed", std::to_string(t.replicate), ".h5");
}

// ---- a task's result as one store row (p is fixed per table) ---------------

std::int64_t row_width(const IgrSyntheticConfig& c, std::int64_t p) {
  return kHead + static_cast<std::int64_t>(igr_synthetic_checkpoints(c).size()) + 4 * c.steps * p;
}

std::vector<double> encode(const IgrSyntheticResult& r) {
  const training::IgrEstimate& e = r.estimate;
  std::vector<double> row{e.lambda_hat, e.lambda_per_parameter, e.residual_ratio, e.cosine,
                          r.r_ig,       r.loss_start,           r.loss_end,       static_cast<double>(e.rows)};
  row.insert(row.end(), r.lambda_checkpoints.begin(), r.lambda_checkpoints.end());
  for (const Matrix* m : {&r.equations.theta, &r.equations.grad_loss, &*r.equations.target,
                          &r.equations.features.at(0).second})
    row.insert(row.end(), m->values().begin(), m->values().end());
  return row;
}

IgrSyntheticResult decode(std::span<const double> row, std::int64_t p, std::int64_t steps, std::int64_t c) {
  IgrSyntheticResult r;
  training::IgrEstimate& e = r.estimate;
  e.lambda_hat = row[0];
  e.lambda_per_parameter = row[1];
  e.residual_ratio = row[2];
  e.cosine = row[3];
  r.r_ig = row[4];
  r.loss_start = row[5];
  r.loss_end = row[6];
  e.rows = static_cast<std::int64_t>(row[7]);
  e.p = p;
  r.lambda_checkpoints.assign(row.begin() + kHead, row.begin() + kHead + c);
  std::size_t at = sz(kHead + c);
  const auto next = [&] {
    Matrix m(steps, p, std::vector<double>(row.begin() + static_cast<std::ptrdiff_t>(at),
                                           row.begin() + static_cast<std::ptrdiff_t>(at + sz(steps * p))));
    at += sz(steps * p);
    return m;
  };
  r.equations.theta = next();
  r.equations.grad_loss = next();
  r.equations.target = next();
  r.equations.features.emplace_back(training::kGradientPenaltyFeature, next());
  return r;
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
  if (std::set<std::int64_t>(c.dims.begin(), c.dims.end()).size() != c.dims.size())
    config_error(r, "data.p", "holds a dimension twice; list each p once");
  if (c.learning_rates.empty()) config_error(r, "gd.learning_rates", "is empty; give at least one step size");
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

IgrSyntheticResult run_igr_synthetic_task(const IgrSyntheticConfig& c, const IgrSyntheticTask& task) {
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
  const ModelHandle model = make_handle(make_mlp(mo, c.seed, task.id(c), torch::kCPU, at::kDouble));
  set_flat_parameters(model, at::zeros({p}, at::kDouble));  // GD from theta = 0, as in the OLS study

  TrajectoryOptions o;
  o.mode = TrajectoryMode::flow;
  o.loss = LossKind::mse;
  o.learning_rate = eta;
  o.steps = c.steps;
  o.checkpoints.resize(sz(c.steps));
  std::iota(o.checkpoints.begin(), o.checkpoints.end(), std::int64_t{0});
  o.integrator = c.integrator;
  o.substeps = c.substeps;
  TrajectoryRows rows = trajectory_rows(model, data.data, o);

  IgrSyntheticResult out;
  out.estimate = igr_closed_form(rows.hvp, *rows.equations.target);
  for (const std::int64_t t : igr_synthetic_checkpoints(c))
    out.lambda_checkpoints.push_back(
        igr_closed_form(rows.hvp.row_block(t, t + 1), rows.equations.target->row_block(t, t + 1)).lambda_hat);
  out.r_ig = igr_r(rows.equations.grad_loss.row(0));
  out.loss_start = rows.loss.front();
  out.loss_end = rows.loss.back();
  out.equations = std::move(rows.equations);
  return out;
}

// ---- outputs ----------------------------------------------------------------

nlohmann::json igr_synthetic_summary(const IgrSyntheticConfig& c, std::span<const IgrSyntheticTask> tasks,
                                     std::span<const IgrSyntheticResult> results) {
  nlohmann::json runs = nlohmann::json::array();
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const std::int64_t p = c.dims[sz(tasks[i].p_index)];
    const double eta = c.learning_rates[sz(tasks[i].eta_index)];
    const training::IgrEstimate& e = results[i].estimate;
    const double theory = training::igr_theory(eta, p);
    runs.push_back({{"p", p},
                    {"eta", eta},
                    {"seed", tasks[i].replicate},
                    {"lambda_hat", e.lambda_hat},
                    {"lambda_theory", theory},
                    {"ratio", e.lambda_hat / theory},
                    {"residual_ratio", e.residual_ratio},
                    {"cosine", e.cosine},
                    {"r_ig", results[i].r_ig},
                    {"rows", e.rows}});
  }
  nlohmann::json cells = nlohmann::json::array();
  for (std::size_t i = 0; i < c.dims.size(); ++i)
    for (std::size_t j = 0; j < c.learning_rates.size(); ++j) {
      std::vector<double> ratios, residuals;
      for (std::size_t k = 0; k < tasks.size(); ++k)
        if (sz(tasks[k].p_index) == i && sz(tasks[k].eta_index) == j) {
          ratios.push_back(runs[k]["ratio"].get<double>());
          residuals.push_back(results[k].estimate.residual_ratio);
        }
      const double n = static_cast<double>(ratios.size());
      cells.push_back({{"p", c.dims[i]},
                       {"eta", c.learning_rates[j]},
                       {"ratio_mean", std::accumulate(ratios.begin(), ratios.end(), 0.0) / n},
                       {"ratio_min", *std::min_element(ratios.begin(), ratios.end())},
                       {"ratio_max", *std::max_element(ratios.begin(), ratios.end())},
                       {"residual_ratio_mean", std::accumulate(residuals.begin(), residuals.end(), 0.0) / n}});
    }
  return {{"study", kStudy},
          {"reference", {{"integrator", training::to_string(c.integrator)}, {"substeps", c.substeps}}},
          {"steps", c.steps},
          {"runs", runs},
          {"cells", cells}};
}

namespace {

void write_results(const std::string& path, const IgrSyntheticConfig& c, const std::string& config_text,
                   std::span<const IgrSyntheticTask> tasks, std::span<const IgrSyntheticResult> results) {
  io::ResultsWriter w(path);
  w.write("config", config_text);
  w.write("reference/integrator", training::to_string(c.integrator));
  w.write("reference/substeps", std::vector<std::int64_t>{c.substeps});
  const std::vector<std::int64_t> checkpoints = igr_synthetic_checkpoints(c);
  const std::int64_t runs = static_cast<std::int64_t>(tasks.size());
  const std::int64_t nc = static_cast<std::int64_t>(checkpoints.size());
  std::vector<std::int64_t> p, seed;
  std::vector<double> eta, lambda_hat, theory, ratio, residual, cosine, r_ig, loss_start, loss_end;
  Matrix lambda_t(runs, nc), ratio_t(runs, nc);
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const IgrSyntheticTask& t = tasks[i];
    const IgrSyntheticResult& r = results[i];
    p.push_back(c.dims[sz(t.p_index)]);
    seed.push_back(t.replicate);
    eta.push_back(c.learning_rates[sz(t.eta_index)]);
    lambda_hat.push_back(r.estimate.lambda_hat);
    theory.push_back(training::igr_theory(eta.back(), p.back()));
    ratio.push_back(lambda_hat.back() / theory.back());
    residual.push_back(r.estimate.residual_ratio);
    cosine.push_back(r.estimate.cosine);
    r_ig.push_back(r.r_ig);
    loss_start.push_back(r.loss_start);
    loss_end.push_back(r.loss_end);
    for (std::int64_t k = 0; k < nc; ++k) {
      lambda_t(static_cast<std::int64_t>(i), k) = r.lambda_checkpoints[sz(k)];
      ratio_t(static_cast<std::int64_t>(i), k) = r.lambda_checkpoints[sz(k)] / theory.back();
    }
  }
  w.write("runs/p", p);
  w.write("runs/eta", eta);
  w.write("runs/seed", seed);
  w.write("runs/lambda_hat", lambda_hat);
  w.write("runs/lambda_theory", theory);
  w.write("runs/ratio", ratio);
  w.write("runs/residual_ratio", residual);
  w.write("runs/cosine", cosine);
  w.write("runs/r_ig", r_ig);
  w.write("runs/loss_start", loss_start);
  w.write("runs/loss_end", loss_end);
  w.write("checkpoints/step", checkpoints);
  w.write("checkpoints/lambda_hat", lambda_t);
  w.write("checkpoints/ratio", ratio_t);
  w.commit();
}

}  // namespace

void run_igr_synthetic(const std::string& config_path, const std::string& out_dir,
                       const distributed::Communicator& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  const distributed::RankDevice device = configure_study_device(comm);
  IgrSyntheticConfig config;
  std::string config_text, effective;
  std::vector<IgrSyntheticTask> tasks;
  distributed::collective(comm, [&] {
    io::ConfigReader reader(config_path);
    config = read_igr_synthetic_config(reader);
    config_text = reader.text();
    effective = reader.effective();
    tasks = enumerate_igr_synthetic_tasks(config);
  });

  // One store table per p (a row holds the run's [steps, p] equations).
  StudyRunSpec spec;
  spec.study = kStudy;
  spec.effective_config = effective;
  std::vector<std::vector<std::size_t>> members(config.dims.size());
  for (std::size_t i = 0; i < tasks.size(); ++i) members[sz(tasks[i].p_index)].push_back(i);
  for (std::size_t k = 0; k < config.dims.size(); ++k) {
    StudyTable table{cat("p", std::to_string(config.dims[k])), row_width(config, config.dims[k]), {}};
    for (std::size_t i : members[k]) table.ids.push_back(tasks[i].id(config));
    spec.tables.push_back(std::move(table));
  }
  spec.outputs = {"results.h5", "summary.json"};
  for (const auto& t : tasks) spec.outputs.push_back(equation_file_name(config, t));
  spec.shared_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const auto compute = [&](std::size_t table, std::int64_t row) {
    return encode(run_igr_synthetic_task(config, tasks[members[table][sz(row)]]));
  };
  const auto write = [&](const std::vector<std::vector<double>>& data) {
    const std::int64_t nc = static_cast<std::int64_t>(igr_synthetic_checkpoints(config).size());
    std::vector<IgrSyntheticResult> results(tasks.size());
    for (std::size_t k = 0; k < members.size(); ++k) {
      const std::int64_t p = config.dims[k];
      const std::size_t width = sz(row_width(config, p));
      for (std::size_t row = 0; row < members[k].size(); ++row)
        results[members[k][row]] =
            decode(std::span<const double>(data[k]).subspan(row * width, width), p, config.steps, nc);
    }
    const std::filesystem::path dir(out_dir);
    write_results((dir / "results.h5").string(), config, config_text, tasks, results);
    for (std::size_t i = 0; i < tasks.size(); ++i)
      io::write_equation_file((dir / equation_file_name(config, tasks[i])).string(), results[i].equations);
    io::write_json_file((dir / "summary.json").string(), igr_synthetic_summary(config, tasks, results));
    return nlohmann::json::object();
  };
  run_farm_study(comm, device, out_dir, spec, compute, write);
}

}  // namespace gradmatch::studies
