#include "ipt/model/decoder.h"

#include "ipt/common/error.h"
#include "ipt/parallel/context_parallel.h"
#include "ipt/model/decode_step.h"
#include "ipt/ops/attention/attention.h"
#include "ipt/ops/norm/rms_norm.h"

namespace ipt::model {

RMSNormImpl::RMSNormImpl(int64_t size, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({size}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  return ops::rms_norm(x, weight, eps_);
}

namespace {
torch::nn::Linear linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}
}  // namespace

AttentionImpl::AttentionImpl(const ModelConfig& c, int64_t layer)
    : heads(c.num_attention_heads),
      kv_heads(c.num_key_value_heads),
      head_dim(c.head_dim),
      window(c.layer_window.at(layer)),
      rope(c.rope) {
  q_proj = register_module("q_proj", linear(c.hidden_size, heads * head_dim, c.qkv_bias()));
  k_proj = register_module("k_proj", linear(c.hidden_size, kv_heads * head_dim, c.qkv_bias()));
  v_proj = register_module("v_proj", linear(c.hidden_size, kv_heads * head_dim, c.qkv_bias()));
  o_proj = register_module("o_proj", linear(heads * head_dim, c.hidden_size, c.o_bias()));
  if (c.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(head_dim, c.rms_norm_eps));
    k_norm = register_module("k_norm", RMSNorm(head_dim, c.rms_norm_eps));
  }
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> AttentionImpl::qkv(const torch::Tensor& x,
                                                                           const torch::Tensor& positions) {
  const int64_t B = x.size(0), L = x.size(1);
  torch::Tensor q = q_proj(x).view({B, L, heads, head_dim});
  torch::Tensor k = k_proj(x).view({B, L, kv_heads, head_dim});
  torch::Tensor v = v_proj(x).view({B, L, kv_heads, head_dim}).transpose(1, 2);
  if (q_norm) {
    q = q_norm(q);
    k = k_norm(k);
  }
  // Dynamic NTK scaling depends on how far positions reach.
  const int64_t reach = positions.numel() ? positions.max().item<int64_t>() + 1 : 0;
  const ops::RopeAngles angles = ops::rope_angles(positions, ops::rope_table(rope, reach), q.scalar_type());
  q = ops::apply_rope(q.transpose(1, 2), angles);
  k = ops::apply_rope(k.transpose(1, 2), angles);
  return {q, k, v};
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& positions,
                                     const std::vector<int64_t>& cu_seqlens) {
  auto [q, k, v] = qkv(x, positions);
  ops::AttentionOptions options;
  options.window = window;
  options.cu_seqlens = cu_seqlens;
  torch::Tensor out;  // [B, H, L, D]
  if (const parallel::ContextParallelState* cp = parallel::active_context_parallel()) {
    options.cu_seqlens = cp->cu_seqlens;  // the whole sequence's documents
    out = parallel::attention(q, k, v, options, cp->plan, *cp->comm);
  } else {
    out = ops::attention(q, k, v, options);
  }
  return o_proj(out.transpose(1, 2).reshape({x.size(0), x.size(1), heads * head_dim}));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, int64_t layer)
    : target_is_embedding(c.ttt_target == "input_embed") {
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  self_attn = register_module("self_attn", Attention(c, layer));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  mlp = register_module("mlp", GatedMlp(c.hidden_size, c.intermediate_size, c.ttt_settings(layer)));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& embeddings,
                                        const torch::Tensor& positions, const std::vector<int64_t>& cu_seqlens) {
  torch::Tensor h = x + self_attn(input_layernorm(x), positions, cu_seqlens);
  torch::Tensor mlp_in = post_attention_layernorm(h);
  return h + mlp(mlp_in, target_is_embedding ? embeddings : mlp_in, cu_seqlens);
}

DecoderModelImpl::DecoderModelImpl(const ModelConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c, i));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

