#include "training/retrain.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.hpp"

namespace gradmatch::training {

ModelComparison compare_models(const ModelHandle& reference, const ModelHandle& other, const at::Tensor& x,
                               LossKind loss) {
  if (reference.parameter_count() != other.parameter_count())
    throw InputError("compare_models(): the models have different parameter counts");
  ModelComparison c;
  const at::Tensor a = flat_parameters(reference);
  const at::Tensor b = flat_parameters(other);
  c.parameter_distance = (a - b).norm().item<double>();
  const double na = a.norm().item<double>();
  c.relative_parameter_distance = na > 0.0 ? c.parameter_distance / na : std::numeric_limits<double>::infinity();

  const at::Tensor fa = predict(reference, x).to(at::kDouble);
  const at::Tensor fb = predict(other, x.to(other.parameters.front().scalar_type())).to(fa.device(), at::kDouble);
  c.prediction_rmse = std::sqrt((fa - fb).square().mean().item<double>());
  switch (loss) {
    case LossKind::cross_entropy:
      c.prediction_agreement = (fa.argmax(1) == fb.argmax(1)).to(at::kDouble).mean().item<double>();
      break;
    case LossKind::bce_with_logits:
      c.prediction_agreement = ((fa > 0) == (fb > 0)).to(at::kDouble).mean().item<double>();
      break;
    case LossKind::mse: {
      const double ss = (fa - fa.mean(0, true)).square().sum().item<double>();
      const double rss = (fa - fb).square().sum().item<double>();
      c.prediction_agreement = ss > 0.0 ? 1.0 - rss / ss : (rss == 0.0 ? 1.0 : 0.0);
      break;
    }
  }
  return c;
}

Penalty penalty_from_fit(const FitResult& fit, const FamilySpec& family) {
  switch (family.kind) {
    case FamilyKind::ridge: return Penalty::ridge(fit.coefficient(0));
    case FamilyKind::huber: return Penalty::huber(fit.coefficient(0), family.beta);
    case FamilyKind::elastic_net: return Penalty::elastic_net(fit.coefficient(0), fit.coefficient(1), family.beta);
    default: break;
  }
  throw InputError("penalty_from_fit(): only ridge, huber and elastic-net fits have an explicit training penalty");
}

RetrainResult retrain_and_compare(const ModelHandle& reference, const ModelHandle& fresh, const Dataset& train_data,
                                  const TrainOptions& options, const Dataset& evaluation) {
  RetrainResult r;
  r.training = train(fresh, train_data, Dataset{}, options);
  r.comparison = compare_models(reference, fresh, evaluation.x, options.loss);
  return r;
}

}  // namespace gradmatch::training
