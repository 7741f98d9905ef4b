// The weight-quantized decode kernels (ipt/ops/quant): the block formats bit for bit against a
// transcription of ggml's reference quantizers, round-trip error bounds, and matvec for every type
// and every kernel this CPU runs against float64 products of the same values. No libtorch here
// (test_quant_gguf.cpp checks dequantization against the GGUF importer).
#include <gtest/gtest.h>
#include <cpuid.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ipt/common/error.h"
#include "ipt/ops/quant/quant.h"

namespace q = ipt::ops::quant;

namespace {

const q::Type kAllTypes[] = {q::Type::kF32, q::Type::kBF16, q::Type::kQ8_0, q::Type::kQ4_0, q::Type::kQ4_1};
const q::Type kBlockTypes[] = {q::Type::kQ8_0, q::Type::kQ4_0, q::Type::kQ4_1};

// ---- ggml's reference quantizers, transcribed from ggml-quants.c (quantize_row_q8_0_ref,
// quantize_row_q4_0_ref, quantize_row_q4_1_ref) as plainly as possible. fp16 comes from the F16C
// instruction with round-to-nearest-even, as ggml does on x86.

bool cpu_has_f16c() {  // (clang 14's __builtin_cpu_supports does not know "f16c")
  unsigned eax, ebx, ecx, edx;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}
__attribute__((target("f16c"))) uint16_t fp16_f16c(float f) { return _cvtss_sh(f, 0); }
__attribute__((target("f16c"))) float fp32_f16c(uint16_t h) { return _cvtsh_ss(h); }

// A rounded product kept apart from the following add (ggml's C is compiled without contraction).
float apart(float v) {
  asm("" : "+x"(v));
  return v;
}

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v & 0xff));
  out.push_back(static_cast<uint8_t>(v >> 8));
}

std::vector<uint8_t> ggml_q8_0(const float* x, int64_t k) {
  std::vector<uint8_t> y;
  for (int64_t i = 0; i < k / 32; i++) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[i * 32 + j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    put16(y, fp16_f16c(d));
    for (int j = 0; j < 32; ++j) y.push_back(static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[i * 32 + j] * id))));
  }
  return y;
}

std::vector<uint8_t> ggml_q4_0(const float* x, int64_t k) {
  std::vector<uint8_t> y;
  for (int64_t i = 0; i < k / 32; i++) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++) {
      const float v = x[i * 32 + j];
      if (amax < std::fabs(v)) {
        amax = std::fabs(v);
        max = v;
      }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    put16(y, fp16_f16c(d));
    for (int j = 0; j < 16; ++j) {
      const float x0 = apart(x[i * 32 + j] * id), x1 = apart(x[i * 32 + 16 + j] * id);
      const uint8_t xi0 = std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 8.5f)));
      const uint8_t xi1 = std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 8.5f)));
      y.push_back(static_cast<uint8_t>(xi0 | (xi1 << 4)));
    }
  }
  return y;
}

std::vector<uint8_t> ggml_q4_1(const float* x, int64_t k) {
  std::vector<uint8_t> y;
  for (int64_t i = 0; i < k / 32; i++) {
    float min = std::numeric_limits<float>::max(), max = -std::numeric_limits<float>::max();
    for (int j = 0; j < 32; j++) {
      const float v = x[i * 32 + j];
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    put16(y, fp16_f16c(d));
    put16(y, fp16_f16c(min));
    for (int j = 0; j < 16; ++j) {
      const float x0 = apart((x[i * 32 + j] - min) * id), x1 = apart((x[i * 32 + 16 + j] - min) * id);
      const uint8_t xi0 = std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 0.5f)));
      const uint8_t xi1 = std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 0.5f)));
      y.push_back(static_cast<uint8_t>(xi0 | (xi1 << 4)));
    }
  }
  return y;
}

