#include "distributed/distributed_fit.hpp"

#include <memory>
#include <optional>

#include "io/equation_file.hpp"

namespace gradmatch::distributed {

FitResult fit_equation_file(const Communicator& comm, const std::string& path, const FitOptions& options,
                            const SolverTuning& tuning) {
  // NCCL first: a build without it refuses before reading anything.
  std::unique_ptr<NcclReducer> nccl;
  if (tuning.reduce == ReduceBackend::nccl) nccl = std::make_unique<NcclReducer>(comm);
  io::EquationFileInfo info;
  collective(comm, [&] { info = io::inspect_equation_file(path); });

  Equations block;
  std::optional<Fitter> fitter;
  collective(comm, [&] {
    // The first row fixes p and the feature names for the Fitter.
    const Equations layout = io::read_equation_rows(path, 0, std::min<std::int64_t>(1, info.m));
    fitter.emplace(options, layout, info.m);
    const auto [begin, end] = point_block(info.m, comm.rank(), comm.size());
    block = io::read_equation_rows(path, begin, end);
  });

  const Method method = fitter->method();
  const bool sym = options.family.kind == FamilyKind::sym;
  // Each solver is collective and agrees on failure inside; the outer
  // collective() passes such an agreed failure on unchanged.
  if (method == Method::qr) {
    collective(comm, [&] {
      const ColumnQrSolution s =
          solve_columns_qr(comm, options.family, block, info.m, options.normalize, fitter->rcond(), tuning);
      fitter->set_column_solution(s.gram, s.rhs, s.solution);
    });
  } else if (method == Method::vech || method == Method::vech_plain) {
    collective(comm, [&] {
      const auto coords = method == Method::vech ? VechCoordinates::isometric : VechCoordinates::plain;
      fitter->set_symmetric_solution(
          solve_vech_distributed(comm, block, info.m, fitter->rcond(), coords, tuning).solution);
    });
  } else if (sym && info.p >= tuning.structured_scalapack_min_p) {
    collective(comm, [&] {
      fitter->set_symmetric_solution(solve_structured_scalapack(comm, block, info.m, fitter->rcond(), tuning));
    });
  } else {
    std::vector<double> stats;
    collective(comm, [&] { stats = fitter->statistics(block); });
    allreduce_sum(comm, nccl.get(), stats);
    collective(comm, [&] { fitter->solve(stats); });
  }

  std::vector<double> sums;
  collective(comm, [&] { sums = fitter->residual_sums(block); });
  allreduce_sum(comm, nccl.get(), sums);
  FitResult result;
  collective(comm, [&] { result = fitter->result(sums); });
  return result;
}

}  // namespace gradmatch::distributed
