// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which -Wuninitialized
// reports wherever they are inlined (GCC bug 105593): silenced for that header only, included first.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "ipt/model/decode_step.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <iostream>

#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/common/spin_pool.h"
#include "ipt/model/decoder.h"

namespace ipt::model {

namespace quant = ops::quant;

namespace {
bool attention_simd_enabled = true;

// [first, last) as a range-for sequence.
struct Span {
  struct It {
    int64_t i;
    int64_t operator*() const { return i; }
    It& operator++() { ++i; return *this; }
    bool operator!=(const It& other) const { return i != other.i; }
  };
  int64_t first = 0, last = 0;
  It begin() const { return {first}; }
  It end() const { return {last}; }
};

// Rows of weights handed to a thread at a time in a batch: a block stays in cache while every
// sequence multiplies with it. One sequence alone: each thread takes one contiguous range (the
// kernels read a range as four streams the hardware prefetchers follow).
constexpr int64_t kBatchRowBlock = 64;
// Keys per attention task: the heads of a group read each key and value row once, and long caches
// split into enough tasks to keep every thread busy.
constexpr int64_t kKeyPiece = 256;


std::vector<float> to_floats(const torch::Tensor& t) {
  if (!t.defined()) return {};
  torch::Tensor f = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
}

// A [rows, cols] weight in `type`; block formats need whole blocks per row, else `fallback` (the
// weight's name is added to `unquantized`).
quant::Matrix pack(const torch::Tensor& W, quant::Type type, quant::Type fallback, const std::string& name,
                   std::vector<std::string>& unquantized) {
  torch::Tensor f = W.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t rows = f.size(0), cols = f.size(1);
  if (cols % quant::block_size(type) != 0) {
    unquantized.push_back(name + " [" + std::to_string(rows) + " x " + std::to_string(cols) + "]");
    type = fallback;
  }
  return quant::Matrix::quantize(f.data_ptr<float>(), rows, cols, type);
}

quant::Type dtype_type(torch::Dtype dtype) {
  return dtype == torch::kBFloat16 ? quant::Type::kBF16 : quant::Type::kF32;
}

// One row of a float32 / bfloat16 / float16 table as float32.
void read_row(const torch::Tensor& table, int64_t row, float* out) {
  const int64_t n = table.size(1);
  switch (table.scalar_type()) {
    case torch::kFloat32:
      std::memcpy(out, table.data_ptr<float>() + row * n, n * sizeof(float));
      break;
    case torch::kBFloat16: {
      const auto* p = reinterpret_cast<const uint16_t*>(table.data_ptr<at::BFloat16>()) + row * n;
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
        std::memcpy(out + i, &bits, sizeof(float));
      }
      break;
    }
    default: {
      torch::Tensor r = table[row].to(torch::kFloat32).contiguous();
      std::memcpy(out, r.data_ptr<float>(), n * sizeof(float));
    }
  }
}

void rms_norm(const float* x, const float* weight, int64_t n, double eps, float* out) {
  double squares = 0;
  for (int64_t i = 0; i < n; ++i) squares += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(squares / n + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * scale);
}

// Rotate-half RoPE of one head in place: dimension i pairs with i + D/2.
void rope(float* x, const float* cos, const float* sin, int64_t D) {
  const int64_t half = D / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos[i] - b * sin[i];
    x[i + half] = b * cos[i + half] + a * sin[i + half];
  }
}

inline float bf16_to_float(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t float_to_bf16(float f) {  // round to nearest even, as torch
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// One cached key/value row, float32 or bfloat16.
struct CacheRows {
  const void* base = nullptr;
  bool bf16 = false;
  int64_t D = 0;
  float dot(int64_t row, const float* q) const {
    float sum = 0;
    if (bf16) {
      const uint16_t* k = static_cast<const uint16_t*>(base) + row * D;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < D; ++i) sum += q[i] * bf16_to_float(k[i]);
    } else {
      const float* k = static_cast<const float*>(base) + row * D;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < D; ++i) sum += q[i] * k[i];
    }
    return sum;
  }
  void axpy(int64_t row, float a, float* out) const {
    if (bf16) {
      const uint16_t* v = static_cast<const uint16_t*>(base) + row * D;
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) out[i] += a * bf16_to_float(v[i]);
    } else {
      const float* v = static_cast<const float*>(base) + row * D;
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) out[i] += a * v[i];
    }
  }
};

