#include "distributed/distributed_fit.hpp"

#include "io/equation_file.hpp"

namespace gradmatch::distributed {

FitResult fit_equation_file(const Communicator& comm, const std::string& path, const FitOptions& options) {
  io::EquationFileInfo info;
  collective(comm, [&] { info = io::inspect_equation_file(path); });

  Equations block;
  std::optional<Fitter> fitter;
  bool all_rows = false;
  collective(comm, [&] {
    // The first row fixes p and the feature names for the Fitter.
    const Equations layout = io::read_equation_rows(path, 0, std::min<std::int64_t>(1, info.m));
    fitter.emplace(options, layout, info.m);
    all_rows = fitter->needs_all_rows();
    const auto [begin, end] = all_rows ? std::pair<std::int64_t, std::int64_t>{0, info.m}
                                       : block_range(info.m, comm.rank(), comm.size());
    block = io::read_equation_rows(path, begin, end);
  });

  std::vector<double> stats;
  collective(comm, [&] {
    if (all_rows) fitter->solve_all(block);
    else stats = fitter->statistics(block);
  });
  if (!all_rows) {
    comm.allreduce_sum(stats);
    collective(comm, [&] { fitter->solve(stats); });
  }

  std::vector<double> sums;
  collective(comm, [&] {
    // With all rows on every rank, rank 0 alone contributes the residual sums.
    sums = fitter->residual_sums((all_rows && comm.rank() != 0) ? block.rows(0, 0) : block);
  });
  comm.allreduce_sum(sums);
  FitResult result;
  collective(comm, [&] { result = fitter->result(sums); });
  return result;
}

}  // namespace gradmatch::distributed
