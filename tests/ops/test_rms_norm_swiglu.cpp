// The fused RMSNorm and SwiGLU passes against their tensor expressions: float32 against the
// expression in float64 (values and gradients), bfloat16 against the expression on the same
// bfloat16 inputs and no further from float64 than it.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipt/common/error.h"
#include "ipt/ops/activation/swiglu.h"
#include "ipt/ops/norm/rms_norm.h"

using namespace ipt;

namespace {

double max_rel(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.to(torch::kFloat64), y = b.to(torch::kFloat64);
  return ((x - y).abs().max() / y.abs().max().clamp_min(1e-30)).item<double>();
}

struct Grads {
  torch::Tensor out, d0, d1;
};

// out, and the gradients of sum(out * probe) with respect to both inputs.
template <typename F>
Grads run(F f, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& probe) {
  torch::Tensor x = a.detach().clone().set_requires_grad(true), y = b.detach().clone().set_requires_grad(true);
  torch::Tensor out = f(x, y);
  (out * probe.to(out.scalar_type())).sum().backward();
  return {out.detach(), x.grad(), y.grad()};
}

}  // namespace

TEST(RmsNorm, Float32MatchesTheExpressionInFloat64) {
  torch::manual_seed(1);
  for (auto shape : {std::vector<int64_t>{3, 70, 576}, {5, 37}, {130, 64}}) {
    torch::Tensor x = torch::randn(shape) * 3, w = torch::randn({shape.back()});
    torch::Tensor probe = torch::randn(shape);
    auto fused = run([](auto a, auto b) { return ops::rms_norm(a, b, 1e-5); }, x, w, probe);
    auto exact = run([](auto a, auto b) { return ops::rms_norm_reference(a, b, 1e-5); }, x.to(torch::kFloat64),
                     w.to(torch::kFloat64), probe.to(torch::kFloat64));
    EXPECT_EQ(fused.out.scalar_type(), torch::kFloat32);
    EXPECT_LT(max_rel(fused.out, exact.out), 1e-6);
    EXPECT_LT(max_rel(fused.d0, exact.d0), 1e-5);
    EXPECT_LT(max_rel(fused.d1, exact.d1), 1e-5);
  }
}

TEST(RmsNorm, BFloat16RoundsAsTheExpression) {
  torch::manual_seed(2);
  torch::Tensor x = (torch::randn({2, 100, 576}) * 2).to(torch::kBFloat16);
  torch::Tensor w = (1 + 0.1 * torch::randn({576})).to(torch::kBFloat16);
  torch::Tensor probe = torch::randn({2, 100, 576});
  auto fused = run([](auto a, auto b) { return ops::rms_norm(a, b, 1e-6); }, x, w, probe);
  auto expr = run([](auto a, auto b) { return ops::rms_norm_reference(a, b, 1e-6); }, x, w, probe);
  auto exact = run([](auto a, auto b) { return ops::rms_norm_reference(a, b, 1e-6); }, x.to(torch::kFloat64),
                   w.to(torch::kFloat64), probe.to(torch::kFloat64));
  EXPECT_EQ(fused.out.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(fused.d0.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(fused.d1.scalar_type(), torch::kBFloat16);
  // Same roundings: at most one bf16 ulp apart element by element (2^-8 relative), most equal.
  const torch::Tensor diff = (fused.out.to(torch::kFloat32) - expr.out.to(torch::kFloat32)).abs();
  EXPECT_TRUE((diff <= expr.out.to(torch::kFloat32).abs() * (1.0 / 128) + 1e-30).all().item<bool>());
  EXPECT_GT((diff == 0).to(torch::kFloat64).mean().item<double>(), 0.95);
  for (auto [f, e, d] : {std::tuple{fused.out, expr.out, exact.out}, {fused.d0, expr.d0, exact.d0},
                         {fused.d1, expr.d1, exact.d1}}) {
    EXPECT_LT(max_rel(f, e), 2e-2);
    EXPECT_LT(max_rel(f, d), 1.5 * max_rel(e, d) + 1e-3);
  }
}

TEST(RmsNorm, NonContiguousInputFrozenGainAndThreadCounts) {
  torch::manual_seed(3);
  torch::Tensor base = torch::randn({64, 3, 200});
  torch::Tensor x = base.transpose(0, 1).set_requires_grad(true);  // [3, 64, 200], not contiguous
  torch::Tensor w = torch::randn({200});                             // no gradient wanted
  torch::Tensor y = ops::rms_norm(x, w, 1e-6);
  y.pow(2).sum().backward();
  torch::Tensor x64 = x.detach().to(torch::kFloat64).set_requires_grad(true);
  ops::rms_norm_reference(x64, w.to(torch::kFloat64), 1e-6).pow(2).sum().backward();
  EXPECT_LT(max_rel(x.grad(), x64.grad()), 1e-5);
  // The gain's gradient sums per fixed block of rows: the same bits with 1 and 2 threads.
  const int threads = at::get_num_threads();
  torch::Tensor probe = torch::randn({300, 200});
  torch::Tensor rows = torch::randn({300, 200}), gain = torch::randn({200});
  at::set_num_threads(1);
  auto one = run([](auto a, auto b) { return ops::rms_norm(a, b, 1e-6); }, rows, gain, probe);
  at::set_num_threads(2);
  auto two = run([](auto a, auto b) { return ops::rms_norm(a, b, 1e-6); }, rows, gain, probe);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one.d1, two.d1));
  EXPECT_TRUE(torch::equal(one.d0, two.d0));
}

