// The matrix-vector kernels (scalar, AVX2, AVX-512 and batched) and their run-time dispatch.
#include <algorithm>
#include <array>
#include <cstring>

#include "ipt/common/error.h"
#include "ipt/ops/quant/quant.h"
#include "ipt/ops/quant/simd.h"

namespace ipt::ops::quant {

using namespace internal;

namespace detail {
namespace {
bool g_avx512_bf16_dot = true;
}
void set_avx512_bf16_dot(bool enabled) { g_avx512_bf16_dot = enabled; }
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Kernels. Each computes R rows (R = 1..4, `stride` bytes apart) together so the activation's loads
// are shared; matvec() decides which rows go together.

namespace {

// w: row 0 of the group, stride: bytes between its rows; y: row 0's output, ys: floats between
// the rows' outputs.
using GroupFn = void (*)(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys);
using GroupFns = std::array<GroupFn, 4>;  // [R - 1]
#define IPT_GROUPS(fn) GroupFns{fn<1>, fn<2>, fn<3>, fn<4>}

// ---- scalar: the reference, one row at a time in column order.

template <int R>
void f32_scalar(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  for (int r = 0; r < R; ++r) {
    const auto* row = reinterpret_cast<const float*>(w + r * stride);
    float sum = 0;
    for (int64_t j = 0; j < cols; ++j) sum += row[j] * x.f32()[j];
    y[r * ys] = sum;
  }
}

template <int R>
void bf16_scalar(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  for (int r = 0; r < R; ++r) {
    const uint8_t* row = w + r * stride;
    float sum = 0;
    for (int64_t j = 0; j < cols; ++j) sum += bf16_to_float(load_u16(row + 2 * j)) * x.bf16_as_f32()[j];
    y[r * ys] = sum;
  }
}

template <int R>
void q8_0_scalar(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  for (int r = 0; r < R; ++r) {
    const uint8_t* blk = w + r * stride;
    float sum = 0;
    for (int64_t i = 0; i < cols / kQK; ++i, blk += kQ8_0Bytes) {
      const int8_t* xq = x.q8() + i * kQK;
      // Read as int8_t*, not as (int8_t) of each byte: GCC 12.2 with AVX512-VNNI enabled (-march=native)
      // vectorizes the latter with vpdpbusd taking the bytes as unsigned (wrong sums; seen here).
      const auto* wq = reinterpret_cast<const int8_t*>(blk + 2);
      int32_t isum = 0;
      for (int j = 0; j < kQK; ++j) isum += wq[j] * xq[j];
      sum += half_to_float(load_u16(blk)) * x.q8_scale()[i] * static_cast<float>(isum);
    }
    y[r * ys] = sum;
  }
}

template <int R>
void q4_0_scalar(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  for (int r = 0; r < R; ++r) {
    const uint8_t* blk = w + r * stride;
    float sum = 0;
    for (int64_t i = 0; i < cols / kQK; ++i, blk += kQ4_0Bytes) {
      const int8_t* xq = x.q8() + i * kQK;
      int32_t isum = -8 * x.q8_sum()[i];
      for (int j = 0; j < 16; ++j) isum += (blk[2 + j] & 0x0f) * xq[j] + (blk[2 + j] >> 4) * xq[j + 16];
      sum += half_to_float(load_u16(blk)) * x.q8_scale()[i] * static_cast<float>(isum);
    }
    y[r * ys] = sum;
  }
}

template <int R>
void q4_1_scalar(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  const float* dds = x.q8_scale_and_scaled_sum();
  for (int r = 0; r < R; ++r) {
    const uint8_t* blk = w + r * stride;
    float sum = 0;
    for (int64_t i = 0; i < cols / kQK; ++i, blk += kQ4_1Bytes) {
      const int8_t* xq = x.q8() + i * kQK;
      int32_t isum = 0;
      for (int j = 0; j < 16; ++j) isum += (blk[4 + j] & 0x0f) * xq[j] + (blk[4 + j] >> 4) * xq[j + 16];
      sum += half_to_float(load_u16(blk)) * dds[2 * i] * static_cast<float>(isum) +
             half_to_float(load_u16(blk + 2)) * dds[2 * i + 1];
    }
    y[r * ys] = sum;
  }
}

// ---- AVX2 (+FMA, F16C). Integer dots with maddubs (u8 x s8 -> pairs of i16), then madd with ones.

IPT_AVX2 inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int R>
IPT_AVX2 void f32_avx2(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  const float* xf = x.f32();
  const float* row[R];
  __m256 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) row[r] = reinterpret_cast<const float*>(w + r * stride), acc[r] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= cols; j += 8) {
    const __m256 xv = _mm256_load_ps(xf + j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(row[r] + j), xv, acc[r]);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float sum = hsum256(acc[r]);
    for (int64_t k = j; k < cols; ++k) sum += row[r][k] * xf[k];
    y[r * ys] = sum;
  }
}

IPT_AVX2 inline __m256 bf16x8_to_f32(const uint8_t* p) {
  const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

template <int R>
IPT_AVX2 void bf16_avx2(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  const float* xf = x.bf16_as_f32();
  __m256 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= cols; j += 8) {
    const __m256 xv = _mm256_load_ps(xf + j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(bf16x8_to_f32(w + r * stride + 2 * j), xv, acc[r]);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float sum = hsum256(acc[r]);
    for (int64_t k = j; k < cols; ++k) sum += bf16_to_float(load_u16(w + r * stride + 2 * k)) * xf[k];
    y[r * ys] = sum;
  }
}

// The 32 nibbles of a q4 block's qs[16] as bytes in element order (low nibbles, then high).
IPT_AVX2 inline __m256i nibbles32(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
}

IPT_AVX2 inline __m256i dot_u8_s8(__m256i u, __m256i s) {  // 8 lanes of int32 partial sums
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

template <int R>
IPT_AVX2 void q8_0_avx2(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  __m256 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < cols / kQK; ++i) {
    const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8() + i * kQK));
    const float dx = x.q8_scale()[i];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * stride + i * kQ8_0Bytes;
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
      // signed x signed: |w| times x with w's sign moved onto it (|w| <= 128 fits u8, no i16 overflow).
      const __m256i dot = dot_u8_s8(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
      const __m256 scale = _mm256_set1_ps(_cvtsh_ss(load_u16(blk)) * dx);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) y[r * ys] = hsum256(acc[r]);
}

template <int R>
IPT_AVX2 void q4_0_avx2(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  __m256 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < cols / kQK; ++i) {
    const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8() + i * kQK));
    const __m256i off = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q4_0_offset() + 8 * i));
    const float dx = x.q8_scale()[i];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * stride + i * kQ4_0Bytes;
      const __m256i dot = _mm256_add_epi32(dot_u8_s8(nibbles32(blk + 2), xv), off);  // - 8 * sum(x)
      const __m256 scale = _mm256_set1_ps(_cvtsh_ss(load_u16(blk)) * dx);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) y[r * ys] = hsum256(acc[r]);
}

