#include "ipt/bench/flops.h"

namespace ipt::bench {

double forward_flops_per_token(const model::ModelConfig& c, double context) {
  const double d = static_cast<double>(c.hidden_size);
  const double q = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  const double layer_weights = d * q + 2 * d * kv + q * d + 3 * d * static_cast<double>(c.intermediate_size);
  double weights = static_cast<double>(c.num_hidden_layers) * layer_weights + d * static_cast<double>(c.vocab_size);
  if (c.ttt_mode && c.ttt_proj)
    for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer)
      if (c.is_ttt_layer(layer)) weights += d * d;
  return 2 * weights + static_cast<double>(c.num_hidden_layers) * 4 * q * context;
}

double training_flops_per_token(const model::ModelConfig& c, int64_t seq_len) {
  return 3 * forward_flops_per_token(c, static_cast<double>(seq_len) / 2);
}

double ttt_operator_flops(int64_t L, int64_t d, int64_t h) { return 4.0 * L * d * h; }

}  // namespace ipt::bench
