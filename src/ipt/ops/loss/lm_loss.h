#pragma once
// Language-model loss without the [N, vocab] logits matrix: the LM head and the cross-entropy
// are computed together, a block of rows at a time, forward and backward (the backward recomputes
// each block's logits). With a 150k vocabulary and 32k tokens the full logits would be 19 GiB.
#include <torch/torch.h>

#include <cstdint>

namespace ipt::ops {

struct LmLossOptions {
  int64_t block_rows = 1024;        // rows of logits alive at once
  int64_t ignore_index = -100;      // labels to skip
};

struct LmLoss {
  torch::Tensor loss;       // scalar: mean negative log-likelihood over counted tokens (differentiable)
  torch::Tensor token_nll;  // [N] per-token NLL (0 where ignored), no gradient
  int64_t counted = 0;      // tokens not ignored
};

// hidden [N, d] (final-norm output), head [V, d] (lm_head or tied embedding), labels [N] int64.
// Differentiable in hidden and head.
LmLoss lm_loss(const torch::Tensor& hidden, const torch::Tensor& head, const torch::Tensor& labels,
               const LmLossOptions& options = {});

}  // namespace ipt::ops
