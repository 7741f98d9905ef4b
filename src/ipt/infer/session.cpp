#include "ipt/infer/session.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <limits>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/infer/batcher.h"
#include "ipt/io/safetensors.h"
#include "ipt/ops/activation/swiglu.h"
#include "ipt/ops/attention/attention.h"
#include "ipt/ops/matvec/matvec.h"
#include "ipt/ops/rope/rope.h"

namespace ipt::infer {

namespace {

constexpr const char* kFormat = "ipt-session";
constexpr const char* kVersion = "1";

model::DecoderLayerImpl& layer_at(model::CausalLMImpl& lm, int64_t i) {
  return *lm.model->layers[i]->as<model::DecoderLayer>();
}

// FNV-1a, 64 bit.
struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
};

std::string meta(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  IPT_CHECK(it != m.end(), path, ": not a session file (metadata '", key, "' missing)");
  return it->second;
}

int64_t meta_int(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path) {
  const std::string s = meta(m, key, path);
  try {
    size_t used = 0;
    int64_t v = std::stoll(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error(path + ": session metadata '" + key + "' is not an integer: '" + s + "'");
}

torch::Tensor tensor_at(const io::TensorMap& m, const std::string& name, const std::string& path) {
  auto it = m.find(name);
  IPT_CHECK(it != m.end(), path, ": session file lacks tensor '", name, "'");
  return it->second;
}

// x [1, n, in] through a Linear layer. One row goes through a matrix-vector product: BLAS gemm
// would copy (pack) the whole weight matrix for every decoded token, which dominated decode time
// (measured: docs/inference.md).
torch::Tensor project(torch::nn::Linear layer, const torch::Tensor& x) {
  if (x.size(1) != 1) return layer(x);
  torch::Tensor out = ops::matvec(layer->weight, x.reshape({-1}));
  if (layer->bias.defined()) out += layer->bias;
  return out.view({1, 1, -1});
}

// AttentionImpl::qkv with project() for the linear maps (the streaming tests hold them equal).
// `angles`: RoPE's cos/sin at this step's positions, computed once per step for every layer.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> project_qkv(model::AttentionImpl& a, const torch::Tensor& x,
                                                                     const ops::RopeAngles& angles) {
  const int64_t n = x.size(1);
  torch::Tensor q = project(a.q_proj, x).view({1, n, a.heads, a.head_dim});
  torch::Tensor k = project(a.k_proj, x).view({1, n, a.kv_heads, a.head_dim});
  torch::Tensor v = project(a.v_proj, x).view({1, n, a.kv_heads, a.head_dim}).transpose(1, 2);
  if (a.q_norm) {
    q = a.q_norm(q);
    k = a.k_norm(k);
  }
  return {ops::apply_rope(q.transpose(1, 2), angles), ops::apply_rope(k.transpose(1, 2), angles), v};
}

}  // namespace

torch::Tensor single_query_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     int64_t window) {
  IPT_CHECK(q.dim() == 4 && q.size(0) == 1 && q.size(2) == 1, "single-query attention: q must be [1, H, 1, D], got ",
            q.sizes());
  IPT_CHECK(k.dim() == 4 && k.sizes() == v.sizes() && k.size(0) == 1 && k.size(2) > 0 && q.size(1) % k.size(1) == 0,
            "single-query attention: k, v must be [1, Hkv, n, D] with Hkv dividing H, got ", k.sizes());
  const int64_t heads = q.size(1), kv_heads = k.size(1), D = q.size(3), n = k.size(2);
  torch::Tensor keys = k[0], values = v[0];  // [Hkv, n, D], rows may be strided (a cache's prefix)
  if (window > 0 && n > window) {
    keys = keys.narrow(1, n - window, window);
    values = values.narrow(1, n - window, window);
  }
  // Query head h reads key/value head h / (H / Hkv). Matrix-vector products per head: a batched
  // matrix product would copy (pack) every cached key for every decoded token.
  const auto compute = q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  torch::Tensor queries = q.reshape({heads, D});
  torch::Tensor out = torch::empty({heads, D}, q.options());
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t g = h / (heads / kv_heads);
    torch::Tensor scores = ops::matvec(keys[g], queries[h]).to(compute) * scale;
    torch::Tensor probs = torch::softmax(scores, 0).to(q.scalar_type());
    out[h].copy_(ops::vecmat(probs, values[g]));
  }
  return out.view({1, heads, 1, D});
}

