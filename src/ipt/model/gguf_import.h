#pragma once
// A llama.cpp GGUF model (architectures llama, qwen2, qwen3; tokenizer model gpt2) as the files of
// a Hugging Face model directory: config.json, the weights under Hugging Face names (float32,
// dequantized), tokenizer.json and tokenizer_config.json.
//
// Mapping: `{arch}.block_count` → num_hidden_layers, `.embedding_length` → hidden_size,
// `.feed_forward_length` → intermediate_size, `.attention.head_count(_kv)` → num_(key_value_)heads,
// `.attention.key_length` → head_dim, `.rope.freq_base` → rope_theta,
// `.attention.layer_norm_rms_epsilon` → rms_norm_eps, `.context_length` → max_position_embeddings,
// `.rope.scaling.*` → rope_scaling; tensor names `blk.N.attn_q` … → `model.layers.N.self_attn.q_proj`
// …; no `output` tensor means tied embeddings. llama.cpp's converter permutes the q/k rows of llama
// models for its interleaved RoPE; that permutation is undone here. llama, qwen2 and qwen3 become
// LlamaForCausalLM, Qwen2ForCausalLM (q/k/v biases) and Qwen3ForCausalLM.
#include <nlohmann/json.hpp>

#include "ipt/io/gguf.h"
#include "ipt/io/safetensors.h"

namespace ipt::model {

struct GgufImport {
  nlohmann::json config;            // config.json
  io::TensorMap tensors;            // Hugging Face names, float32
  nlohmann::json tokenizer;         // tokenizer.json
  nlohmann::json tokenizer_config;  // tokenizer_config.json
};

GgufImport import_gguf(const io::GgufFile& file);

// Only the tokenizer (tokenizer.json, tokenizer_config.json); throws for models other than gpt2.
void import_gguf_tokenizer(const io::GgufFile& file, nlohmann::json& tokenizer, nlohmann::json& tokenizer_config);

// llama.cpp's q/k row permutation and its inverse, on the first dimension of `w` ([heads·head_dim, …]).
torch::Tensor gguf_permute_rows(const torch::Tensor& w, int64_t heads);
torch::Tensor gguf_unpermute_rows(const torch::Tensor& w, int64_t heads);

}  // namespace ipt::model
