#pragma once
// RMSNorm over the last dimension, as Hugging Face's LlamaRMSNorm computes it: the mean square and
// the normalisation in float32 (float64 for float64 input), the normalised row cast back to the
// input's type, then times the gain. float32 and bfloat16 rows on the CPU (gain of the same type)
// run as one fused pass forward and one backward, with the same roundings as the expression;
// other types and devices run the expression itself (rms_norm_reference).
#include <torch/torch.h>

namespace ipt::ops {

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& weight, double eps);

}  // namespace ipt::ops
