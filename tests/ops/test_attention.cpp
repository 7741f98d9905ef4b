// Blocked attention against the full-matrix definition in float64: full causal, sliding window,
// GQA, packed documents (with a length-1 document), a query offset, L not a multiple of the block;
// gradients against autograd through the definition; packed equals separate calls.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>

#include "ipt/common/error.h"
#include "ipt/common/torch_compat.h"
#include "ipt/ops/attention/attention.h"
#include "ipt/ops/attention/kernels.h"

using namespace ipt;
using ops::AttentionOptions;

namespace {

struct Case {
  std::string name;
  int64_t B, Hq, Hkv, Lq, Lk, D, window;
  std::vector<int64_t> cu;
};

std::vector<Case> cases() {
  return {{"full", 2, 2, 2, 37, 37, 8, 0, {}},
          {"gqa_4_2", 1, 4, 2, 29, 29, 8, 0, {}},
          {"mqa_4_1", 1, 4, 1, 29, 29, 8, 0, {}},
          {"window", 2, 2, 1, 41, 41, 8, 7, {}},
          {"window_longer_than_L", 1, 2, 2, 20, 20, 4, 64, {}},
          {"packed", 1, 4, 2, 33, 33, 8, 0, {0, 1, 12, 13, 33}},
          {"packed_window", 1, 2, 2, 33, 33, 8, 5, {0, 20, 33}},
          {"query_offset", 1, 4, 2, 9, 40, 8, 0, {}},
          {"decode_one", 1, 2, 1, 1, 23, 8, 6, {}},
          {"packed_query_offset", 1, 4, 2, 9, 40, 8, 0, {0, 10, 33, 35, 40}},
          {"packed_query_offset_window", 1, 2, 1, 12, 40, 8, 4, {0, 29, 31, 40}}};
}

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

}  // namespace

TEST(Attention, MatchesDefinitionWithGradients) {
  for (const Case& c : cases()) {
    for (int64_t block : {4, 16, 128}) {
      torch::manual_seed(block);
      auto o64 = torch::TensorOptions().dtype(torch::kFloat64);
      torch::Tensor q0 = torch::randn({c.B, c.Hq, c.Lq, c.D}, o64), k0 = torch::randn({c.B, c.Hkv, c.Lk, c.D}, o64),
                    v0 = torch::randn({c.B, c.Hkv, c.Lk, c.D}, o64), up = torch::randn({c.B, c.Hq, c.Lq, c.D}, o64);
      AttentionOptions opt;
      opt.window = c.window;
      opt.cu_seqlens = c.cu;
      opt.block_q = block;
      opt.block_k = block + 3;  // unequal blocks exercise partial overlaps
      torch::Tensor q1 = q0.clone().requires_grad_(), k1 = k0.clone().requires_grad_(), v1 = v0.clone().requires_grad_();
      torch::Tensor q2 = q0.clone().requires_grad_(), k2 = k0.clone().requires_grad_(), v2 = v0.clone().requires_grad_();
      torch::Tensor ours = ops::attention(q1, k1, v1, opt), ref = ops::attention_reference(q2, k2, v2, opt);
      EXPECT_LE(rel(ours, ref), 1e-10) << c.name << " block " << block;
      (ours * up).sum().backward();
      (ref * up).sum().backward();
      EXPECT_LE(rel(q1.grad(), q2.grad()), 1e-10) << c.name << " dq";
      EXPECT_LE(rel(k1.grad(), k2.grad()), 1e-10) << c.name << " dk";
      EXPECT_LE(rel(v1.grad(), v2.grad()), 1e-10) << c.name << " dv";
    }
  }
}

// float32 runs the vectorised softmax (polynomial exp) forward and backward.
TEST(Attention, Float32WithinTolerance) {
  torch::manual_seed(1);
  for (int64_t window : {0, 100}) {
    torch::Tensor q = torch::randn({1, 4, 300, 32}), k = torch::randn({1, 2, 300, 32}), v = torch::randn({1, 2, 300, 32});
    torch::Tensor up = torch::randn({1, 4, 300, 32});
    AttentionOptions opt;
    opt.window = window;
    opt.cu_seqlens = {0, 170, 300};
    std::vector<torch::Tensor> ours{q.clone().requires_grad_(), k.clone().requires_grad_(), v.clone().requires_grad_()};
    std::vector<torch::Tensor> ref{q.to(torch::kFloat64).requires_grad_(), k.to(torch::kFloat64).requires_grad_(),
                                   v.to(torch::kFloat64).requires_grad_()};
    torch::Tensor o32 = ops::attention(ours[0], ours[1], ours[2], opt), o64 = ops::attention_reference(ref[0], ref[1], ref[2], opt);
    EXPECT_LE(rel(o32.to(torch::kFloat64), o64), 1e-5) << "window " << window;
    (o32 * up).sum().backward();
    (o64 * up.to(torch::kFloat64)).sum().backward();
    for (int i = 0; i < 3; ++i)
      EXPECT_LE(rel(ours[i].grad().to(torch::kFloat64), ref[i].grad()), 1e-4) << "window " << window << " input " << i;
  }
}

