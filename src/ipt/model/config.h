#pragma once
// Hugging Face config.json for Qwen3ForCausalLM, Qwen2ForCausalLM and LlamaForCausalLM, with the In-Place TTT keys
// under their official names (docs/operator.md) and our extensions. Keys this engine does not use are kept
// and written back unchanged, so a converted checkpoint still loads everywhere it did.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "ipt/model/ttt_mlp.h"
#include "ipt/ops/rope/rope.h"

namespace ipt::model {

struct ModelConfig {
  std::string architecture;  // Qwen3ForCausalLM | Qwen2ForCausalLM | LlamaForCausalLM
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0;
  int64_t num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0;
  double rms_norm_eps = 1e-6, initializer_range = 0.02;
  int64_t max_position_embeddings = 0;
  ops::RopeParams rope;  // rope_theta and rope_scaling
  bool tie_word_embeddings = false;
  bool attention_bias = false;         // LLaMA, Qwen3: biases on q, k, v and o (Hugging Face's key)
  bool qk_norm = false;                // Qwen3: RMSNorm on each head's q and k
  std::vector<int64_t> layer_window;   // per layer: sliding window size, 0 = full attention
  std::string torch_dtype = "float32";
  int64_t bos_token_id = -1, pad_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  // In-Place TTT (official names and defaults), then our extensions.
  bool ttt_mode = false;
  std::vector<int64_t> ttt_layers{0, 6, 12, 18, 24, 30};
  bool ttt_proj = true;
  double ttt_lr = 0.3;
  int64_t ttt_chunk = 8192;
  std::string ttt_target = "hidden_states";  // hidden_states | input_embed
  std::string ttt_conv_padding = "same";     // same | causal
  double ttt_clip = 0.0;
  double ttt_decay = 1.0;  // our extension: the update decays towards W0, (0, 1]; 1 = official
  bool ttt_decode_update = true;
  std::string ttt_target_kind = "conv";      // conv | reconstruction

  nlohmann::json extra;  // every key of the source config.json, written back under ours

  static ModelConfig from_json(const nlohmann::json& j);  // throws ipt::Error naming the key
  static ModelConfig load(const std::string& path);
  nlohmann::json to_json() const;
  void save(const std::string& path) const;  // atomic

  bool is_ttt_layer(int64_t layer) const;
  TttSettings ttt_settings(int64_t layer) const;
  bool is_qwen3() const { return architecture == "Qwen3ForCausalLM"; }
  bool is_qwen2() const { return architecture == "Qwen2ForCausalLM"; }
  // Qwen2 always has q/k/v biases and never an o bias (it has no attention_bias key).
  bool qkv_bias() const { return is_qwen2() || attention_bias; }
  bool o_bias() const { return !is_qwen2() && attention_bias; }
  void validate() const;
};

}  // namespace ipt::model