std::vector<uint8_t> reference_blocks(q::Type t, const std::vector<float>& x) {
  switch (t) {
    case q::Type::kQ8_0: return ggml_q8_0(x.data(), static_cast<int64_t>(x.size()));
    case q::Type::kQ4_0: return ggml_q4_0(x.data(), static_cast<int64_t>(x.size()));
    default: return ggml_q4_1(x.data(), static_cast<int64_t>(x.size()));
  }
}

std::vector<uint8_t> quantized(q::Type t, const std::vector<float>& x) {
  std::vector<uint8_t> out(q::row_bytes(t, static_cast<int64_t>(x.size())));
  q::quantize_row(t, x.data(), out.data(), static_cast<int64_t>(x.size()));
  return out;
}

std::vector<float> dequantized(q::Type t, const std::vector<uint8_t>& blocks, int64_t n) {
  std::vector<float> out(n);
  q::dequantize_row(t, blocks.data(), out.data(), n);
  return out;
}

// Random rows whose 32-blocks differ in scale by up to 1e3 either way, as real weights' blocks do.
std::vector<float> random_row(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> exponent(-3, 3);
  std::vector<float> x(n);
  float scale = 1;
  for (int64_t j = 0; j < n; ++j) {
    if (j % 32 == 0) scale = std::pow(10.0f, exponent(rng));
    x[j] = normal(rng) * scale;
  }
  return x;
}

// Blocks that exercise the edge cases, 32 values each.
std::vector<float> special_blocks(std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> x;
  auto block = [&](auto value) {
    for (int j = 0; j < 32; ++j) x.push_back(value(j));
  };
  block([](int) { return 0.0f; });                                           // all zero: d = 0
  block([&](int j) { return j == 5 ? 1e4f : normal(rng) * 1e-2f; });         // one huge value
  block([&](int j) { return j == 20 ? -3e3f : normal(rng); });               // one huge negative value
  block([&](int) { return -std::fabs(normal(rng)) - 0.1f; });                // negative only
  block([&](int) { return std::fabs(normal(rng)) + 0.1f; });                 // positive only
  block([](int) { return 0.75f; });                                          // constant: q4_1's d = 0
  block([](int j) { return j == 31 ? -1.0f : 0.0f; });                       // one nonzero, last
  block([&](int) { return normal(rng) * 1e-6f; });                           // fp16 d subnormal
  block([&](int j) { return (j - 16) * 0.125f; });                           // exact ties of x / d
  block([&](int) { return normal(rng) * 1e7f; });                            // fp16 d overflows
  return x;
}

// The activation's q8 values as the kernels see them: x rounded to int8 per block, times d.
std::vector<double> q8_values(const q::Activation& a) {
  std::vector<double> out(a.size());
  for (int64_t j = 0; j < a.size(); ++j) out[j] = static_cast<double>(a.q8()[j]) * a.q8_scale()[j / 32];
  return out;
}

// x as a matrix of type t reads it (the only rounding of x any kernel does).
std::vector<double> x_as_read(q::Type t, const q::Activation& a) {
  if (t == q::Type::kF32) return std::vector<double>(a.f32(), a.f32() + a.size());
  if (t == q::Type::kBF16) return std::vector<double>(a.bf16_as_f32(), a.bf16_as_f32() + a.size());
  return q8_values(a);
}

// The bound on |x_j - x as read_j| (q8: half a step of its block; bf16: half an ulp, 2^-8 relative).
std::vector<double> read_error_bound(q::Type t, const std::vector<float>& x) {
  std::vector<double> e(x.size(), 0.0);
  for (size_t j = 0; j < x.size(); ++j) {
    if (t == q::Type::kBF16) {
      e[j] = std::ldexp(std::fabs(x[j]), -8);
    } else if (t != q::Type::kF32) {
      float amax = 0;
      for (size_t k = j / 32 * 32; k < j / 32 * 32 + 32; ++k) amax = std::max(amax, std::fabs(x[k]));
      e[j] = amax / 127.0 * (0.5 + 1e-6);
    }
  }
  return e;
}

struct KernelCase {
  q::Kernel kernel;
  bool bf16_dot;  // kAvx512 only: AVX-512 BF16 dot product (where the CPU has it) or widening
  std::string name;
};