template <int R>
IPT_AVX2 void q4_1_avx2(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  const float* dds = x.q8_scale_and_scaled_sum();
  __m256 acc[R];
  float mins[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps(), mins[r] = 0;
  for (int64_t i = 0; i < cols / kQK; ++i) {
    const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8() + i * kQK));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * stride + i * kQ4_1Bytes;
      const __m256i dot = dot_u8_s8(nibbles32(blk + 4), xv);
      const __m256 scale = _mm256_set1_ps(_cvtsh_ss(load_u16(blk)) * dds[2 * i]);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[r]);
      mins[r] += _cvtsh_ss(load_u16(blk + 2)) * dds[2 * i + 1];
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) y[r * ys] = hsum256(acc[r]) + mins[r];
}

// ---- AVX-512 (F/BW/VL, VNNI): two 32-blocks per 512-bit register, integer dots with dpbusd
// (u8 x s8, four products summed into each int32 lane). Lanes 0-7 hold the first block, 8-15 the
// second; each block's scale is spread over its 8 lanes and multiplied in before the f32 sum. The
// fp16 scales of all R rows convert together, once per block pair.

// The fp16 scales of two blocks `bytes` apart, as one 32-bit pair.
inline int scale_pair(const uint8_t* blk, int bytes) {
  return static_cast<int>(load_u16(blk) | static_cast<uint32_t>(load_u16(blk + bytes)) << 16);
}

