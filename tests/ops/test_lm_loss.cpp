// The blocked LM loss equals torch's cross-entropy over full logits, in value and in gradients.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipt/common/error.h"
#include "ipt/ops/loss/lm_loss.h"

using namespace ipt;

TEST(LmLoss, EqualsFullCrossEntropyWithGradients) {
  for (int64_t block : {1, 3, 7, 64}) {
    torch::manual_seed(block);
    auto o = torch::TensorOptions().dtype(torch::kFloat64);
    torch::Tensor h0 = torch::randn({13, 8}, o), w0 = torch::randn({21, 8}, o);
    torch::Tensor labels = torch::randint(0, 21, {13}, torch::kInt64);
    labels[2] = -100;
    labels[9] = -100;
    torch::Tensor h1 = h0.clone().requires_grad_(), w1 = w0.clone().requires_grad_();
    ops::LmLoss ours = ops::lm_loss(h1, w1, labels, {block, -100});
    (ours.loss * 1.7).backward();
    torch::Tensor h2 = h0.clone().requires_grad_(), w2 = w0.clone().requires_grad_();
    torch::Tensor ref = torch::nn::functional::cross_entropy(
        torch::mm(h2, w2.t()), labels, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    (ref * 1.7).backward();
    EXPECT_NEAR(ours.loss.item<double>(), ref.item<double>(), 1e-12);
    EXPECT_EQ(ours.counted, 11);
    EXPECT_TRUE(torch::allclose(h1.grad(), h2.grad(), 1e-10, 1e-12));
    EXPECT_TRUE(torch::allclose(w1.grad(), w2.grad(), 1e-10, 1e-12));
    torch::Tensor per_token = torch::nn::functional::cross_entropy(
        torch::mm(h0, w0.t()), labels,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kNone));
    EXPECT_TRUE(torch::allclose(ours.token_nll, per_token, 1e-10, 1e-12));
  }
}

// One block (the forward keeps the probabilities for the backward): a retained graph's second
// backward adds the same gradients again, so the kept probabilities are not consumed.
TEST(LmLoss, KeptProbabilitiesSurviveARetainedGraph) {
  torch::manual_seed(4);
  auto o = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor h = torch::randn({6, 5}, o).requires_grad_(), w = torch::randn({11, 5}, o).requires_grad_();
  torch::Tensor labels = torch::randint(0, 11, {6}, torch::kInt64);
  ops::LmLoss r = ops::lm_loss(h, w, labels, {64, -100});
  r.loss.backward({}, /*retain_graph=*/true);
  const torch::Tensor dh = h.grad().clone(), dw = w.grad().clone();
  r.loss.backward();
  EXPECT_TRUE(torch::allclose(h.grad(), 2 * dh, 1e-12, 1e-14));
  EXPECT_TRUE(torch::allclose(w.grad(), 2 * dw, 1e-12, 1e-14));
}

TEST(LmLoss, AllIgnoredGivesZeroAndZeroGradient) {
  torch::Tensor h = torch::randn({4, 3}, torch::kFloat64).requires_grad_(), w = torch::randn({5, 3}, torch::kFloat64);
  ops::LmLoss r = ops::lm_loss(h, w, torch::full({4}, -100, torch::kInt64));
  EXPECT_EQ(r.counted, 0);
  EXPECT_EQ(r.loss.item<double>(), 0.0);
  r.loss.backward();
  EXPECT_EQ(h.grad().abs().sum().item<double>(), 0.0);
}

TEST(LmLoss, BadInput) {
  torch::Tensor h = torch::randn({4, 3}), w = torch::randn({5, 3});
  EXPECT_THROW(ops::lm_loss(h, w, torch::tensor({0, 1, 2, 5}, torch::kInt64)), Error);
  EXPECT_THROW(ops::lm_loss(h, w, torch::tensor({0, 1, 2}, torch::kInt64)), Error);
  EXPECT_THROW(ops::lm_loss(h, torch::randn({5, 4}), torch::tensor({0, 1, 2, 3}, torch::kInt64)), Error);
  EXPECT_THROW(ops::lm_loss(h, w, torch::tensor({0, 1, 2, 3}, torch::kInt32)), Error);
}
