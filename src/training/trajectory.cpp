#include "training/trajectory.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <optional>

#include "core/errors.hpp"
#include "core/rng.hpp"
#include "training/tensor_bridge.hpp"

namespace gradmatch::training {
namespace {

[[noreturn]] void fail(const std::string& what) {
  std::string msg = "trajectory: ";
  msg += what;
  throw InputError(msg);
}

// Mini-batches of a fresh permutation every epoch (the trainer's order).
class BatchStream {
 public:
  BatchStream(std::int64_t n, std::int64_t batch, std::uint64_t seed, std::uint64_t stream)
      : rng_(seed, stream), n_(n), batch_(std::min(batch, n)), position_(n) {}
  std::vector<std::int64_t> next() {
    if (position_ >= n_) {
      order_ = permutation(n_, rng_);
      position_ = 0;
    }
    const std::int64_t end = std::min(n_, position_ + batch_);
    std::vector<std::int64_t> out(order_.begin() + position_, order_.begin() + end);
    position_ = end;
    return out;
  }

 private:
  Rng rng_;
  std::int64_t n_, batch_, position_;
  std::vector<std::int64_t> order_;
};

// The mean-loss gradient on `batch` at the model's parameters in TRAINING
// mode (dropout on), flat, in the parameters' dtype.
at::Tensor training_mode_gradient(const ModelHandle& model, const Dataset& batch, LossKind loss) {
  const bool was_training = model.is_training();
  model.set_training(true);
  const at::Tensor f = mean_loss(loss, model.forward(batch.x), batch.y);
  const auto parts = torch::autograd::grad({f}, model.parameters, {}, false, false, /*allow_unused=*/true);
  model.set_training(was_training);
  std::vector<at::Tensor> flat;
  for (std::size_t i = 0; i < parts.size(); ++i)
    flat.push_back(parts[i].defined() ? parts[i].reshape({-1})
                                      : at::zeros({model.parameters[i].numel()}, model.parameters[i].options()));
  return at::cat(flat).detach();
}

std::vector<std::int64_t> resolve_checkpoints(const TrajectoryOptions& o) {
  if (o.checkpoints.empty()) return log_spaced_steps(o.steps, o.checkpoint_count);
  for (std::size_t i = 0; i < o.checkpoints.size(); ++i) {
    const std::int64_t t = o.checkpoints[i];
    if (t < 0 || t >= o.steps) fail("every checkpoint must lie in [0, steps)");
    if (i > 0 && t <= o.checkpoints[i - 1]) fail("checkpoints must be strictly increasing");
  }
  return o.checkpoints;
}

}  // namespace

TrajectoryMode parse_trajectory_mode(std::string_view text) {
  if (text == "flow") return TrajectoryMode::flow;
  if (text == "dropout") return TrajectoryMode::dropout;
  if (text == "sgd") return TrajectoryMode::sgd;
  if (text == "coupled") return TrajectoryMode::coupled;
  std::string msg = "trajectory: unknown mode '";
  msg += text;
  msg += "'; use flow, dropout, sgd or coupled";
  throw InputError(msg);
}

std::string to_string(TrajectoryMode mode) {
  switch (mode) {
    case TrajectoryMode::flow: return "flow";
    case TrajectoryMode::dropout: return "dropout";
    case TrajectoryMode::sgd: return "sgd";
    case TrajectoryMode::coupled: return "coupled";
  }
  return "?";
}

FlowDeviation flow_deviation(const Objective& objective, const at::Tensor& theta_in, double eta,
                             Integrator integrator, std::int64_t substeps) {
  if (!(eta > 0.0) || !std::isfinite(eta)) fail("the step eta must be positive and finite");
  ParameterScope scope(objective.model());
  const at::Tensor theta = theta_in.to(objective.options()).reshape({-1});
  const GradientAndHvp gh = objective.gradient_and_hvp_in(scope, theta);
  const at::Tensor displacement =
      flow_displacement(gradient_flow_field(objective, scope), theta, eta, substeps, integrator, -gh.gradient);
  FlowDeviation out;
  out.gradient = gh.gradient;
  out.hvp = gh.hvp;
  out.target = (displacement + eta * gh.gradient) / eta;
  out.next = theta - eta * gh.gradient;
  return out;
}

at::Tensor gradient_penalty_column(const at::Tensor& hvp) {
  return hvp * (2.0 / static_cast<double>(hvp.numel()));
}

std::vector<std::int64_t> log_spaced_steps(std::int64_t steps, std::int64_t count) {
  if (steps < 1) fail("log_spaced_steps(): steps must be at least 1");
  if (steps == 1) return {0};
  count = std::max<std::int64_t>(count, 2);
  std::vector<std::int64_t> out;
  const double top = std::log(static_cast<double>(steps));
  for (std::int64_t i = 0; i < count; ++i) {
    const double u = top * static_cast<double>(i) / static_cast<double>(count - 1);
    const std::int64_t t = std::clamp<std::int64_t>(std::llround(std::exp(u)) - 1, 0, steps - 1);
    if (out.empty() || t > out.back()) out.push_back(t);
  }
  if (out.back() != steps - 1) out.push_back(steps - 1);
  return out;
}

void TrajectoryOptions::validate() const {
  if (!(learning_rate > 0.0) || !std::isfinite(learning_rate)) fail("the learning rate must be positive and finite");
  if (steps < 1) fail("steps must be at least 1");
  if (checkpoint_count < 1) fail("checkpoint_count must be at least 1");
  if (substeps < 1) fail("substeps must be at least 1");
  if (mode != TrajectoryMode::flow && batch_size < 1) fail("batch_size must be at least 1");
}

TrajectoryRows trajectory_rows(const ModelHandle& model, const Dataset& data_in, const TrajectoryOptions& o) {
  o.validate();
  validate_dataset(data_in, "trajectory");
  const std::vector<std::int64_t> checkpoints = resolve_checkpoints(o);
  const Objective full(model, data_in, o.loss, Penalty{}, o.eval_batch_size);
  const Dataset& data = full.data();  // in the parameters' dtype and device
  const double eta = o.learning_rate;

  std::vector<std::vector<double>> theta_rows, grad_rows, target_rows, hvp_rows;
  std::vector<std::vector<std::vector<double>>> feature_rows;
  std::vector<std::string> feature_names;
  TrajectoryRows out;

  std::optional<BatchStream> batches;
  if (o.mode != TrajectoryMode::flow) batches.emplace(data.size(), o.batch_size, o.seed, o.stream);

  at::Tensor theta = full.current();   // theta-hat_t, also held by the model
  at::Tensor reference = theta.clone();  // coupled mode: the GD iterate theta_t
  std::size_t next_row = 0;
  for (std::int64_t t = 0; t < o.steps; ++t) {
    const bool row = next_row < checkpoints.size() && checkpoints[next_row] == t;
    at::Tensor next, target, grad_loss, hvp;
    switch (o.mode) {
      case TrajectoryMode::flow: {
        if (row) {
          const FlowDeviation dev = flow_deviation(full, theta, eta, o.integrator, o.substeps);
          target = dev.target;
          grad_loss = dev.gradient;
          hvp = dev.hvp;
          next = dev.next;
        } else {
          next = theta - eta * full.gradient(theta);
        }
        break;
      }
      case TrajectoryMode::dropout: {
        const Dataset batch = data.take(batches->next());
        const at::Tensor observed = training_mode_gradient(model, batch, o.loss);
        if (row) target = observed - Objective(model, batch, o.loss).gradient(theta);
        next = theta - eta * observed;
        break;
      }
      case TrajectoryMode::sgd: {
        const Dataset batch = data.take(batches->next());
        const at::Tensor observed = Objective(model, batch, o.loss).gradient(theta);
        if (row) {  // the reference direction is the row's grad L(theta-hat_t) itself
          if (o.gradient_penalty) {
            const GradientAndHvp gh = full.gradient_and_hvp(theta);
            grad_loss = gh.gradient;
            hvp = gh.hvp;
          } else {
            grad_loss = full.gradient(theta);
          }
          target = observed - grad_loss;
        }
        next = theta - eta * observed;
        break;
      }
      case TrajectoryMode::coupled: {
        const Dataset batch = data.take(batches->next());
        const at::Tensor observed = Objective(model, batch, o.loss).gradient(theta);
        const at::Tensor reference_gradient = full.gradient(reference);
        if (row) target = observed - reference_gradient;
        next = theta - eta * observed;
        reference = reference - eta * reference_gradient;
        break;
      }
    }
    if (row) {
      if (o.gradient_penalty && !hvp.defined()) {
        const GradientAndHvp gh = full.gradient_and_hvp(theta);
        grad_loss = gh.gradient;
        hvp = gh.hvp;
      }
      if (!grad_loss.defined()) grad_loss = full.gradient(theta);
      std::vector<std::vector<double>> features;
      if (o.gradient_penalty) {
        features.push_back(to_vector(gradient_penalty_column(hvp)));
        hvp_rows.push_back(to_vector(hvp));
      }
      if (!o.candidates.empty()) {
        // The model holds theta-hat_t here (the objectives restored it).
        const std::vector<Column> columns = candidate_columns(model, o.candidates, data, o.eval_batch_size);
        for (const auto& c : columns) features.push_back(c.second);
        if (feature_names.empty())
          for (const auto& c : columns) feature_names.push_back(c.first);
      }
      theta_rows.push_back(to_vector(theta));
      grad_rows.push_back(to_vector(grad_loss));
      target_rows.push_back(to_vector(target));
      feature_rows.push_back(std::move(features));
      out.steps.push_back(t);
      out.loss.push_back(full.value(theta));
      ++next_row;
    }
    theta = next;
    set_flat_parameters(model, theta);
  }

  out.equations.theta = stack_rows(theta_rows);
  out.equations.grad_loss = stack_rows(grad_rows);
  out.equations.target = stack_rows(target_rows);
  std::vector<std::string> names;
  if (o.gradient_penalty) names.push_back(kGradientPenaltyFeature);
  names.insert(names.end(), feature_names.begin(), feature_names.end());
  for (std::size_t f = 0; f < names.size(); ++f) {
    std::vector<std::vector<double>> column;
    for (const auto& r : feature_rows) column.push_back(r[f]);
    out.equations.features.emplace_back(names[f], stack_rows(column));
  }
  if (o.gradient_penalty) out.hvp = stack_rows(hvp_rows);
  return out;
}

std::vector<FitResult> fit_per_checkpoint(const Equations& equations, const FitOptions& options) {
  std::vector<FitResult> out;
  for (std::int64_t k = 0; k < equations.m(); ++k) out.push_back(fit(equations.rows(k, k + 1), options));
  return out;
}

}  // namespace gradmatch::training