// The scales of a block pair in each of R rows (`stride` apart) as floats {row 0 block 0, row 0
// block 1, row 1 block 0, ...}; lanes past 2R are zero.
template <int R>
IPT_AVX512 inline __m256 pair_scales(const uint8_t* blk, int64_t stride, int bytes) {
  __m128i h = _mm_cvtsi32_si128(scale_pair(blk, bytes));
  if constexpr (R > 1) h = _mm_insert_epi32(h, scale_pair(blk + stride, bytes), 1);
  if constexpr (R > 2) h = _mm_insert_epi32(h, scale_pair(blk + 2 * stride, bytes), 2);
  if constexpr (R > 3) h = _mm_insert_epi32(h, scale_pair(blk + 3 * stride, bytes), 3);
  return _mm256_cvtph_ps(h);
}

// Lanes a and b of s, each spread over 8 lanes: the scales of a block pair's two blocks.
IPT_AVX512 inline __m512 spread(__m256 s, int a, int b) {
  return _mm512_permutexvar_ps(_mm512_set_epi32(b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a),
                               _mm512_castps256_ps512(s));
}

// {x's d for blocks i, i + 1} repeated over 8 lanes, to multiply pair_scales with.
IPT_AVX512 inline __m256 x_scale_pairs(const Activation& x, int64_t i) {
  return _mm256_castpd_ps(_mm256_broadcast_sd(reinterpret_cast<const double*>(x.q8_scale() + i)));
}

template <int R>
IPT_AVX512 void f32_avx512(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  const float* xf = x.f32();
  __m512 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16) {
    const __m512 xv = _mm512_load_ps(xf + j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(reinterpret_cast<const float*>(w + r * stride) + j), xv, acc[r]);
  }
  if (j < cols) {  // masked tail: the padding of x is zero and masked-off weights read as zero
    const __mmask16 m = static_cast<__mmask16>((1u << (cols - j)) - 1);
    const __m512 xv = _mm512_load_ps(xf + j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(w + r * stride) + j), xv, acc[r]);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) y[r * ys] = _mm512_reduce_add_ps(acc[r]);
}

// bf16 rows widened to f32 (CPUs without AVX-512 BF16).
template <int R>
IPT_AVX512 void bf16_avx512(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  const float* xf = x.bf16_as_f32();
  __m512 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = cols - j >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (cols - j)) - 1);
    const __m512 xv = _mm512_load_ps(xf + j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256i v = _mm256_maskz_loadu_epi16(m, w + r * stride + 2 * j);
      const __m512 wv = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
      acc[r] = _mm512_fmadd_ps(wv, xv, acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) y[r * ys] = _mm512_reduce_add_ps(acc[r]);
}

// bf16 rows with the BF16 dot product: 32 products per instruction, pairs summed into f32 lanes.
template <int R>
IPT_AVX512_BF16 void bf16_avx512bf16(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  const uint16_t* xb = x.bf16();
  __m512 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t j = 0; j < cols; j += 32) {
    const __mmask32 m = cols - j >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((1u << (cols - j)) - 1);
    const __m512bh xv = (__m512bh)_mm512_load_si512(xb + j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_maskz_loadu_epi16(m, w + r * stride + 2 * j), xv);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) y[r * ys] = _mm512_reduce_add_ps(acc[r]);
}

