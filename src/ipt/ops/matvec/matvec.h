#pragma once
// Matrix-vector products for decoding one token. float32 goes to libtorch (BLAS gemv, already at
// memory speed); bfloat16 has its own kernels because libtorch 1.13's bf16 mv runs at a fraction
// of the memory bandwidth (measured: docs/benchmarks.md "Decode"). Accumulation is float32.
// Tensors on a GPU go to libtorch (cuBLAS) in every type.
#include <torch/torch.h>

namespace ipt::ops {

// Which build of the bf16 loops runs: the widest this CPU has, or one named (tests run each).
enum class MatvecKernel { kBest, kScalar, kAvx2, kAvx512 };
bool matvec_kernel_supported(MatvecKernel kernel);

// y = W x: W [n, k], x [k] -> [n], in W's type.
torch::Tensor matvec(const torch::Tensor& W, const torch::Tensor& x, MatvecKernel kernel = MatvecKernel::kBest);

// y = x M: x [n], M [n, k] (rows may be strided, e.g. a cache's first n rows) -> [k], in M's type.
torch::Tensor vecmat(const torch::Tensor& x, const torch::Tensor& M, MatvecKernel kernel = MatvecKernel::kBest);

}  // namespace ipt::ops