Session::Session(const model::CausalLM& lm, SessionOptions options)
    // libtorch's forward methods are not const but read the weights only; no session writes them.
    : lm_(const_cast<model::CausalLMImpl*>(lm.get())), options_(options) {
  const model::ModelConfig& config = lm_->config();
  IPT_CHECK(options_.context >= 0, "session: context must be >= 0 (0 = max_position_embeddings), got ",
            options_.context);
  IPT_CHECK(options_.prefill_chunk > 0, "session: prefill_chunk must be > 0, got ", options_.prefill_chunk);
  IPT_CHECK(options_.kv_block > 0, "session: kv_block must be > 0, got ", options_.kv_block);
  IPT_CHECK(options_.sample_vocab >= 0 && options_.sample_vocab <= config.vocab_size,
            "session: sample_vocab must be in [0, ", config.vocab_size, "], got ", options_.sample_vocab);
  context_ = options_.context > 0 ? options_.context : config.max_position_embeddings;
  IPT_CHECK(context_ > 0, "session: the model has no max_position_embeddings; give a context size");
  const bool decode_update = options_.decode_update.value_or(config.ttt_decode_update);
  const double clip = options_.ttt_clip.value_or(config.ttt_clip);
  IPT_CHECK(std::isfinite(clip) && clip >= 0.0, "session: ttt_clip must be finite and >= 0, got ", clip);
  layers_.resize(config.num_hidden_layers);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    auto& mlp = layer_at(*lm_, i).mlp;
    if (options_.ttt && mlp->ttt().enabled) layers_[i].stream.emplace(mlp, clip, decode_update);
  }
}

void Session::check_tokens(const std::vector<int64_t>& tokens) const {
  const int64_t vocab = lm_->config().vocab_size;
  for (int64_t t : tokens)
    IPT_CHECK(t >= 0 && t < vocab, "token id ", t, " is outside the vocabulary [0, ", vocab, ")");
  IPT_CHECK(position() + static_cast<int64_t>(tokens.size()) <= context_, "too many tokens: the session holds ",
            position(), " and ", tokens.size(), " more would exceed the context of ", context_);
}

torch::Tensor Session::append(const std::vector<int64_t>& tokens, bool all_logits) {
  IPT_CHECK(!tokens.empty(), "append: no tokens");
  check_tokens(tokens);
  std::vector<torch::Tensor> logits;
  for (size_t begin = 0; begin < tokens.size(); begin += options_.prefill_chunk) {
    const size_t end = std::min(tokens.size(), begin + static_cast<size_t>(options_.prefill_chunk));
    logits.push_back(forward({tokens.begin() + begin, tokens.begin() + end}, false, all_logits));
  }
  return all_logits ? torch::cat(logits) : logits.back();
}

torch::Tensor Session::decode(int64_t token) {
  check_tokens({token});
  return forward({token}, true, false);
}

std::vector<int64_t> Session::generate(int64_t max_new, Sampler& sampler, const std::vector<int64_t>& stop_ids,
                                       const TokenCallback& on_token, DecodeBatcher* batcher) {
  IPT_CHECK(max_new >= 0, "generate: the number of tokens must be >= 0, got ", max_new);
  IPT_CHECK(last_logits_.defined(), "generate: the session is empty; append a prompt first");
  stopped_at_stop_ = false;
  struct Membership {  // joined for the decoding loop only, left however it ends
    DecodeBatcher* batcher;
    explicit Membership(DecodeBatcher* b) : batcher(b) {
      if (batcher) batcher->join();
    }
    ~Membership() {
      if (batcher) batcher->leave();
    }
  } membership(batcher);
  std::vector<int64_t> out;
  while (static_cast<int64_t>(out.size()) < max_new && position() < context_) {
    torch::Tensor logits = last_logits_;
    const int64_t vocab = logits.size(0);
    if (options_.sample_vocab > 0 && options_.sample_vocab < vocab) {  // ids the tokenizer cannot spell
      logits = logits.clone();
      logits.narrow(0, options_.sample_vocab, vocab - options_.sample_vocab).fill_(-1e9);  // finite: the sampler refuses infinities; exp(-1e9) is 0
    }
    const int64_t token = sampler.sample(logits, tokens_);
    if (std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end()) {
      stopped_at_stop_ = true;
      break;
    }
    out.push_back(token);
    // The callback sees the token before its forward runs (streaming shows it sooner); the token
    // is fed either way so the session holds everything that was returned.
    const bool go_on = !on_token || on_token(token);
    if (batcher) batcher->decode(*this, token);
    else decode(token);
    if (!go_on) break;
  }
  return out;
}

