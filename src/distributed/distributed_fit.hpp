#pragma once
// `gradmatch fit` over MPI ranks.
//
// Closed-form routes (ridge/huber/elastic-net/features by normal equations,
// diag, sym structured): rank r reads only its block of rows of the equation
// file, computes the additive statistics of core::Fitter, and one all-reduce
// gives every rank the same totals; every rank then solves the same small
// system, and a second all-reduce sums the residual diagnostics.
// Full-design routes (qr, vech) read every row on every rank and solve
// serially until the ScaLAPACK PDGELS path lands; the answer is the same on
// every rank because the computation is.
#include <string>

#include "core/fit.hpp"
#include "distributed/mpi.hpp"

namespace gradmatch::distributed {

FitResult fit_equation_file(const Communicator& comm, const std::string& path, const FitOptions& options);

}  // namespace gradmatch::distributed