// bfloat16 inputs run bf16 block products (oneDNN) with float32 softmax and accumulators; the
// probabilities and score gradients are rounded to bf16 for the products that take them. Against
// the definition in float64 on the same (bf16) inputs, every case and block size.
TEST(Attention, BFloat16KernelWithinTolerance) {
  if (!ops::attention_detail::bf16_kernel_available()) {
#if !IPT_TORCH2
    // Debian's libtorch links oneDNN as a shared library: on an AVX-512 CPU it must be found.
    ASSERT_FALSE(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        << "oneDNN's bf16 GEMM was not found or refused this AVX-512 CPU";
#endif
    GTEST_SKIP() << "no bf16 GEMM in this process: bfloat16 attention is widened to float32";
  }
  double worst_out = 0, worst_grad = 0;
  for (const Case& c : cases()) {
    for (int64_t block : {4, 16, 128}) {
      torch::manual_seed(block + 7);
      torch::Tensor q = torch::randn({c.B, c.Hq, c.Lq, c.D}).to(torch::kBFloat16);
      torch::Tensor k = torch::randn({c.B, c.Hkv, c.Lk, c.D}).to(torch::kBFloat16);
      torch::Tensor v = torch::randn({c.B, c.Hkv, c.Lk, c.D}).to(torch::kBFloat16);
      torch::Tensor up = torch::randn({c.B, c.Hq, c.Lq, c.D}).to(torch::kBFloat16);
      AttentionOptions opt;
      opt.window = c.window;
      opt.cu_seqlens = c.cu;
      opt.block_q = block;
      opt.block_k = block + 3;
      std::vector<torch::Tensor> ours{q.clone().requires_grad_(), k.clone().requires_grad_(), v.clone().requires_grad_()};
      std::vector<torch::Tensor> ref{q.to(torch::kFloat64).requires_grad_(), k.to(torch::kFloat64).requires_grad_(),
                                     v.to(torch::kFloat64).requires_grad_()};
      torch::Tensor o16 = ops::attention(ours[0], ours[1], ours[2], opt);
      torch::Tensor o64 = ops::attention_reference(ref[0], ref[1], ref[2], opt);
      ASSERT_EQ(o16.scalar_type(), torch::kBFloat16);
      const double out_error = rel(o16.to(torch::kFloat64), o64);
      EXPECT_LE(out_error, 1e-2) << c.name << " block " << block;
      worst_out = std::max(worst_out, out_error);
      (o16 * up).sum().backward();
      (o64 * up.to(torch::kFloat64)).sum().backward();
      for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(ours[i].grad().scalar_type(), torch::kBFloat16);
        const double grad_error = rel(ours[i].grad().to(torch::kFloat64), ref[i].grad());
        EXPECT_LE(grad_error, 4e-2) << c.name << " block " << block << " input " << i;
        worst_grad = std::max(worst_grad, grad_error);
      }
    }
  }
  std::cout << "bf16 attention: worst relative error out " << worst_out << ", gradients " << worst_grad << "\n";
}

// The model's shape (9 query heads over 3 key/value heads of 64, default blocks, 300 rows with two
// packed documents): bf16 against the float32 kernel on the same inputs.
TEST(Attention, BFloat16KernelAgreesWithFloat32AtModelShape) {
  if (!ops::attention_detail::bf16_kernel_available()) GTEST_SKIP() << "no bf16 GEMM in this process";
  torch::manual_seed(11);
  torch::Tensor q = torch::randn({1, 9, 300, 64}).to(torch::kBFloat16), k = torch::randn({1, 3, 300, 64}).to(torch::kBFloat16);
  torch::Tensor v = torch::randn({1, 3, 300, 64}).to(torch::kBFloat16), up = torch::randn({1, 9, 300, 64});
  AttentionOptions opt;
  opt.cu_seqlens = {0, 170, 300};
  std::vector<torch::Tensor> b{q.clone().requires_grad_(), k.clone().requires_grad_(), v.clone().requires_grad_()};
  std::vector<torch::Tensor> f{q.to(torch::kFloat32).requires_grad_(), k.to(torch::kFloat32).requires_grad_(),
                               v.to(torch::kFloat32).requires_grad_()};
  torch::Tensor ob = ops::attention(b[0], b[1], b[2], opt), of = ops::attention(f[0], f[1], f[2], opt);
  EXPECT_LE(rel(ob.to(torch::kFloat32), of), 1e-2);
  (ob * up.to(torch::kBFloat16)).sum().backward();
  (of * up).sum().backward();
  for (int i = 0; i < 3; ++i) EXPECT_LE(rel(b[i].grad().to(torch::kFloat32), f[i].grad()), 3e-2) << "input " << i;
}

