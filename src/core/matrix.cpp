#include "core/matrix.hpp"

#include <cmath>
#include <stdexcept>

#include "core/lapack.hpp"

namespace gradmatch {

Matrix::Matrix(std::int64_t rows, std::int64_t cols, std::vector<double> data)
    : rows_(rows), cols_(cols), data_(std::move(data)) {
  if (static_cast<std::int64_t>(data_.size()) != rows * cols)
    throw std::invalid_argument("Matrix: data size does not match rows * cols");
}

Matrix Matrix::row_block(std::int64_t begin, std::int64_t end) const {
  if (begin < 0 || end < begin || end > rows_) throw std::out_of_range("Matrix::row_block: bad range");
  return Matrix(end - begin, cols_,
                std::vector<double>(data_.begin() + begin * cols_, data_.begin() + end * cols_));
}

Matrix Matrix::transposed() const {
  Matrix t(cols_, rows_);
  for (std::int64_t i = 0; i < rows_; ++i)
    for (std::int64_t j = 0; j < cols_; ++j) t(j, i) = (*this)(i, j);
  return t;
}

Matrix Matrix::identity(std::int64_t n) {
  Matrix eye(n, n);
  for (std::int64_t i = 0; i < n; ++i) eye(i, i) = 1.0;
  return eye;
}

double frobenius_distance(const Matrix& a, const Matrix& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols())
    throw std::invalid_argument("frobenius_distance: shapes differ");
  double s = 0.0;
  for (std::int64_t i = 0; i < a.size(); ++i) {
    const double d = a.data()[i] - b.data()[i];
    s += d * d;
  }
  return std::sqrt(s);
}

double frobenius_norm(const Matrix& a) {
  double s = 0.0;
  for (double v : a.values()) s += v * v;
  return std::sqrt(s);
}

Matrix matmul(const Matrix& a, const Matrix& b) {
  if (a.cols() != b.rows()) throw std::invalid_argument("matmul: inner dimensions differ");
  Matrix c(a.rows(), b.cols());
  if (c.size() == 0 || a.cols() == 0) return c;
  // Row-major C = A B is column-major C^T = B^T A^T.
  lapack::gemm('N', 'N', b.cols(), a.rows(), a.cols(), 1.0, b.data(), b.cols(), a.data(), a.cols(), 0.0,
               c.data(), c.cols());
  return c;
}

}  // namespace gradmatch