TEST(RmsNorm, RefusesAGainOfTheWrongSize) {
  EXPECT_THROW(ops::rms_norm(torch::randn({4, 8}), torch::ones({7}), 1e-6), Error);
  EXPECT_THROW(ops::rms_norm(torch::randn({4, 8}), torch::ones({2, 4}), 1e-6), Error);
}

TEST(Swiglu, Float32MatchesTheExpressionInFloat64) {
  torch::manual_seed(4);
  for (auto shape : {std::vector<int64_t>{2, 33, 1536}, {7, 13}}) {
    torch::Tensor g = torch::randn(shape) * 4, u = torch::randn(shape);
    g.view(-1)[0] = 95.0f;  // far tails: sigmoid saturates without overflow
    g.view(-1)[1] = -95.0f;
    torch::Tensor probe = torch::randn(shape);
    auto fused = run([](auto a, auto b) { return ops::swiglu(a, b); }, g, u, probe);
    auto exact = run([](auto a, auto b) { return ops::swiglu_reference(a, b); }, g.to(torch::kFloat64),
                     u.to(torch::kFloat64), probe.to(torch::kFloat64));
    EXPECT_TRUE(torch::isfinite(fused.out).all().item<bool>());
    EXPECT_LT(max_rel(fused.out, exact.out), 1e-6);
    EXPECT_LT(max_rel(fused.d0, exact.d0), 1e-6);
    EXPECT_LT(max_rel(fused.d1, exact.d1), 1e-6);
    // element by element too (relative to each value's own scale)
    EXPECT_TRUE(torch::allclose(fused.d0.to(torch::kFloat64), exact.d0, 1e-5, 1e-6));
  }
}

TEST(Swiglu, BFloat16RoundsAsTheExpression) {
  torch::manual_seed(5);
  torch::Tensor g = (torch::randn({3, 50, 1536}) * 3).to(torch::kBFloat16);
  torch::Tensor u = torch::randn({3, 50, 1536}).to(torch::kBFloat16);
  torch::Tensor probe = torch::randn({3, 50, 1536});
  auto fused = run([](auto a, auto b) { return ops::swiglu(a, b); }, g, u, probe);
  auto expr = run([](auto a, auto b) { return ops::swiglu_reference(a, b); }, g, u, probe);
  auto exact = run([](auto a, auto b) { return ops::swiglu_reference(a, b); }, g.to(torch::kFloat64),
                   u.to(torch::kFloat64), probe.to(torch::kFloat64));
  EXPECT_EQ(fused.out.scalar_type(), torch::kBFloat16);
  for (auto [f, e, d] : {std::tuple{fused.out, expr.out, exact.out}, {fused.d0, expr.d0, exact.d0},
                         {fused.d1, expr.d1, exact.d1}}) {
    EXPECT_LT(max_rel(f, e), 2e-2);
    EXPECT_LT(max_rel(f, d), 1.5 * max_rel(e, d) + 1e-3);
    // On average no further from float64 than the expression (libtorch 1.13's bf16 silu rounds
    // sigmoid before the product, so the two need not agree bit for bit).
    auto mean_error = [&](const torch::Tensor& t) { return (t.to(torch::kFloat64) - d).abs().mean().item<double>(); };
    EXPECT_LE(mean_error(f), 1.05 * mean_error(e));
  }
}

TEST(Swiglu, OtherTypesRunTheExpressionAndShapesMustAgree) {
  torch::Tensor g = torch::randn({4, 6}, torch::kFloat64), u = torch::randn({4, 6}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(ops::swiglu(g, u), ops::swiglu_reference(g, u)));
  EXPECT_THROW(ops::swiglu(torch::randn({4, 6}), torch::randn({4, 5})), Error);
}