// One attention task: the G query heads of a group (q [G, D]) over keys t0..t1 of their key/value
// head. For each head j, part + j * part_stride receives {max score, sum of exp(score - max),
// sum of exp(score - max) * v [D]}. `scores` has room for G * kKeyPiece floats.
void attend_piece_scalar(const CacheRows& K, const CacheRows& V, const float* q, int64_t G, int64_t t0, int64_t t1,
                         float scale, float* scores, float* part, int64_t part_stride) {
  const int64_t D = K.D;
  for (int64_t j = 0; j < G; ++j) {
    float* s = scores + j * kKeyPiece;
    float best = -INFINITY;
    for (int64_t t = t0; t < t1; ++t) {
      s[t - t0] = K.dot(t, q + j * D) * scale;
      best = std::max(best, s[t - t0]);
    }
    float total = 0;
    for (int64_t t = 0; t < t1 - t0; ++t) {
      s[t] = std::exp(s[t] - best);
      total += s[t];
    }
    float* out = part + j * part_stride;
    out[0] = best;
    out[1] = total;
    std::fill(out + 2, out + 2 + D, 0.0f);
    for (int64_t t = t0; t < t1; ++t) V.axpy(t, s[t - t0], out + 2);
  }
}

// The same with AVX-512: each key and value row is loaded once for the whole group, exp is a
// polynomial on 16 lanes (relative error ~2e-7).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) inline __m512 load16(const CacheRows& rows, int64_t row,
                                                                         int64_t i, __mmask16 mask) {
  if (rows.bf16) {
    const uint16_t* p = static_cast<const uint16_t*>(rows.base) + row * rows.D + i;
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(rows.base) + row * rows.D + i);
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));  // exp of the rest underflows to 0 anyway
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);  // ln 2 in two parts (Cody-Waite)
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

constexpr int64_t kMaxSimdGroup = 16, kMaxSimdChunks = 16;  // G and D / 16 the fast path holds in registers

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void attend_piece_avx512(
    const CacheRows& K, const CacheRows& V, const float* q, int64_t G, int64_t t0, int64_t t1, float scale,
    float* scores, float* part, int64_t part_stride) {
  const int64_t D = K.D, chunks = (D + 15) / 16, n = t1 - t0;
  auto mask_of = [&](int64_t c) -> __mmask16 {
    const int64_t left = D - c * 16;
    return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
  };
  for (int64_t t = t0; t < t1; ++t) {  // scores: the key row once, every head of the group
    __m512 acc[kMaxSimdGroup];
    for (int64_t j = 0; j < G; ++j) acc[j] = _mm512_setzero_ps();
    for (int64_t c = 0; c < chunks; ++c) {
      const __mmask16 m = mask_of(c);
      const __m512 k = load16(K, t, c * 16, m);
      for (int64_t j = 0; j < G; ++j) acc[j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + j * D + c * 16), k, acc[j]);
    }
    for (int64_t j = 0; j < G; ++j) scores[j * kKeyPiece + t - t0] = _mm512_reduce_add_ps(acc[j]) * scale;
  }
  for (int64_t j = 0; j < G; ++j) {  // max, exp, sum
    float* s = scores + j * kKeyPiece;
    __m512 best16 = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
      best16 = _mm512_mask_max_ps(best16, m, best16, _mm512_maskz_loadu_ps(m, s + i));
    }
    const float best = _mm512_reduce_max_ps(best16);
    __m512 total16 = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
      const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + i), _mm512_set1_ps(best)));
      _mm512_mask_storeu_ps(s + i, m, e);
      total16 = _mm512_mask_add_ps(total16, m, total16, e);
    }
    part[j * part_stride] = best;
    part[j * part_stride + 1] = _mm512_reduce_add_ps(total16);
  }
  for (int64_t c = 0; c < chunks; ++c) {  // outputs: each value row chunk once, every head
    const __mmask16 m = mask_of(c);
    __m512 acc[kMaxSimdGroup];
    for (int64_t j = 0; j < G; ++j) acc[j] = _mm512_setzero_ps();
    for (int64_t t = t0; t < t1; ++t) {
      const __m512 v = load16(V, t, c * 16, m);
      for (int64_t j = 0; j < G; ++j) acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(scores[j * kKeyPiece + t - t0]), v, acc[j]);
    }
    for (int64_t j = 0; j < G; ++j) _mm512_mask_storeu_ps(part + j * part_stride + 2 + c * 16, m, acc[j]);
  }
}


