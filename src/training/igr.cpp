#include "training/igr.hpp"

#include <cmath>
#include <algorithm>
#include <numeric>

#include "core/errors.hpp"
#include "training/trajectory.hpp"

namespace gradmatch::training {

IgrEstimate igr_closed_form(const Matrix& hvp, const Matrix& target) {
  if (hvp.rows() != target.rows() || hvp.cols() != target.cols())
    throw InputError("igr_closed_form(): H g and the targets must have the same shape [m, p]");
  if (hvp.rows() < 1 || hvp.cols() < 1) throw InputError("igr_closed_form(): no rows");
  double hh = 0.0, ht = 0.0, tt = 0.0;
  for (std::int64_t i = 0; i < hvp.size(); ++i) {
    const double h = hvp.data()[i], t = target.data()[i];
    hh += h * h;
    ht += h * t;
    tt += t * t;
  }
  if (!(hh > 0.0)) throw InputError("igr_closed_form(): H g is zero on every row; lambda is not identified");
  IgrEstimate e;
  e.rows = hvp.rows();
  e.p = hvp.cols();
  e.lambda_per_parameter = 0.5 * ht / hh;
  e.lambda_hat = static_cast<double>(e.p) * e.lambda_per_parameter;
  // ||T - 2c Hg||^2 = tt - 4c ht + 4c^2 hh, with 2c = ht / hh: tt - ht^2 / hh;
  // summed explicitly rather than by the formula to avoid cancellation.
  const double two_c = 2.0 * e.lambda_per_parameter;
  double rr = 0.0;
  for (std::int64_t i = 0; i < hvp.size(); ++i) {
    const double r = target.data()[i] - two_c * hvp.data()[i];
    rr += r * r;
  }
  e.residual_ratio = tt > 0.0 ? std::sqrt(rr / tt) : 0.0;
  e.cosine = tt > 0.0 ? ht / std::sqrt(hh * tt) : 0.0;
  return e;
}

double igr_r(std::span<const double> gradient) {
  if (gradient.empty()) throw InputError("igr_r(): empty gradient");
  const double s = std::inner_product(gradient.begin(), gradient.end(), gradient.begin(), 0.0);
  return s / static_cast<double>(gradient.size());
}

IgrProbe igr_probe(const ModelHandle& model, const Dataset& probe, const IgrProbeOptions& options) {
  if (options.steps < 1) throw InputError("igr_probe(): steps must be at least 1");
  TrajectoryOptions o;
  o.mode = TrajectoryMode::flow;
  o.loss = options.loss;
  o.learning_rate = options.eta;
  o.steps = options.steps;
  o.checkpoints.resize(static_cast<std::size_t>(options.steps));
  std::iota(o.checkpoints.begin(), o.checkpoints.end(), std::int64_t{0});
  o.integrator = options.integrator;
  o.substeps = options.substeps;
  o.gradient_penalty = true;
  o.eval_batch_size = options.batch_size;

  const std::vector<at::Tensor> start = snapshot_parameters(model);
  TrajectoryRows rows;
  try {
    rows = trajectory_rows(model, probe, o);
  } catch (...) {
    restore_parameters(model, start);
    throw;
  }
  restore_parameters(model, start);

  IgrProbe out;
  out.theta = rows.equations.theta;
  out.grad_loss = rows.equations.grad_loss;
  out.hvp = rows.hvp;
  out.target = *rows.equations.target;
  out.estimate = igr_closed_form(out.hvp, out.target);
  for (std::int64_t t = 0; t < out.hvp.rows(); ++t) {
    const Matrix h = out.hvp.row_block(t, t + 1);
    const bool identified = std::any_of(h.values().begin(), h.values().end(), [](double v) { return v != 0.0; });
    out.lambda_step.push_back(identified ? igr_closed_form(h, out.target.row_block(t, t + 1)).lambda_hat
                                         : std::nan(""));
  }
  out.r_ig = igr_r(out.grad_loss.row(0));
  out.loss = rows.loss.front();
  return out;
}

}  // namespace gradmatch::training