namespace {

// Per-layer gradient checkpointing (libtorch 1.13 has no torch::utils::checkpoint): the forward runs
// the layer without building a graph and saves only its inputs; the backward runs it again with
// gradients on and back-propagates through that fresh graph, which also accumulates the layer's
// parameter gradients (the reentrant form of torch.utils.checkpoint).
struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor embeddings,
                               DecoderLayerImpl* layer, torch::Tensor positions, std::vector<int64_t> cu_seqlens) {
    ctx->save_for_backward({x, embeddings});
    ctx->saved_data["layer"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(layer));
    ctx->saved_data["positions"] = positions;
    ctx->saved_data["cu_seqlens"] = cu_seqlens;
    torch::NoGradGuard no_grad;
    return layer->forward(x, embeddings, positions, cu_seqlens);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(static_cast<intptr_t>(ctx->saved_data["layer"].toInt()));
    torch::Tensor x = saved[0].detach().requires_grad_(saved[0].requires_grad());
    torch::Tensor embeddings = saved[1].detach().requires_grad_(saved[1].requires_grad());
    torch::Tensor out;
    {
      torch::AutoGradMode grad_on(true);
      out = layer->forward(x, embeddings, ctx->saved_data["positions"].toTensor(),
                           ctx->saved_data["cu_seqlens"].toIntVector());
    }
    torch::autograd::backward({out}, {grad_out[0]});
    return {x.grad(), embeddings.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

CausalLMImpl::CausalLMImpl(ModelConfig config) : config_(std::move(config)) {
  config_.validate();
  model = register_module("model", DecoderModel(config_));
  if (!config_.tie_word_embeddings) lm_head = register_module("lm_head", linear(config_.hidden_size, config_.vocab_size, false));
}

torch::Tensor CausalLMImpl::positions_for(int64_t length, const std::vector<int64_t>& cu_seqlens) {
  torch::Tensor positions = torch::arange(length, torch::kInt64);
  for (size_t d = 1; d < cu_seqlens.size(); ++d) {
    const int64_t begin = cu_seqlens[d - 1], end = cu_seqlens[d];
    positions.narrow(0, begin, end - begin).sub_(begin);
  }
  return positions;
}

torch::Tensor CausalLMImpl::hidden_states(const torch::Tensor& input_ids, const std::vector<int64_t>& cu_seqlens) {
  IPT_CHECK(input_ids.dim() == 2 && input_ids.scalar_type() == torch::kInt64, "input_ids must be int64 [B, L], got ",
            input_ids.sizes());
  IPT_CHECK(input_ids.size(1) > 0, "input_ids must hold at least one token");
  IPT_CHECK(input_ids.min().item<int64_t>() >= 0 && input_ids.max().item<int64_t>() < config_.vocab_size,
            "input_ids hold a token outside the vocabulary [0, ", config_.vocab_size, ")");
  if (!cu_seqlens.empty())
    IPT_CHECK(input_ids.size(0) == 1 && cu_seqlens.front() == 0 && cu_seqlens.back() == input_ids.size(1),
              "cu_seqlens must run from 0 to L over a batch of one packed row");
  torch::Tensor positions;
  std::vector<int64_t> local_cu = cu_seqlens;
  if (const parallel::ContextParallelState* cp = parallel::active_context_parallel()) {
    // input_ids are this rank's rows; positions and documents come from the whole sequence.
    IPT_CHECK(cu_seqlens.empty(), "under context parallelism pass the documents to the scope, not to hidden_states");
    IPT_CHECK(input_ids.size(1) == cp->view.end - cp->view.begin, "context parallel: rank holds ", input_ids.size(1),
              " tokens but its slice has ", cp->view.end - cp->view.begin);
    positions = positions_for(cp->plan.bounds.back(), cp->cu_seqlens).narrow(0, cp->view.begin, input_ids.size(1));
    local_cu = cp->view.cu_seqlens;
  } else {
    positions = positions_for(input_ids.size(1), cu_seqlens);
  }
  positions = positions.to(input_ids.device());
  torch::Tensor embeddings = model->embed_tokens(input_ids);
  torch::Tensor x = embeddings;
  const bool checkpoint = gradient_checkpointing_ && torch::GradMode::is_enabled() && !parallel::active_context_parallel();
  for (const auto& layer : *model->layers) {
    DecoderLayerImpl* decoder_layer = layer->as<DecoderLayer>();
    // A layer whose inputs need no gradient (frozen layers below it) would drop out of the graph
    // under the checkpoint function, losing its own parameters' gradients: run it plainly.
    if (checkpoint && (x.requires_grad() || embeddings.requires_grad()))
      x = CheckpointedLayer::apply(x, embeddings, decoder_layer, positions, local_cu);
    else
      x = decoder_layer->forward(x, embeddings, positions, local_cu);
  }
  return model->norm(x);
}

const torch::Tensor& CausalLMImpl::head_weight() const {
  return config_.tie_word_embeddings ? model->embed_tokens->weight : lm_head->weight;
}

std::shared_ptr<const DecodeWeights> CausalLMImpl::decode_weights() const {
  std::lock_guard<std::mutex> lock(*decode_weights_mutex_);
  const ops::quant::Type type = decode_quantization_.value_or(
      head_weight().scalar_type() == torch::kBFloat16 ? ops::quant::Type::kBF16 : ops::quant::Type::kF32);
  const bool stale = !decode_weights_ || decode_weights_->type != type ||
                     decode_weights_->embedding.scalar_type() != head_weight().scalar_type() ||
                     !decode_weights_current(*decode_weights_, *this);
  if (stale) {
    decode_weights_.reset();  // free the old packing before making the new one
    decode_weights_ = pack_decode_weights(*this, decode_quantization_);
  }
  return decode_weights_;
}

void CausalLMImpl::set_decode_quantization(std::optional<ops::quant::Type> type) {
  IPT_CHECK(!type || ops::quant::block_size(*type) > 1, "decode quantization must be a block format (q8_0, q4_0, q4_1), got ",
            ops::quant::type_name(*type));
  std::lock_guard<std::mutex> lock(*decode_weights_mutex_);
  decode_quantization_ = type;
}

torch::Tensor CausalLMImpl::logits(const torch::Tensor& hidden) { return torch::matmul(hidden, head_weight().t()); }

void CausalLMImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    if (name.find("norm") != std::string::npos) p.value().fill_(1.0);
    else if (name.find(".bias") != std::string::npos) p.value().zero_();
    else p.value().normal_(0.0, config_.initializer_range);
  }
  init_ttt_drop_in(seed + 1);
}

void CausalLMImpl::init_ttt_drop_in(uint64_t seed) {
  torch::manual_seed(seed);
  for (const auto& layer : *model->layers) {
    auto& mlp = layer->as<DecoderLayer>()->mlp;
    if (mlp->ttt().enabled) mlp->drop_in_init(config_.initializer_range);
  }
}

}  // namespace ipt::model
