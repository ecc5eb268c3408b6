#include "distributed/distributed_fit.hpp"

#include <memory>
#include <optional>

#include "io/equation_file.hpp"

namespace gradmatch::distributed {

namespace {

// The solve and the diagnostics of every method, from this rank's block of
// m_total points of p parameters.
FitResult fit_blocks(const Communicator& comm, NcclReducer* nccl, Fitter& fitter, const Equations& block,
                     std::int64_t m_total, std::int64_t p, const FitOptions& options, const SolverTuning& tuning) {
  const Method method = fitter.method();
  const bool sym = options.family.kind == FamilyKind::sym;
  // Each solver is collective and agrees on failure inside; the outer
  // collective() passes such an agreed failure on unchanged.
  if (method == Method::qr) {
    collective(comm, [&] {
      const ColumnQrSolution s =
          solve_columns_qr(comm, options.family, block, m_total, options.normalize, fitter.rcond(), tuning);
      fitter.set_column_solution(s.gram, s.rhs, s.solution);
    });
  } else if (method == Method::vech || method == Method::vech_plain) {
    collective(comm, [&] {
      const auto coords = method == Method::vech ? VechCoordinates::isometric : VechCoordinates::plain;
      fitter.set_symmetric_solution(
          solve_vech_distributed(comm, block, m_total, fitter.rcond(), coords, tuning).solution);
    });
  } else if (sym && p >= tuning.structured_scalapack_min_p) {
    collective(comm, [&] {
      fitter.set_symmetric_solution(solve_structured_scalapack(comm, block, m_total, fitter.rcond(), tuning));
    });
  } else {
    std::vector<double> stats;
    collective(comm, [&] { stats = fitter.statistics(block); });
    allreduce_sum(comm, nccl, stats);
    collective(comm, [&] { fitter.solve(stats); });
  }

  std::vector<double> sums;
  collective(comm, [&] { sums = fitter.residual_sums(block); });
  allreduce_sum(comm, nccl, sums);
  FitResult result;
  collective(comm, [&] { result = fitter.result(sums); });
  return result;
}

}  // namespace

FitResult fit_equation_file(const Communicator& comm, const std::string& path, const FitOptions& options,
                            const SolverTuning& tuning, const std::vector<std::string>& feature_columns) {
  // NCCL first: a build without it refuses before reading anything.
  std::unique_ptr<NcclReducer> nccl;
  if (tuning.reduce == ReduceBackend::nccl) nccl = std::make_unique<NcclReducer>(comm);
  io::EquationFileInfo info;
  collective(comm, [&] { info = io::inspect_equation_file(path); });

  Equations block;
  std::optional<Fitter> fitter;
  collective(comm, [&] {
    // The first row fixes p and the feature names for the Fitter.
    Equations layout = io::read_equation_rows(path, 0, std::min<std::int64_t>(1, info.m));
    layout.keep_features(feature_columns);
    fitter.emplace(options, layout, info.m);
    const auto [begin, end] = point_block(info.m, comm.rank(), comm.size());
    block = io::read_equation_rows(path, begin, end);
    block.keep_features(feature_columns);
  });
  return fit_blocks(comm, nccl.get(), *fitter, block, info.m, info.p, options, tuning);
}

FitResult fit_distributed(const Communicator& comm, const Equations& layout, const Equations& block,
                          std::int64_t m_total, const FitOptions& options, const SolverTuning& tuning) {
  std::unique_ptr<NcclReducer> nccl;
  if (tuning.reduce == ReduceBackend::nccl) nccl = std::make_unique<NcclReducer>(comm);
  std::optional<Fitter> fitter;
  collective(comm, [&] { fitter.emplace(options, layout, m_total); });
  return fit_blocks(comm, nccl.get(), *fitter, block, m_total, layout.p(), options, tuning);
}

}  // namespace gradmatch::distributed
