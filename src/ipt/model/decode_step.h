#pragma once
// The decoder layer's single-token form: one new token at the end of a cached sequence through
// every layer, the same math as DecoderLayerImpl::forward (RMSNorm, q/k/v, q/k norms, RoPE, GQA
// attention over the cache, o, the gated MLP with the TTT fast weight, residuals), written as
// plain loops over weights packed for it. A decoded token then costs what streaming its weight
// bytes costs: no per-op dispatch, no allocation, one parallel region (threads split rows and heads).
//
// Weights are packed once per model (DecodeWeights, cached on the model) in f32, bf16 or a block
// quantization (q8_0 / q4_0 / q4_1: a GGUF's own formats). Activations are float32 throughout;
// bf16 weights see their input rounded to bf16, quantized ones see it quantized to 8 bits per
// 32-block (ops/quant). The TTT fast weight is never quantized: its compute copy is packed in the
// model's dtype and re-packed after every chunk update.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipt/ops/quant/quant.h"

namespace ipt::model {

class CausalLMImpl;

struct DecodeLayerWeights {
  ops::quant::Matrix q, k, v, o, gate, up, down;
  std::vector<float> q_bias, k_bias, v_bias, o_bias;  // empty when the layer has none
  std::vector<float> input_norm, post_norm;
  std::vector<float> q_norm, k_norm;  // empty without qk_norm
  int64_t window = 0;                 // sliding window (0 = full attention)
  bool ttt = false;                   // the down projection is the sequence's fast weight
  bool target_is_embedding = false;   // TTT target source: the token embedding, else the MLP input
};

struct DecodeWeights {
  ops::quant::Type type = ops::quant::Type::kF32;  // of the linear maps and the head
  std::vector<DecodeLayerWeights> layers;
  std::vector<float> final_norm;
  ops::quant::Matrix head;
  torch::Tensor embedding;  // [vocab, d] the model's own table (rows are read, not copied)
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, vocab = 0;
  double norm_eps = 1e-6;
  std::vector<std::pair<const c10::TensorImpl*, int64_t>> sources;  // parameters packed, with their versions
  // Matrices left in the dtype's type because their width is not whole blocks ("name [rows x cols]").
  std::vector<std::string> unquantized;
};

// The storage type for `dtype` (f32 or bf16) unless `quantize` names a block format. Linear maps
// whose width is not a multiple of the block (32) stay in the dtype's type: listed in
// `unquantized`, and said once on stderr (a notice, never a silent change of what runs).
std::shared_ptr<const DecodeWeights> pack_decode_weights(const CausalLMImpl& lm,
                                                         std::optional<ops::quant::Type> quantize);
// True while no packed parameter was replaced or changed in place since packing.
bool decode_weights_current(const DecodeWeights& w, const CausalLMImpl& lm);
// Whether the single-token step runs `lm` (CPU, float32 or bfloat16 weights).
bool decode_step_supported(const CausalLMImpl& lm);

// One sequence's view of a layer for a step: the cache the new key/value row goes into and,
// in TTT layers, the packed fast weight.
struct DecodeLayerIo {
  torch::Tensor k, v;  // [1, Hkv, capacity, D] in the model's dtype; row `length` is written
  int64_t length = 0;  // rows already cached (the new row is written at this index)
  const ops::quant::Matrix* fast_down = nullptr;  // TTT layers with TTT on: used instead of W0
};

// One sequence's input to a step: its token, RoPE angles at its position (cos, sin: [head_dim]
// each), its layers' caches, and where its logits [vocab] (float32) go.
struct DecodeInput {
  int64_t token = 0;
  const float* rope_cos = nullptr;
  const float* rope_sin = nullptr;
  std::vector<DecodeLayerIo>* io = nullptr;
  float* logits = nullptr;
};

// Scratch buffers for one sequence's steps (allocated once, reused every token).
class DecodeStep {
 public:
  explicit DecodeStep(std::shared_ptr<const DecodeWeights> weights);

  // Runs one token: writes each layer's new key/value row and the logits.
  void run(const DecodeInput& input) { run_batch({this}, {input}); }
  // Runs one token of each of several sequences in one pass over the weights (continuous batching):
  // each block of weight rows is multiplied with every sequence's input while it is in cache, so B
  // sequences cost far less than B steps. Every step must use the same packed weights.
  static void run_batch(const std::vector<DecodeStep*>& steps, const std::vector<DecodeInput>& inputs);

  // What the TTT layers need to append this token to their pending chunk: the MLP activations
  // Z [intermediate] and the target source X [hidden] of layer `layer` from the last run().
  const float* ttt_z(int64_t layer) const { return ttt_z_[layer].data(); }
  const float* ttt_x(int64_t layer) const { return ttt_x_[layer].data(); }
  const DecodeWeights& weights() const { return *weights_; }
  const std::shared_ptr<const DecodeWeights>& shared_weights() const { return weights_; }

 private:
  struct Cache;  // one layer's key/value heads as raw rows
  void begin(const DecodeInput& input);  // checks, embedding, scratch sizes

  std::shared_ptr<const DecodeWeights> weights_;
  std::vector<float> x_, out_, normed_, q_, k_, v_, attn_, gate_, up_, z_, embedding_;
  // Attention in pieces of kKeyPiece keys (split-K, as flash decoding): per query head and piece
  // the running max, the sum of exponentials and the unnormalised output [D], merged at the end.
  std::vector<float> partial_;  // [heads, pieces, D + 2]
  int64_t longest_ = 0;         // keys the longest layer attends to in this step
  ops::quant::Activation act_;
  std::vector<std::vector<float>> ttt_z_, ttt_x_;
};

namespace detail {
// Tests only: false runs the attention's portable loops even where AVX-512 is (not thread-safe).
void set_attention_simd(bool enabled);
}  // namespace detail

}  // namespace ipt::model