void Session::reserve_cache(int64_t layer, int64_t n) {
  LayerState& s = layers_[layer];
  const model::AttentionImpl& attn = *layer_at(*lm_, layer).self_attn;
  const int64_t window = attn.window;
  if (!s.k.defined() || s.length + n > s.k.size(2)) {
    // Grow by whole blocks, never past what the layer can need.
    const int64_t limit = window > 0 ? window + options_.prefill_chunk + options_.kv_block : context_;
    int64_t capacity = (s.length + n + options_.kv_block - 1) / options_.kv_block * options_.kv_block;
    capacity = std::max(std::min(capacity, limit), s.length + n);
    torch::Tensor nk = torch::empty({1, attn.kv_heads, capacity, attn.head_dim}, lm_->head_weight().options());
    torch::Tensor nv = torch::empty_like(nk);
    if (s.length > 0) {
      nk.narrow(2, 0, s.length).copy_(s.k.narrow(2, 0, s.length));
      nv.narrow(2, 0, s.length).copy_(s.v.narrow(2, 0, s.length));
    }
    s.k = nk;
    s.v = nv;
  }
}

void Session::slide_window(int64_t layer) {
  LayerState& s = layers_[layer];
  const int64_t window = layer_at(*lm_, layer).self_attn->window;
  if (window > 0 && s.length > window + options_.kv_block) {
    // Slide: keep the last window - 1 keys (all the next query can see besides itself).
    const int64_t keep = window - 1, drop = s.length - keep;
    s.k.narrow(2, 0, keep).copy_(s.k.narrow(2, drop, keep).clone());
    s.v.narrow(2, 0, keep).copy_(s.v.narrow(2, drop, keep).clone());
    s.start += drop;
    s.length = keep;
  }
}

torch::Tensor Session::attend(int64_t layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  LayerState& s = layers_[layer];
  const int64_t n = k.size(2), window = layer_at(*lm_, layer).self_attn->window;
  reserve_cache(layer, n);
  s.k.narrow(2, s.length, n).copy_(k);
  s.v.narrow(2, s.length, n).copy_(v);
  s.length += n;
  torch::Tensor keys = s.k.narrow(2, 0, s.length), values = s.v.narrow(2, 0, s.length);
  torch::Tensor out;
  if (q.size(2) == 1) {
    out = single_query_attention(q, keys, values, window);
  } else {
    ops::AttentionOptions options;
    options.window = window;
    out = ops::attention(q, keys, values, options);  // the queries are the last n of the keys
  }
  slide_window(layer);
  return out;
}

bool Session::uses_decode_step() const { return options_.decode_step && model::decode_step_supported(*lm_); }

model::DecodeInput Session::prepare_step(int64_t token) {
  std::shared_ptr<const model::DecodeWeights> weights = lm_->decode_weights();
  if (!step_ || step_->shared_weights() != weights) step_ = std::make_unique<model::DecodeStep>(weights);
  const int64_t p = position(), layers = static_cast<int64_t>(layers_.size());
  // RoPE at this position (one table for every layer; dynamic NTK depends on how far it reaches).
  const ops::RopeTable table = ops::rope_table(layer_at(*lm_, 0).self_attn->rope, p + 1);
  const int64_t half = table.inv_freq.size(0);
  step_cos_.resize(2 * half);
  step_sin_.resize(2 * half);
  const double* inv_freq = table.inv_freq.data_ptr<double>();
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(p) * inv_freq[i];
    step_cos_[i] = step_cos_[i + half] = static_cast<float>(std::cos(angle) * table.attention_scaling);
    step_sin_[i] = step_sin_[i + half] = static_cast<float>(std::sin(angle) * table.attention_scaling);
  }
  step_io_.resize(layers);
  fast_down_.resize(layers);
  fast_down_updates_.resize(layers, -1);
  for (int64_t i = 0; i < layers; ++i) {
    reserve_cache(i, 1);
    LayerState& s = layers_[i];
    model::DecodeLayerIo& io = step_io_[i];
    io.k = s.k;
    io.v = s.v;
    io.length = s.length;
    io.fast_down = nullptr;
    if (s.stream) {
      if (fast_down_updates_[i] != s.stream->updates()) {  // a chunk update moved the fast weight
        torch::Tensor w = s.stream->compute_weight().to(torch::kFloat32).contiguous();
        const auto type = s.stream->compute_weight().scalar_type() == torch::kBFloat16 ? ops::quant::Type::kBF16
                                                                                        : ops::quant::Type::kF32;
        fast_down_[i] = ops::quant::Matrix::quantize(w.data_ptr<float>(), w.size(0), w.size(1), type);
        fast_down_updates_[i] = s.stream->updates();
      }
      io.fast_down = &fast_down_[i];
    }
  }
  step_logits_.resize(step_->weights().vocab);
  return {token, step_cos_.data(), step_sin_.data(), &step_io_, step_logits_.data()};
}