std::vector<KernelCase> kernel_cases() {
  std::vector<KernelCase> out;
  for (q::Kernel k : {q::Kernel::kScalar, q::Kernel::kAvx2, q::Kernel::kAvx512, q::Kernel::kBest}) {
    if (!q::kernel_supported(k)) continue;
    out.push_back({k, true, q::kernel_name(k)});
    if (k == q::Kernel::kAvx512) out.push_back({k, false, "avx512 (bf16 widened)"});
  }
  return out;
}

struct Bf16DotGuard {  // restores the default after a case that turned the BF16 dot product off
  explicit Bf16DotGuard(bool enabled) { q::detail::set_avx512_bf16_dot(enabled); }
  ~Bf16DotGuard() { q::detail::set_avx512_bf16_dot(true); }
};

template <typename F>
void expect_error_mentioning(F&& f, const std::vector<std::string>& words) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const ipt::Error& e) {
    for (const auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what() << " lacks " << w;
  }
}

}  // namespace

TEST(Quant, TypeTable) {
  for (q::Type t : kAllTypes) EXPECT_EQ(q::parse_type(q::type_name(t)), t);
  EXPECT_STREQ(q::type_name(q::Type::kQ4_1), "q4_1");
  EXPECT_EQ(q::block_size(q::Type::kF32), 1);
  EXPECT_EQ(q::block_size(q::Type::kQ4_0), 32);
  EXPECT_EQ(q::row_bytes(q::Type::kF32, 7), 28);
  EXPECT_EQ(q::row_bytes(q::Type::kBF16, 7), 14);
  EXPECT_EQ(q::row_bytes(q::Type::kQ8_0, 576), 18 * 34);
  EXPECT_EQ(q::row_bytes(q::Type::kQ4_0, 576), 18 * 18);
  EXPECT_EQ(q::row_bytes(q::Type::kQ4_1, 576), 18 * 20);
  for (q::Type t : kAllTypes) EXPECT_EQ(q::type_from_ggml(q::ggml_type_id(t)), t);
  EXPECT_EQ(q::ggml_type_id(q::Type::kQ8_0), 8u);
  EXPECT_EQ(q::ggml_type_id(q::Type::kQ4_0), 2u);
  EXPECT_EQ(q::ggml_type_id(q::Type::kQ4_1), 3u);
}

TEST(Quant, HalfConversionsMatchF16c) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "no F16C to compare with";
  for (uint32_t h = 0; h < 65536; ++h) {
    const float got = q::half_to_float(static_cast<uint16_t>(h)), want = fp32_f16c(static_cast<uint16_t>(h));
    if (std::isnan(want)) EXPECT_TRUE(std::isnan(got)) << h;
    else EXPECT_EQ(std::memcmp(&got, &want, 4), 0) << "half " << h;
  }
  // Random float bit patterns (all exponents), plus the boundaries of the half range.
  std::mt19937 rng(7);
  std::vector<float> values = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e9f, -1e9f, 6.1035156e-05f,
                               6.1035153e-05f, 5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f, 1e-30f,
                               std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (int i = 0; i < 2000000; ++i) {
    const uint32_t bits = static_cast<uint32_t>(rng());
    float f;
    std::memcpy(&f, &bits, 4);
    values.push_back(f);
  }
  for (float f : values) {
    if (std::isnan(f)) continue;
    ASSERT_EQ(q::float_to_half(f), fp16_f16c(f)) << f;
  }
  EXPECT_EQ(q::float_to_half(std::nanf("")) & 0x7e00, 0x7e00);
}

