#pragma once
// Internals of ipt::ops::attention: the problem description and the CPU block kernels.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace ipt::ops::attention_detail {

// One independent attention problem: queries [q_begin, q_end) and keys [k_begin, k_end) of batch
// row `row`. Query q_begin + i sits at key position offset() + i (relative to k_begin).
struct Segment {
  int64_t row, q_begin, q_end, k_begin, k_end;
  int64_t q_length() const { return q_end - q_begin; }
  int64_t k_length() const { return k_end - k_begin; }
  int64_t offset() const { return k_length() - q_length(); }
};

struct Problem {
  std::vector<Segment> segments;
  int64_t window = 0;  // 0 = unlimited
  double scale = 1.0;
  int64_t block_q = 128;
  int64_t block_k = 256;
};

// Whether bfloat16 inputs can run in bfloat16 (oneDNN's bf16 GEMM was found in the process and
// runs on this CPU); otherwise callers widen them to float32.
bool bf16_kernel_available();

// q [B, Hq, Lq, D], k, v [B, Hkv, Lk, D], contiguous, float64, float32 or (when available)
// bfloat16. Fills out [B, Hq, Lq, D] (q's type) and lse [B, Hq, Lq] (float32 for bfloat16 inputs,
// q's type otherwise), both preallocated and contiguous.
void forward_cpu(const Problem& problem, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                 torch::Tensor& out, torch::Tensor& lse);

// Gradients from the saved out and lse (all contiguous, types as forward_cpu's); dq, dk, dv (q's
// type) are allocated here.
struct Gradients {
  torch::Tensor dq, dk, dv;
};
Gradients backward_cpu(const Problem& problem, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& dout);

}  // namespace ipt::ops::attention_detail