void Session::finish_step(int64_t token, bool decoding) {
  torch::NoGradGuard no_grad;
  const model::DecodeWeights& w = step_->weights();
  const auto dtype = lm_->head_weight().scalar_type();
  for (size_t i = 0; i < layers_.size(); ++i) {
    LayerState& s = layers_[i];
    s.length += 1;
    slide_window(static_cast<int64_t>(i));
    if (s.stream && (!decoding || s.stream->decode_update())) {
      auto row = [&](const float* data, int64_t n) {
        return torch::from_blob(const_cast<float*>(data), {1, n}, torch::kFloat32).to(dtype);
      };
      s.stream->append_rows(row(step_->ttt_z(i), w.intermediate), row(step_->ttt_x(i), w.hidden));
    }
  }
  tokens_.push_back(token);
  // In the model's dtype, as the sequence path returns them, converted by hand: a libtorch copy of
  // this size runs an OpenMP region, whose spinning workers would then compete with the decode
  // step's threads for the cores.
  last_logits_ = torch::empty({w.vocab}, torch::TensorOptions().dtype(dtype));
  if (dtype == torch::kBFloat16) {
    auto* out = reinterpret_cast<uint16_t*>(last_logits_.data_ptr<at::BFloat16>());
    for (int64_t i = 0; i < w.vocab; ++i) out[i] = ops::quant::float_to_bf16(step_logits_[i]);
  } else {
    std::memcpy(last_logits_.data_ptr<float>(), step_logits_.data(), w.vocab * sizeof(float));
  }
}

torch::Tensor Session::forward_step(int64_t token, bool decoding) {
  SerialTorchScope serial;  // chunk updates and re-packs: see runtime.h
  const model::DecodeInput input = prepare_step(token);
  step_->run(input);
  finish_step(token, decoding);
  return last_logits_;
}

std::vector<torch::Tensor> Session::decode_batch(const std::vector<Session*>& sessions,
                                                 const std::vector<int64_t>& tokens) {
  IPT_CHECK(sessions.size() == tokens.size(), "decode batch: ", sessions.size(), " sessions for ", tokens.size(),
            " tokens");
  for (size_t b = 0; b < sessions.size(); ++b) {
    IPT_CHECK(sessions[b] != nullptr, "decode batch: session ", b, " is null");
    IPT_CHECK(sessions[b]->lm_ == sessions[0]->lm_, "decode batch: every session must run the same model; session ",
              b, " runs another");
    for (size_t a = 0; a < b; ++a) IPT_CHECK(sessions[a] != sessions[b], "decode batch: session ", b, " appears twice");
    sessions[b]->check_tokens({tokens[b]});
  }
  std::vector<torch::Tensor> logits;
  if (sessions.empty()) return logits;
  const bool stepped = std::all_of(sessions.begin(), sessions.end(), [](Session* s) { return s->uses_decode_step(); });
  if (!stepped || sessions.size() == 1) {
    for (size_t b = 0; b < sessions.size(); ++b) logits.push_back(sessions[b]->decode(tokens[b]));
    return logits;
  }
  SerialTorchScope serial;
  std::vector<model::DecodeStep*> steps;
  std::vector<model::DecodeInput> inputs;
  for (size_t b = 0; b < sessions.size(); ++b) {
    inputs.push_back(sessions[b]->prepare_step(tokens[b]));
    steps.push_back(sessions[b]->step_.get());
  }
  model::DecodeStep::run_batch(steps, inputs);
  for (size_t b = 0; b < sessions.size(); ++b) {
    sessions[b]->finish_step(tokens[b], true);
    logits.push_back(sessions[b]->last_logits_);
  }
  return logits;
}

