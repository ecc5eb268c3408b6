#include "distributed/distributed_fit.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/errors.hpp"
#include "core/problems.hpp"
#include "core/rng.hpp"
#include "io/equation_file.hpp"

namespace gradmatch::distributed {
namespace {

// An equation file shared by all ranks: written by rank 0, then a barrier.
std::string shared_file(const Communicator& world, const Equations& eq, const std::string& name) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("gradmatch_dfit_" + name + "_np" + std::to_string(world.size()) + ".h5")).string();
  collective(world, [&] {
    if (world.is_root()) io::write_equation_file(path, eq);
  });
  world.barrier();
  return path;
}

Equations problem_with_features() {
  Rng rng(40, 0);
  Equations eq = problems::random_sym(rng, 23, 6);
  eq.features = {{"a", problems::gaussian(rng, 23, 6)}, {"b", problems::gaussian(rng, 23, 6)}};
  eq.weights.resize(23);
  for (double& w : eq.weights) w = rng.uniform();
  return eq;
}

TEST(DistributedFit, EveryFamilyAndMethodMatchesTheSerialSolve) {
  const Communicator world;
  const Equations eq = problem_with_features();
  const std::string path = shared_file(world, eq, "families");
  const std::vector<std::pair<std::string, std::string>> cases{
      {"ridge", "qr"},       {"ridge", "normal"},   {"diag", "auto"},          {"sym", "structured"},
      {"sym", "vech"},       {"sym", "vech-plain"}, {"huber:beta=0.5", "normal"}, {"elastic-net:beta=0.5", "qr"},
      {"features", "normal"}};
  for (const auto& [family, method] : cases) {
    FitOptions o;
    o.family = FamilySpec::parse(family);
    o.method = parse_method(method);
    const FitResult serial = fit(eq, o);
    const FitResult dist = fit_equation_file(world, path, o);
    ASSERT_EQ(serial.coefficients.size(), dist.coefficients.size()) << family;
    double scale = 0.0, diff = 0.0;
    for (std::size_t i = 0; i < serial.coefficients.size(); ++i) {
      scale = std::max(scale, std::abs(serial.coefficients[i]));
      diff = std::max(diff, std::abs(serial.coefficients[i] - dist.coefficients[i]));
    }
    EXPECT_LE(diff, 1e-10 * scale) << family << " " << method;
    EXPECT_NEAR(dist.residual_ratio, serial.residual_ratio, 1e-10) << family;
    EXPECT_NEAR(dist.cosine, serial.cosine, 1e-10) << family;
    EXPECT_EQ(dist.n_equations, serial.n_equations);
    EXPECT_EQ(dist.m, 23);
    // Every rank holds the same answer: compare with rank 0's by broadcast.
    std::vector<double> mine = dist.coefficients, root = dist.coefficients;
    if (!world.is_root()) std::fill(root.begin(), root.end(), 0.0);
    world.allreduce_sum(root);  // only rank 0 contributed
    for (std::size_t i = 0; i < mine.size(); ++i) EXPECT_EQ(mine[i], root[i]) << family;
  }
  world.barrier();
  if (world.is_root()) std::filesystem::remove(path);
}

TEST(DistributedFit, SelectedFeatureColumnsMatchTheSerialFitOfThoseColumnsAlone) {
  const Communicator world;
  const Equations eq = problem_with_features();
  const std::string path = shared_file(world, eq, "columns");
  FitOptions o;
  o.family = FamilySpec::parse("features");
  o.method = Method::normal;
  Equations only_b = eq;
  only_b.features.erase(only_b.features.begin());  // "a" out
  const FitResult serial = fit(only_b, o), dist = fit_equation_file(world, path, o, {}, {"b"});
  EXPECT_EQ(dist.names, std::vector<std::string>{"b"});
  ASSERT_EQ(dist.coefficients.size(), 1u);
  EXPECT_NEAR(dist.coefficients[0], serial.coefficients[0], 1e-10 * std::abs(serial.coefficients[0]));
  EXPECT_NEAR(dist.residual_ratio, serial.residual_ratio, 1e-10);
  world.barrier();
  if (world.is_root()) std::filesystem::remove(path);
}

