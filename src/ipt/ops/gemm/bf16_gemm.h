#pragma once
// bfloat16 x bfloat16 -> float32 matrix products: every product of two bf16 values is exact in
// float32, so this is the float32 product of the widened inputs (up to summation order) at the bf16
// rate, with no float32 copies. oneDNN's gemm_bf16bf16f32, found in the process at run time:
// Debian's libtorch links oneDNN as a shared library (the torch2 wheel links it privately, so there
// callers keep their float32 path); it needs an AVX-512 CPU. It threads with OpenMP, libtorch's own
// pool, and runs single-threaded when called inside a parallel region.
#include <torch/torch.h>

#include <cstdint>

namespace ipt::ops {

// Whether gemm_bf16 can run here (found, and a probe product came out right on this CPU).
bool bf16_gemm_available();

// C[M, N] = alpha * op(A) op(B) + beta * C on row-major blocks (op = transpose when asked), A and
// B bfloat16, C float32. Requires bf16_gemm_available().
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const at::BFloat16* A,
               int64_t lda, const at::BFloat16* B, int64_t ldb, float beta, float* C, int64_t ldc);

// a [M, K] @ b [K, N] for bfloat16 CPU tensors (contiguous or transposed views), float32 [M, N].
// Requires bf16_gemm_available().
torch::Tensor mm_bf16(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace ipt::ops
