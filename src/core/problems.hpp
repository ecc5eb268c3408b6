#pragma once
// Known-answer gradient-matching problems, shared by tests and benchmarks.
// Each builds equations whose exact solution is known by construction.
#include <cstdint>

#include "core/equations.hpp"
#include "core/matrix.hpp"
#include "core/rng.hpp"

namespace gradmatch::problems {

/// m x p matrix of i.i.d. N(0, sd^2) draws.
Matrix gaussian(Rng& rng, std::int64_t m, std::int64_t p, double sd = 1.0);

/// Random symmetric positive definite p x p matrix with eigenvalues
/// log-uniform in [1, condition] times `scale`.
Matrix random_spd(Rng& rng, std::int64_t p, double condition, double scale = 1.0);

/// Exactly consistent sym equations: theta_k ~ N(0, I), grad_loss_k = -2 Lambda theta_k.
Equations consistent_sym(Rng& rng, const Matrix& lambda, std::int64_t m);

/// Sym equations with a random (inconsistent) target b ~ N(0, I).
Equations random_sym(Rng& rng, std::int64_t m, std::int64_t p);

}  // namespace gradmatch::problems
