#include "ipt/ops/quant/quant.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "ipt/common/error.h"
#include "ipt/ops/quant/simd.h"

namespace ipt::ops::quant {

using namespace internal;

namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// The value as it is, kept out of any fused multiply-add: ggml's reference rounds a product and
// then a sum separately, and a compiler allowed to contract (-ffp-contract=fast with FMA in the
// target) would fuse them and change the last bit.
inline float unfused(float v) {
  asm("" : "+x"(v));
  return v;
}

// ggml's reference uses roundf (halves away from zero); |v| <= 127.5 here, so via int is exact.
inline int round_half_away(float v) {
  if (!(std::fabs(v) <= 128.0f)) return v > 0 ? 127 : -128;  // NaN (from inf input): no UB, as the SIMD path
  int t = static_cast<int>(v);  // toward zero
  const float frac = v - static_cast<float>(t);  // exact
  if (frac >= 0.5f) ++t;
  else if (frac <= -0.5f) --t;
  return t;
}

struct TypeInfo {
  Type type;
  const char* name;
  int64_t block_size, block_bytes;
  uint32_t ggml_id;
};
constexpr std::array<TypeInfo, 5> kTypes = {{
    {Type::kF32, "f32", 1, 4, 0},
    {Type::kBF16, "bf16", 1, 2, 30},
    {Type::kQ8_0, "q8_0", kQK, kQ8_0Bytes, 8},
    {Type::kQ4_0, "q4_0", kQK, kQ4_0Bytes, 2},
    {Type::kQ4_1, "q4_1", kQK, kQ4_1Bytes, 3},
}};

const TypeInfo& info(Type t) {
  const auto i = static_cast<size_t>(t);
  IPT_CHECK(i < kTypes.size(), "quant: invalid Type value ", i);
  return kTypes[i];
}

void check_count(Type t, int64_t n, const char* what) {
  IPT_CHECK(n >= 0 && n % info(t).block_size == 0, "quant: ", what, " (", n, ") must be a non-negative multiple of the ",
            info(t).name, " block size ", info(t).block_size);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Types and scalar conversions

const char* type_name(Type t) { return info(t).name; }

Type parse_type(const std::string& name) {
  for (const auto& i : kTypes)
    if (name == i.name) return i.type;
  throw Error("quant: unknown weight type '" + name + "' (choices: f32, bf16, q8_0, q4_0, q4_1)");
}

int64_t block_size(Type t) { return info(t).block_size; }
int64_t block_bytes(Type t) { return info(t).block_bytes; }

int64_t row_bytes(Type t, int64_t cols) {
  check_count(t, cols, "cols");
  return cols / info(t).block_size * info(t).block_bytes;
}

uint32_t ggml_type_id(Type t) { return info(t).ggml_id; }

Type type_from_ggml(uint32_t id) {
  for (const auto& i : kTypes)
    if (id == i.ggml_id) return i.type;
  throw Error("quant: ggml type id " + std::to_string(id) +
              " has no matvec kernel (supported: F32 0, Q4_0 2, Q4_1 3, Q8_0 8, BF16 30)");
}

uint16_t float_to_half(float f) {
  const uint32_t x = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffff;
  if (ax > 0x7f800000) return sign | 0x7e00;   // NaN: quiet
  if (ax >= 0x477ff000) return sign | 0x7c00;  // >= 65520 rounds to infinity (65504 is the largest half)
  if (ax < 0x38800000) {
    // Below 2^-14: a subnormal half, a multiple of 2^-24. Adding 0.5 (whose ulp is 2^-24) makes the
    // FPU round to that grid, nearest even; the low mantissa bits are then the half's.
    return sign | static_cast<uint16_t>(float_bits(bits_float(ax) + 0.5f) - float_bits(0.5f));
  }
  // Normal: drop 13 mantissa bits rounding to nearest even (a carry may bump the exponent, which is
  // right), then rebias the exponent from 127 to 15.
  const uint32_t rounded = ax + 0xfff + ((ax >> 13) & 1);
  return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000 | (mant << 13));  // inf, NaN
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    const float v = static_cast<float>(mant) * bits_float(0x33800000);
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t float_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if (std::isnan(f)) return 0x7fc0;
  return static_cast<uint16_t>((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

float bf16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

// ---------------------------------------------------------------------------------------------
// Rows of blocks

namespace {

// ggml's quantize_row_q8_0_ref, operation for operation.
void quantize_q8_0(const float* x, uint8_t* y, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i, x += kQK, y += kQ8_0Bytes) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(y, float_to_half(d));
    for (int j = 0; j < kQK; ++j) y[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(round_half_away(x[j] * id)));
  }
}

// ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8, so that value maps to
// -8 exactly and the other sign gets 7 levels; (int8_t)(v + 8.5) truncates, capped at 15.
void quantize_q4_0(const float* x, uint8_t* y, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i, x += kQK, y += kQ4_0Bytes) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(y, float_to_half(d));
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(unfused(x[j] * id) + 8.5f)));
      const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(unfused(x[j + 16] * id) + 8.5f)));
      y[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// ggml's quantize_row_q4_1_ref: 16 levels from the block's min to its max.
void quantize_q4_1(const float* x, uint8_t* y, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i, x += kQK, y += kQ4_1Bytes) {
    float min = std::numeric_limits<float>::max(), max = -std::numeric_limits<float>::max();
    for (int j = 0; j < kQK; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(y, float_to_half(d));
    store_u16(y + 2, float_to_half(min));
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(unfused((x[j] - min) * id) + 0.5f)));
      const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(unfused((x[j + 16] - min) * id) + 0.5f)));
      y[4 + j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

}  // namespace

