#pragma once
// Eight floats as one value (a GCC vector extension) for the CPU kernels' element-wise loops (the
// kernels in src/ipt/ops and the optimizer's bf16 copy): AVX
// registers in functions compiled with IPT_TARGET_AVX2, pairs of SSE registers in the baseline
// copies; a kernel compiles its loop body twice and picks once at run time with use_avx2()
// (target_clones' "arch=" would pick by CPU model and miss AMD parts). Reductions over these values
// are explicit, so no -ffast-math is needed for the loops to vectorise.
#include <c10/util/BFloat16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

// The vector values never cross a non-inlined call; the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#define IPT_ALWAYS_INLINE inline __attribute__((always_inline))
#if defined(__x86_64__) && defined(__GNUC__)
#define IPT_HAVE_AVX2_PATH 1
#define IPT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define IPT_HAVE_AVX2_PATH 0
#define IPT_TARGET_AVX2
#endif

namespace ipt::ops::vec8 {

typedef float F8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));
typedef uint32_t U8 __attribute__((vector_size(32)));
typedef uint16_t H8 __attribute__((vector_size(16)));

inline bool use_avx2() {
#if IPT_HAVE_AVX2_PATH
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

IPT_ALWAYS_INLINE F8 load8(const float* p) {
  F8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
IPT_ALWAYS_INLINE void store8(float* p, F8 v) { std::memcpy(p, &v, sizeof(v)); }
IPT_ALWAYS_INLINE F8 splat8(float x) { return F8{x, x, x, x, x, x, x, x}; }
IPT_ALWAYS_INLINE float sum8(F8 v) {
  float s = 0;
  for (int i = 0; i < 8; ++i) s += v[i];
  return s;
}

// bfloat16 <-> float: widening is exact; narrowing rounds to nearest even and keeps NaN a NaN,
// as c10::BFloat16's constructor does (the scalar tails use it).
IPT_ALWAYS_INLINE F8 load8(const c10::BFloat16* p) {
  H8 half;
  std::memcpy(&half, p, sizeof(half));
  const U8 bits = __builtin_convertvector(half, U8) << 16;
  F8 v;
  std::memcpy(&v, &bits, sizeof(v));
  return v;
}
IPT_ALWAYS_INLINE void store8(c10::BFloat16* p, F8 v) {
  U8 bits;
  std::memcpy(&bits, &v, sizeof(bits));
  U8 rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  rounded = v != v ? U8{} + 0x7fc0u : rounded;
  const H8 half = __builtin_convertvector(rounded, H8);
  std::memcpy(p, &half, sizeof(half));
}
// The value a float becomes when stored as T (bfloat16 rounding; float unchanged).
template <typename T>
IPT_ALWAYS_INLINE F8 round_to(F8 v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    alignas(32) T tmp[8];
    store8(tmp, v);
    return load8(tmp);
  }
}
template <typename T>
IPT_ALWAYS_INLINE float round_to(float v) {
  return static_cast<float>(static_cast<T>(v));
}

// n floats to bfloat16 (store8's rounding), compiled for AVX2 and the baseline, picked at run time.
IPT_ALWAYS_INLINE void to_bf16_impl(const float* x, int64_t n, c10::BFloat16* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store8(out + i, load8(x + i));
  for (; i < n; ++i) out[i] = c10::BFloat16(x[i]);
}
IPT_TARGET_AVX2 inline void to_bf16_avx2(const float* x, int64_t n, c10::BFloat16* out) { to_bf16_impl(x, n, out); }
inline void to_bf16_base(const float* x, int64_t n, c10::BFloat16* out) { to_bf16_impl(x, n, out); }
inline void to_bf16(const float* x, int64_t n, c10::BFloat16* out) {
  if (use_avx2())
    to_bf16_avx2(x, n, out);
  else
    to_bf16_base(x, n, out);
}

// exp(x) for x <= 0 (fine up to ~88): Cephes' expf reduction and polynomial, branch-free; relative
// error ~1e-7.
template <typename V, typename I>
IPT_ALWAYS_INLINE V exp_poly(V x) {
  x = x < -87.0f ? V{} - 87.0f : x;
  const V t = x * 1.44269504088896341f;
  const V z = (t + 12582912.0f) - 12582912.0f;  // round to nearest (|t| < 2^22)
  V r = x - z * 0.693359375f;
  r = r - z * -2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  I bits;
  if constexpr (std::is_same_v<V, float>)
    bits = (static_cast<int32_t>(z) + 127) << 23;
  else
    bits = (__builtin_convertvector(z, I) + 127) << 23;
  V two_z;
  std::memcpy(&two_z, &bits, sizeof(two_z));
  return p * two_z;
}

}  // namespace ipt::ops::vec8