void attend_piece(const CacheRows& K, const CacheRows& V, const float* q, int64_t G, int64_t t0, int64_t t1,
                  float scale, float* scores, float* part, int64_t part_stride) {
  static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  if (avx512 && attention_simd_enabled && G <= kMaxSimdGroup && K.D <= kMaxSimdChunks * 16)
    attend_piece_avx512(K, V, q, G, t0, t1, scale, scores, part, part_stride);
  else
    attend_piece_scalar(K, V, q, G, t0, t1, scale, scores, part, part_stride);
}

void write_row(const torch::Tensor& cache, int64_t head, int64_t row, const float* values, int64_t D) {
  const int64_t offset = (head * cache.size(2) + row) * D;
  if (cache.scalar_type() == torch::kBFloat16) {
    auto* out = reinterpret_cast<uint16_t*>(cache.data_ptr<at::BFloat16>()) + offset;
    for (int64_t i = 0; i < D; ++i) out[i] = float_to_bf16(values[i]);
  } else {
    std::memcpy(cache.data_ptr<float>() + offset, values, D * sizeof(float));
  }
}


}  // namespace

namespace detail {
void set_attention_simd(bool enabled) { attention_simd_enabled = enabled; }
}  // namespace detail

bool decode_step_supported(const CausalLMImpl& lm) {
  const torch::Tensor& w = lm.head_weight();
  return w.device().is_cpu() && (w.scalar_type() == torch::kFloat32 || w.scalar_type() == torch::kBFloat16);
}

std::shared_ptr<const DecodeWeights> pack_decode_weights(const CausalLMImpl& lm_const,
                                                         std::optional<quant::Type> quantize) {
  IPT_CHECK(decode_step_supported(lm_const), "the single-token decode step runs float32 or bfloat16 models on the CPU");
  torch::NoGradGuard no_grad;
  auto& lm = const_cast<CausalLMImpl&>(lm_const);  // parameters are read, never written
  const ModelConfig& c = lm.config();
  const quant::Type base = dtype_type(lm.head_weight().scalar_type());
  const quant::Type type = quantize.value_or(base);
  auto w = std::make_shared<DecodeWeights>();
  w->type = type;
  w->hidden = c.hidden_size;
  w->heads = c.num_attention_heads;
  w->kv_heads = c.num_key_value_heads;
  w->head_dim = c.head_dim;
  w->intermediate = c.intermediate_size;
  w->vocab = c.vocab_size;
  w->norm_eps = c.rms_norm_eps;
  auto pack_as = [&](const torch::Tensor& W, const std::string& name) { return pack(W, type, base, name, w->unquantized); };
  for (const auto& m : *lm.model->layers) {
    auto& layer = *m->as<DecoderLayer>();
    const std::string prefix = "model.layers." + std::to_string(w->layers.size()) + ".";
    auto& a = *layer.self_attn;
    auto& mlp = *layer.mlp;
    DecodeLayerWeights l;
    l.q = pack_as(a.q_proj->weight, prefix + "self_attn.q_proj.weight");
    l.k = pack_as(a.k_proj->weight, prefix + "self_attn.k_proj.weight");
    l.v = pack_as(a.v_proj->weight, prefix + "self_attn.v_proj.weight");
    l.o = pack_as(a.o_proj->weight, prefix + "self_attn.o_proj.weight");
    l.gate = pack_as(mlp.gate_proj->weight, prefix + "mlp.gate_proj.weight");
    l.up = pack_as(mlp.up_proj->weight, prefix + "mlp.up_proj.weight");
    l.ttt = mlp.ttt().enabled;
    l.down = pack_as(mlp.down_proj->weight, prefix + "mlp.down_proj.weight");  // W0: TTT layers with TTT off use it too
    l.q_bias = to_floats(a.q_proj->bias);
    l.k_bias = to_floats(a.k_proj->bias);
    l.v_bias = to_floats(a.v_proj->bias);
    l.o_bias = to_floats(a.o_proj->bias);
    l.input_norm = to_floats(layer.input_layernorm->weight);
    l.post_norm = to_floats(layer.post_attention_layernorm->weight);
    if (a.q_norm) {
      l.q_norm = to_floats(a.q_norm->weight);
      l.k_norm = to_floats(a.k_norm->weight);
    }
    l.window = a.window;
    l.target_is_embedding = layer.target_is_embedding;
    w->layers.push_back(std::move(l));
  }
  w->final_norm = to_floats(lm.model->norm->weight);
  w->head = pack_as(lm.head_weight(), "lm_head.weight");
  static std::atomic<bool> noticed{false};  // once per process: a model is repacked after every change
  if (!w->unquantized.empty() && !noticed.exchange(true)) {
    std::cerr << "notice: --decode-quant " << quant::type_name(type) << " needs rows of whole " << quant::block_size(type)
              << "-value blocks; " << w->unquantized.size() << " matri" << (w->unquantized.size() == 1 ? "x" : "ces")
              << " stay " << quant::type_name(base) << " (first: " << w->unquantized.front() << ")\n";
  }
  w->embedding = lm.model->embed_tokens->weight.detach().contiguous();
  for (const auto& p : lm.parameters()) w->sources.emplace_back(p.unsafeGetTensorImpl(), p._version());
  return w;
}

