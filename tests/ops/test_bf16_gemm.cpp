// bf16 x bf16 -> float32 products (oneDNN's, found at run time) against the float64 product of the
// widened inputs: every bf16 product is exact in float32, so only summation order differs. Plain,
// transposed and sliced operands; the TTT chunk update through it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipt/common/torch_compat.h"
#include "ipt/ops/gemm/bf16_gemm.h"
#include "ipt/ops/ttt/ttt.h"

using namespace ipt;

namespace {

bool available_or_skip() {
  if (ops::bf16_gemm_available()) return true;
#if !IPT_TORCH2
  // Debian's libtorch links oneDNN as a shared library: on an AVX-512 CPU it must be found.
  EXPECT_FALSE(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
      << "oneDNN's bf16 GEMM was not found or refused this AVX-512 CPU";
#endif
  return false;
}

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

}  // namespace

TEST(Bf16Gemm, MatchesTheFloat64ProductOfTheWidenedInputs) {
  if (!available_or_skip()) GTEST_SKIP() << "no bf16 GEMM in this process";
  torch::manual_seed(1);
  auto bf16 = [](std::vector<int64_t> shape) { return torch::randn(shape).to(torch::kBFloat16); };
  struct Case {
    const char* name;
    torch::Tensor a, b;
  };
  torch::Tensor wide = bf16({40, 90});
  std::vector<Case> cases{{"plain", bf16({37, 64}), bf16({64, 29})},
                          {"a transposed", bf16({64, 37}).t(), bf16({64, 29})},
                          {"b transposed", bf16({37, 64}), bf16({29, 64}).t()},
                          {"both transposed", bf16({512, 576}).t(), bf16({1536, 512}).t()},
                          {"column slices", wide.narrow(1, 3, 50), bf16({50, 7})},
                          {"one row", bf16({1, 33}), bf16({33, 5})},
                          {"one column", bf16({6, 33}), bf16({33, 1})},
                          {"odd strides (copied)", bf16({20, 30}).slice(1, 0, 30, 2), bf16({15, 4})}};
  for (const Case& c : cases) {
    torch::Tensor ours = ops::mm_bf16(c.a, c.b);
    ASSERT_EQ(ours.scalar_type(), torch::kFloat32) << c.name;
    torch::Tensor ref = torch::mm(c.a.to(torch::kFloat64), c.b.to(torch::kFloat64));
    EXPECT_LE(rel(ours.to(torch::kFloat64), ref), 1e-6) << c.name;
  }
  EXPECT_EQ(ops::mm_bf16(bf16({3, 0}), bf16({0, 4})).abs().sum().item<float>(), 0.0f);  // empty sum
  EXPECT_THROW(ops::mm_bf16(bf16({3, 4}), bf16({5, 2})), std::exception);
  EXPECT_THROW(ops::mm_bf16(torch::randn({3, 4}), bf16({4, 2})), std::exception);
}

TEST(Bf16Gemm, ChunkUpdateOfBf16RowsIsTheFloat32Update) {
  if (!available_or_skip()) GTEST_SKIP() << "no bf16 GEMM in this process";
  torch::manual_seed(2);
  torch::Tensor Z = torch::randn({64, 96}).to(torch::kBFloat16), V = torch::randn({64, 48}).to(torch::kBFloat16);
  for (double clip : {0.0, 0.5}) {
    torch::Tensor ours = ttt::chunk_delta(Z, V, 0.3, clip);
    ASSERT_EQ(ours.scalar_type(), torch::kFloat32);
    torch::Tensor ref = ttt::chunk_delta(Z.to(torch::kFloat64), V.to(torch::kFloat64), 0.3, clip);
    EXPECT_LE(rel(ours.to(torch::kFloat64), ref), 1e-6) << "clip " << clip;
  }
}
