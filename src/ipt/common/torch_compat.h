#pragma once
// Where the two libtorch versions this code builds against differ: Debian's 1.13 (the default
// build, CPU only) and PyPI's 2.x wheel (the torch2 build, with CUDA). Everything else in the code
// base is written against the API both share, except the CPU allocator's interface, which
// common/large_block_cache.cpp implements for both under IPT_TORCH2.
#include <torch/torch.h>
#include <torch/version.h>

#include <limits>

#define IPT_TORCH2 (TORCH_VERSION_MAJOR >= 2)

namespace ipt::compat {

// Softmax(q k^T * scale, masked) v for q [B, H, Lq, D], k and v [B, H, Lk, D] (the caller repeats
// grouped key/value heads). `visible`: undefined, or bool broadcastable to [B, H, Lq, Lk] (true =
// may attend). `causal`: query i sees keys 0..i (top-left aligned, as PyTorch defines it).
// libtorch 2.x runs its fused kernels (flash / memory-efficient on CUDA, flash on the CPU);
// 1.13 has none, so it runs the plain definition with float32 statistics.
inline torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v, const torch::Tensor& visible, bool causal,
                                                  double scale) {
#if IPT_TORCH2
  return at::scaled_dot_product_attention(q, k, v, visible.defined() ? std::optional<torch::Tensor>(visible)
                                                                     : std::optional<torch::Tensor>(),
                                          0.0, causal, scale);
#else
  const auto stats = q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  torch::Tensor scores = torch::matmul(q.to(stats), k.to(stats).transpose(-1, -2)) * scale;
  torch::Tensor mask = visible;
  if (causal)
    mask = torch::ones({q.size(2), k.size(2)}, q.options().dtype(torch::kBool)).tril();
  if (mask.defined()) scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(scores, -1), v.to(stats)).to(q.scalar_type());
#endif
}

}  // namespace ipt::compat
