// Google Benchmark microbenchmarks of the TTT operator at small sizes (the full-size comparison
// with peak memory is `ipt bench op`).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "ipt/ops/ttt/ttt.h"

namespace {

void BM_TttForward(benchmark::State& state, ipt::ttt::Algorithm algorithm) {
  const int64_t L = state.range(0), d = 256, h = 1024, C = 128;
  torch::NoGradGuard no_grad;
  torch::Tensor Z = torch::randn({1, L, h}) * 0.03, V = torch::randn({1, L, d}) * 0.03, W0 = torch::randn({d, h});
  ipt::ttt::Options opt;
  opt.chunk_size = C;
  opt.algorithm = algorithm;
  opt.scan_group = 8;
  for (auto _ : state) benchmark::DoNotOptimize(ipt::ttt::apply(Z, V, W0, opt).out);
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * L * d * h * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(BM_TttForward, reference, ipt::ttt::Algorithm::kReference)->Arg(2048)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TttForward, recurrent, ipt::ttt::Algorithm::kRecurrent)->Arg(2048)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TttForward, scan, ipt::ttt::Algorithm::kScan)->Arg(2048)->Unit(benchmark::kMillisecond);