torch::Tensor Session::forward(const std::vector<int64_t>& tokens, bool decoding, bool all_logits) {
  if (tokens.size() == 1 && uses_decode_step()) {
    torch::Tensor logits = forward_step(tokens[0], decoding);
    return all_logits ? logits.unsqueeze(0) : logits;
  }
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(tokens.size()), p0 = position();
  const torch::Device device = lm_->head_weight().device();
  torch::Tensor ids = torch::tensor(tokens, torch::kInt64).view({1, n}).to(device);
  torch::Tensor positions = torch::arange(p0, p0 + n, torch::kInt64).to(device);
  torch::Tensor embeddings = lm_->model->embed_tokens(ids);
  torch::Tensor x = embeddings;
  // Every layer has the config's one RoPE; dynamic NTK scaling depends on how far positions reach.
  const ops::RopeAngles angles =
      ops::rope_angles(positions, ops::rope_table(layer_at(*lm_, 0).self_attn->rope, p0 + n), x.scalar_type());
  for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
    model::DecoderLayerImpl& layer = layer_at(*lm_, i);
    auto& attn = layer.self_attn;
    auto [q, k, v] = project_qkv(*attn, layer.input_layernorm(x), angles);
    torch::Tensor a = attend(i, q, k, v);
    torch::Tensor h = x + project(attn->o_proj, a.transpose(1, 2).reshape({1, n, attn->heads * attn->head_dim}));
    torch::Tensor mlp_in = layer.post_attention_layernorm(h);
    torch::Tensor target_source = layer.target_is_embedding ? embeddings : mlp_in;
    torch::Tensor mlp_out;
    if (auto& stream = layers_[i].stream)
      mlp_out = decoding ? stream->step(mlp_in, target_source) : stream->prefill(mlp_in, target_source);
    else
      mlp_out = project(layer.mlp->down_proj,  // W0 (plain MLP, or TTT off)
                        ops::swiglu(project(layer.mlp->gate_proj, mlp_in), project(layer.mlp->up_proj, mlp_in)));
    x = h + mlp_out;
  }
  torch::Tensor hidden = all_logits ? lm_->model->norm(x)[0] : lm_->model->norm(x.narrow(1, n - 1, 1))[0];
  torch::Tensor logits = hidden.size(0) == 1 ? ops::matvec(lm_->head_weight(), hidden[0]).unsqueeze(0) : lm_->logits(hidden);
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  last_logits_ = logits[logits.size(0) - 1];
  return all_logits ? logits : last_logits_;
}

int64_t Session::ttt_updates() const {
  int64_t total = 0;
  for (const auto& s : layers_)
    if (s.stream) total += s.stream->updates();
  return total;
}

int64_t Session::memory_bytes() const {
  int64_t bytes = 0;
  auto add = [&](const torch::Tensor& t) {
    if (t.defined()) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  };
  for (const auto& s : layers_) {
    add(s.k);
    add(s.v);
    if (s.stream) bytes += s.stream->memory_bytes();
  }
  for (const auto& packed : fast_down_) bytes += packed.bytes();  // the decode step's fast-weight copies
  return bytes;
}

int64_t Session::memory_bytes_at(int64_t tokens) const {
  const int64_t element = lm_->head_weight().element_size();
  int64_t bytes = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const model::AttentionImpl& attention = *layer_at(*lm_, static_cast<int64_t>(i)).self_attn;
    // As attend() grows the cache: whole blocks, never past what the layer can need.
    const int64_t limit = attention.window > 0 ? attention.window + options_.prefill_chunk + options_.kv_block : context_;
    const int64_t blocks = (std::max<int64_t>(tokens, 1) + options_.kv_block - 1) / options_.kv_block;
    const int64_t capacity = std::min(blocks * options_.kv_block, limit);
    bytes += 2 * attention.kv_heads * attention.head_dim * capacity * element;
    if (const auto& stream = layers_[i].stream) {  // with the pending rows' buffers grown to a whole chunk
      bytes += stream->memory_bytes(layer_at(*lm_, static_cast<int64_t>(i)).mlp->ttt().chunk_size);
      if (options_.decode_step && model::decode_step_supported(*lm_))  // and the decode step's packed copy
        bytes += stream->compute_weight().numel() * stream->compute_weight().element_size();
    }
  }
  return bytes;
}

