#pragma once
// Causal self-attention that never builds an L x L matrix: blocks of queries against blocks of
// keys with an online softmax (flash-attention style), saving only the output and each row's
// log-sum-exp; the backward recomputes block scores. Grouped-query attention, sliding windows,
// packed documents and a query offset (prefill/decode against a cache) are masks on blocks;
// blocks that are entirely masked are skipped. The CPU kernels (kernel_cpu.cpp) stack the query
// heads of one key/value group into one block, call BLAS on raw pointers and run the softmax in
// vectorised per-row loops (AVX2+FMA when the CPU has it, chosen at run time). Tensors on a GPU
// go to PyTorch's fused scaled-dot-product attention instead (attention_fused).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace ipt::ops {

struct AttentionOptions {
  int64_t window = 0;               // > 0: query at position p sees keys p-window+1 .. p; 0 = full causal
  std::vector<int64_t> cu_seqlens;  // packed documents (batch of one): attention stays inside each
  double scale = 0.0;               // 0 = 1/sqrt(head_dim)
  int64_t block_q = 0;              // query rows per head per block; 0 = measured default
  int64_t block_k = 0;              // key rows per block; 0 = measured default
};

// q [B, Hq, Lq, D], k and v [B, Hkv, Lk, D], Hq a multiple of Hkv, Lq <= Lk: the queries are the
// last Lq positions of the Lk keys (Lq = Lk for training and whole-sequence prefill).
// Returns [B, Hq, Lq, D]; differentiable in q, k, v. On the CPU, bfloat16 inputs run bf16 block
// products with float32 softmax and accumulators where oneDNN's bf16 GEMM is available (the default
// build on AVX-512 CPUs), and are widened to float32 otherwise.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const AttentionOptions& options = {});

// The GPU path, callable on any device (the tests compare it with the reference on the CPU):
// PyTorch's fused scaled-dot-product attention (flash / memory-efficient kernels on CUDA with
// libtorch 2.x; the plain definition on 1.13), one call per packed document, plain causal rows in
// one call without a mask, and otherwise blocks of block_q (default 1024) queries with a
// [block, keys] mask built on the device, so no L x L matrix exists. Differentiable through autograd.
torch::Tensor attention_fused(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const AttentionOptions& options = {});

// The forward alone (no autograd, CPU) with each query row's log-sum-exp [B, Hq, Lq] of the scaled
// scores. Computed as attention() computes on the CPU: out in the kernel's type (float16 widened to
// float32; bfloat16 kept where the bf16 kernel runs), lse float32 for 16-bit inputs.
struct AttentionForward {
  torch::Tensor out, lse;
};
AttentionForward attention_forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   const AttentionOptions& options = {});

// The plain definition (full masked score matrix), for tests and small inputs.
torch::Tensor attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const AttentionOptions& options = {});

}  // namespace ipt::ops