// q8_0 weights are signed; dpbusd wants one unsigned side. w ^ 0x80 = w + 128 as u8, so the dot
// gains 128 * sum(x), which the accumulator's start value (-128 * sum(x)) takes away.
template <int R>
IPT_AVX512 void q8_0_avx512(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  const int64_t nb = cols / kQK;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512i xv = _mm512_load_si512(x.q8() + i * kQK);
    const __m512i off = _mm512_load_si512(x.q8_0_offset() + 8 * i);
    const __m256 scales = _mm256_mul_ps(pair_scales<R>(w + i * kQ8_0Bytes, stride, kQ8_0Bytes), x_scale_pairs(x, i));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * stride + i * kQ8_0Bytes;
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQ8_0Bytes + 2));
      const __m512i wv = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), flip);
      const __m512i dot = _mm512_dpbusd_epi32(off, wv, xv);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), spread(scales, 2 * r, 2 * r + 1), acc[r]);
    }
  }
  float tail[R] = {};
  if (i < nb) {  // an odd last block: the same in 256 bits
    const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8() + i * kQK));
    const __m256i off = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8_0_offset() + 8 * i));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * stride + i * kQ8_0Bytes;
      const __m256i wv = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)),
                                          _mm512_castsi512_si256(flip));
      const __m256i dot = _mm256_dpbusd_epi32(off, wv, xv);
      tail[r] = hsum256(_mm256_cvtepi32_ps(dot)) * (_cvtsh_ss(load_u16(blk)) * x.q8_scale()[i]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) y[r * ys] = _mm512_reduce_add_ps(acc[r]) + tail[r];
}

// The nibbles of two q4 blocks (qs `bytes` apart) in element order without shifting:
// [block 0 low nibbles, block 0 high nibbles * 16, block 1 low, block 1 high * 16]. The dots of the
// high halves (lanes 4-7 and 12-15) come out 16 times too large; kNibbleScale undoes that on the
// accumulator, once (a power of two: the sums round exactly as if each term were divided).
IPT_AVX512 inline __m512i nibbles64(const uint8_t* qs, int bytes) {
  const __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + bytes)));
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
  return _mm512_and_si512(both, _mm512_set_epi64(-0x0f0f0f0f0f0f0f10, -0x0f0f0f0f0f0f0f10, 0x0f0f0f0f0f0f0f0f,
                                                 0x0f0f0f0f0f0f0f0f, -0x0f0f0f0f0f0f0f10, -0x0f0f0f0f0f0f0f10,
                                                 0x0f0f0f0f0f0f0f0f, 0x0f0f0f0f0f0f0f0f));
}

IPT_AVX512 inline __m512 undo_nibble_scale(__m512 acc) {
  const float s = 1.0f / 16;
  return _mm512_mul_ps(acc, _mm512_set_ps(s, s, s, s, 1, 1, 1, 1, s, s, s, s, 1, 1, 1, 1));
}

// q4_0: nibbles are unsigned already; the -8 offset is the start value -8 * sum(x).
template <int R>
IPT_AVX512 void q4_0_avx512(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  const int64_t nb = cols / kQK;
  __m512 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512i xv = _mm512_load_si512(x.q8() + i * kQK);
    const __m512i off = _mm512_load_si512(x.q4_0_offset() + 8 * i);
    const __m256 scales = _mm256_mul_ps(pair_scales<R>(w + i * kQ4_0Bytes, stride, kQ4_0Bytes), x_scale_pairs(x, i));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * stride + i * kQ4_0Bytes;
      const __m512i dot = _mm512_dpbusd_epi32(off, nibbles64(blk + 2, kQ4_0Bytes), xv);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), spread(scales, 2 * r, 2 * r + 1), acc[r]);
    }
  }
  float tail[R] = {};
  if (i < nb) {
    const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8() + i * kQK));
    const __m256i off = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q4_0_offset() + 8 * i));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * stride + i * kQ4_0Bytes;
      const __m256i dot = _mm256_dpbusd_epi32(off, nibbles32(blk + 2), xv);
      tail[r] = hsum256(_mm256_cvtepi32_ps(dot)) * (_cvtsh_ss(load_u16(blk)) * x.q8_scale()[i]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) y[r * ys] = _mm512_reduce_add_ps(undo_nibble_scale(acc[r])) + tail[r];
}

