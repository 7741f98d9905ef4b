#pragma once
// Qwen3 / LLaMA decoder-only language model with In-Place TTT MLPs in the layers the config
// names. Parameter names are Hugging Face's (model.layers.{i}.self_attn.q_proj.weight, …,
// model.layers.{i}.mlp.ttt_conv.weight, lm_head.weight), so checkpoints map one to one.
//
// One forward serves training (autograd over whole sequences) and prefill; batches are padded
// rows [B, L] or one packed row with document offsets (positions restart, attention and the
// TTT convolution and fast weights never cross a document).
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "ipt/model/config.h"
#include "ipt/model/ttt_mlp.h"

namespace ipt::ops::quant {
enum class Type : uint8_t;  // ops/quant/quant.h
}

namespace ipt::model {

struct DecodeWeights;  // model/decode_step.h

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t size, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelConfig& config, int64_t layer);
  // x [B, L, d], positions [L] or [B, L] -> [B, L, d]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& positions, const std::vector<int64_t>& cu_seqlens);
  // q, k, v after projection, norm and rotary embedding: [B, H, L, D] each.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> qkv(const torch::Tensor& x, const torch::Tensor& positions);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};
  int64_t heads, kv_heads, head_dim, window;
  ops::RopeParams rope;
};
TORCH_MODULE(Attention);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& config, int64_t layer);
  // embeddings: the token embeddings (the TTT target source for ttt_target = input_embed).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& embeddings, const torch::Tensor& positions,
                        const std::vector<int64_t>& cu_seqlens);

  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Attention self_attn{nullptr};
  GatedMlp mlp{nullptr};
  bool target_is_embedding = false;
};
TORCH_MODULE(DecoderLayer);

class DecoderModelImpl : public torch::nn::Module {
 public:
  explicit DecoderModelImpl(const ModelConfig& config);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DecoderModel);

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(ModelConfig config);

  // input_ids [B, L] int64; cu_seqlens: packed documents in a batch of one row (empty: one
  // document per row). Returns the final-norm hidden states [B, L, d].
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const std::vector<int64_t>& cu_seqlens = {});
  torch::Tensor logits(const torch::Tensor& hidden);  // [..., vocab]
  const torch::Tensor& head_weight() const;           // lm_head or the tied embedding
  torch::Device device() const { return head_weight().device(); }  // where the weights live

  // Random initialisation as the Hugging Face models do it (normal(0, initializer_range), norms
  // to one) plus the drop-in initialisation (docs/operator.md) for the TTT tensors.
  void init_weights(uint64_t seed);
  // Drop-in conversion's TTT initialisation only (conv = 0, P diagonal): logits stay the base model's.
  void init_ttt_drop_in(uint64_t seed);

  const ModelConfig& config() const { return config_; }
  // Training: recompute each layer in the backward instead of keeping its activations (only the
  // layer inputs stay alive). Off outside training; not combined with context parallelism.
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }
  // Positions restarting at every document start: [L] (or [B, L] for padded rows, all arange).
  static torch::Tensor positions_for(int64_t length, const std::vector<int64_t>& cu_seqlens);

  // The weights packed for the single-token decode step (model/decode_step.h): packed on first
  // use, again after any parameter is replaced or changed in place. Thread-safe.
  std::shared_ptr<const DecodeWeights> decode_weights() const;
  // Keep the linear maps in a block format for decoding (q8_0, q4_0, q4_1), or in the compute
  // dtype (nullopt, the default). Takes effect at the next decode_weights().
  void set_decode_quantization(std::optional<ops::quant::Type> type);
  std::optional<ops::quant::Type> decode_quantization() const { return decode_quantization_; }

  DecoderModel model{nullptr};
  torch::nn::Linear lm_head{nullptr};

 private:
  ModelConfig config_;
  bool gradient_checkpointing_ = false;
  std::optional<ops::quant::Type> decode_quantization_;
  mutable std::shared_ptr<const DecodeWeights> decode_weights_;
  mutable std::shared_ptr<std::mutex> decode_weights_mutex_ = std::make_shared<std::mutex>();
};
TORCH_MODULE(CausalLM);

}  // namespace ipt::model