std::string Session::model_fingerprint(const model::CausalLMImpl& lm) {
  torch::NoGradGuard no_grad;
  Fnv fnv;
  fnv.add(lm.config().to_json().dump());
  for (const auto& p : lm.named_parameters()) {
    fnv.add(p.key());
    torch::Tensor flat = p.value().detach().reshape({-1});
    const int64_t samples = std::min<int64_t>(64, flat.numel());
    torch::Tensor picked = flat.index_select(0, torch::linspace(0, flat.numel() - 1, samples).to(torch::kInt64).to(flat.device()));
    picked = picked.to(torch::kFloat32).cpu().contiguous();
    fnv.add(picked.data_ptr(), picked.numel() * sizeof(float));
  }
  std::ostringstream out;
  out << std::hex << std::setw(16) << std::setfill('0') << fnv.h;
  return out.str();
}

void Session::save(const std::string& path) const {
  io::TensorMap tensors;
  std::map<std::string, std::string> metadata{{"format", kFormat},
                                              {"version", kVersion},
                                              {"fingerprint", model_fingerprint(*lm_)},
                                              {"dtype", c10::toString(lm_->head_weight().scalar_type())},
                                              {"ttt", options_.ttt ? "1" : "0"},
                                              {"context", std::to_string(context_)},
                                              {"prefill_chunk", std::to_string(options_.prefill_chunk)},
                                              {"kv_block", std::to_string(options_.kv_block)},
                                              {"sample_vocab", std::to_string(options_.sample_vocab)}};
  if (options_.decode_update) metadata["decode_update"] = *options_.decode_update ? "1" : "0";
  if (options_.ttt_clip) {
    std::ostringstream clip;
    clip << std::setprecision(17) << *options_.ttt_clip;
    metadata["ttt_clip"] = clip.str();
  }
  for (const auto& [key, value] : notes_) metadata["note." + key] = value;
  tensors["tokens"] = torch::tensor(tokens_, torch::kInt64);
  if (last_logits_.defined()) tensors["last_logits"] = last_logits_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerState& s = layers_[i];
    const std::string prefix = "layers." + std::to_string(i) + ".";
    metadata[prefix + "start"] = std::to_string(s.start);
    if (s.length > 0) {
      tensors[prefix + "k"] = s.k.narrow(2, 0, s.length)[0];
      tensors[prefix + "v"] = s.v.narrow(2, 0, s.length)[0];
    }
    if (s.stream) {
      metadata[prefix + "updates"] = std::to_string(s.stream->updates());
      tensors[prefix + "fast_weight"] = s.stream->fast_weight();
      if (s.stream->pending() > 0) {
        tensors[prefix + "pending_z"] = s.stream->pending_z();
        tensors[prefix + "pending_x"] = s.stream->pending_x();
      }
    }
  }
  io::write_safetensors(path, tensors, metadata);
}

