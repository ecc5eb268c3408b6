// NCCL all-reduces of the distributed fits: equal to the MPI path (with
// NCCL and a GPU, label `gpu`), and refused naming the flag in builds
// without NCCL.
#include "distributed/nccl.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>

#include "core/errors.hpp"
#include "core/problems.hpp"
#include "core/rng.hpp"
#include "distributed/distributed_fit.hpp"
#include "io/equation_file.hpp"

namespace gradmatch::distributed {
namespace {

TEST(NcclReduce, ParsesTheBackendsAndRejectsOthers) {
  EXPECT_EQ(parse_reduce_backend("mpi"), ReduceBackend::mpi);
  EXPECT_EQ(parse_reduce_backend("nccl"), ReduceBackend::nccl);
  EXPECT_THROW(parse_reduce_backend("gloo"), InputError);
}

TEST(NcclReduce, ABuildWithoutNcclRefusesItNamingTheFlag) {
  // Nothing to refuse in an NCCL build. Not a skip: the MPI test's skip
  // pattern would then report the whole binary skipped, hiding a failure of
  // SumsAndFitsEqualTheMpiPath.
  if (nccl_built_in()) return;
  const Communicator world;
  try {
    NcclReducer reducer(world);
    ADD_FAILURE() << "an NCCL reducer was built without NCCL";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--reduce nccl: this gradmatch was built without NCCL"), std::string::npos)
        << e.what();
  }
}

TEST(NcclReduce, SumsAndFitsEqualTheMpiPath) {
  if (!nccl_built_in()) GTEST_SKIP() << "built without NCCL";
  const Communicator world;
  std::unique_ptr<NcclReducer> nccl;
  try {
    nccl = std::make_unique<NcclReducer>(world);
  } catch (const CollectiveFailure& e) {
    GTEST_SKIP() << e.what();  // no GPU on this machine
  }
  Rng rng(3, static_cast<std::uint64_t>(world.rank()));
  std::vector<double> a(1000);
  for (double& v : a) v = rng.normal();
  std::vector<double> b = a;
  world.allreduce_sum(a);
  nccl->allreduce_sum(b);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12 * (1.0 + std::abs(a[i])));

  // The Gram path (ridge, --method normal) and the structured sym solve.
  Rng prng(41, 0);
  const Equations eq = problems::random_sym(prng, 31, 7);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("gradmatch_nccl_np" + std::to_string(world.size()) + ".h5")).string();
  collective(world, [&] {
    if (world.is_root()) io::write_equation_file(path, eq);
  });
  world.barrier();
  for (const auto& [family, method] : {std::pair{"ridge", "normal"}, std::pair{"sym", "structured"}}) {
    FitOptions o;
    o.family = FamilySpec::parse(family);
    o.method = parse_method(method);
    SolverTuning by_mpi, by_nccl;
    by_nccl.reduce = ReduceBackend::nccl;
    const FitResult x = fit_equation_file(world, path, o, by_mpi);
    const FitResult y = fit_equation_file(world, path, o, by_nccl);
    ASSERT_EQ(x.coefficients.size(), y.coefficients.size());
    for (std::size_t i = 0; i < x.coefficients.size(); ++i)
      EXPECT_NEAR(x.coefficients[i], y.coefficients[i], 1e-12 * (1.0 + std::abs(x.coefficients[i]))) << family;
    EXPECT_NEAR(x.residual_ratio, y.residual_ratio, 1e-12) << family;
  }
  world.barrier();
  if (world.is_root()) std::filesystem::remove(path);
}

}  // namespace
}  // namespace gradmatch::distributed