// q4_1: each row's {d, m} of a block pair is 4 fp16 values; two rows convert together. Times
// {dx, dx * sum(x)} per block, the even lanes are the dots' scales and the odd lanes the blocks'
// min terms m * dx * sum(x), summed apart.
template <int R>
IPT_AVX512 void q4_1_avx512(const uint8_t* w, int64_t stride, int64_t cols, const Activation& x, float* y, int64_t ys) {
  constexpr int P = (R + 1) / 2;  // row pairs
  const int64_t nb = cols / kQK;
  const float* dds = x.q8_scale_and_scaled_sum();
  __m512 acc[R];
  __m256 mins[P];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int p = 0; p < P; ++p) mins[p] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512i xv = _mm512_load_si512(x.q8() + i * kQK);
    const __m256 xd = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(dds + 2 * i));
    __m256 dm[P];  // rows 2p, 2p + 1: {s0, min0, s1, min1} each
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p) {
      const uint8_t* blk = w + 2 * p * stride + i * kQ4_1Bytes;
      __m128i h = _mm_cvtsi64_si128(static_cast<int64_t>(load_u32(blk) | uint64_t{load_u32(blk + kQ4_1Bytes)} << 32));
      if (2 * p + 1 < R) {
        blk += stride;
        h = _mm_insert_epi64(h, static_cast<int64_t>(load_u32(blk) | uint64_t{load_u32(blk + kQ4_1Bytes)} << 32), 1);
      }
      dm[p] = _mm256_mul_ps(_mm256_cvtph_ps(h), xd);
      mins[p] = _mm256_add_ps(mins[p], dm[p]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * stride + i * kQ4_1Bytes;
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles64(blk + 4, kQ4_1Bytes), xv);
      const __m512 scale = spread(dm[r / 2], 4 * (r % 2), 4 * (r % 2) + 2);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[r]);
    }
  }
  float tail[R] = {};
  if (i < nb) {
    const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8() + i * kQK));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + r * stride + i * kQ4_1Bytes;
      const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles32(blk + 4), xv);
      tail[r] = hsum256(_mm256_cvtepi32_ps(dot)) * (_cvtsh_ss(load_u16(blk)) * dds[2 * i]) +
                _cvtsh_ss(load_u16(blk + 2)) * dds[2 * i + 1];
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    alignas(32) float m[8];
    _mm256_store_ps(m, mins[r / 2]);
    const int o = 4 * (r % 2);
    y[r * ys] = _mm512_reduce_add_ps(undo_nibble_scale(acc[r])) + (m[o + 1] + m[o + 3]) + tail[r];
  }
}

constexpr int kMaxBatchKernel = 8;

// ---- batched: one row against NB inputs (NB = 1..8). The row's blocks are loaded, unpacked and
// their fp16 scales converted once, then multiplied NB times. Per input every lane sees the same
// operations in the same order as in the single-input kernel above (row 0 of its group), so each
// output is bit-identical to matvec's.

