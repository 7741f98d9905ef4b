#include "ipt/ops/matvec/matvec.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cstring>

#include "ipt/common/error.h"

namespace ipt::ops {

namespace {

using Bf16 = uint16_t;  // the bit pattern: the upper half of a float32

inline float bf16_to_float(Bf16 v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Dot products of `rows` consecutive rows of W (stride `ld`) with x, into y. Three builds of one
// loop; the widest the CPU runs is chosen once.
void dot_rows_scalar(const Bf16* W, int64_t ld, int64_t rows, const float* x, int64_t k, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const Bf16* w = W + r * ld;
    float sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += bf16_to_float(w[j]) * x[j];
    y[r] = sum;
  }
}

__attribute__((target("avx2,fma"))) void dot_rows_avx2(const Bf16* W, int64_t ld, int64_t rows, const float* x,
                                                         int64_t k, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const Bf16* w = W + r * ld;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= k; j += 16) {
      const __m256i a = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + j)));
      const __m256i b = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + j + 8)));
      acc0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)), _mm256_loadu_ps(x + j), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(b, 16)), _mm256_loadu_ps(x + j + 8), acc1);
    }
    const __m256 acc = _mm256_add_ps(acc0, acc1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    float sum = _mm_cvtss_f32(s);
    for (; j < k; ++j) sum += bf16_to_float(w[j]) * x[j];
    y[r] = sum;
  }
}

__attribute__((target("avx512f,avx512bw"))) void dot_rows_avx512(const Bf16* W, int64_t ld, int64_t rows,
                                                                   const float* x, int64_t k, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const Bf16* w = W + r * ld;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= k; j += 32) {
      const __m512i a = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j)));
      const __m512i b = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j + 16)));
      acc0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), _mm512_loadu_ps(x + j), acc0);
      acc1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), _mm512_loadu_ps(x + j + 16), acc1);
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; j < k; ++j) sum += bf16_to_float(w[j]) * x[j];
    y[r] = sum;
  }
}

// y += a * row for `k` values of a bf16 row (the vecmat inner step).
void axpy_scalar(float a, const Bf16* row, int64_t k, float* y) {
  for (int64_t j = 0; j < k; ++j) y[j] += a * bf16_to_float(row[j]);
}

__attribute__((target("avx2,fma"))) void axpy_avx2(float a, const Bf16* row, int64_t k, float* y) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j)));
    _mm256_storeu_ps(y + j, _mm256_fmadd_ps(va, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), _mm256_loadu_ps(y + j)));
  }
  for (; j < k; ++j) y[j] += a * bf16_to_float(row[j]);
}

__attribute__((target("avx512f,avx512bw"))) void axpy_avx512(float a, const Bf16* row, int64_t k, float* y) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + j)));
    _mm512_storeu_ps(y + j, _mm512_fmadd_ps(va, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), _mm512_loadu_ps(y + j)));
  }
  for (; j < k; ++j) y[j] += a * bf16_to_float(row[j]);
}

bool cpu_has_avx512() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"); }
bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

MatvecKernel chosen(MatvecKernel requested) {
  IPT_CHECK(matvec_kernel_supported(requested), "matvec: this CPU cannot run the requested kernel");
  if (requested != MatvecKernel::kBest) return requested;
  return cpu_has_avx512() ? MatvecKernel::kAvx512 : cpu_has_avx2() ? MatvecKernel::kAvx2 : MatvecKernel::kScalar;
}

}  // namespace

bool matvec_kernel_supported(MatvecKernel kernel) {
  return kernel == MatvecKernel::kAvx512 ? cpu_has_avx512() : kernel == MatvecKernel::kAvx2 ? cpu_has_avx2() : true;
}

torch::Tensor matvec(const torch::Tensor& W, const torch::Tensor& x, MatvecKernel requested) {
  IPT_CHECK(W.dim() == 2 && x.dim() == 1 && x.size(0) == W.size(1), "matvec: W must be [n, k] and x [k], got ",
            W.sizes(), " and ", x.sizes());
  // float32, and any type on the GPU (cuBLAS gemv is at memory speed there): libtorch.
  if (W.scalar_type() != torch::kBFloat16 || !W.device().is_cpu()) return torch::mv(W, x.to(W.scalar_type()));
  const torch::Tensor w = W.stride(1) == 1 ? W : W.contiguous();
  const torch::Tensor xf = x.to(torch::kFloat32).contiguous();
  torch::Tensor y = torch::empty({W.size(0)}, xf.options());
  const auto* wp = reinterpret_cast<const Bf16*>(w.data_ptr<at::BFloat16>());
  const float* xp = xf.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t k = W.size(1), ld = w.stride(0);
  const MatvecKernel kernel = chosen(requested);
  // Rows in blocks of 64 per task: enough work to split over threads, few tasks.
  at::parallel_for(0, W.size(0), 64, [&](int64_t begin, int64_t end) {
    const Bf16* rows = wp + begin * ld;
    if (kernel == MatvecKernel::kAvx512) dot_rows_avx512(rows, ld, end - begin, xp, k, yp + begin);
    else if (kernel == MatvecKernel::kAvx2) dot_rows_avx2(rows, ld, end - begin, xp, k, yp + begin);
    else dot_rows_scalar(rows, ld, end - begin, xp, k, yp + begin);
  });
  return y.to(torch::kBFloat16);
}

torch::Tensor vecmat(const torch::Tensor& x, const torch::Tensor& M, MatvecKernel requested) {
  IPT_CHECK(M.dim() == 2 && x.dim() == 1 && x.size(0) == M.size(0), "vecmat: x must be [n] and M [n, k], got ",
            x.sizes(), " and ", M.sizes());
  if (M.scalar_type() != torch::kBFloat16 || !M.device().is_cpu()) return torch::mv(M.t(), x.to(M.scalar_type()));
  const torch::Tensor m = M.stride(1) == 1 ? M : M.contiguous();
  const torch::Tensor xf = x.to(torch::kFloat32).contiguous();
  torch::Tensor y = torch::zeros({M.size(1)}, xf.options());
  const auto* mp = reinterpret_cast<const Bf16*>(m.data_ptr<at::BFloat16>());
  const float* xp = xf.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t n = M.size(0), k = M.size(1), ld = m.stride(0);
  const MatvecKernel kernel = chosen(requested);
  for (int64_t i = 0; i < n; ++i) {
    if (kernel == MatvecKernel::kAvx512) axpy_avx512(xp[i], mp + i * ld, k, yp);
    else if (kernel == MatvecKernel::kAvx2) axpy_avx2(xp[i], mp + i * ld, k, yp);
    else axpy_scalar(xp[i], mp + i * ld, k, yp);
  }
  return y.to(torch::kBFloat16);
}

}  // namespace ipt::ops
