// RoPE frequency tables against their closed forms, computed here entry by entry with scalar
// arithmetic, and the rotation's properties.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "ipt/common/error.h"
#include "ipt/ops/rope/rope.h"

using namespace ipt;
using ops::RopeParams;

namespace {
double entry(const torch::Tensor& t, int64_t i) { return t[i].item<double>(); }
}  // namespace

TEST(Rope, DefaultAndLinearTables) {
  RopeParams p;
  p.theta = 10000;
  p.head_dim = 8;
  auto t = ops::rope_table(p);
  ASSERT_EQ(t.inv_freq.size(0), 4);
  EXPECT_DOUBLE_EQ(entry(t.inv_freq, 0), 1.0);
  EXPECT_NEAR(entry(t.inv_freq, 1), 0.1, 1e-15);   // 10000^(-2/8)
  EXPECT_NEAR(entry(t.inv_freq, 2), 0.01, 1e-15);
  EXPECT_NEAR(entry(t.inv_freq, 3), 0.001, 1e-15);
  p.type = "linear";
  p.factor = 4;
  EXPECT_NEAR(entry(ops::rope_table(p).inv_freq, 1), 0.025, 1e-15);
}

TEST(Rope, DynamicGrowsTheBasePastTheOriginalLength) {
  RopeParams p;
  p.type = "dynamic";
  p.theta = 10000;
  p.head_dim = 8;
  p.factor = 2;
  p.max_position_embeddings = 100;
  EXPECT_NEAR(entry(ops::rope_table(p, 50).inv_freq, 1), 0.1, 1e-15);  // within the original length: unchanged
  const double base = 10000 * std::pow(2.0 * 400 / 100 - 1, 8.0 / 6.0);
  EXPECT_NEAR(entry(ops::rope_table(p, 400).inv_freq, 1), std::pow(base, -0.25), 1e-15);
}

TEST(Rope, YarnMatchesItsClosedForm) {
  RopeParams p;
  p.type = "yarn";
  p.theta = 1e6;
  p.head_dim = 64;
  p.factor = 4;
  p.original_max_position_embeddings = 4096;
  auto t = ops::rope_table(p);
  EXPECT_NEAR(t.attention_scaling, 0.1 * std::log(4.0) + 1, 1e-15);
  const double L = 4096, dim = 64;
  const double low = std::floor(dim * std::log(L / (32 * 2 * M_PI)) / (2 * std::log(1e6)));
  const double high = std::ceil(dim * std::log(L / (1 * 2 * M_PI)) / (2 * std::log(1e6)));
  for (int i = 0; i < 32; ++i) {
    const double original = std::pow(1e6, -2.0 * i / dim);
    double ramp = (i - low) / (high - low);
    ramp = std::min(1.0, std::max(0.0, ramp));
    // ramp 0 (fast dims): original frequency; ramp 1 (slow dims): divided by the factor.
    const double expected = original * (1 - ramp) + original / 4 * ramp;
    EXPECT_NEAR(entry(t.inv_freq, i), expected, 1e-15 + 1e-12 * expected) << i;
  }
  EXPECT_DOUBLE_EQ(entry(t.inv_freq, 0), 1.0);
  EXPECT_NEAR(entry(t.inv_freq, 31), std::pow(1e6, -62.0 / 64) / 4, 1e-18);
}

TEST(Rope, Llama3MatchesItsClosedForm) {
  RopeParams p;
  p.type = "llama3";
  p.theta = 500000;
  p.head_dim = 128;
  p.factor = 8;
  p.low_freq_factor = 1;
  p.high_freq_factor = 4;
  p.original_max_position_embeddings = 8192;
  auto t = ops::rope_table(p);
  for (int i = 0; i < 64; ++i) {
    const double f = std::pow(500000.0, -2.0 * i / 128), wavelen = 2 * M_PI / f;
    double expected;
    if (wavelen < 8192.0 / 4) expected = f;            // high frequency: unchanged
    else if (wavelen > 8192.0 / 1) expected = f / 8;   // low frequency: scaled
    else {
      const double s = (8192.0 / wavelen - 1) / (4 - 1);
      expected = (1 - s) * f / 8 + s * f;
    }
    EXPECT_NEAR(entry(t.inv_freq, i), expected, 1e-12 * expected) << i;
  }
}

TEST(Rope, RotationProperties) {
  RopeParams p;
  p.head_dim = 16;
  auto table = ops::rope_table(p);
  torch::manual_seed(1);
  torch::Tensor q = torch::randn({1, 1, 1, 16}, torch::kFloat64), k = torch::randn({1, 1, 1, 16}, torch::kFloat64);
  auto rot = [&](const torch::Tensor& x, int64_t pos) { return ops::apply_rope(x, torch::tensor({pos}), table); };
  EXPECT_NEAR(rot(q, 37).norm().item<double>(), q.norm().item<double>(), 1e-12);
  // <rope(q, m), rope(k, n)> depends on m - n only.
  const double a = (rot(q, 10) * rot(k, 3)).sum().item<double>(), b = (rot(q, 107) * rot(k, 100)).sum().item<double>();
  EXPECT_NEAR(a, b, 1e-10);
  EXPECT_TRUE(torch::allclose(rot(q, 0), q));
  // Positions restarting per document equal separate calls; [B, L] positions work per row.
  torch::Tensor x = torch::randn({2, 3, 5, 16}, torch::kFloat64);
  torch::Tensor pos = torch::tensor({{0, 1, 0, 1, 2}, {4, 5, 6, 7, 8}});
  torch::Tensor y = ops::apply_rope(x, pos, table);
  EXPECT_TRUE(torch::allclose(y[0].narrow(1, 2, 3), ops::apply_rope(x.narrow(0, 0, 1).narrow(2, 2, 3), torch::arange(3), table)[0]));
  EXPECT_TRUE(torch::allclose(y[1], ops::apply_rope(x.narrow(0, 1, 1), torch::arange(4, 9), table)[0]));
}