template <int NB>
IPT_AVX512 void q8_0_avx512_batch(const uint8_t* w, int64_t cols, const Activation* const* xs, float* const* ys,
                                  int64_t r) {
  const int64_t nb = cols / kQK;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[NB];
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) acc[b] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const uint8_t* blk = w + i * kQ8_0Bytes;
    const __m256 ws = pair_scales<1>(blk, 0, kQ8_0Bytes);
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQ8_0Bytes + 2));
    const __m512i wv = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), flip);
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      const Activation& x = *xs[b];
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_load_si512(x.q8_0_offset() + 8 * i), wv,
                                              _mm512_load_si512(x.q8() + i * kQK));
      const __m256 scales = _mm256_mul_ps(ws, x_scale_pairs(x, i));
      acc[b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), spread(scales, 0, 1), acc[b]);
    }
  }
  float tail[NB] = {};
  if (i < nb) {
    const uint8_t* blk = w + i * kQ8_0Bytes;
    const __m256i wv = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)),
                                        _mm512_castsi512_si256(flip));
    const float wd = _cvtsh_ss(load_u16(blk));
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      const Activation& x = *xs[b];
      const __m256i dot =
          _mm256_dpbusd_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8_0_offset() + 8 * i)), wv,
                              _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8() + i * kQK)));
      tail[b] = hsum256(_mm256_cvtepi32_ps(dot)) * (wd * x.q8_scale()[i]);
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) ys[b][r] = _mm512_reduce_add_ps(acc[b]) + tail[b];
}

template <int NB>
IPT_AVX512 void q4_0_avx512_batch(const uint8_t* w, int64_t cols, const Activation* const* xs, float* const* ys,
                                  int64_t r) {
  const int64_t nb = cols / kQK;
  __m512 acc[NB];
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) acc[b] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const uint8_t* blk = w + i * kQ4_0Bytes;
    const __m256 ws = pair_scales<1>(blk, 0, kQ4_0Bytes);
    const __m512i nib = nibbles64(blk + 2, kQ4_0Bytes);
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      const Activation& x = *xs[b];
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_load_si512(x.q4_0_offset() + 8 * i), nib,
                                              _mm512_load_si512(x.q8() + i * kQK));
      const __m256 scales = _mm256_mul_ps(ws, x_scale_pairs(x, i));
      acc[b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), spread(scales, 0, 1), acc[b]);
    }
  }
  float tail[NB] = {};
  if (i < nb) {
    const uint8_t* blk = w + i * kQ4_0Bytes;
    const __m256i nib = nibbles32(blk + 2);
    const float wd = _cvtsh_ss(load_u16(blk));
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      const Activation& x = *xs[b];
      const __m256i dot =
          _mm256_dpbusd_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(x.q4_0_offset() + 8 * i)), nib,
                              _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8() + i * kQK)));
      tail[b] = hsum256(_mm256_cvtepi32_ps(dot)) * (wd * x.q8_scale()[i]);
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) ys[b][r] = _mm512_reduce_add_ps(undo_nibble_scale(acc[b])) + tail[b];
}

template <int NB>
IPT_AVX512 void q4_1_avx512_batch(const uint8_t* w, int64_t cols, const Activation* const* xs, float* const* ys,
                                  int64_t r) {
  const int64_t nb = cols / kQK;
  __m512 acc[NB];
  __m256 mins[NB];
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    acc[b] = _mm512_setzero_ps();
    mins[b] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const uint8_t* blk = w + i * kQ4_1Bytes;
    // {d, m} of both blocks in lanes 0-3, as row 0 of a pair in the single-input kernel
    const __m256 dmw = _mm256_cvtph_ps(
        _mm_cvtsi64_si128(static_cast<int64_t>(load_u32(blk) | uint64_t{load_u32(blk + kQ4_1Bytes)} << 32)));
    const __m512i nib = nibbles64(blk + 4, kQ4_1Bytes);
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      const Activation& x = *xs[b];
      const __m256 dm = _mm256_mul_ps(
          dmw, _mm256_broadcast_ps(reinterpret_cast<const __m128*>(x.q8_scale_and_scaled_sum() + 2 * i)));
      mins[b] = _mm256_add_ps(mins[b], dm);
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nib, _mm512_load_si512(x.q8() + i * kQK));
      acc[b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), spread(dm, 0, 2), acc[b]);
    }
  }
  float tail[NB] = {};
  if (i < nb) {
    const uint8_t* blk = w + i * kQ4_1Bytes;
    const __m256i nib = nibbles32(blk + 4);
    const float wd = _cvtsh_ss(load_u16(blk)), wm = _cvtsh_ss(load_u16(blk + 2));
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      const Activation& x = *xs[b];
      const float* dds = x.q8_scale_and_scaled_sum();
      const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nib,
                                              _mm256_load_si256(reinterpret_cast<const __m256i*>(x.q8() + i * kQK)));
      tail[b] = hsum256(_mm256_cvtepi32_ps(dot)) * (wd * dds[2 * i]) + wm * dds[2 * i + 1];
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    alignas(32) float m[8];
    _mm256_store_ps(m, mins[b]);
    ys[b][r] = _mm512_reduce_add_ps(undo_nibble_scale(acc[b])) + (m[1] + m[3]) + tail[b];
  }
}

