// Uses the installed package: core (statistics, the checked LAPACK
// narrowing, the generated build information), mpi and io.
#include <cmath>
#include <cstdio>
#include <string>

#include "core/build_info.hpp"
#include "core/lapack.hpp"
#include "core/statistics.hpp"
#include "io/equation_file.hpp"
#include "mpi/mpi.hpp"

int main() {
  const double median = gradmatch::stats::finite_median({4.0, 1.0, 3.0, 2.0, std::nan("")});
  const std::string version(gradmatch::build_info::version);
  std::printf("gradmatch %s: median %g, t(0.975, 4) %.9f, narrow %d, %s, %s\n", version.c_str(), median,
              gradmatch::stats::t_quantile_975(4), gradmatch::lapack::narrow(7, "consumer"),
              gradmatch::io::kEquationFormat, gradmatch::mpi::thread_level_name(MPI_THREAD_FUNNELED).c_str());
  return 0;
}
