// ipt/ops/quant's blocks read back as the GGUF importer reads them: its dequantize_row (verified
// bit-exact against the Python gguf package) and quant's agree bit for bit on every type, so
// weights from a GGUF file and weights quantized here are one format. (The rest of the quant tests,
// in test_quant.cpp, need no libtorch.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ipt/io/gguf.h"
#include "ipt/ops/quant/quant.h"

namespace q = ipt::ops::quant;

TEST(QuantGguf, DequantizeRowMatchesTheImporter) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> exponent(-6, 5);
  const int64_t n = 1536 + 32 * 8;
  std::vector<float> x(n);
  float scale = 1;
  for (int64_t j = 0; j < n; ++j) {
    if (j % 32 == 0) scale = std::pow(10.0f, exponent(rng));  // includes subnormal fp16 scales
    x[j] = normal(rng) * scale;
  }
  for (int64_t j = 1536; j < 1536 + 32; ++j) x[j] = 0;  // an all-zero block
  for (q::Type t : {q::Type::kF32, q::Type::kBF16, q::Type::kQ8_0, q::Type::kQ4_0, q::Type::kQ4_1}) {
    std::vector<uint8_t> blocks(q::row_bytes(t, n));
    q::quantize_row(t, x.data(), blocks.data(), n);
    // Random bytes too: any block a file can hold, not only what the quantizer makes (scales of
    // every fp16 value but inf/NaN).
    std::vector<uint8_t> noise(blocks.size());
    for (auto& b : noise) b = static_cast<uint8_t>(rng());
    if (t != q::Type::kF32 && t != q::Type::kBF16)
      for (size_t i = 0; i < noise.size(); i += q::block_bytes(t)) noise[i + 1] &= 0xfb;  // exponent < 31
    for (const auto& src : {blocks, noise}) {
      std::vector<float> got(n), want(n);
      q::dequantize_row(t, src.data(), got.data(), n);
      ipt::io::dequantize_row(q::ggml_type_id(t), src.data(), want.data(), n);
      for (int64_t j = 0; j < n; ++j) {
        if (std::isnan(want[j])) {
          EXPECT_TRUE(std::isnan(got[j])) << q::type_name(t) << " value " << j;
          continue;
        }
        ASSERT_EQ(std::memcmp(&got[j], &want[j], 4), 0)
            << q::type_name(t) << " value " << j << ": " << got[j] << " vs " << want[j];
      }
    }
  }
}