// ---- dispatch

const GroupFns& kernels_for(Type t, Kernel k) {
  static const GroupFns scalar[] = {IPT_GROUPS(f32_scalar), IPT_GROUPS(bf16_scalar), IPT_GROUPS(q8_0_scalar),
                                    IPT_GROUPS(q4_0_scalar), IPT_GROUPS(q4_1_scalar)};
  static const GroupFns avx2[] = {IPT_GROUPS(f32_avx2), IPT_GROUPS(bf16_avx2), IPT_GROUPS(q8_0_avx2),
                                  IPT_GROUPS(q4_0_avx2), IPT_GROUPS(q4_1_avx2)};
  static const GroupFns avx512[] = {IPT_GROUPS(f32_avx512), IPT_GROUPS(bf16_avx512), IPT_GROUPS(q8_0_avx512),
                                    IPT_GROUPS(q4_0_avx512), IPT_GROUPS(q4_1_avx512)};
  static const GroupFns avx512_bf16_dot = IPT_GROUPS(bf16_avx512bf16);
  static const bool has_bf16_dot = cpu_has_avx512_bf16();
  const auto ti = static_cast<size_t>(t);
  switch (k) {
    case Kernel::kAvx512:
      if (t == Type::kBF16 && has_bf16_dot && detail::g_avx512_bf16_dot) return avx512_bf16_dot;
      return avx512[ti];
    case Kernel::kAvx2: return avx2[ti];
    default: return scalar[ti];
  }
}

// one row against 1..8 inputs; null where no batched kernel exists (matvec_batch then loops)
using BatchFn = void (*)(const uint8_t* w, int64_t cols, const Activation* const* xs, float* const* ys, int64_t r);
using BatchFns = std::array<BatchFn, kMaxBatchKernel>;  // [NB - 1]
#define IPT_BATCH(fn) BatchFns{fn<1>, fn<2>, fn<3>, fn<4>, fn<5>, fn<6>, fn<7>, fn<8>}

const BatchFns* batch_kernels_for(Type t, Kernel k) {
  static const BatchFns q8_0 = IPT_BATCH(q8_0_avx512_batch), q4_0 = IPT_BATCH(q4_0_avx512_batch),
                        q4_1 = IPT_BATCH(q4_1_avx512_batch);
  if (k != Kernel::kAvx512) return nullptr;
  switch (t) {
    case Type::kQ8_0: return &q8_0;
    case Type::kQ4_0: return &q4_0;
    case Type::kQ4_1: return &q4_1;
    default: return nullptr;
  }
}

}  // namespace

bool kernel_supported(Kernel k) {
  static const bool avx2 = cpu_has_avx2(), avx512 = cpu_has_avx512();
  switch (k) {
    case Kernel::kAvx512: return avx512;
    case Kernel::kAvx2: return avx2;
    default: return true;
  }
}

Kernel best_kernel() {
  static const Kernel best = kernel_supported(Kernel::kAvx512) ? Kernel::kAvx512
                             : kernel_supported(Kernel::kAvx2) ? Kernel::kAvx2
                                                               : Kernel::kScalar;
  return best;
}