void quantize_row(Type t, const float* src, void* dst, int64_t n) {
  check_count(t, n, "n");
  if (n == 0) return;
  IPT_CHECK(src && dst, "quantize_row: src and dst must not be null");
  auto* y = static_cast<uint8_t*>(dst);
  switch (t) {
    case Type::kF32: std::memcpy(y, src, n * sizeof(float)); return;
    case Type::kBF16:
      for (int64_t j = 0; j < n; ++j) store_u16(y + 2 * j, float_to_bf16(src[j]));
      return;
    case Type::kQ8_0: quantize_q8_0(src, y, n / kQK); return;
    case Type::kQ4_0: quantize_q4_0(src, y, n / kQK); return;
    case Type::kQ4_1: quantize_q4_1(src, y, n / kQK); return;
  }
}

void dequantize_row(Type t, const void* src, float* dst, int64_t n) {
  check_count(t, n, "n");
  if (n == 0) return;
  IPT_CHECK(src && dst, "dequantize_row: src and dst must not be null");
  const auto* x = static_cast<const uint8_t*>(src);
  const int64_t blocks = n / info(t).block_size;
  switch (t) {
    case Type::kF32: std::memcpy(dst, x, n * sizeof(float)); return;
    case Type::kBF16:
      for (int64_t j = 0; j < n; ++j) dst[j] = bf16_to_float(load_u16(x + 2 * j));
      return;
    case Type::kQ8_0:
      for (int64_t b = 0; b < blocks; ++b, x += kQ8_0Bytes, dst += kQK) {
        const float d = half_to_float(load_u16(x));
        for (int j = 0; j < kQK; ++j) dst[j] = static_cast<int8_t>(x[2 + j]) * d;
      }
      return;
    case Type::kQ4_0:
      for (int64_t b = 0; b < blocks; ++b, x += kQ4_0Bytes, dst += kQK) {
        const float d = half_to_float(load_u16(x));
        for (int j = 0; j < 16; ++j) {
          dst[j] = ((x[2 + j] & 0x0f) - 8) * d;
          dst[j + 16] = ((x[2 + j] >> 4) - 8) * d;
        }
      }
      return;
    case Type::kQ4_1:
      for (int64_t b = 0; b < blocks; ++b, x += kQ4_1Bytes, dst += kQK) {
        const float d = half_to_float(load_u16(x)), m = half_to_float(load_u16(x + 2));
        for (int j = 0; j < 16; ++j) {
          dst[j] = unfused((x[4 + j] & 0x0f) * d) + m;
          dst[j + 16] = unfused((x[4 + j] >> 4) * d) + m;
        }
      }
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Storage: Matrix and Activation

namespace detail {

void AlignedFree::operator()(uint8_t* p) const noexcept { std::free(p); }

void AlignedBytes::resize(size_t bytes) {
  if (bytes > capacity_) {
    const size_t rounded = (bytes + 63) / 64 * 64;  // aligned_alloc wants a multiple of the alignment
    auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, rounded));
    if (!p) throw std::bad_alloc();
    data_.reset(p);
    capacity_ = rounded;
  }
  size_ = bytes;
}


}  // namespace detail

