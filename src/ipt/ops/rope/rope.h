#pragma once
// Rotary position embeddings as Hugging Face defines them (rope_type default, linear, dynamic,
// yarn, llama3), applied in the "rotate_half" layout: dimension i pairs with i + D/2.
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace ipt::ops {

struct RopeParams {
  std::string type = "default";  // default | linear | dynamic | yarn | llama3
  double theta = 10000.0;        // rope_theta
  int64_t head_dim = 0;
  double factor = 1.0;
  int64_t max_position_embeddings = 0;
  int64_t original_max_position_embeddings = 0;  // 0 = max_position_embeddings
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0, beta_slow = 1.0;             // yarn
  double attention_factor = 0.0;                        // yarn: 0 = 0.1 ln(factor) + 1
};

struct RopeTable {
  torch::Tensor inv_freq;          // [D/2] float64
  double attention_scaling = 1.0;  // multiplies cos and sin (yarn)
};

// `seq_len` matters only to dynamic NTK scaling (the base grows past the original length).
RopeTable rope_table(const RopeParams& params, int64_t seq_len = 0);

// x [B, H, L, D]; positions [L] or [B, L] (int64; restart them per packed document).
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& positions, const RopeTable& table);

// The same in two steps, for callers that rotate many tensors at the same positions (a decoding
// session: every layer's q and k): cos and sin once, [L, D] or [B, 1, L, D] in `dtype`.
struct RopeAngles {
  torch::Tensor cos, sin;
};
RopeAngles rope_angles(const torch::Tensor& positions, const RopeTable& table, torch::Dtype dtype);
// float32 and bfloat16 on the CPU: one fused pass forward and one backward, with the expression's
// roundings (each product and the sum rounded to x's type); otherwise the expression itself,
// apply_rope_reference. The result is contiguous.
torch::Tensor apply_rope(const torch::Tensor& x, const RopeAngles& angles);
torch::Tensor apply_rope_reference(const torch::Tensor& x, const RopeAngles& angles);

}  // namespace ipt::ops