const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::kBest: return "best";
    case Kernel::kScalar: return "scalar";
    case Kernel::kAvx2: return "avx2";
    case Kernel::kAvx512: return "avx512";
  }
  return "?";
}

void matvec(const Matrix& W, const Activation& x, float* y, int64_t row_begin, int64_t row_end, Kernel k) {
  IPT_CHECK(x.size() == W.cols(), "quant::matvec: x has ", x.size(), " values but W (", type_name(W.type()), ", ",
            W.rows(), " x ", W.cols(), ") has ", W.cols(), " columns");
  IPT_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= W.rows(), "quant::matvec: row range [", row_begin,
            ", ", row_end, ") is not inside the matrix's ", W.rows(), " rows");
  IPT_CHECK(kernel_supported(k), "quant::matvec: this CPU cannot run the ", kernel_name(k), " kernel");
  if (row_begin == row_end) return;
  IPT_CHECK(y, "quant::matvec: y must not be null");
  const GroupFns& fns = kernels_for(W.type(), k == Kernel::kBest ? best_kernel() : k);
  // The range is cut into 4 equal parts read in step: rows r, r + q, r + 2q, r + 3q go together, so
  // each of the 4 streams is contiguous in memory for the whole range and the hardware prefetchers
  // follow it. (Groups of 4 adjacent rows make a new short stream per row, which the prefetchers
  // barely catch: half the bandwidth from DRAM, measured.) The 0-3 rows left over go last.
  const int64_t q = (row_end - row_begin) / 4;
  for (int64_t i = 0; i < q; ++i) fns[3](W.row(row_begin + i), q * W.row_stride(), W.cols(), x, y + row_begin + i, q);
  const int64_t rest = row_begin + 4 * q;
  if (rest < row_end) fns[row_end - rest - 1](W.row(rest), W.row_stride(), W.cols(), x, y + rest, 1);
}

void matvec_batch(const Matrix& W, const Activation* const* xs, float* const* ys, int64_t batch, int64_t row_begin,
                  int64_t row_end, Kernel k) {
  IPT_CHECK(batch >= 0, "quant::matvec_batch: batch must be >= 0, got ", batch);
  IPT_CHECK(batch == 0 || (xs && ys), "quant::matvec_batch: xs and ys must not be null");
  for (int64_t b = 0; b < batch; ++b) {
    IPT_CHECK(xs[b] && xs[b]->size() == W.cols(), "quant::matvec_batch: input ", b, " has ",
              xs[b] ? xs[b]->size() : 0, " values but W (", type_name(W.type()), ", ", W.rows(), " x ", W.cols(),
              ") has ", W.cols(), " columns");
    IPT_CHECK(ys[b] || row_begin == row_end, "quant::matvec_batch: output ", b, " must not be null");
  }
  IPT_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= W.rows(), "quant::matvec_batch: row range [",
            row_begin, ", ", row_end, ") is not inside the matrix's ", W.rows(), " rows");
  IPT_CHECK(kernel_supported(k), "quant::matvec_batch: this CPU cannot run the ", kernel_name(k), " kernel");
  const Kernel kernel = k == Kernel::kBest ? best_kernel() : k;
  const BatchFns* fns = batch_kernels_for(W.type(), kernel);
  if (!fns || batch == 1) {  // f32 / bf16 rows are read at memory speed already: one pass per input
    for (int64_t b = 0; b < batch; ++b) matvec(W, *xs[b], ys[b], row_begin, row_end, kernel);
    return;
  }
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t b0 = 0; b0 < batch; b0 += kMaxBatchKernel) {
      const int64_t n = std::min<int64_t>(kMaxBatchKernel, batch - b0);
      (*fns)[n - 1](W.row(r), W.cols(), xs + b0, ys + b0, r);
    }
}

}  // namespace ipt::ops::quant
