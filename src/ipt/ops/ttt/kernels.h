#pragma once
// Internal to ops/ttt: the algorithms behind ttt::apply, on validated, contiguous inputs.
// Not part of the public interface (ttt.h).
#include <torch/torch.h>

#include <algorithm>

#include <vector>

#include "ipt/ops/ttt/ttt.h"

namespace ipt::ttt::detail {

// at::*_out take the destination by non-const reference; these take a view (a temporary) of it.
inline void mm_into(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b) { at::mm_out(out, a, b); }
inline void bmm_into(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b) { at::bmm_out(out, a, b); }
inline void add_into(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b) { at::add_out(out, a, b); }
inline void sub_into(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b) { at::sub_out(out, a, b); }

// Rows [begin, end) of batch row `row` form one document.
struct Segment {
  int64_t row = 0;
  int64_t begin = 0;
  int64_t end = 0;
  int64_t length() const { return end - begin; }
};

struct Problem {
  std::vector<Segment> segments;
  int64_t chunk_size = 0;
  double lr = 0.0;
  double clip = 0.0;
  double decay = 1.0;
  int64_t scan_group = 0;
  std::vector<double>* drift = nullptr;  // Options::drift

  bool decays() const { return decay < 1.0; }

  int64_t num_chunks(const Segment& s) const { return (s.length() + chunk_size - 1) / chunk_size; }
};

// W <- W0 + decay (W - W0): the pull towards W0 before a chunk's update (nothing when decay is 1).
// Scaling the difference (not decay W + (1 - decay) W0) keeps W == W0 exactly when nothing moved it.
inline void decay_towards(torch::Tensor W, const torch::Tensor& W0, double decay) {
  if (decay < 1.0) W.sub_(W0).mul_(decay).add_(W0);
}

// Options::drift's entry for the weight W after an update.
inline void record_drift(const Problem& p, const torch::Tensor& W, const torch::Tensor& W0) {
  if (p.drift) p.drift->push_back((W - W0).norm().item<double>() / std::max(W0.norm().item<double>(), 1e-30));
}

// Clip factor min(1, clip / ||U||_F) for an update U (1 when clip is off).
double clip_scale(const torch::Tensor& update, double clip);

// Both forward kernels write O [B, L, d] and return the per-document fast weight after every
// full chunk (weights[k] for segment k) and the clip factor of every full chunk, in segment
// order (consumed by the backward).
struct ForwardResult {
  std::vector<torch::Tensor> weights;
  torch::Tensor scales;  // float64 [total full chunks]
};

ForwardResult recurrent_forward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                                const torch::Tensor& W0, torch::Tensor& O, bool keep_weights);
// Recurrent forward and backward for half / bfloat16 inputs: products in the inputs' type, the
// fast weight (and the backward's gradient sum R) accumulated in float32 masters; O, dZ, dV, dW0 in
// the compute type; the weights returned are the float32 masters.
ForwardResult recurrent_forward_mixed(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                                      const torch::Tensor& W0, torch::Tensor& O, bool keep_weights);
ForwardResult scan_forward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                           const torch::Tensor& W0, torch::Tensor& O, bool keep_weights);

struct Gradients {
  torch::Tensor dZ, dV, dW0;
};

Gradients recurrent_backward_mixed(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                                   const torch::Tensor& W0, const torch::Tensor& scales, const torch::Tensor& dO);
Gradients recurrent_backward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                             const torch::Tensor& W0, const torch::Tensor& scales, const torch::Tensor& dO);
// Backward of recurrent and scan when the update decays (any dtype; float32 masters for half /
// bfloat16). Stepping a weight back would divide by the decay once per chunk and amplify rounding by
// decay^-n, so it rebuilds the weights forwards from checkpoints instead.
Gradients decayed_backward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V, const torch::Tensor& W0,
                           const torch::Tensor& scales, const torch::Tensor& dO);
Gradients scan_backward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                        const torch::Tensor& W0, const torch::Tensor& scales, const torch::Tensor& dO);

// The materialising reference, built from differentiable torch ops (autograd gives its backward).
Output reference_forward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                         const torch::Tensor& W0, bool return_state);

// Fast weight the last chunk of segment s is computed with: W0 + sum of the deltas of every chunk
// but the last, in one matrix product (used by the backward to start its reverse scan); float32 for
// half / bfloat16 inputs.
torch::Tensor last_chunk_weight(const Problem& p, const Segment& s, const torch::Tensor& Z, const torch::Tensor& V,
                                const torch::Tensor& W0, const torch::Tensor& segment_scales);

// Gradient with respect to an update U = lr V^T Z, given the gradient R with respect to the
// clipped update s * U (the clip factor's derivative included). Returns R itself when unclipped.
torch::Tensor unclip_gradient(const torch::Tensor& R, const torch::Tensor& update, double scale, torch::Tensor& buffer);

}  // namespace ipt::ttt::detail