bool decode_weights_current(const DecodeWeights& w, const CausalLMImpl& lm) {
  const auto params = lm.parameters();
  if (params.size() != w.sources.size()) return false;
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].unsafeGetTensorImpl() != w.sources[i].first || params[i]._version() != w.sources[i].second)
      return false;
  return true;
}

DecodeStep::DecodeStep(std::shared_ptr<const DecodeWeights> weights) : weights_(std::move(weights)) {
  const DecodeWeights& w = *weights_;
  const int64_t widest = std::max({w.hidden, w.heads * w.head_dim, w.intermediate});
  x_.resize(w.hidden);
  out_.resize(w.hidden);
  normed_.resize(widest);
  q_.resize(w.heads * w.head_dim);
  k_.resize(w.kv_heads * w.head_dim);
  v_.resize(w.kv_heads * w.head_dim);
  attn_.resize(w.heads * w.head_dim);
  gate_.resize(w.intermediate);
  up_.resize(w.intermediate);
  z_.resize(w.intermediate);
  embedding_.resize(w.hidden);
  ttt_z_.resize(w.layers.size());
  ttt_x_.resize(w.layers.size());
  for (size_t i = 0; i < w.layers.size(); ++i)
    if (w.layers[i].ttt) {
      ttt_z_[i].resize(w.intermediate);
      ttt_x_[i].resize(w.hidden);
    }
}

void DecodeStep::begin(const DecodeInput& in) {
  const DecodeWeights& w = *weights_;
  IPT_CHECK(in.token >= 0 && in.token < w.vocab, "token id ", in.token, " is outside the vocabulary [0, ", w.vocab, ")");
  IPT_CHECK(in.io && in.io->size() == w.layers.size() && in.rope_cos && in.rope_sin && in.logits,
            "decode step: an input needs RoPE angles, logits and one cache per layer (", w.layers.size(), ")");
  longest_ = 0;
  for (size_t l = 0; l < in.io->size(); ++l) {
    const DecodeLayerIo& c = (*in.io)[l];
    IPT_CHECK(c.k.defined() && c.v.defined() && c.k.is_contiguous() && c.v.is_contiguous() && c.k.dim() == 4 &&
                  c.k.size(1) == w.kv_heads && c.k.size(3) == w.head_dim && c.length >= 0 &&
                  c.length < c.k.size(2) && c.k.sizes() == c.v.sizes(),
              "decode step: layer ", l, "'s cache must be a contiguous [1, ", w.kv_heads, ", capacity > ", c.length, ", ",
              w.head_dim, "]");
    IPT_CHECK(c.k.scalar_type() == c.v.scalar_type() &&
                  (c.k.scalar_type() == torch::kFloat32 || c.k.scalar_type() == torch::kBFloat16),
              "decode step: caches must be float32 or bfloat16");
    IPT_CHECK(!c.fast_down || (c.fast_down->rows() == w.hidden && c.fast_down->cols() == w.intermediate),
              "decode step: layer ", l, "'s fast weight must be [", w.hidden, ", ", w.intermediate, "]");
    longest_ = std::max(longest_, c.length + 1);
  }
  const int64_t pieces = (longest_ + kKeyPiece - 1) / kKeyPiece;
  if (static_cast<int64_t>(partial_.size()) < w.heads * pieces * (w.head_dim + 2))
    partial_.resize(w.heads * pieces * (w.head_dim + 2));
  read_row(w.embedding, in.token, embedding_.data());
  std::copy(embedding_.begin(), embedding_.end(), x_.begin());
}