Matrix::Matrix(Type t, int64_t rows, int64_t cols) : type_(t), rows_(rows), cols_(cols) {
  IPT_CHECK(rows >= 0, "quant::Matrix: rows must be >= 0, got ", rows);
  row_bytes_ = row_bytes(t, cols);
  // Padded to whole 64-byte lines so no load of the last row can leave the allocation.
  storage_.resize(static_cast<size_t>(rows * row_bytes_) + 64);
}

Matrix Matrix::quantize(const float* W, int64_t rows, int64_t cols, Type t) {
  Matrix m(t, rows, cols);
  IPT_CHECK(W || m.bytes() == 0, "quant::Matrix::quantize: W must not be null");
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, W + r * cols, m.storage_.data() + r * m.row_bytes_, cols);
  return m;
}

Matrix Matrix::from_blocks(Type t, int64_t rows, int64_t cols, const void* data) {
  Matrix m(t, rows, cols);
  IPT_CHECK(data || m.bytes() == 0, "quant::Matrix::from_blocks: data must not be null");
  if (m.bytes() > 0) std::memcpy(m.storage_.data(), data, m.bytes());
  return m;
}

void Matrix::dequantize_row_to(int64_t r, float* dst) const {
  IPT_CHECK(r >= 0 && r < rows_, "quant::Matrix: row ", r, " is outside [0, ", rows_, ")");
  dequantize_row(type_, row(r), dst, cols_);
}

namespace {

// x's q8 form per 32-block: ggml's q8 rounding (d = amax / 127, q = roundf(x * (1 / d))) with d kept
// as a float, and the sum of the block's q.
void quantize_x_scalar(const float* x, int64_t blocks, int8_t* q, float* d, int32_t* s) {
  for (int64_t i = 0; i < blocks; ++i, x += kQK, q += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    d[i] = amax / 127;
    const float id = d[i] != 0.0f ? 1.0f / d[i] : 0.0f;
    s[i] = 0;
    for (int j = 0; j < kQK; ++j) {
      q[j] = static_cast<int8_t>(round_half_away(x[j] * id));
      s[i] += q[j];
    }
  }
}

// The same values, 8 at a time.
IPT_AVX2 void quantize_x_avx2(const float* x, int64_t blocks, int8_t* q, float* d, int32_t* s) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 half = _mm256_set1_ps(0.5f), minus_half = _mm256_set1_ps(-0.5f), one = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < blocks; ++i, x += kQK, q += kQK) {
    __m256 v[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      m = _mm256_max_ps(_mm256_and_ps(v[k], abs_mask), m);  // NaN loses, as in std::max(amax, |x|)
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    d[i] = _mm_cvtss_f32(h) / 127;
    const __m256 id = _mm256_set1_ps(d[i] != 0.0f ? 1.0f / d[i] : 0.0f);
    __m256i qi[4], sum = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
      // roundf: truncate, then step away from zero where the dropped fraction is at least a half.
      const __m256 p = _mm256_mul_ps(v[k], id);
      const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m256 frac = _mm256_sub_ps(p, t);
      __m256 r = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), one));
      r = _mm256_sub_ps(r, _mm256_and_ps(_mm256_cmp_ps(frac, minus_half, _CMP_LE_OQ), one));
      qi[k] = _mm256_cvttps_epi32(r);
      sum = _mm256_add_epi32(sum, qi[k]);
    }
    // int32 -> int8: the packs interleave 128-bit lanes; the permute puts the dwords back in order.
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                        _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s[i] = _mm_cvtsi128_si32(_mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1)));
  }
}

