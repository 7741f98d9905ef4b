#pragma once
// The one FLOP model the benchmarks report model FLOP/s and MFU with (`ipt bench all`, `ipt bench
// train`): matrix products only, 2 FLOPs per multiply-add.
//   forward, per token: every weight used in a matrix product once (q, k, v, o, the MLP's gate, up
//     and down, ttt_proj in TTT layers, the head), plus attention's score and value products over
//     `context` keys (4 · heads · head_dim · context per layer);
//   training, per token: 3 × the forward (backward = 2 × forward) at the average causal context L/2.
// The TTT operator's own products (a few d × h per chunk row) are left out, as norms, RoPE and the
// convolution are.
#include <cstdint>

#include "ipt/model/config.h"

namespace ipt::bench {

double forward_flops_per_token(const model::ModelConfig& config, double context);
double training_flops_per_token(const model::ModelConfig& config, int64_t seq_len);
// The TTT operator alone (`ipt bench op`): its forward over L rows of width d with an h-wide fast
// weight, two L x d x h products, 4 · L · d · h.
double ttt_operator_flops(int64_t L, int64_t d, int64_t h);

}  // namespace ipt::bench
