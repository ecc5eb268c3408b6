// Benchmark: the `sym` family by the structured Lyapunov/eigen solver versus
// the explicit vech design (the paper's way), on the same random problems.
// Each benchmark reports the relative Frobenius distance between the two
// answers as the counter `agreement` (computed once, outside the timing).
// scripts/bench_sym.sh turns the JSON output into the table of docs/performance.md.
#include <benchmark/benchmark.h>

#include <map>

#include "core/fit.hpp"
#include "core/problems.hpp"
#include "core/rng.hpp"

namespace {

using namespace gradmatch;

// One problem per p (m = 2p): a random symmetric Lambda with noisy targets.
const Equations& problem(std::int64_t p, std::int64_t m) {
  static std::map<std::pair<std::int64_t, std::int64_t>, Equations> cache;
  auto it = cache.find({p, m});
  if (it == cache.end()) {
    Rng rng(2026, static_cast<std::uint64_t>(p));
    const Matrix lambda = problems::random_spd(rng, p, 100.0, 0.1);
    Equations eq = problems::consistent_sym(rng, lambda, m);
    for (double& g : eq.grad_loss.values()) g += 0.01 * rng.normal();
    it = cache.emplace(std::make_pair(p, m), std::move(eq)).first;
  }
  return it->second;
}

FitOptions sym_options(const char* method) {
  FitOptions o;
  o.family = FamilySpec::parse("sym");
  o.method = parse_method(method);
  o.sym_standard_error_max_p = 0;  // time the solve, not the O(p^4) standard errors
  return o;
}

double agreement(std::int64_t p, std::int64_t m) {
  const Equations& eq = problem(p, m);
  const Matrix a = fit(eq, sym_options("structured")).lambda_matrix();
  const Matrix b = fit(eq, sym_options("vech")).lambda_matrix();
  return frobenius_distance(a, b) / frobenius_norm(b);
}

void run(benchmark::State& state, const char* method, bool with_agreement) {
  const std::int64_t p = state.range(0), m = state.range(1);
  const Equations& eq = problem(p, m);
  const FitOptions o = sym_options(method);
  for (auto _ : state) benchmark::DoNotOptimize(fit(eq, o));
  state.counters["p"] = static_cast<double>(p);
  state.counters["m"] = static_cast<double>(m);
  if (with_agreement) state.counters["agreement"] = agreement(p, m);
}

void BM_SymStructured(benchmark::State& state) { run(state, "structured", state.range(0) <= 60); }
void BM_SymVech(benchmark::State& state) { run(state, "vech", true); }

BENCHMARK(BM_SymStructured)->Args({10, 20})->Args({30, 60})->Args({60, 120})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SymVech)->Args({10, 20})->Args({30, 60})->Args({60, 120})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SymStructured)->Args({2000, 4000})->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace

BENCHMARK_MAIN();
