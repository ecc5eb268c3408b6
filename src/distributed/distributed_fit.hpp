#pragma once
// `gradmatch fit` over MPI ranks.
//
// Rank r reads only its block of points of the equation file (point_block in
// distributed_solvers.hpp, the same partition for every method) and every
// rank ends with the same FitResult:
//   closed forms (ridge/huber/elastic-net/features by --method normal, i.e.
//     the Gram path; diag; sym structured below the ScaLAPACK crossover):
//     the additive statistics of core::Fitter, one all-reduce, the same small
//     solve on every rank;
//   column families by --method qr: distributed QR (PDGEQRF/PDORMQR);
//   sym --method vech / vech-plain: PDGELS, or the serial fallback when the
//     design is rank deficient;
//   sym structured at p >= tuning.structured_scalapack_min_p: PDGEMM + PDSYEVD.
// The solution is handed to the Fitter, and a second all-reduce sums the
// residual diagnostics of every rank's rows, so the diagnostics are the
// serial code's. Results agree with the serial fit() to ~1e-10 relative.
// tuning.reduce = nccl runs both all-reduces through NCCL (nccl.hpp).
#include <string>

#include "core/fit.hpp"
#include "distributed/distributed_solvers.hpp"
#include "mpi/mpi.hpp"

namespace gradmatch::distributed {

/// `feature_columns`: Equations::keep_features globs (empty: every column).
FitResult fit_equation_file(const Communicator& comm, const std::string& path, const FitOptions& options,
                            const SolverTuning& tuning = {}, const std::vector<std::string>& feature_columns = {});

/// The same fit of equations already in memory: `block` holds this rank's
/// points (point_block of m_total, e.g. from scatter_points), `layout` any
/// block with the same p, features and parameter names on every rank (it fixes
/// them for the Fitter). Collective; every rank returns the same FitResult.
FitResult fit_distributed(const Communicator& comm, const Equations& layout, const Equations& block,
                          std::int64_t m_total, const FitOptions& options, const SolverTuning& tuning = {});

}  // namespace gradmatch::distributed
