#pragma once
// Conversions between LibTorch tensors and the core's float64 containers.
//
// The core (solvers, regularizer columns) works on row-major doubles; the
// training layer works on tensors of any floating dtype on any device. Every
// crossing goes through these functions, which copy to a contiguous float64
// CPU buffer (or from one), so no caller depends on a tensor's layout.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <span>
#include <vector>

#include "core/matrix.hpp"

namespace gradmatch::training {

/// The tensor's values, flattened in row-major order, as doubles.
std::vector<double> to_vector(const at::Tensor& t);
/// A 2-D tensor as a Matrix; a 1-D tensor becomes one row.
Matrix to_matrix(const at::Tensor& t);
/// A float64 CPU tensor of the given shape holding a copy of `values`.
at::Tensor to_tensor(std::span<const double> values, std::vector<std::int64_t> shape);
/// A float64 CPU tensor [rows, cols] holding a copy of the matrix.
at::Tensor to_tensor(const Matrix& m);
/// Matrix whose rows are the given equal-length vectors.
Matrix stack_rows(const std::vector<std::vector<double>>& rows);

}  // namespace gradmatch::training
