#include "studies/elastic_net.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "core/errors.hpp"
#include "core/fit.hpp"
#include "io/config.hpp"
#include "io/equation_file.hpp"
#include "io/hdf5_file.hpp"
#include "io/json_output.hpp"
#include "studies/farm_study.hpp"
#include "studies/seed_statistics.hpp"
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
// Per-cell scalars of a store row, then theta [p] and grad L [p].
constexpr std::int64_t kScalars = 12;

std::size_t sz(std::int64_t i) { return static_cast<std::size_t>(i); }
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

std::vector<ElasticNetEndpoint> run_elastic_net_task(const ElasticNetConfig& c, const ElasticNetTask& task) {
  using namespace gradmatch::training;
  const std::int64_t s = task.seed_index;
  const SyntheticData data = linear_regression(data_options(c), c.seed, stream(kDataKind, s));
  const Split parts = split(data.data, c.test_fraction, c.seed, stream(kSplitKind, s));

  const std::int64_t first = task.block * c.block_size();
  const std::int64_t last = std::min(c.cells(), first + c.block_size());
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

  BatchedMlp model(regression_net_options(c.d, c.hidden), specs, c.float64 ? at::kDouble : at::kFloat);
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

// ---- assembly -----------------------------------------------------------------

ElasticNetResults assemble_elastic_net(const ElasticNetConfig& c,
                                       const std::vector<std::vector<ElasticNetEndpoint>>& endpoints) {
  ElasticNetResults r;
  const std::int64_t cells = c.cells(), seeds = c.seeds;
  for (Matrix* m : {&r.lambda1_hat, &r.lambda2_hat, &r.lambda1_fit_se, &r.lambda2_fit_se, &r.residual_ratio, &r.cosine,
                    &r.condition_number, &r.relative_grad_norm, &r.train_loss, &r.test_loss, &r.epochs})
    *m = Matrix(cells, seeds);
  const double nan = std::nan("");
  const FitOptions fo = fit_options(c);
  for (std::int64_t cell = 0; cell < cells; ++cell) {
    ElasticNetCell out;
    out.lambda1 = c.lambda1[sz(cell_i1(c, cell))];
    out.lambda2 = c.lambda2[sz(cell_i2(c, cell))];
    std::vector<const ElasticNetEndpoint*> ok;
    for (std::int64_t s = 0; s < seeds; ++s) {
      const ElasticNetEndpoint& e = endpoints[sz(cell)][sz(s)];
      r.epochs(cell, s) = static_cast<double>(e.epochs);
      if (e.diverged) {
        ++out.diverged;
        for (Matrix* m : {&r.lambda1_hat, &r.lambda2_hat, &r.lambda1_fit_se, &r.lambda2_fit_se, &r.residual_ratio,
                          &r.cosine, &r.condition_number, &r.relative_grad_norm, &r.train_loss, &r.test_loss})
          (*m)(cell, s) = nan;
        continue;
      }
      ok.push_back(&e);
      r.lambda1_hat(cell, s) = e.lambda1_hat;
      r.lambda2_hat(cell, s) = e.lambda2_hat;
      r.lambda1_fit_se(cell, s) = e.lambda1_fit_se;
      r.lambda2_fit_se(cell, s) = e.lambda2_fit_se;
      r.residual_ratio(cell, s) = e.residual_ratio;
      r.cosine(cell, s) = e.cosine;
      r.condition_number(cell, s) = e.condition_number;
      r.relative_grad_norm(cell, s) = e.relative_grad_norm;
      r.train_loss(cell, s) = e.train_loss;
      r.test_loss(cell, s) = e.test_loss;
    }
    out.seeds = static_cast<std::int64_t>(ok.size());
    const MeanSe l1 = finite_mean_se(r.lambda1_hat.row(cell));
    const MeanSe l2 = finite_mean_se(r.lambda2_hat.row(cell));
    out.lambda1_hat_mean = l1.mean;
    out.lambda1_hat_se = l1.se;
    out.lambda2_hat_mean = l2.mean;
    out.lambda2_hat_se = l2.se;
    const auto row_vector = [&](const Matrix& m) {
      const auto row = m.row(cell);
      return std::vector<double>(row.begin(), row.end());
    };
    out.residual_ratio_median = finite_median(row_vector(r.residual_ratio));
    out.cosine_median = finite_median(row_vector(r.cosine));
    {  // an infinite condition number (rank-deficient design) counts as the largest
      std::vector<double> cond = row_vector(r.condition_number);
      std::erase_if(cond, [](double v) { return std::isnan(v); });
      std::sort(cond.begin(), cond.end());
      const std::size_t h = cond.size() / 2;
      out.condition_number_median =
          cond.empty() ? nan : (cond.size() % 2 == 1 ? cond[h] : 0.5 * (cond[h - 1] + cond[h]));
    }
    out.relative_grad_norm_median = finite_median(row_vector(r.relative_grad_norm));
    out.test_loss_median = finite_median(row_vector(r.test_loss));
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
  nlohmann::json cells = nlohmann::json::array();
  // Cells whose mean estimate lies within a factor 2 of the truth, per penalty.
  std::int64_t within1 = 0, within2 = 0;
  for (const ElasticNetCell& cell : r.cells) {
    const auto near = [](double hat, double truth) { return hat > 0.5 * truth && hat < 2.0 * truth; };
    within1 += near(cell.lambda1_hat_mean, cell.lambda1);
    within2 += near(cell.lambda2_hat_mean, cell.lambda2);
    cells.push_back({{"lambda1", cell.lambda1},
                     {"lambda2", cell.lambda2},
                     {"lambda1_hat_mean", cell.lambda1_hat_mean},
                     {"lambda1_hat_se", cell.lambda1_hat_se},
                     {"lambda2_hat_mean", cell.lambda2_hat_mean},
                     {"lambda2_hat_se", cell.lambda2_hat_se},
                     {"residual_ratio_median", cell.residual_ratio_median},
                     {"cosine_median", cell.cosine_median},
                     {"condition_number_median", cell.condition_number_median},
                     {"relative_grad_norm_median", cell.relative_grad_norm_median},
                     {"test_loss_median", cell.test_loss_median},
                     {"lambda1_pooled", cell.lambda1_pooled},
                     {"lambda2_pooled", cell.lambda2_pooled},
                     {"residual_ratio_pooled", cell.residual_ratio_pooled},
                     {"seeds", cell.seeds},
                     {"diverged", cell.diverged}});
  }
  return {{"study", kStudy},
          {"beta", c.beta},
          {"seeds", c.seeds},
          {"parameters", c.parameters()},
          {"lambda1", c.lambda1},
          {"lambda2", c.lambda2},
          {"cells_lambda1_within_factor_2", within1},
          {"cells_lambda2_within_factor_2", within2},
          {"cells", cells}};
}

// ---- the run ------------------------------------------------------------------

namespace {

// A task's result as one store row: per cell kScalars values, theta [p] and
// grad L [p] (a diverged endpoint: flag 1, NaN values; cells past the grid's
// end in the last block: zeros).
std::vector<double> encode(const ElasticNetConfig& c, const std::vector<ElasticNetEndpoint>& endpoints) {
  const std::int64_t p = c.parameters(), per_cell = kScalars + 2 * p;
  std::vector<double> row(sz(c.block_size() * per_cell), 0.0);
  for (std::size_t k = 0; k < endpoints.size(); ++k) {
    const ElasticNetEndpoint& e = endpoints[k];
    double* out = row.data() + k * sz(per_cell);
    const double nan = std::nan("");
    if (e.diverged) {
      std::fill(out, out + per_cell, nan);
      out[9] = static_cast<double>(e.epochs);
      out[10] = 1.0;
      continue;
    }
    // A rank-deficient design has an infinite condition number: stored as -1
    // (a non-finite value would mark the whole task diverged in the store).
    const double condition = std::isfinite(e.condition_number) ? e.condition_number : -1.0;
    const double scalars[kScalars] = {e.lambda1_hat,
                                      e.lambda2_hat,
                                      e.lambda1_fit_se,
                                      e.lambda2_fit_se,
                                      e.residual_ratio,
                                      e.cosine,
                                      e.relative_grad_norm,
                                      e.train_loss,
                                      e.test_loss,
                                      static_cast<double>(e.epochs),
                                      0.0,
                                      condition};
    std::copy(std::begin(scalars), std::end(scalars), out);
    std::copy(e.theta.begin(), e.theta.end(), out + kScalars);
    std::copy(e.grad_loss.begin(), e.grad_loss.end(), out + kScalars + p);
  }
  return row;
}

ElasticNetEndpoint decode(std::span<const double> v, std::int64_t p) {
  ElasticNetEndpoint e;
  e.epochs = static_cast<std::int64_t>(v[9]);
  e.diverged = v[10] != 0.0;
  if (e.diverged) return e;
  e.lambda1_hat = v[0];
  e.lambda2_hat = v[1];
  e.lambda1_fit_se = v[2];
  e.lambda2_fit_se = v[3];
  e.residual_ratio = v[4];
  e.cosine = v[5];
  e.relative_grad_norm = v[6];
  e.train_loss = v[7];
  e.test_loss = v[8];
  e.condition_number = v[11] < 0.0 ? std::numeric_limits<double>::infinity() : v[11];
  e.theta.assign(v.begin() + kScalars, v.begin() + kScalars + p);
  e.grad_loss.assign(v.begin() + kScalars + p, v.begin() + kScalars + 2 * p);
  return e;
}

void write_results(const std::string& path, const ElasticNetConfig& c, const std::string& config_text,
                   const ElasticNetResults& r) {
  io::ResultsWriter w(path);
  const auto n1 = static_cast<std::int64_t>(c.lambda1.size()), n2 = static_cast<std::int64_t>(c.lambda2.size());
  w.write("config", config_text);
  w.write("grid/lambda1", c.lambda1);
  w.write("grid/lambda2", c.lambda2);
  w.write("grid/beta", c.beta);
  w.write("grid/seeds", std::vector<std::int64_t>{c.seeds});
  const std::pair<const char*, const Matrix*> per_endpoint[] = {{"lambda1_hat", &r.lambda1_hat},
                                                                {"lambda2_hat", &r.lambda2_hat},
                                                                {"lambda1_fit_se", &r.lambda1_fit_se},
                                                                {"lambda2_fit_se", &r.lambda2_fit_se},
                                                                {"residual_ratio", &r.residual_ratio},
                                                                {"cosine", &r.cosine},
                                                                {"condition_number", &r.condition_number},
                                                                {"relative_grad_norm", &r.relative_grad_norm},
                                                                {"train_loss", &r.train_loss},
                                                                {"test_loss", &r.test_loss},
                                                                {"epochs", &r.epochs}};
  for (const auto& [name, m] : per_endpoint) w.write(std::string("endpoints/") + name, m->values(), {n1, n2, c.seeds});
  const std::pair<const char*, double ElasticNetCell::*> per_cell[] = {
      {"lambda1_hat_mean", &ElasticNetCell::lambda1_hat_mean},
      {"lambda1_hat_se", &ElasticNetCell::lambda1_hat_se},
      {"lambda2_hat_mean", &ElasticNetCell::lambda2_hat_mean},
      {"lambda2_hat_se", &ElasticNetCell::lambda2_hat_se},
      {"residual_ratio_median", &ElasticNetCell::residual_ratio_median},
      {"cosine_median", &ElasticNetCell::cosine_median},
      {"condition_number_median", &ElasticNetCell::condition_number_median},
      {"relative_grad_norm_median", &ElasticNetCell::relative_grad_norm_median},
      {"test_loss_median", &ElasticNetCell::test_loss_median},
      {"lambda1_pooled", &ElasticNetCell::lambda1_pooled},
      {"lambda2_pooled", &ElasticNetCell::lambda2_pooled},
      {"residual_ratio_pooled", &ElasticNetCell::residual_ratio_pooled}};
  for (const auto& [name, member] : per_cell) {
    std::vector<double> v;
    for (const ElasticNetCell& cell : r.cells) v.push_back(cell.*member);
    w.write(std::string("cells/") + name, v, {n1, n2});
  }
  std::vector<double> diverged;
  for (const ElasticNetCell& cell : r.cells) diverged.push_back(static_cast<double>(cell.diverged));
  w.write("cells/diverged", diverged, {n1, n2});
  w.write("data/theta_true", r.theta_true, {c.seeds, c.d});
  w.commit();
}

}  // namespace

void run_elastic_net(const std::string& config_path, const std::string& out_dir,
                     const distributed::Communicator& comm) {
  using distributed::collective;
  // The device first: the thread count changes the last bits of every product.
  const distributed::RankDevice device = configure_study_device(comm);

  ElasticNetConfig config;
  std::string config_text;
  StudyRunSpec spec;
  spec.study = kStudy;
  std::vector<ElasticNetTask> tasks;
  collective(comm, [&] {
    io::ConfigReader reader(config_path);
    config = read_elastic_net_config(reader);
    config_text = reader.text();
    spec.effective_config = reader.effective();
    tasks = enumerate_elastic_net_tasks(config);
  });
  const std::int64_t p = config.parameters(), per_cell = kScalars + 2 * p;
  StudyTable table{"endpoints", config.block_size() * per_cell, {}};
  for (const ElasticNetTask& t : tasks) table.ids.push_back(t.id());
  spec.tables.push_back(std::move(table));
  spec.outputs = {"results.h5", "summary.json"};
  for (std::size_t i1 = 0; i1 < config.lambda1.size(); ++i1)
    for (std::size_t i2 = 0; i2 < config.lambda2.size(); ++i2)
      spec.outputs.push_back(equation_file_name(static_cast<std::int64_t>(i1), static_cast<std::int64_t>(i2)));
  if (comm.is_root())
    std::fprintf(stderr, "%s: %lld cells x %lld seeds as %zu tasks of %lld batched replicates (p = %lld)\n", kStudy,
                 static_cast<long long>(config.cells()), static_cast<long long>(config.seeds), tasks.size(),
                 static_cast<long long>(config.block_size()), static_cast<long long>(p));

  run_farm_study(
      comm, device, out_dir, spec,
      [&](std::size_t, std::int64_t row) { return encode(config, run_elastic_net_task(config, tasks[sz(row)])); },
      [&](const std::vector<std::vector<double>>& stored) -> nlohmann::json {
        const std::vector<double>& data = stored.front();
        const std::int64_t width = config.block_size() * per_cell;
        std::vector<std::vector<ElasticNetEndpoint>> endpoints(sz(config.cells()),
                                                               std::vector<ElasticNetEndpoint>(sz(config.seeds)));
        for (std::size_t row = 0; row < tasks.size(); ++row) {
          const std::span<const double> values = std::span<const double>(data).subspan(row * sz(width), sz(width));
          const std::int64_t first = tasks[row].block * config.block_size();
          const std::int64_t last = std::min(config.cells(), first + config.block_size());
          for (std::int64_t cell = first; cell < last; ++cell)
            endpoints[sz(cell)][sz(tasks[row].seed_index)] =
                decode(values.subspan(sz((cell - first) * per_cell), sz(per_cell)), p);
        }
        const ElasticNetResults r = assemble_elastic_net(config, endpoints);
        const std::filesystem::path dir(out_dir);
        write_results((dir / "results.h5").string(), config, config_text, r);
        for (std::int64_t cell = 0; cell < config.cells(); ++cell) {
          std::vector<const ElasticNetEndpoint*> ok;
          for (const ElasticNetEndpoint& e : endpoints[sz(cell)])
            if (!e.diverged) ok.push_back(&e);
          if (ok.empty()) continue;  // every seed diverged: no equations to write
          Equations eq;
          eq.theta = Matrix(static_cast<std::int64_t>(ok.size()), p);
          eq.grad_loss = Matrix(static_cast<std::int64_t>(ok.size()), p);
          for (std::size_t k = 0; k < ok.size(); ++k) {
            const auto i = static_cast<std::int64_t>(k);
            std::copy(ok[k]->theta.begin(), ok[k]->theta.end(), eq.theta.row(i).begin());
            std::copy(ok[k]->grad_loss.begin(), ok[k]->grad_loss.end(), eq.grad_loss.row(i).begin());
          }
          io::write_equation_file((dir / equation_file_name(cell_i1(config, cell), cell_i2(config, cell))).string(),
                                  eq);
        }
        io::write_json_file((dir / "summary.json").string(), elastic_net_summary(config, r));
        return {{"replicates_per_task", config.block_size()}, {"parameters", p}};
      });
}

}  // namespace gradmatch::studies
