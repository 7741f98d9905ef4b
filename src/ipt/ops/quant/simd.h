#pragma once
// What quant.cpp (formats, Activation) and matvec.cpp (the kernels) share: the block layouts, byte
// loads, the run-time CPU checks and the per-function instruction-set targets. Private to ops/quant.

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*() (`__Y = __Y`), which
// -Wuninitialized then reports wherever they are inlined (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
#include <cpuid.h>
#include <immintrin.h>

#include <cstdint>
#include <cstring>

// Each SIMD loop is compiled for its instruction set with a target attribute, so these files need
// no -march flag; which loop runs is decided once at run time from the CPU's features.
#define IPT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define IPT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define IPT_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,avx2,fma,f16c")))

namespace ipt::ops::quant::internal {

constexpr int kQK = 32;  // values per block of the q types

// Block byte layouts (ggml-common.h).
constexpr int kQ8_0Bytes = 34, kQ4_0Bytes = 18, kQ4_1Bytes = 20;

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// F16C from CPUID directly: clang 14's __builtin_cpu_supports does not know "f16c".
inline bool cpu_has_f16c() {
  unsigned eax, ebx, ecx, edx;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}
inline bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c(); }
inline bool cpu_has_avx512() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
inline bool cpu_has_avx512_bf16() { return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16"); }

}  // namespace ipt::ops::quant::internal
