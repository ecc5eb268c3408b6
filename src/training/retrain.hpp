#pragma once
// Retrain validation: the paper's second mode of success (section 2.1).
//
// If R(theta; Lambda-hat) captures what an implicit mechanism (early stopping,
// dropout, ...) does, then retraining WITHOUT the mechanism and WITH the
// explicit penalty R(theta; Lambda-hat) lands at (nearly) the same weights as
// the original training did. This compares the two models by
//   parameter distance      ||theta_ref - theta_new||  (and divided by ||theta_ref||)
//   prediction agreement    classification (ce): fraction of equal argmax;
//                           bce: fraction of equal signs of every logit;
//                           mse: R^2 of the new predictions against the
//                           reference ones, 1 - ||f_new - f_ref||^2 / ||f_ref - mean f_ref||^2
//   prediction RMSE         sqrt(mean (f_new - f_ref)^2) over all outputs.
#include <ATen/core/Tensor.h>

#include "core/fit.hpp"
#include "training/data.hpp"
#include "training/losses.hpp"
#include "training/model_handle.hpp"
#include "training/penalties.hpp"
#include "training/trainer.hpp"

namespace gradmatch::training {

struct ModelComparison {
  double parameter_distance = 0.0;
  double relative_parameter_distance = 0.0;
  double prediction_agreement = 0.0;
  double prediction_rmse = 0.0;
};

/// Compares `other` with `reference` (same architecture) on inputs x (eval mode).
ModelComparison compare_models(const ModelHandle& reference, const ModelHandle& other, const at::Tensor& x,
                               LossKind loss);

/// The explicit penalty of a ridge, huber or elastic-net fit (InputError for other families).
Penalty penalty_from_fit(const FitResult& fit, const FamilySpec& family);

struct RetrainResult {
  TrainResult training;
  ModelComparison comparison;
};

/// Trains `fresh` (already holding its starting parameters and without the
/// implicit mechanism) with `options` -- whose penalty is the fitted
/// R(theta; Lambda-hat) -- and compares it with `reference` on `evaluation.x`.
RetrainResult retrain_and_compare(const ModelHandle& reference, const ModelHandle& fresh, const Dataset& train_data,
                                  const TrainOptions& options, const Dataset& evaluation);

}  // namespace gradmatch::training