TEST(Quant, Bf16RoundsToNearestEven) {
  EXPECT_EQ(q::float_to_bf16(1.0f), 0x3f80);
  float f;
  uint32_t bits = 0x3f808000;  // exactly halfway between 0x3f80 and 0x3f81: to even
  std::memcpy(&f, &bits, 4);
  EXPECT_EQ(q::float_to_bf16(f), 0x3f80);
  bits = 0x3f818000;  // halfway between 0x3f81 and 0x3f82: to even
  std::memcpy(&f, &bits, 4);
  EXPECT_EQ(q::float_to_bf16(f), 0x3f82);
  bits = 0x3f808001;  // above halfway
  std::memcpy(&f, &bits, 4);
  EXPECT_EQ(q::float_to_bf16(f), 0x3f81);
  EXPECT_EQ(q::float_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(q::float_to_bf16(std::nanf("")), 0x7fc0);
  EXPECT_EQ(q::bf16_to_float(0x3f81), 1.0078125f);
}

TEST(Quant, QuantizeRowIsBitExactWithGgmlReference) {
  if (!cpu_has_f16c()) GTEST_SKIP() << "the reference's fp16 rounding uses F16C";
  std::mt19937 rng(1);
  std::vector<std::vector<float>> rows = {special_blocks(rng)};
  for (int64_t n : {32, 64, 576, 1536}) rows.push_back(random_row(rng, n));
  for (const auto& x : rows) {
    for (q::Type t : kBlockTypes) {
      const std::vector<uint8_t> got = quantized(t, x), want = reference_blocks(t, x);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(got[i], want[i]) << q::type_name(t) << " byte " << i << " of block " << i / q::block_bytes(t);
    }
  }
}

TEST(Quant, Bf16AndF32Rows) {
  std::mt19937 rng(2);
  const std::vector<float> x = random_row(rng, 77);
  const std::vector<uint8_t> b = quantized(q::Type::kBF16, x);
  const std::vector<float> back = dequantized(q::Type::kBF16, b, 77);
  for (size_t j = 0; j < x.size(); ++j) {
    EXPECT_EQ(back[j], q::bf16_to_float(q::float_to_bf16(x[j])));
    EXPECT_LE(std::fabs(back[j] - x[j]), std::ldexp(std::fabs(x[j]), -8));
  }
  EXPECT_EQ(dequantized(q::Type::kF32, quantized(q::Type::kF32, x), 77), x);
}

// Round trip: within half a quantization step plus the fp16 rounding of the scale (and min).
TEST(Quant, RoundTripErrorBounds) {
  std::mt19937 rng(3);
  std::vector<float> x = random_row(rng, 1536);
  std::vector<float> special = special_blocks(rng);
  special.resize(special.size() - 32);  // without the block whose fp16 scale overflows
  x.insert(x.end(), special.begin(), special.end());
  // fp16 rounding of a scale or min v: relative 2^-11, or half the subnormal step 2^-24.
  const auto fp16_error = [](double v) { return std::max(std::fabs(v) * std::ldexp(1.0, -11), std::ldexp(1.0, -25)); };
  for (q::Type t : kBlockTypes) {
    const std::vector<float> back = dequantized(t, quantized(t, x), static_cast<int64_t>(x.size()));
    for (size_t b = 0; b < x.size() / 32; ++b) {
      double amax = 0, mn = x[b * 32], mx = x[b * 32];
      for (int j = 0; j < 32; ++j) {
        amax = std::max(amax, std::fabs(double(x[b * 32 + j])));
        mn = std::min(mn, double(x[b * 32 + j]));
        mx = std::max(mx, double(x[b * 32 + j]));
      }
      double bound = 0;
      if (t == q::Type::kQ8_0) bound = amax / 127 / 2 + 127 * fp16_error(amax / 127);
      // q4_0: 16 levels from -8d to 7d; a value of the other sign than the largest one is capped at 7d.
      if (t == q::Type::kQ4_0) bound = amax / 8 + 8 * fp16_error(amax / 8);
      if (t == q::Type::kQ4_1) bound = (mx - mn) / 15 / 2 + 15 * fp16_error((mx - mn) / 15) + fp16_error(mn);
      bound = bound * (1 + 1e-6) + 1e-7 * amax;  // float rounding of the products
      for (int j = 0; j < 32; ++j)
        ASSERT_LE(std::fabs(double(back[b * 32 + j]) - x[b * 32 + j]), bound)
            << q::type_name(t) << " block " << b << " value " << j << ": " << x[b * 32 + j] << " -> " << back[b * 32 + j];
    }
  }
}

struct SimdActivationGuard {  // restores the default after a case that turned the SIMD loops off
  explicit SimdActivationGuard(bool enabled) { q::detail::set_simd_activation(enabled); }
  ~SimdActivationGuard() { q::detail::set_simd_activation(true); }
};

// The activation's q8 form is ggml's q8 rounding with a float scale; its SIMD and scalar loops agree.
TEST(Quant, ActivationForms) {
  std::mt19937 rng(4);
  std::vector<float> x = random_row(rng, 1536);
  std::vector<float> special = special_blocks(rng);
  x.insert(x.end(), special.begin(), special.end() - 32);
  for (bool simd : {true, false}) {
    SimdActivationGuard guard(simd);
    q::Activation a;
    a.set(x.data(), static_cast<int64_t>(x.size()));
    ASSERT_EQ(a.size(), static_cast<int64_t>(x.size()));
    for (size_t b = 0; b < x.size() / 32; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
      int32_t sum = 0;
      for (int j = 0; j < 32; ++j) {
        const int want = static_cast<int>(std::roundf(x[b * 32 + j] * id));
        ASSERT_EQ(a.q8()[b * 32 + j], want) << (simd ? "simd" : "scalar") << " block " << b << " value " << j;
        sum += want;
      }
      EXPECT_EQ(a.q8_scale()[b], d);
      EXPECT_EQ(a.q8_sum()[b], sum);
      EXPECT_EQ(a.q8_scale_and_scaled_sum()[2 * b], d);
      EXPECT_EQ(a.q8_scale_and_scaled_sum()[2 * b + 1], d * static_cast<float>(sum));
      EXPECT_EQ(a.q4_0_offset()[8 * b], -8 * sum);
      EXPECT_EQ(a.q8_0_offset()[8 * b], -128 * sum);
      for (int j = 1; j < 8; ++j) EXPECT_EQ(a.q4_0_offset()[8 * b + j] | a.q8_0_offset()[8 * b + j], 0);
    }
    for (size_t j = 0; j < x.size(); ++j) {
      EXPECT_EQ(a.f32()[j], x[j]);
      EXPECT_EQ(a.bf16()[j], q::float_to_bf16(x[j]));
      EXPECT_EQ(a.bf16_as_f32()[j], q::bf16_to_float(q::float_to_bf16(x[j])));
    }
  }
  // bf16 of special values (31 of them: no whole q8 block), SIMD loop and tail alike.
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> odd = {std::nanf(""), -std::nanf(""), inf, -inf, 0.0f, -0.0f, 1e-40f, -1e-40f,
                            3.3895314e38f, std::numeric_limits<float>::max(), 1.00390625f, 1.01171875f};
  while (odd.size() < 31) odd.push_back(random_row(rng, 1)[0]);
  for (bool simd : {true, false}) {
    SimdActivationGuard guard(simd);
    q::Activation a;
    a.set(odd.data(), 31);
    for (size_t j = 0; j < odd.size(); ++j) EXPECT_EQ(a.bf16()[j], q::float_to_bf16(odd[j])) << odd[j];
    EXPECT_EQ(a.bf16()[0], 0x7fc0);
    EXPECT_EQ(a.bf16()[2], 0x7f80);
    EXPECT_EQ(a.bf16()[9], 0x7f80);  // FLT_MAX rounds up to infinity
  }
}

// matvec for every type and kernel: against float64 sums of the dequantized weights times x as the
// kernel reads it (rounded to bf16 / quantized to q8), so summation order is the only difference;
// and against the unrounded x within the bound of that rounding.
TEST(Quant, MatvecMatchesFloat64) {
  std::mt19937 rng(5);
  struct Shape {
    int64_t rows, cols;
  };
  std::vector<Shape> shapes = {{1, 32}, {3, 64}, {7, 576}, {13, 1536}, {6, 96}, {67, 576}, {2, 0}};
  const std::vector<Shape> any_cols = {{5, 1}, {4, 7}, {9, 33}, {3, 100}, {2, 17}};  // f32 and bf16 only
  for (q::Type t : kAllTypes) {
    std::vector<Shape> all = shapes;
    if (q::block_size(t) == 1) all.insert(all.end(), any_cols.begin(), any_cols.end());
    for (const Shape& s : all) {
      std::vector<float> Wf(s.rows * s.cols);
      for (int64_t r = 0; r < s.rows; ++r) {
        const std::vector<float> row = random_row(rng, s.cols);
        std::copy(row.begin(), row.end(), Wf.begin() + r * s.cols);
      }
      const std::vector<float> x = random_row(rng, s.cols);
      const q::Matrix W = q::Matrix::quantize(Wf.data(), s.rows, s.cols, t);
      ASSERT_EQ(W.bytes(), s.rows * q::row_bytes(t, s.cols));
      q::Activation a;
      a.set(x.data(), s.cols);
      const std::vector<double> xr = x_as_read(t, a), err = read_error_bound(t, x);

      std::vector<double> want(s.rows), want_exact(s.rows), scale(s.rows), bound(s.rows);
      std::vector<float> w(s.cols);
      for (int64_t r = 0; r < s.rows; ++r) {
        W.dequantize_row_to(r, w.data());
        for (int64_t j = 0; j < s.cols; ++j) {
          want[r] += double(w[j]) * xr[j];
          want_exact[r] += double(w[j]) * x[j];
          scale[r] += std::fabs(double(w[j]) * xr[j]);
          bound[r] += std::fabs(double(w[j])) * err[j];
        }
      }
      // Whole matrix, and ranges that start inside it and end before its end.
      const std::vector<std::pair<int64_t, int64_t>> ranges = {
          {0, s.rows}, {s.rows / 2, s.rows}, {1 % s.rows, std::max<int64_t>(1 % s.rows, s.rows - 1)}, {0, 0}};
      for (const KernelCase& kc : kernel_cases()) {
        Bf16DotGuard guard(kc.bf16_dot);
        for (auto [begin, end] : ranges) {
          std::vector<float> y(s.rows, std::numeric_limits<float>::quiet_NaN());
          q::matvec(W, a, y.data(), begin, end, kc.kernel);
          for (int64_t r = 0; r < s.rows; ++r) {
            const std::string where = std::string(q::type_name(t)) + " " + kc.name + " [" + std::to_string(s.rows) +
                                      " x " + std::to_string(s.cols) + "] rows [" + std::to_string(begin) + ", " +
                                      std::to_string(end) + ") row " + std::to_string(r);
            if (r < begin || r >= end) {
              EXPECT_TRUE(std::isnan(y[r])) << where << ": written outside the range";
              continue;
            }
            EXPECT_LE(std::fabs(y[r] - want[r]), 1e-5 * scale[r] + 1e-30) << where;
            EXPECT_LE(std::fabs(y[r] - want_exact[r]), bound[r] + 1e-5 * scale[r] + 1e-30) << where;
          }
        }
      }
    }
  }
}

// Several inputs against one matrix: every output bit-identical to matvec's on its own input, for
// every type and kernel, batches around the batched kernels' width of 8, odd block counts (the
// 256-bit tail), and row ranges inside the matrix; rows outside the range untouched.
TEST(Quant, MatvecBatchEqualsMatvecBitForBit) {
  std::mt19937 rng(11);
  for (q::Type t : kAllTypes)
    for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{5, 32}, {9, 96}, {17, 576}, {3, 1536}}) {
      std::vector<float> Wf;
      for (int64_t r = 0; r < rows; ++r) {
        const std::vector<float> row = random_row(rng, cols);
        Wf.insert(Wf.end(), row.begin(), row.end());
      }
      const q::Matrix W = q::Matrix::quantize(Wf.data(), rows, cols, t);
      for (int64_t batch : {1, 2, 7, 8, 9, 16, 19}) {
        std::vector<q::Activation> acts(batch);
        for (q::Activation& a : acts) a.set(random_row(rng, cols).data(), cols);
        std::vector<const q::Activation*> xs;
        for (const q::Activation& a : acts) xs.push_back(&a);
        for (const KernelCase& kc : kernel_cases()) {
          Bf16DotGuard guard(kc.bf16_dot);
          for (auto [begin, end] : std::vector<std::pair<int64_t, int64_t>>{{0, rows}, {1, rows - 1}}) {
            std::vector<std::vector<float>> got(batch, std::vector<float>(rows, std::numeric_limits<float>::quiet_NaN()));
            std::vector<float*> ys;
            for (auto& y : got) ys.push_back(y.data());
            q::matvec_batch(W, xs.data(), ys.data(), batch, begin, end, kc.kernel);
            for (int64_t b = 0; b < batch; ++b) {
              std::vector<float> want(rows, std::numeric_limits<float>::quiet_NaN());
              q::matvec(W, acts[b], want.data(), begin, end, kc.kernel);
              for (int64_t r = 0; r < rows; ++r) {
                const std::string where = std::string(q::type_name(t)) + " " + kc.name + " [" + std::to_string(rows) +
                                          " x " + std::to_string(cols) + "] batch " + std::to_string(batch) +
                                          " input " + std::to_string(b) + " row " + std::to_string(r);
                if (r < begin || r >= end) {
                  EXPECT_TRUE(std::isnan(got[b][r])) << where << ": written outside the range";
                } else {
                  uint32_t g, w;
                  std::memcpy(&g, &got[b][r], 4);
                  std::memcpy(&w, &want[r], 4);
                  EXPECT_EQ(g, w) << where << ": " << got[b][r] << " vs " << want[r];
                }
              }
            }
          }
        }
      }
    }
}

