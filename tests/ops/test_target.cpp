// The LM-aligned target: the in-chunk convolution against hand-computed numbers (zeros at chunk
// and document edges), the orientation of P, the ablation targets, and gradients through it all.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipt/common/error.h"
#include "ipt/ops/ttt/ttt.h"

using namespace ipt;

namespace {

// X = 1..7 in one channel; taps weighted 1, 10, 100, 1000, 10000 so every output's digits spell
// out which neighbours it read.
torch::Tensor conv_of(ttt::ConvPadding padding, std::vector<int64_t> cu_seqlens) {
  torch::Tensor X = torch::arange(1, 8, torch::kFloat64).view({1, 7, 1});
  torch::Tensor w = torch::tensor({1.0, 10.0, 100.0, 1000.0, 10000.0}, torch::kFloat64).view({1, 1, 5});
  ttt::TargetOptions o;
  o.chunk_size = 4;
  o.padding = padding;
  o.cu_seqlens = std::move(cu_seqlens);
  return ttt::build_target(X, w, torch::Tensor(), o).view(-1);
}

torch::Tensor doubles(std::vector<double> v) { return torch::tensor(v, torch::kFloat64); }

}  // namespace

TEST(TttTarget, ConvolutionByHandSamePadding) {
  // Chunks [0..3] and [4..6]; taps t-2..t+2; zeros outside the chunk.
  EXPECT_TRUE(torch::equal(conv_of(ttt::ConvPadding::kSame, {}),
                           doubles({32100, 43210, 4321, 432, 76500, 7650, 765})));
}

TEST(TttTarget, ConvolutionByHandDocuments) {
  // Documents [0, 2) and [2, 7); the second's chunks are [2..5] and [6].
  EXPECT_TRUE(torch::equal(conv_of(ttt::ConvPadding::kSame, {0, 2, 7}),
                           doubles({2100, 210, 54300, 65430, 6543, 654, 700})));
}

TEST(TttTarget, ConvolutionByHandCausalPadding) {
  // Taps t-4..t, the last weight on t itself.
  EXPECT_TRUE(torch::equal(conv_of(ttt::ConvPadding::kCausal, {}),
                           doubles({10000, 21000, 32100, 43210, 50000, 65000, 76500})));
}

TEST(TttTarget, ProjectionOrientationAndAblations) {
  torch::manual_seed(1);
  auto o64 = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor X = torch::randn({2, 9, 4}, o64), w = torch::randn({4, 1, 5}, o64), P = torch::randn({4, 4}, o64);
  ttt::TargetOptions opt;
  opt.chunk_size = 4;
  torch::Tensor conv = ttt::build_target(X, w, torch::Tensor(), opt);
  torch::Tensor with_p = ttt::build_target(X, w, P, opt);
  // V = Conv(X) · P, row by row: V[t] = sum_c Conv[t, c] P[c, :].
  EXPECT_TRUE(torch::allclose(with_p, torch::einsum("blc,ce->ble", {conv, P}), 0, 1e-12));
  EXPECT_FALSE(torch::allclose(with_p, torch::matmul(conv, P.t()), 0, 1e-3));
  opt.kind = ttt::TargetKind::kReconstruction;
  EXPECT_TRUE(torch::allclose(ttt::build_target(X, torch::Tensor(), P, opt), torch::matmul(X, P), 0, 1e-12));
  EXPECT_TRUE(torch::equal(ttt::build_target(X, torch::Tensor(), torch::Tensor(), opt), X));
}

TEST(TttTarget, PackedDocumentsEqualSeparate) {
  torch::manual_seed(2);
  auto o64 = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor X = torch::randn({1, 13, 3}, o64), w = torch::randn({3, 1, 5}, o64);
  ttt::TargetOptions opt;
  opt.chunk_size = 3;
  opt.cu_seqlens = {0, 1, 8, 13};
  torch::Tensor packed = ttt::build_target(X, w, torch::Tensor(), opt);
  opt.cu_seqlens.clear();
  for (auto [b, e] : std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {1, 8}, {8, 13}})
    EXPECT_TRUE(torch::allclose(packed.narrow(1, b, e - b),
                                ttt::build_target(X.narrow(1, b, e - b), w, torch::Tensor(), opt), 0, 1e-14));
}

