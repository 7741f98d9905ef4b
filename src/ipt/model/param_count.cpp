#include "ipt/model/param_count.h"

namespace ipt::model {

int64_t parameter_count(const ModelConfig& c) {
  const int64_t d = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  int64_t attention = d * q + 2 * d * kv + q * d;  // q, k, v, o
  if (c.qkv_bias()) attention += q + 2 * kv;
  if (c.o_bias()) attention += d;
  if (c.qk_norm) attention += 2 * c.head_dim;
  const int64_t layer = attention + 3 * d * c.intermediate_size + 2 * d;  // + gate/up/down, two norms
  int64_t total = c.vocab_size * d + d;                                   // embeddings, final norm
  if (!c.tie_word_embeddings) total += c.vocab_size * d;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    total += layer;
    if (c.is_ttt_layer(l)) {
      if (c.ttt_target_kind == "conv") total += d * ttt::kConvKernel;
      if (c.ttt_proj) total += d * d;
    }
  }
  return total;
}

}  // namespace ipt::model
