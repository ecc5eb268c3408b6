#pragma once
// A dense row-major matrix of doubles: the one container the core passes
// around. Row-major because equation files are row-major ([m, p], one point
// per row); LAPACK calls that need column-major data transpose explicitly.
#include <cstdint>
#include <span>
#include <vector>

namespace gradmatch {

class Matrix {
 public:
  Matrix() = default;
  Matrix(std::int64_t rows, std::int64_t cols, double fill = 0.0)
      : rows_(rows), cols_(cols), data_(static_cast<std::size_t>(rows * cols), fill) {}
  Matrix(std::int64_t rows, std::int64_t cols, std::vector<double> data);

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t size() const { return rows_ * cols_; }
  bool empty() const { return data_.empty(); }

  double* data() { return data_.data(); }
  const double* data() const { return data_.data(); }
  std::vector<double>& values() { return data_; }
  const std::vector<double>& values() const { return data_; }

  double& operator()(std::int64_t i, std::int64_t j) { return data_[static_cast<std::size_t>(i * cols_ + j)]; }
  double operator()(std::int64_t i, std::int64_t j) const { return data_[static_cast<std::size_t>(i * cols_ + j)]; }

  std::span<double> row(std::int64_t i) { return {data_.data() + i * cols_, static_cast<std::size_t>(cols_)}; }
  std::span<const double> row(std::int64_t i) const {
    return {data_.data() + i * cols_, static_cast<std::size_t>(cols_)};
  }

  /// Rows [begin, end) as a new matrix.
  Matrix row_block(std::int64_t begin, std::int64_t end) const;
  Matrix transposed() const;
  static Matrix identity(std::int64_t n);

 private:
  std::int64_t rows_ = 0;
  std::int64_t cols_ = 0;
  std::vector<double> data_;
};

/// Frobenius norm of a - b (shapes must agree).
double frobenius_distance(const Matrix& a, const Matrix& b);
double frobenius_norm(const Matrix& a);
/// C = A * B (BLAS dgemm).
Matrix matmul(const Matrix& a, const Matrix& b);

}  // namespace gradmatch