TEST(Quant, MatvecBatchBadInputIsAClearError) {
  const std::vector<float> W64(4 * 64, 0.5f), x64(64, 1.0f), x32(32, 1.0f);
  const q::Matrix W = q::Matrix::quantize(W64.data(), 4, 64, q::Type::kQ4_1);
  q::Activation a, small;
  a.set(x64.data(), 64);
  small.set(x32.data(), 32);
  std::vector<float> y0(4), y1(4);
  const q::Activation* xs[] = {&a, &small};
  float* ys[] = {y0.data(), y1.data()};
  expect_error_mentioning([&] { q::matvec_batch(W, xs, ys, 2, 0, 4); }, {"input 1", "32 values", "64 columns"});
  expect_error_mentioning([&] { q::matvec_batch(W, xs, ys, -1, 0, 4); }, {"batch", "-1"});
  expect_error_mentioning([&] { q::matvec_batch(W, xs, ys, 1, 2, 5); }, {"[2, 5)", "4 rows"});
  const q::Activation* null_x[] = {nullptr};
  expect_error_mentioning([&] { q::matvec_batch(W, null_x, ys, 1, 0, 4); }, {"input 0"});
  float* null_y[] = {nullptr};
  expect_error_mentioning([&] { q::matvec_batch(W, xs, null_y, 1, 0, 4); }, {"output 0", "null"});
}