TEST(Attention, PackedEqualsSeparate) {
  torch::manual_seed(2);
  auto o64 = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor q = torch::randn({1, 2, 30, 8}, o64), k = torch::randn({1, 1, 30, 8}, o64), v = torch::randn({1, 1, 30, 8}, o64);
  AttentionOptions packed;
  packed.cu_seqlens = {0, 1, 17, 30};
  packed.block_q = packed.block_k = 8;
  torch::Tensor joint = ops::attention(q, k, v, packed);
  for (size_t d = 1; d < packed.cu_seqlens.size(); ++d) {
    const int64_t b = packed.cu_seqlens[d - 1], n = packed.cu_seqlens[d] - b;
    torch::Tensor alone = ops::attention(q.narrow(2, b, n), k.narrow(2, b, n), v.narrow(2, b, n));
    EXPECT_LE(rel(joint.narrow(2, b, n), alone), 1e-12) << d;
  }
}

TEST(Attention, BadInput) {
  torch::Tensor q = torch::randn({1, 4, 8, 4}), k = torch::randn({1, 2, 8, 4});
  AttentionOptions o;
  EXPECT_THROW(ops::attention(q, torch::randn({1, 3, 8, 4}), torch::randn({1, 3, 8, 4})), Error);
  EXPECT_THROW(ops::attention(q, k, torch::randn({1, 2, 7, 4})), Error);
  EXPECT_THROW(ops::attention(torch::randn({1, 4, 9, 4}), k, k), Error);
  EXPECT_THROW(ops::attention(q, k.to(torch::kFloat64), k.to(torch::kFloat64)), Error);
  EXPECT_THROW(ops::attention(q[0], k, k), Error);
  o.window = -1;
  EXPECT_THROW(ops::attention(q, k, k, o), Error);
  o = AttentionOptions{};
  o.cu_seqlens = {0, 5, 5, 8};
  EXPECT_THROW(ops::attention(q, k, k, o), Error);
  o.cu_seqlens = {0, 7};
  EXPECT_THROW(ops::attention(q, k, k, o), Error);
}

// The GPU path (PyTorch's fused attention, blocks of queries with device-built masks), run on the
// CPU in float64 against the definition: every mask case, blocks smaller and larger than L.
TEST(Attention, FusedPathMatchesDefinitionWithGradients) {
  for (const Case& c : cases()) {
    for (int64_t block : {3, 1024}) {
      torch::manual_seed(block + 7);
      auto o64 = torch::TensorOptions().dtype(torch::kFloat64);
      torch::Tensor q0 = torch::randn({c.B, c.Hq, c.Lq, c.D}, o64), k0 = torch::randn({c.B, c.Hkv, c.Lk, c.D}, o64),
                    v0 = torch::randn({c.B, c.Hkv, c.Lk, c.D}, o64), up = torch::randn({c.B, c.Hq, c.Lq, c.D}, o64);
      AttentionOptions opt;
      opt.window = c.window;
      opt.cu_seqlens = c.cu;
      opt.block_q = block;
      torch::Tensor q1 = q0.clone().requires_grad_(), k1 = k0.clone().requires_grad_(), v1 = v0.clone().requires_grad_();
      torch::Tensor q2 = q0.clone().requires_grad_(), k2 = k0.clone().requires_grad_(), v2 = v0.clone().requires_grad_();
      torch::Tensor ours = ops::attention_fused(q1, k1, v1, opt), ref = ops::attention_reference(q2, k2, v2, opt);
      ASSERT_EQ(ours.sizes(), ref.sizes()) << c.name;
      EXPECT_LE(rel(ours, ref), 1e-10) << c.name << " block " << block;
      (ours * up).sum().backward();
      (ref * up).sum().backward();
      EXPECT_LE(rel(q1.grad(), q2.grad()), 1e-10) << c.name << " dq";
      EXPECT_LE(rel(k1.grad(), k2.grad()), 1e-10) << c.name << " dk";
      EXPECT_LE(rel(v1.grad(), v2.grad()), 1e-10) << c.name << " dv";
    }
  }
}