// x rounded to bf16 (bits, and as floats).
void round_bf16_scalar(const float* x, int64_t n, uint16_t* b, float* bf) {
  for (int64_t j = 0; j < n; ++j) {
    b[j] = float_to_bf16(x[j]);
    bf[j] = bf16_to_float(b[j]);
  }
}

IPT_AVX2 void round_bf16_avx2(const float* x, int64_t n, uint16_t* b, float* bf) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_loadu_ps(x + j);
    const __m256i bits = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7fc0), _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    _mm256_storeu_ps(bf + j, _mm256_castsi256_ps(_mm256_slli_epi32(r, 16)));
    const __m256i r16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);  // values fit u16
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b + j), _mm256_castsi256_si128(r16));
  }
  round_bf16_scalar(x + j, n - j, b + j, bf + j);
}

}  // namespace

namespace detail {
namespace {
bool g_simd_activation = true;
}
void set_simd_activation(bool enabled) { g_simd_activation = enabled; }
}  // namespace detail

void Activation::set(const float* x, int64_t n) {
  IPT_CHECK(n >= 0, "quant::Activation::set: n must be >= 0, got ", n);
  IPT_CHECK(x || n == 0, "quant::Activation::set: x must not be null");
  n_ = n;
  const int64_t blocks = n / kQK;
  const int64_t padded = (n + 31) / 32 * 32;  // whole vectors for the kernels' tails, zero filled
  f32_.resize(padded * 4);
  bf16_.resize(padded * 2);
  bf16f_.resize(padded * 4);
  q_.resize(blocks * kQK);
  d_.resize(blocks * 4);
  s_.resize(blocks * 4);
  dds_.resize(blocks * 8);
  off8_.resize(blocks * 32);
  off128_.resize(blocks * 32);
  if (n == 0) return;

  auto* f = reinterpret_cast<float*>(f32_.data());
  auto* b = reinterpret_cast<uint16_t*>(bf16_.data());
  auto* bf = reinterpret_cast<float*>(bf16f_.data());
  std::memcpy(f, x, n * sizeof(float));
  std::fill(f + n, f + padded, 0.0f);
  std::fill(b + n, b + padded, uint16_t{0});
  std::fill(bf + n, bf + padded, 0.0f);
  static const bool avx2 = cpu_has_avx2();
  const bool simd = avx2 && detail::g_simd_activation;
  (simd ? round_bf16_avx2 : round_bf16_scalar)(x, n, b, bf);

  auto* d = reinterpret_cast<float*>(d_.data());
  auto* s = reinterpret_cast<int32_t*>(s_.data());
  (simd ? quantize_x_avx2 : quantize_x_scalar)(x, blocks, reinterpret_cast<int8_t*>(q_.data()), d, s);
  auto* dds = reinterpret_cast<float*>(dds_.data());
  auto* off8 = reinterpret_cast<int32_t*>(off8_.data());
  auto* off128 = reinterpret_cast<int32_t*>(off128_.data());
  std::fill(off8, off8 + 8 * blocks, 0);
  std::fill(off128, off128 + 8 * blocks, 0);
  for (int64_t i = 0; i < blocks; ++i) {
    dds[2 * i] = d[i];
    dds[2 * i + 1] = d[i] * static_cast<float>(s[i]);
    off8[8 * i] = -8 * s[i];
    off128[8 * i] = -128 * s[i];
  }
}

}  // namespace ipt::ops::quant
