// Single-thread decode matvec over weight-quantized matrices (ipt/ops/quant): GB/s of weight bytes
// streamed, per type and kernel, for the model's MLP shape (1536 x 576) and its vocabulary
// projection (49152 x 576). "hot": the same matrix again and again (it stays in L2 or L3 where it
// fits); "cold": cycling through copies of it totalling 256 MB, so every call reads DRAM, as decode
// does with a model larger than the cache.
#include <benchmark/benchmark.h>

#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "ipt/ops/quant/quant.h"

namespace {

namespace q = ipt::ops::quant;

// `copies` copies of a random [rows, cols] matrix of type t (the last ones asked for, kept).
const std::vector<q::Matrix>& matrices(q::Type t, int64_t rows, int64_t cols, int64_t copies) {
  static std::map<std::tuple<q::Type, int64_t, int64_t, int64_t>, std::vector<q::Matrix>> cache;
  auto it = cache.find({t, rows, cols, copies});
  if (it == cache.end()) {
    cache.clear();  // one set at a time
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    std::vector<float> W(rows * cols);
    for (auto& v : W) v = normal(rng) * 0.02f;
    std::vector<q::Matrix> ms;
    ms.push_back(q::Matrix::quantize(W.data(), rows, cols, t));
    for (int64_t c = 1; c < copies; ++c) ms.push_back(q::Matrix::from_blocks(t, rows, cols, ms[0].data()));
    it = cache.emplace(std::make_tuple(t, rows, cols, copies), std::move(ms)).first;
  }
  return it->second;
}

void BM_QuantMatvec(benchmark::State& state, q::Type t, q::Kernel k) {
  if (!q::kernel_supported(k)) {
    state.SkipWithError("kernel not supported on this CPU");
    return;
  }
  const int64_t rows = state.range(0), cols = state.range(1);
  const bool cold = state.range(2) != 0;
  const int64_t bytes = q::row_bytes(t, cols) * rows;
  const auto& Ws = matrices(t, rows, cols, cold ? (int64_t{256} << 20) / bytes + 1 : 1);
  std::vector<float> x(cols, 0.5f), y(rows);
  q::Activation a;
  a.set(x.data(), cols);
  size_t next = 0;
  for (auto _ : state) {
    q::matvec(Ws[next], a, y.data(), 0, rows, k);
    next = next + 1 == Ws.size() ? 0 : next + 1;
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(bytes) * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

void BM_QuantActivationSet(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<float> x(n, 0.25f);
  q::Activation a;
  for (auto _ : state) {
    a.set(x.data(), n);
    benchmark::DoNotOptimize(a.q8());
  }
}

void matvec_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "cold"});
  for (int64_t rows : {1536, 49152})
    for (int64_t cold : {0, 1}) b->Args({rows, 576, cold});
}

}  // namespace

#define IPT_QUANT_BENCH(type, kernel)                                                                    \
  BENCHMARK_CAPTURE(BM_QuantMatvec, type##_##kernel, q::Type::k##type, q::Kernel::k##kernel)->Apply(matvec_args) \
      ->Unit(benchmark::kMicrosecond)

IPT_QUANT_BENCH(F32, Scalar);
IPT_QUANT_BENCH(F32, Avx2);
IPT_QUANT_BENCH(F32, Avx512);
IPT_QUANT_BENCH(BF16, Scalar);
IPT_QUANT_BENCH(BF16, Avx2);
IPT_QUANT_BENCH(BF16, Avx512);
IPT_QUANT_BENCH(Q8_0, Scalar);
IPT_QUANT_BENCH(Q8_0, Avx2);
IPT_QUANT_BENCH(Q8_0, Avx512);
IPT_QUANT_BENCH(Q4_0, Scalar);
IPT_QUANT_BENCH(Q4_0, Avx2);
IPT_QUANT_BENCH(Q4_0, Avx512);
IPT_QUANT_BENCH(Q4_1, Scalar);
IPT_QUANT_BENCH(Q4_1, Avx2);
IPT_QUANT_BENCH(Q4_1, Avx512);
BENCHMARK(BM_QuantActivationSet)->Arg(576)->Arg(1536);