// One Activation for vectors of several sizes: results as with a fresh one, and no new buffers
// once the largest size has been seen.
TEST(Quant, ActivationReusedAcrossSizes) {
  std::mt19937 rng(6);
  const int64_t sizes[] = {1536, 64, 576, 32, 1536, 576};
  q::Activation shared;
  shared.set(random_row(rng, 1536).data(), 1536);
  const int8_t* q8_before = shared.q8();
  const float* f32_before = shared.f32();
  for (int64_t n : sizes) {
    const std::vector<float> x = random_row(rng, n), Wf = random_row(rng, 5 * n);
    shared.set(x.data(), n);
    EXPECT_EQ(shared.q8(), q8_before);
    EXPECT_EQ(shared.f32(), f32_before);
    q::Activation fresh;
    fresh.set(x.data(), n);
    for (q::Type t : kAllTypes) {
      const q::Matrix W = q::Matrix::quantize(Wf.data(), 5, n, t);
      for (const KernelCase& kc : kernel_cases()) {
        Bf16DotGuard guard(kc.bf16_dot);
        std::vector<float> y1(5), y2(5);
        q::matvec(W, shared, y1.data(), 0, 5, kc.kernel);
        q::matvec(W, fresh, y2.data(), 0, 5, kc.kernel);
        EXPECT_EQ(y1, y2) << q::type_name(t) << " " << kc.name << " n " << n;
      }
    }
  }
}

