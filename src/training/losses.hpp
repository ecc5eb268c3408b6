#pragma once
// Training losses, with the reduction conventions of docs/design.md.
//
// Every loss is a mean over examples of a per-example loss l_i:
//   mse   l_i = (1/k) sum_j (f_ij - y_ij)^2        (mean over the k outputs)
//   ce    l_i = -log softmax(f_i)[y_i]             (y_i a class index)
//   bce   l_i = (1/k) sum_j [softplus(f_ij) - y_ij f_ij]   (logits f, targets in [0, 1])
// summed_loss() returns sum_i l_i over the examples it is given, so that a
// full-batch mean over N examples is the sum over batches divided by N,
// whatever the batch sizes (the full-batch gradient of the endpoint equations).
#include <ATen/core/Tensor.h>

#include <string>
#include <string_view>

namespace gradmatch::training {

enum class LossKind { mse, cross_entropy, bce_with_logits };

/// "mse", "ce" (or "cross-entropy") and "bce" (or "bce-with-logits");
/// throws InputError listing them otherwise.
LossKind parse_loss(std::string_view text);
/// The short name parse_loss() accepts ("mse", "ce", "bce").
std::string to_string(LossKind kind);

/// Sum over examples of the per-example loss (see the top). `target` is
/// [n] or [n, k] (float) for mse and bce, [n] (int64 class indices) for ce.
/// A [n] target against an [n, 1] output is read as [n, 1].
at::Tensor summed_loss(LossKind kind, const at::Tensor& output, const at::Tensor& target);

/// summed_loss / n: the mean-reduced loss of one batch.
at::Tensor mean_loss(LossKind kind, const at::Tensor& output, const at::Tensor& target);

}  // namespace gradmatch::training