Session Session::load(const model::CausalLM& lm, const std::string& path) {
  std::map<std::string, std::string> m;
  io::TensorMap tensors = io::read_safetensors(path, &m);
  IPT_CHECK(m.count("format") && m.at("format") == kFormat, path, ": not an ipt session file");
  IPT_CHECK(meta(m, "version", path) == kVersion, path, ": session format version ", m.at("version"),
            " is not supported (expected ", kVersion, ")");
  // The caches hold activations computed in the model's compute type; continuing them in another
  // type would mix precisions silently (and the weights' fingerprint differs anyway).
  const std::string saved_type = m.count("dtype") ? m.at("dtype") : "Float";
  const std::string this_type = c10::toString(lm->head_weight().scalar_type());
  auto dtype_flag = [](const std::string& t) { return t == "BFloat16" ? "bfloat16" : t == "Float" ? "float32" : t; };
  IPT_CHECK(saved_type == this_type, path, ": the session was computed in ", dtype_flag(saved_type),
            " but the model runs in ", dtype_flag(this_type), " (load it with --dtype ", dtype_flag(saved_type), ")");
  const std::string expected = model_fingerprint(*lm), found = meta(m, "fingerprint", path);
  IPT_CHECK(found == expected, path, ": the session was saved with another model (fingerprint ", found,
            ", this model ", expected, ")");
  SessionOptions options;
  options.ttt = meta(m, "ttt", path) == "1";
  options.context = meta_int(m, "context", path);
  options.prefill_chunk = meta_int(m, "prefill_chunk", path);
  options.kv_block = meta_int(m, "kv_block", path);
  options.sample_vocab = meta_int(m, "sample_vocab", path);
  if (m.count("decode_update")) options.decode_update = m.at("decode_update") == "1";
  if (m.count("ttt_clip")) options.ttt_clip = std::stod(m.at("ttt_clip"));
  Session session(lm, options);
  for (const auto& [key, value] : m)
    if (key.rfind("note.", 0) == 0) session.notes_[key.substr(5)] = value;
  const auto weight_options = lm->head_weight().options();
  torch::Tensor tokens = tensor_at(tensors, "tokens", path);
  IPT_CHECK(tokens.dim() == 1 && tokens.scalar_type() == torch::kInt64, path, ": 'tokens' must be int64 [n]");
  session.tokens_.assign(tokens.data_ptr<int64_t>(), tokens.data_ptr<int64_t>() + tokens.numel());
  session.check_tokens({});
  if (tensors.count("last_logits")) session.last_logits_ = tensors.at("last_logits").to(weight_options).clone();
  IPT_CHECK(session.tokens_.empty() == !session.last_logits_.defined(), path,
            ": 'last_logits' must be present exactly when tokens are");
  for (size_t i = 0; i < session.layers_.size(); ++i) {
    LayerState& s = session.layers_[i];
    const std::string prefix = "layers." + std::to_string(i) + ".";
    s.start = meta_int(m, prefix + "start", path);
    auto& attn = layer_at(*session.lm_, static_cast<int64_t>(i)).self_attn;
    if (tensors.count(prefix + "k")) {
      torch::Tensor k = tensors.at(prefix + "k"), v = tensor_at(tensors, prefix + "v", path);
      IPT_CHECK(k.dim() == 3 && k.size(0) == attn->kv_heads && k.size(2) == attn->head_dim && k.sizes() == v.sizes(),
                path, ": cache of layer ", i, " has shape ", k.sizes(), ", expected [", attn->kv_heads, ", n, ",
                attn->head_dim, "]");
      s.length = k.size(1);
      s.k = k.to(weight_options).unsqueeze(0).clone();
      s.v = v.to(weight_options).unsqueeze(0).clone();
    }
    IPT_CHECK(s.start >= 0 && s.start + s.length == session.position(), path, ": cache of layer ", i,
              " covers positions ", s.start, "..", s.start + s.length, " but the session holds ", session.position(),
              " tokens");
    if (s.stream) {
      torch::Tensor w = tensor_at(tensors, prefix + "fast_weight", path);
      IPT_CHECK(w.sizes() == s.stream->fast_weight().sizes(), path, ": fast weight of layer ", i, " has shape ",
                w.sizes(), ", expected ", s.stream->fast_weight().sizes());
      torch::Tensor z = tensors.count(prefix + "pending_z") ? tensors.at(prefix + "pending_z")
                                                            : s.stream->pending_z();
      torch::Tensor x = tensors.count(prefix + "pending_x") ? tensors.at(prefix + "pending_x")
                                                            : s.stream->pending_x();
      IPT_CHECK(z.dim() == 2 && z.size(1) == s.stream->pending_z().size(1) && x.dim() == 2 &&
                    x.size(1) == s.stream->pending_x().size(1),
                path, ": pending rows of layer ", i, " have the wrong width");
      const auto master = s.stream->fast_weight().scalar_type();  // float32 in bf16 compute
      s.stream->restore(w.to(master).clone(), meta_int(m, prefix + "updates", path),
                        z.to(weight_options).clone(), x.to(weight_options).clone());
    } else {
      IPT_CHECK(!tensors.count(prefix + "fast_weight"), path, ": layer ", i,
                " has a fast weight but this model/session has no TTT there");
    }
  }
  return session;
}

}  // namespace ipt::infer
