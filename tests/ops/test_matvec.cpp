// The decode matrix-vector kernels against float64 products of the same bf16 values, for every
// build of the loop this CPU runs, odd sizes (tails) and strided rows (a KV cache's prefix).
#include <gtest/gtest.h>

#include "ipt/ops/matvec/matvec.h"

using namespace ipt;

namespace {

const std::vector<std::pair<ops::MatvecKernel, const char*>> kKernels = {
    {ops::MatvecKernel::kScalar, "scalar"}, {ops::MatvecKernel::kAvx2, "avx2"}, {ops::MatvecKernel::kAvx512, "avx512"},
    {ops::MatvecKernel::kBest, "best"}};

// Within one bf16 rounding of the float64 value (float32 accumulation is far finer).
void expect_close(const torch::Tensor& got, const torch::Tensor& want, const char* what) {
  ASSERT_EQ(got.scalar_type(), torch::kBFloat16) << what;
  const torch::Tensor err = (got.to(torch::kFloat64) - want).abs();
  const torch::Tensor allowed = want.abs() * (1.0 / 128) + 1e-6 * want.abs().max();
  EXPECT_TRUE((err <= allowed).all().item<bool>()) << what << ": max error " << err.max().item<double>();
}

}  // namespace

TEST(Matvec, Bf16KernelsMatchFloat64) {
  torch::manual_seed(1);
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 31}, {70, 83}, {129, 576}, {300, 1536}}) {
    const torch::Tensor big = torch::randn({n, k + 5}).to(torch::kBFloat16);
    const torch::Tensor W = big.narrow(1, 2, k);  // rows strided by k + 5
    const torch::Tensor x = torch::randn({k});
    const torch::Tensor want = torch::mv(W.to(torch::kFloat64), x.to(torch::kFloat64));
    const torch::Tensor xs = torch::randn({n});
    const torch::Tensor want_t = torch::mv(W.to(torch::kFloat64).t(), xs.to(torch::kFloat64));
    for (auto [kernel, name] : kKernels) {
      if (!ops::matvec_kernel_supported(kernel)) continue;
      expect_close(ops::matvec(W, x, kernel), want, name);
      expect_close(ops::matvec(W, x.to(torch::kBFloat16), kernel), torch::mv(W.to(torch::kFloat64),
                   x.to(torch::kBFloat16).to(torch::kFloat64)), name);
      expect_close(ops::vecmat(xs, W, kernel), want_t, name);
    }
  }
}

TEST(Matvec, OtherTypesGoToLibtorchAndShapesAreChecked) {
  const torch::Tensor W = torch::randn({5, 4}, torch::kFloat64), x = torch::randn({4}, torch::kFloat64);
  EXPECT_TRUE(torch::allclose(ops::matvec(W, x), torch::mv(W, x)));
  EXPECT_TRUE(torch::allclose(ops::vecmat(torch::ones({5}, torch::kFloat64), W), W.sum(0)));
  EXPECT_THROW(ops::matvec(W, torch::randn({5}, torch::kFloat64)), std::exception);
  EXPECT_THROW(ops::vecmat(torch::randn({4}), W.to(torch::kBFloat16)), std::exception);
}
