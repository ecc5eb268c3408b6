#include "training/data.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <numeric>
#include <string>

#include "core/errors.hpp"
#include "core/rng.hpp"

namespace gradmatch::training {
namespace {

at::Tensor index_tensor(const std::vector<std::int64_t>& indices, const at::Device& device) {
  return at::tensor(indices, at::TensorOptions().dtype(at::kLong)).to(device);
}

}  // namespace

Dataset Dataset::to(const at::Device& device, at::ScalarType dtype) const {
  // Onto a GPU, copy in the stored dtype and convert there: ATen converts a
  // host tensor on the host first (one thread per rank here) and then copies
  // twice the bytes for float32 -> float64. Conversions are exact or IEEE
  // rounded on both sides, so the values are the same.
  const auto move = [&](const at::Tensor& t, bool convert) {
    if (device.is_cuda() && t.device() != device) {
      const at::Tensor moved = t.to(device);
      return convert ? moved.to(dtype) : moved;
    }
    return convert ? t.to(device, dtype) : t.to(device);
  };
  Dataset out;
  out.x = move(x, true);
  out.y = move(y, at::isFloatingType(y.scalar_type()));
  return out;
}

Dataset Dataset::take(const at::Tensor& indices) const {
  const at::Tensor i = indices.to(x.device(), at::kLong);
  return {x.index_select(0, i), y.index_select(0, i)};
}

Dataset Dataset::take(const std::vector<std::int64_t>& indices) const { return take(index_tensor(indices, x.device())); }

Dataset Dataset::slice(std::int64_t begin, std::int64_t end) const { return {x.slice(0, begin, end), y.slice(0, begin, end)}; }

void validate_dataset(const Dataset& data, const char* where) {
  const auto fail = [&](const char* what) {
    std::string msg = where;
    msg += ": ";
    msg += what;
    throw InputError(msg);
  };
  if (!data.x.defined() || !data.y.defined()) fail("the data set is empty");
  if (data.x.dim() != 2) fail("x must be a matrix [n, d]");
  if (!at::isFloatingType(data.x.scalar_type())) fail("x must be floating point");
  if (data.y.dim() < 1 || data.y.dim() > 2) fail("y must be [n] or [n, k]");
  if (data.y.size(0) != data.x.size(0)) fail("x and y have different numbers of examples");
  if (data.x.size(0) == 0) fail("the data set has no examples");
}

SyntheticData linear_regression(const LinearDataOptions& o, std::uint64_t seed, std::uint64_t stream) {
  if (o.n <= 0 || o.d <= 0) throw InputError("linear_regression(): n and d must be positive");
  if (!o.theta.empty() && static_cast<std::int64_t>(o.theta.size()) != o.d)
    throw InputError("linear_regression(): a fixed theta must have d entries");
  Rng rng(seed, stream);
  SyntheticData out;
  at::Tensor x = at::empty({o.n, o.d}, at::kDouble);
  double* xp = x.data_ptr<double>();
  for (std::int64_t i = 0; i < o.n * o.d; ++i) xp[i] = rng.normal();
  out.theta_true = o.theta;
  if (out.theta_true.empty())
    for (std::int64_t j = 0; j < o.d; ++j) out.theta_true.push_back(rng.normal(0.0, o.theta_sd));
  at::Tensor y = at::empty({o.n, 1}, at::kDouble);
  double* yp = y.data_ptr<double>();
  for (std::int64_t i = 0; i < o.n; ++i) {
    double s = 0.0;
    for (std::int64_t j = 0; j < o.d; ++j) s += xp[i * o.d + j] * out.theta_true[static_cast<std::size_t>(j)];
    yp[i] = s;
  }
  for (std::int64_t i = 0; i < o.n; ++i) yp[i] += rng.normal(0.0, o.noise_sd);
  out.data = {x, y};
  return out;
}

SyntheticData tanh_curve(std::int64_t n) {
  if (n < 2) throw InputError("tanh_curve(): need at least 2 points");
  const at::Tensor x = at::linspace(-2.5, 2.5, n, at::kDouble).unsqueeze(1);
  const at::Tensor y = 0.75 * at::tanh(1.4 * x - 0.35) + 0.12 * at::sin(2.7 * x);
  return {{x, y}, {}};
}

std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed, std::uint64_t stream) {
  Rng rng(seed, stream);
  return permutation(n, rng);
}

std::vector<std::int64_t> permutation(std::int64_t n, Rng& rng) {
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i + 1)));
    std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(j)]);
  }
  return perm;
}

SplitIndices split_indices(std::int64_t n, double validation_fraction, std::uint64_t seed, std::uint64_t stream) {
  if (!(validation_fraction >= 0.0 && validation_fraction < 1.0))
    throw InputError("split(): the validation fraction must lie in [0, 1)");
  const auto n_val = static_cast<std::int64_t>(std::llround(validation_fraction * static_cast<double>(n)));
  const std::vector<std::int64_t> perm = permutation(n, seed, stream);
  return {std::vector<std::int64_t>(perm.begin() + n_val, perm.end()),
          std::vector<std::int64_t>(perm.begin(), perm.begin() + n_val)};
}

Split split(const Dataset& data, double validation_fraction, std::uint64_t seed, std::uint64_t stream) {
  const SplitIndices rows = split_indices(data.size(), validation_fraction, seed, stream);
  Split out;
  out.train = data.take(rows.train);
  if (!rows.validation.empty()) out.validation = data.take(rows.validation);
  return out;
}

Normalizer Normalizer::fit(const at::Tensor& x, double eps) {
  if (x.dim() != 2 || x.size(0) == 0) throw InputError("Normalizer::fit(): expected a non-empty matrix [n, d]");
  Normalizer n;
  n.mean = x.mean(0);
  at::Tensor sd = x.std(0, /*unbiased=*/false);
  n.scale = at::where(sd < eps, at::ones_like(sd), sd);
  return n;
}

at::Tensor Normalizer::apply(const at::Tensor& x) const {
  return (x - mean.to(x.device(), x.scalar_type())) / scale.to(x.device(), x.scalar_type());
}

Dataset Normalizer::apply(const Dataset& data) const { return {apply(data.x), data.y}; }

}  // namespace gradmatch::training