void DecodeStep::run_batch(const std::vector<DecodeStep*>& steps, const std::vector<DecodeInput>& inputs) {
  IPT_CHECK(!steps.empty() && steps.size() == inputs.size(), "decode batch: ", steps.size(), " sequences for ",
            inputs.size(), " inputs");
  const DecodeWeights& w = *steps[0]->weights_;
  for (size_t b = 0; b < steps.size(); ++b) {
    IPT_CHECK(steps[b]->weights_.get() == &w,
              "decode batch: every sequence must run the same model's packed weights (one model, dtype and "
              "quantization); sequence ", b, " differs");
    for (size_t a = 0; a < b; ++a) IPT_CHECK(steps[a] != steps[b], "decode batch: a sequence appears twice");
    steps[b]->begin(inputs[b]);
  }
  const int64_t B = static_cast<int64_t>(steps.size()), d = w.hidden, H = w.heads, Hkv = w.kv_heads,
                D = w.head_dim, F = w.intermediate, group = H / Hkv, layers = static_cast<int64_t>(w.layers.size());
  // Raw views of every cache: [b][layer * Hkv + kv head].
  std::vector<std::vector<CacheRows>> keys(B), values(B);
  for (int64_t b = 0; b < B; ++b) {
    keys[b].resize(layers * Hkv);
    values[b].resize(layers * Hkv);
    for (int64_t l = 0; l < layers; ++l) {
      const DecodeLayerIo& c = (*inputs[b].io)[l];
      const bool bf16 = c.k.scalar_type() == torch::kBFloat16;
      const int64_t head_bytes = c.k.size(2) * D * c.k.element_size();
      for (int64_t g = 0; g < Hkv; ++g) {
        keys[b][l * Hkv + g] = {static_cast<const char*>(c.k.data_ptr()) + g * head_bytes, bf16, D};
        values[b][l * Hkv + g] = {static_cast<const char*>(c.v.data_ptr()) + g * head_bytes, bf16, D};
      }
    }
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  auto uses_fast = [&](int64_t b, int64_t l) { return w.layers[l].ttt && (*inputs[b].io)[l].fast_down != nullptr; };
  std::vector<const quant::Activation*> acts(B);  // each sequence's prepared input, re-set per matrix
  for (int64_t b = 0; b < B; ++b) acts[b] = &steps[b]->act_;

  // One run of the spin pool per step; `mine(n)` is this thread's static share of [0, n), `sync()`
  // a barrier of all the step's threads.
  const int threads = compute_threads();
  SpinBarrier barrier(threads);
  spin_pool_run(threads, [&](int thread, int nthreads) {
    auto mine = [&](int64_t n) {
      Span span;
      static_range(n, thread, nthreads, span.first, span.last);
      return span;
    };
    auto sync = [&] { barrier.wait(); };
    // Rows of a weight times every sequence's prepared input; each block of rows is read from
    // memory once and multiplied B times from cache. A weight every sequence shares goes through
    // matvec_batch (quantized blocks unpacked once for all of them); per-sequence fast weights
    // one by one. No barrier at the end (callers add one).
    auto rows_times = [&](const auto& weight_of, const auto& out_of) {
      const quant::Matrix& first = weight_of(0);
      bool shared = true;
      for (int64_t b = 1; b < B; ++b) shared = shared && &weight_of(b) == &first;
      thread_local std::vector<float*> outs;
      outs.resize(B);
      for (int64_t b = 0; b < B; ++b) outs[b] = out_of(b);
      const int64_t rows = first.rows();
      // A batch: blocks of about kBatchRowBlock rows, the same number for every thread (the split
      // is static: k and v's 192 rows as 3 blocks of 64 left one of 2 threads idle a third of the time).
      const int64_t per_thread = B > 1 ? std::max<int64_t>(1, rows / (int64_t{nthreads} * kBatchRowBlock)) : 1;
      const int64_t block = (rows + nthreads * per_thread - 1) / (nthreads * per_thread);
      const int64_t blocks = (rows + block - 1) / block;
      for (int64_t i : mine(blocks)) {
        const int64_t r0 = i * block, r1 = std::min(rows, r0 + block);
        if (shared) {
          quant::matvec_batch(first, acts.data(), outs.data(), B, r0, r1);
        } else {
          for (int64_t b = 0; b < B; ++b) quant::matvec(weight_of(b), steps[b]->act_, outs[b], r0, r1);
        }
      }
    };
    for (int64_t l = 0; l < layers; ++l) {
      const DecodeLayerWeights& L = w.layers[l];
      sync();
      for (int64_t b : mine(B)) {
        DecodeStep& s = *steps[b];
        rms_norm(s.x_.data(), L.input_norm.data(), d, w.norm_eps, s.normed_.data());
        s.act_.set(s.normed_.data(), d);
      }
      sync();
      rows_times([&](int64_t) -> const quant::Matrix& { return L.q; }, [&](int64_t b) { return steps[b]->q_.data(); });
      rows_times([&](int64_t) -> const quant::Matrix& { return L.k; }, [&](int64_t b) { return steps[b]->k_.data(); });
      rows_times([&](int64_t) -> const quant::Matrix& { return L.v; }, [&](int64_t b) { return steps[b]->v_.data(); });
      sync();
      for (int64_t b : mine(B)) {
        DecodeStep& s = *steps[b];
        const DecodeLayerIo& c = (*inputs[b].io)[l];
        for (size_t i = 0; i < L.q_bias.size(); ++i) s.q_[i] += L.q_bias[i];
        for (size_t i = 0; i < L.k_bias.size(); ++i) s.k_[i] += L.k_bias[i];
        for (size_t i = 0; i < L.v_bias.size(); ++i) s.v_[i] += L.v_bias[i];
        for (int64_t h = 0; h < H; ++h) {
          if (!L.q_norm.empty()) rms_norm(&s.q_[h * D], L.q_norm.data(), D, w.norm_eps, &s.q_[h * D]);
          rope(&s.q_[h * D], inputs[b].rope_cos, inputs[b].rope_sin, D);
        }
        for (int64_t g = 0; g < Hkv; ++g) {
          if (!L.k_norm.empty()) rms_norm(&s.k_[g * D], L.k_norm.data(), D, w.norm_eps, &s.k_[g * D]);
          rope(&s.k_[g * D], inputs[b].rope_cos, inputs[b].rope_sin, D);
          write_row(c.k, g, c.length, &s.k_[g * D], D);
          write_row(c.v, g, c.length, &s.v_[g * D], D);
        }
      }
      sync();
      // Each sequence's one query per head over its cache (and the row just written), in tasks of
      // (sequence, key/value head, piece of kKeyPiece keys); the group's query heads share each
      // key and value row. Pieces keep their own max and sum and are merged below.
      int64_t most_pieces = 1;
      for (int64_t b = 0; b < B; ++b) {
        const int64_t n = (*inputs[b].io)[l].length + 1, seen = L.window > 0 ? std::min(n, L.window) : n;
        most_pieces = std::max(most_pieces, (seen + kKeyPiece - 1) / kKeyPiece);
      }
      for (int64_t task : mine(B * Hkv * most_pieces)) {
            const int64_t b = task / (Hkv * most_pieces), g = task / most_pieces % Hkv, piece = task % most_pieces;
            DecodeStep& st = *steps[b];
            const int64_t n = (*inputs[b].io)[l].length + 1;
            const int64_t first = L.window > 0 && n > L.window ? n - L.window : 0;
            const int64_t t0 = first + piece * kKeyPiece, t1 = std::min(n, t0 + kKeyPiece);
            const int64_t pieces = (st.longest_ + kKeyPiece - 1) / kKeyPiece;
            if (piece >= pieces) continue;  // a shorter sequence of the batch
            for (int64_t h = g * group; h < (g + 1) * group; ++h) {
              float* part = &st.partial_[(h * pieces + piece) * (D + 2)];
              part[0] = -INFINITY;  // max; an empty piece stays empty
              part[1] = 0;          // sum of exponentials
              std::fill(part + 2, part + 2 + D, 0.0f);
            }
            if (t0 >= t1) continue;
            thread_local std::vector<float> scores;
            scores.resize(group * kKeyPiece);
            attend_piece(keys[b][l * Hkv + g], values[b][l * Hkv + g], &st.q_[g * group * D], group, t0, t1, scale,
                         scores.data(), &st.partial_[(g * group * pieces + piece) * (D + 2)], pieces * (D + 2));
          }
      sync();
      for (int64_t task : mine(B * H)) {
          const int64_t b = task / H, h = task % H;
          DecodeStep& st = *steps[b];
          const int64_t pieces = (st.longest_ + kKeyPiece - 1) / kKeyPiece;
          const float* parts = &st.partial_[h * pieces * (D + 2)];
          float best = -INFINITY;
          const int64_t used = std::min(pieces, most_pieces);
          for (int64_t p = 0; p < used; ++p) best = std::max(best, parts[p * (D + 2)]);
          double total = 0;
          float* out = &st.attn_[h * D];
          std::fill(out, out + D, 0.0f);
          for (int64_t p = 0; p < used; ++p) {
            const float* part = parts + p * (D + 2);
            if (part[1] == 0) continue;  // empty piece
            const float weight = std::exp(part[0] - best);
            total += static_cast<double>(weight) * part[1];
            for (int64_t i = 0; i < D; ++i) out[i] += weight * part[2 + i];
          }
          const float inv = static_cast<float>(1.0 / total);
          for (int64_t i = 0; i < D; ++i) out[i] *= inv;
        }
      sync();
      for (int64_t b : mine(B)) steps[b]->act_.set(steps[b]->attn_.data(), H * D);
      sync();
      rows_times([&](int64_t) -> const quant::Matrix& { return L.o; }, [&](int64_t b) { return steps[b]->out_.data(); });
      sync();
      for (int64_t b : mine(B)) {
        DecodeStep& s = *steps[b];
        for (int64_t i = 0; i < d; ++i) s.x_[i] += s.out_[i] + (L.o_bias.empty() ? 0.0f : L.o_bias[i]);
        rms_norm(s.x_.data(), L.post_norm.data(), d, w.norm_eps, s.normed_.data());
        s.act_.set(s.normed_.data(), d);
        if (uses_fast(b, l)) {
          const float* source = L.target_is_embedding ? s.embedding_.data() : s.normed_.data();
          std::copy(source, source + d, s.ttt_x_[l].begin());
        }
      }
      sync();
      rows_times([&](int64_t) -> const quant::Matrix& { return L.gate; }, [&](int64_t b) { return steps[b]->gate_.data(); });
      rows_times([&](int64_t) -> const quant::Matrix& { return L.up; }, [&](int64_t b) { return steps[b]->up_.data(); });
      sync();
      for (int64_t b : mine(B)) {
        DecodeStep& s = *steps[b];
        for (int64_t i = 0; i < F; ++i) s.z_[i] = s.gate_[i] / (1.0f + std::exp(-s.gate_[i])) * s.up_[i];
        s.act_.set(s.z_.data(), F);
        if (uses_fast(b, l)) std::copy(s.z_.begin(), s.z_.end(), s.ttt_z_[l].begin());
      }
      sync();
      // TTT layers multiply with each sequence's own fast weight; the rest share W_down.
      rows_times([&](int64_t b) -> const quant::Matrix& { return uses_fast(b, l) ? *(*inputs[b].io)[l].fast_down : L.down; },
                 [&](int64_t b) { return steps[b]->out_.data(); });
      sync();
      for (int64_t b : mine(B))
        for (int64_t i = 0; i < d; ++i) steps[b]->x_[i] += steps[b]->out_[i];
    }
    sync();
    for (int64_t b : mine(B)) {
      DecodeStep& s = *steps[b];
      rms_norm(s.x_.data(), w.final_norm.data(), d, w.norm_eps, s.normed_.data());
      s.act_.set(s.normed_.data(), d);
    }
    sync();
    rows_times([&](int64_t) -> const quant::Matrix& { return w.head; }, [&](int64_t b) { return inputs[b].logits; });
  });
}

}  // namespace ipt::model