// Blocks copied from a file (from_blocks) are the blocks quantize() makes.
TEST(Quant, FromBlocksCopiesAsIs) {
  std::mt19937 rng(8);
  const std::vector<float> Wf = random_row(rng, 3 * 64);
  for (q::Type t : kAllTypes) {
    const q::Matrix a = q::Matrix::quantize(Wf.data(), 3, 64, t);
    std::vector<uint8_t> file(a.data(), a.data() + a.bytes());
    const q::Matrix b = q::Matrix::from_blocks(t, 3, 64, file.data());
    ASSERT_EQ(b.bytes(), a.bytes());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.bytes()), 0);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u);
    EXPECT_EQ(b.row(2), b.data() + 2 * q::row_bytes(t, 64));
    for (int64_t r = 0; r < 3; ++r)
      EXPECT_EQ(std::memcmp(a.row(r), quantized(t, std::vector<float>(Wf.begin() + r * 64, Wf.begin() + (r + 1) * 64)).data(),
                            q::row_bytes(t, 64)),
                0);
  }
}

TEST(Quant, BadInputIsAClearError) {
  const std::vector<float> Wf(4 * 33, 1.0f), x(33, 1.0f);
  for (q::Type t : kBlockTypes) {
    expect_error_mentioning([&] { q::Matrix::quantize(Wf.data(), 4, 33, t); }, {"cols", "33", q::type_name(t), "32"});
    expect_error_mentioning([&] { q::Matrix::from_blocks(t, 4, 33, Wf.data()); }, {"cols", "33"});
    expect_error_mentioning([&] { q::row_bytes(t, 33); }, {"33"});
    std::vector<uint8_t> out(64);
    expect_error_mentioning([&] { q::quantize_row(t, x.data(), out.data(), 33); }, {"33"});
  }
  expect_error_mentioning([] { q::parse_type("q5_0"); }, {"'q5_0'", "f32", "bf16", "q8_0", "q4_0", "q4_1"});
  expect_error_mentioning([] { q::type_from_ggml(6); }, {"6"});

  const std::vector<float> W64(4 * 64, 0.5f), x64(64, 1.0f), x32(32, 1.0f);
  const q::Matrix W = q::Matrix::quantize(W64.data(), 4, 64, q::Type::kQ8_0);
  q::Activation a;
  a.set(x64.data(), 64);
  std::vector<float> y(4);
  expect_error_mentioning([&] { q::matvec(W, a, y.data(), -1, 2); }, {"[-1, 2)", "4 rows"});
  expect_error_mentioning([&] { q::matvec(W, a, y.data(), 0, 5); }, {"[0, 5)", "4 rows"});
  expect_error_mentioning([&] { q::matvec(W, a, y.data(), 3, 2); }, {"[3, 2)"});
  q::Activation small;
  small.set(x32.data(), 32);
  expect_error_mentioning([&] { q::matvec(W, small, y.data(), 0, 4); }, {"32 values", "64 columns"});
  q::matvec(W, a, y.data(), 0, 4);
  for (float v : y) EXPECT_NEAR(v, 32.0f, 0.2f);
  for (q::Kernel k : {q::Kernel::kAvx2, q::Kernel::kAvx512})
    if (!q::kernel_supported(k)) expect_error_mentioning([&] { q::matvec(W, a, y.data(), 0, 4, k); }, {q::kernel_name(k)});
}
