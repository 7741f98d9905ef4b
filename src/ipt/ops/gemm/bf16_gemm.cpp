#include "ipt/ops/gemm/bf16_gemm.h"

#include <dlfcn.h>

#include "ipt/common/error.h"

namespace ipt::ops {

namespace {

using Bf16Gemm = int (*)(char, char, int64_t, int64_t, int64_t, float, const at::BFloat16*, int64_t,
                         const at::BFloat16*, int64_t, float, float*, int64_t);

Bf16Gemm bf16_gemm_function() {
  static const Bf16Gemm fn = [] {
    auto candidate = reinterpret_cast<Bf16Gemm>(dlsym(RTLD_DEFAULT, "dnnl_gemm_bf16bf16f32"));
    if (!candidate) return Bf16Gemm(nullptr);
    // A 2x2 product as a probe: status 0 (dnnl_success) and the right numbers (it refuses CPUs
    // without AVX-512).
    const at::BFloat16 a[4] = {1.0f, 2.0f, 3.0f, 4.0f}, b[4] = {0.5f, 1.0f, -1.0f, 2.0f};
    float c[4] = {0, 0, 0, 0};
    const int status = candidate('N', 'N', 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    const bool right = c[0] == -1.5f && c[1] == 5.0f && c[2] == -2.5f && c[3] == 11.0f;
    return status == 0 && right ? candidate : Bf16Gemm(nullptr);
  }();
  return fn;
}

// How a 2-D tensor is laid out for a row-major GEMM: as it is, or as the transpose of a row-major
// matrix (a .t() view); anything else is copied.
struct Operand {
  torch::Tensor storage;
  bool transposed = false;
  int64_t ld = 0;
};

Operand operand(const torch::Tensor& t) {
  if (t.stride(1) == 1 && t.stride(0) >= std::max<int64_t>(1, t.size(1))) return {t, false, t.stride(0)};
  if (t.stride(0) == 1 && t.stride(1) >= std::max<int64_t>(1, t.size(0))) return {t, true, t.stride(1)};
  torch::Tensor c = t.contiguous();
  return {c, false, std::max<int64_t>(1, c.size(1))};
}

}  // namespace

bool bf16_gemm_available() { return bf16_gemm_function() != nullptr; }

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const at::BFloat16* A,
               int64_t lda, const at::BFloat16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const Bf16Gemm fn = bf16_gemm_function();
  IPT_CHECK(fn != nullptr, "bf16 GEMM: oneDNN's gemm_bf16bf16f32 is not available in this process");
  const int status = fn(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  IPT_CHECK(status == 0, "bf16 GEMM: oneDNN's gemm_bf16bf16f32 failed with status ", status);
}

torch::Tensor mm_bf16(const torch::Tensor& a, const torch::Tensor& b) {
  IPT_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "mm_bf16: needs a [M, K] and b [K, N], got ",
            a.sizes(), " and ", b.sizes());
  IPT_CHECK(a.scalar_type() == torch::kBFloat16 && b.scalar_type() == torch::kBFloat16 && a.device().is_cpu() &&
                b.device().is_cpu(),
            "mm_bf16: needs bfloat16 CPU tensors");
  const Operand x = operand(a), y = operand(b);
  torch::Tensor c = torch::empty({a.size(0), b.size(1)}, a.options().dtype(torch::kFloat32));
  if (a.size(1) == 0) return c.zero_();
  gemm_bf16(x.transposed, y.transposed, a.size(0), b.size(1), a.size(1), 1.0f, x.storage.data_ptr<at::BFloat16>(),
            x.ld, y.storage.data_ptr<at::BFloat16>(), y.ld, 0.0f, c.data_ptr<float>(), b.size(1));
  return c;
}

}  // namespace ipt::ops
