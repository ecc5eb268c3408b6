// The cost of one IGR probe step (appendix H.5) against its budget: a probe
// step is one flow-vs-GD row (training/trajectory.hpp flow_deviation): g and
// H g by double backprop, the GD step, and an RK4 reference of k substeps.
// Its budget is the cost of 4k + 2 gradient evaluations; the target is a
// ratio of at most 1.2. scripts/bench_igr_probe.sh runs this and prints the
// ratio per configuration (time(ProbeStep) / ((4k + 2) time(Gradient))).
//
// Problem: the paper's probe -- a bias-free tanh MLP 784 -> 5 x width -> 10
// with cross-entropy on 2048 examples (Gaussian inputs here, so no data
// files are needed), float64, one thread.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "../training/igr_problems.hpp"
#include "training/objective.hpp"
#include "training/trajectory.hpp"

namespace {

using namespace gradmatch::training;

struct Problem {
  ModelHandle model;
  Dataset data;
};

Problem make_problem(std::int64_t width, std::int64_t examples) {
  Problem p{testing::tanh_classifier(784, std::vector<std::int64_t>(5, width), 10, 7),
            testing::class_data(examples, 784, 10, 8)};
  return p;
}

void BM_Gradient(benchmark::State& state) {
  const Problem problem = make_problem(state.range(0), state.range(1));
  const Objective f(problem.model, problem.data, LossKind::cross_entropy);
  const at::Tensor theta = f.current();
  for (auto _ : state) benchmark::DoNotOptimize(f.gradient(theta));
  state.counters["p"] = static_cast<double>(f.p());
}

void BM_GradientAndHvp(benchmark::State& state) {
  const Problem problem = make_problem(state.range(0), state.range(1));
  const Objective f(problem.model, problem.data, LossKind::cross_entropy);
  const at::Tensor theta = f.current();
  for (auto _ : state) benchmark::DoNotOptimize(f.gradient_and_hvp(theta).hvp);
}

void BM_ProbeStep(benchmark::State& state) {
  const Problem problem = make_problem(state.range(0), state.range(1));
  const Objective f(problem.model, problem.data, LossKind::cross_entropy);
  const at::Tensor theta = f.current();
  const std::int64_t k = state.range(2);
  for (auto _ : state) benchmark::DoNotOptimize(flow_deviation(f, theta, 0.01, Integrator::rk4, k).target);
  state.counters["k"] = static_cast<double>(k);
}

// {width, examples} and {width, examples, k}.
void shapes(benchmark::internal::Benchmark* b, bool with_k) {
  for (const std::int64_t width : {50, 100, 200})
    for (const std::int64_t k : {2, 10}) {
      if (with_k)
        b->Args({width, 2048, k});
      else if (k == 2)
        b->Args({width, 2048});
    }
  b->Unit(benchmark::kMillisecond)->MinTime(0.5);
}

BENCHMARK(BM_Gradient)->Apply([](benchmark::internal::Benchmark* b) { shapes(b, false); });
BENCHMARK(BM_GradientAndHvp)->Apply([](benchmark::internal::Benchmark* b) { shapes(b, false); });
BENCHMARK(BM_ProbeStep)->Apply([](benchmark::internal::Benchmark* b) { shapes(b, true); });

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
