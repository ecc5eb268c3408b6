#include "training/tensor_bridge.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>

namespace gradmatch::training {

std::vector<double> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kCPU, at::kDouble).contiguous();
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}

Matrix to_matrix(const at::Tensor& t) {
  if (t.dim() > 2) throw std::invalid_argument("to_matrix(): expected a tensor of at most 2 dimensions");
  const std::int64_t rows = t.dim() == 2 ? t.size(0) : 1;
  const std::int64_t cols = t.dim() == 2 ? t.size(1) : t.numel();
  return Matrix(rows, cols, to_vector(t));
}

at::Tensor to_tensor(std::span<const double> values, std::vector<std::int64_t> shape) {
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(at::kDouble));
  if (static_cast<std::size_t>(t.numel()) != values.size())
    throw std::invalid_argument("to_tensor(): the shape does not match the number of values");
  std::copy(values.begin(), values.end(), t.data_ptr<double>());
  return t;
}

at::Tensor to_tensor(const Matrix& m) { return to_tensor(m.values(), {m.rows(), m.cols()}); }

Matrix stack_rows(const std::vector<std::vector<double>>& rows) {
  if (rows.empty()) return {};
  const auto cols = static_cast<std::int64_t>(rows.front().size());
  Matrix out(static_cast<std::int64_t>(rows.size()), cols);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (static_cast<std::int64_t>(rows[i].size()) != cols)
      throw std::invalid_argument("stack_rows(): rows differ in length");
    std::copy(rows[i].begin(), rows[i].end(), out.row(static_cast<std::int64_t>(i)).begin());
  }
  return out;
}

}  // namespace gradmatch::training
