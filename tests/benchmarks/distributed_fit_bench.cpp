// Distributed `fit` benchmark (scripts/bench_distributed_fit.sh runs it under
// mpirun at 1, 2 and 4 ranks and prints the table of docs/performance.md).
//
//   distributed_fit_bench generate-sym FILE M P
//       consistent sym equations (Lambda SPD, 10% noise on the target)
//   distributed_fit_bench generate-features FILE M P R
//       R candidate features, target = sum_i c_i F_i + 10% noise
//   distributed_fit_bench fit FILE FAMILY METHOD [--serial] [--repeat N] [--scalapack-min-p N]
//       times distributed::fit_equation_file (parallel read + solve) from a
//       barrier to a barrier, best of N; with --serial (run it at one rank)
//       also times read_equation_file + core fit(). Rank 0 prints one JSON
//       object with the times and every coefficient, for the script to
//       compare against the serial ones.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "core/fit.hpp"
#include "core/problems.hpp"
#include "core/rng.hpp"
#include "distributed/distributed_fit.hpp"
#include "io/equation_file.hpp"

namespace {

using namespace gradmatch;

void print_coefficients(const char* key, const std::vector<double>& c) {
  std::printf(", \"%s\": [", key);
  for (std::size_t i = 0; i < c.size(); ++i) std::printf(i ? ",%.17g" : "%.17g", c[i]);
  std::printf("]");
}

int generate(const std::string& kind, const std::string& path, std::int64_t m, std::int64_t p, std::int64_t r) {
  Rng rng(2024, 0);
  Equations eq;
  if (kind == "generate-sym") {
    const Matrix lambda = problems::random_spd(rng, p, 100.0, 0.01);
    eq = problems::consistent_sym(rng, lambda, m);
  } else {
    eq.theta = problems::gaussian(rng, m, p);
    eq.grad_loss = Matrix(m, p);
    for (std::int64_t i = 0; i < r; ++i) {
      std::string name("f");  // built with += (GCC 12 -Wrestrict on "lit" + std::string&&)
      name += std::to_string(i);
      eq.features.emplace_back(name, problems::gaussian(rng, m, p));
      const double c = 0.5 + 0.1 * static_cast<double>(i);
      const Matrix& f = eq.features.back().second;
      for (std::int64_t k = 0; k < m * p; ++k) eq.grad_loss.data()[k] -= c * f.data()[k];
    }
  }
  double norm = 0.0;
  for (double v : eq.grad_loss.values()) norm += v * v;
  const double sd = 0.1 * std::sqrt(norm / static_cast<double>(eq.grad_loss.size()));
  const Matrix noise = problems::gaussian(rng, m, p, sd);
  for (std::int64_t k = 0; k < m * p; ++k) eq.grad_loss.data()[k] += noise.data()[k];
  io::write_equation_file(path, eq);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  mpi::Environment env(&argc, &argv);
  const mpi::Communicator world;
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() >= 4 && (args[0] == "generate-sym" || args[0] == "generate-features")) {
      if (!world.is_root()) return 0;
      return generate(args[0], args[1], std::stoll(args[2]), std::stoll(args[3]),
                      args.size() > 4 ? std::stoll(args[4]) : 0);
    }
    if (args.size() < 4 || args[0] != "fit") {
      if (world.is_root())
        std::cerr << "usage: distributed_fit_bench generate-sym FILE M P | generate-features FILE M P R |\n"
                     "       fit FILE FAMILY METHOD [--serial] [--repeat N] [--scalapack-min-p N]\n";
      return 2;
    }
    FitOptions options;
    options.family = FamilySpec::parse(args[2]);
    options.method = parse_method(args[3]);
    distributed::SolverTuning tuning;
    bool serial = false;
    int repeat = 1;
    for (std::size_t i = 4; i < args.size(); ++i) {
      if (args[i] == "--serial") serial = true;
      else if (args[i] == "--repeat" && i + 1 < args.size()) repeat = std::stoi(args[++i]);
      else if (args[i] == "--scalapack-min-p" && i + 1 < args.size()) tuning.structured_scalapack_min_p = std::stoll(args[++i]);
    }
    double best = 1e300;
    FitResult result;
    for (int i = 0; i < repeat; ++i) {
      world.barrier();
      const double t0 = MPI_Wtime();
      result = distributed::fit_equation_file(world, args[1], options, tuning);
      world.barrier();
      best = std::min(best, MPI_Wtime() - t0);
    }
    if (!world.is_root()) return 0;
    std::printf("{\"ranks\": %d, \"family\": \"%s\", \"method\": \"%s\", \"m\": %lld, \"p\": %lld, \"seconds\": %.6f",
                world.size(), result.family.c_str(), result.method.c_str(), static_cast<long long>(result.m),
                static_cast<long long>(result.p), best);
    print_coefficients("coefficients", result.coefficients);
    if (serial) {
      double serial_best = 1e300;
      FitResult s;
      for (int i = 0; i < repeat; ++i) {
        const double t0 = MPI_Wtime();
        const Equations eq = io::read_equation_file(args[1]);
        s = fit(eq, options);
        serial_best = std::min(serial_best, MPI_Wtime() - t0);
      }
      std::printf(", \"serial_seconds\": %.6f", serial_best);
      print_coefficients("serial_coefficients", s.coefficients);
    }
    std::printf("}\n");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "distributed_fit_bench (rank " << world.rank() << "): " << e.what() << std::endl;
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}