TEST(DistributedFit, RowsHeldByRank0ScatteredAndFittedMatchTheSerialSymFitOnBothPaths) {
  // How a study fits pooled rows it holds on rank 0: scatter_rows cuts them
  // into point blocks, fit_distributed solves them. Both sides of the
  // ScaLAPACK crossover, and more ranks than points (empty blocks).
  const Communicator world;
  for (const std::int64_t m : {std::int64_t{23}, std::int64_t{3}}) {
    Rng rng(41, static_cast<std::uint64_t>(m));
    Equations eq = problems::random_sym(rng, m, 6);
    eq.parameters = {{"w", {2, 3}}};
    Equations layout, block;
    layout.theta = Matrix(0, 6);
    layout.grad_loss = Matrix(0, 6);
    layout.parameters = eq.parameters;
    const Matrix empty;
    block.theta = scatter_rows(world, world.is_root() ? eq.theta : empty, m, 6);
    block.grad_loss = scatter_rows(world, world.is_root() ? eq.grad_loss : empty, m, 6);
    const auto [begin, end] = point_block(m, world.rank(), world.size());
    ASSERT_EQ(block.m(), end - begin);
    for (std::int64_t k = 0; k < block.m(); ++k)
      for (std::int64_t j = 0; j < 6; ++j) {
        EXPECT_EQ(block.theta(k, j), eq.theta(begin + k, j));
        EXPECT_EQ(block.grad_loss(k, j), eq.grad_loss(begin + k, j));
      }
    FitOptions o;
    o.family = FamilySpec::parse("sym");
    const FitResult serial = fit(eq, o);
    for (const std::int64_t crossover : {std::int64_t{0}, std::int64_t{256}}) {
      SolverTuning tuning;
      tuning.structured_scalapack_min_p = crossover;
      const FitResult dist = fit_distributed(world, layout, block, m, o, tuning);
      double scale = 0.0, diff = 0.0;
      for (std::size_t i = 0; i < serial.coefficients.size(); ++i) {
        scale = std::max(scale, std::abs(serial.coefficients[i]));
        diff = std::max(diff, std::abs(serial.coefficients[i] - dist.coefficients[i]));
      }
      EXPECT_LE(diff, 1e-10 * scale) << "m = " << m << ", crossover " << crossover;
      EXPECT_EQ(dist.rank, serial.rank) << m;
      EXPECT_NEAR(dist.residual_ratio, serial.residual_ratio, 1e-10) << m;
      EXPECT_EQ(dist.m, m);
      ASSERT_EQ(dist.parameters.size(), 1u);
      EXPECT_EQ(dist.parameters[0].name, "w");
    }
  }
}

TEST(DistributedFit, BadInputFailsEveryRankWithExitCode2AndWritesNothing) {
  const Communicator world;
  Equations eq = problem_with_features();
  eq.weights[22] = -1.0;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("gradmatch_dfit_bad_np" + std::to_string(world.size()) + ".h5")).string();
  try {
    collective(world, [&] {
      if (world.is_root()) io::write_equation_file(path, eq);
    });
    ADD_FAILURE() << "writing equations with a negative weight should fail";
  } catch (const CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_EQ(f.failed_rank(), 0);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  FitOptions o;
  o.family = FamilySpec::parse("ridge");
  try {
    fit_equation_file(world, path, o);
    ADD_FAILURE() << "fitting a missing file should fail";
  } catch (const CollectiveFailure& f) {
    EXPECT_EQ(f.exit_code(), 2);
    EXPECT_NE(std::string(f.what()).find(path), std::string::npos) << f.what();
  }
}

}  // namespace
}  // namespace gradmatch::distributed
