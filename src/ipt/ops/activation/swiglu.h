#pragma once
// The gated MLP's activation, silu(gate) * up, as the tensor expression computes it in the inputs'
// type (silu rounded to that type, then the product). float32 and bfloat16 on the CPU run as one
// fused pass forward and one backward, which keeps only gate and up for the backward (the
// expression also keeps silu(gate)); other types and devices run the expression (swiglu_reference).
#include <torch/torch.h>

namespace ipt::ops {

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);
torch::Tensor swiglu_reference(const torch::Tensor& gate, const torch::Tensor& up);

}  // namespace ipt::ops