TEST(Rope, BadInput) {
  RopeParams p;
  p.head_dim = 7;
  EXPECT_THROW(ops::rope_table(p), Error);
  p.head_dim = 8;
  p.type = "ntk";
  EXPECT_THROW(ops::rope_table(p), Error);
  p.type = "yarn";
  EXPECT_THROW(ops::rope_table(p), Error);  // no original length
  p.type = "default";
  auto t = ops::rope_table(p);
  EXPECT_THROW(ops::apply_rope(torch::randn({1, 1, 4, 8}), torch::arange(3), t), Error);
  EXPECT_THROW(ops::apply_rope(torch::randn({1, 1, 4, 6}), torch::arange(4), t), Error);
}

namespace {
struct RopeRun {
  torch::Tensor y, dx;
};
// y and the gradient of sum(y * probe) with respect to x, by `f`.
template <typename F>
RopeRun rope_run(F f, const torch::Tensor& x, const ops::RopeAngles& angles, const torch::Tensor& probe) {
  torch::Tensor leaf = x.detach().clone().set_requires_grad(true);
  torch::Tensor y = f(leaf.transpose(1, 2), angles);  // [B, L, H, D] storage seen as [B, H, L, D], as the model does
  (y * probe.to(y.scalar_type())).sum().backward();
  return {y.detach(), leaf.grad()};
}
double rel(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.to(torch::kFloat64), y = b.to(torch::kFloat64);
  return ((x - y).abs().max() / y.abs().max()).item<double>();
}
}  // namespace

TEST(Rope, FusedPassMatchesTheExpression) {
  // float32 against the expression in float64; bfloat16 against the expression on the same bf16
  // inputs (within a bf16 rounding) and no further from float64 on average. Both angle layouts
  // ([L, D]; [B, 1, L, D] from per-row positions), head dims with and without a vector tail.
  torch::manual_seed(8);
  for (int64_t D : {64, 6}) {
    RopeParams p;
    p.head_dim = D;
    const auto table = ops::rope_table(p);
    for (bool per_row : {false, true}) {
      torch::Tensor positions = per_row ? torch::tensor({{0, 1, 2, 0, 1, 2, 3}, {9, 10, 11, 12, 13, 14, 15}})
                                        : torch::arange(100, 107);
      torch::Tensor x = torch::randn({2, 7, 3, D}) * 2;  // [B, L, H, D]
      torch::Tensor probe = torch::randn({2, 3, 7, D});
      auto fused = [](const torch::Tensor& a, const ops::RopeAngles& g) { return ops::apply_rope(a, g); };
      auto expr = [](const torch::Tensor& a, const ops::RopeAngles& g) { return ops::apply_rope_reference(a, g); };
      const auto a32 = ops::rope_angles(positions, table, torch::kFloat32);
      const auto a64 = ops::rope_angles(positions, table, torch::kFloat64);
      const auto f32 = rope_run(fused, x, a32, probe);
      const auto e64 = rope_run(expr, x.to(torch::kFloat64), a64, probe.to(torch::kFloat64));
      EXPECT_TRUE(f32.y.is_contiguous());
      EXPECT_LT(rel(f32.y, e64.y), 1e-6) << D << " " << per_row;
      EXPECT_LT(rel(f32.dx, e64.dx), 1e-6) << D << " " << per_row;
      const auto a16 = ops::rope_angles(positions, table, torch::kBFloat16);
      const torch::Tensor xb = x.to(torch::kBFloat16);
      const auto f16 = rope_run(fused, xb, a16, probe);
      const auto e16 = rope_run(expr, xb, a16, probe);
      const auto e16_64 = rope_run(expr, xb.to(torch::kFloat64), {a16.cos.to(torch::kFloat64), a16.sin.to(torch::kFloat64)},
                                   probe.to(torch::kFloat64));
      EXPECT_EQ(f16.y.scalar_type(), torch::kBFloat16);
      for (auto [f, e, d] : {std::tuple{f16.y, e16.y, e16_64.y}, {f16.dx, e16.dx, e16_64.dx}}) {
        EXPECT_LT(rel(f, e), 1e-2);
        auto mean_error = [&](const torch::Tensor& t) { return (t.to(torch::kFloat64) - d).abs().mean().item<double>(); };
        EXPECT_LE(mean_error(f), 1.05 * mean_error(e) + 1e-12);
      }
    }
  }
}