// End to end: target builder + operator. Gradients to X, the conv weight and P through the fast
// algorithms equal those through the reference, and the conv weight's match finite differences.
TEST(TttTarget, GradientsThroughTargetAndOperator) {
  torch::manual_seed(3);
  auto o64 = torch::TensorOptions().dtype(torch::kFloat64);
  const int64_t L = 19, d = 4, h = 6, C = 4;
  torch::Tensor X0 = torch::randn({1, L, d}, o64), Z0 = torch::randn({1, L, h}, o64);
  torch::Tensor w0 = torch::randn({d, 1, 5}, o64), P0 = torch::randn({d, d}, o64), W00 = torch::randn({d, h}, o64);
  auto run = [&](ttt::Algorithm a, const torch::Tensor& X, const torch::Tensor& w, const torch::Tensor& P) {
    ttt::TargetOptions topt;
    topt.chunk_size = C;
    topt.cu_seqlens = {0, 7, L};
    ttt::Options opt;
    opt.chunk_size = C;
    opt.lr = 0.5;
    opt.clip = 2.0;
    opt.algorithm = a;
    opt.cu_seqlens = topt.cu_seqlens;
    return ttt::apply(Z0, ttt::build_target(X, w, P, topt), W00, opt).out.pow(2).sum();
  };
  std::vector<std::vector<torch::Tensor>> grads;
  for (ttt::Algorithm a : {ttt::Algorithm::kReference, ttt::Algorithm::kRecurrent, ttt::Algorithm::kScan}) {
    torch::Tensor X = X0.clone().requires_grad_(), w = w0.clone().requires_grad_(), P = P0.clone().requires_grad_();
    run(a, X, w, P).backward();
    grads.push_back({X.grad(), w.grad(), P.grad()});
  }
  for (size_t a = 1; a < grads.size(); ++a)
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(torch::allclose(grads[a][i], grads[0][i], 1e-10, 1e-10)) << a << " " << i;
  torch::Tensor flat = w0.view(-1);
  for (int64_t i = 0; i < flat.numel(); i += 2) {
    const double eps = 1e-6, saved = flat[i].item<double>();
    flat[i] = saved + eps;
    double up = run(ttt::Algorithm::kRecurrent, X0, w0, P0).item<double>();
    flat[i] = saved - eps;
    double down = run(ttt::Algorithm::kRecurrent, X0, w0, P0).item<double>();
    flat[i] = saved;
    double numeric = (up - down) / (2 * eps);
    EXPECT_NEAR(grads[1][1].view(-1)[i].item<double>(), numeric, 1e-5 * std::max(1.0, std::abs(numeric)));
  }
}

TEST(TttTarget, BadInput) {
  torch::Tensor X = torch::randn({1, 5, 4});
  ttt::TargetOptions opt;
  opt.chunk_size = 2;
  EXPECT_THROW(ttt::build_target(X, torch::randn({4, 1, 3}), torch::Tensor(), opt), Error);
  EXPECT_THROW(ttt::build_target(X, torch::randn({4, 1, 5}), torch::randn({4, 3}), opt), Error);
  EXPECT_THROW(ttt::build_target(X[0], torch::randn({4, 1, 5}), torch::Tensor(), opt), Error);
  opt.chunk_size = 0;
  EXPECT_THROW(ttt::build_target(X, torch::randn({4, 1, 5}), torch::Tensor(), opt), Error);
  EXPECT_THROW(ttt::parse_conv_padding("valid"), Error);
  EXPECT_THROW(ttt::parse_target_kind("next_token"), Error);
}
