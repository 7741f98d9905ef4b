#pragma once
// One conversation's inference state over a loaded model: per layer a key/value cache (grown in
// blocks; sliding-window layers keep only their window), per TTT layer the streaming fast-weight
// state (docs/operator.md, "Streaming": the current W and the rows of the pending chunk), the position and
// the token history. Sessions read the model's weights and never change them, so any number of
// sessions can share one model, each with its own memory (isolation).
//
//   Session s(lm, {});
//   torch::Tensor logits = s.append(prompt_ids);             // prefill, chunk by chunk
//   std::vector<int64_t> out = s.generate(64, sampler, {eos}, [](int64_t t) { return true; });
//   s.save("chat.session");  ...  Session t = Session::load(lm, "chat.session");
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ipt/infer/sampler.h"
#include "ipt/model/decode_step.h"
#include "ipt/model/decoder.h"

namespace ipt::infer {

class DecodeBatcher;  // infer/batcher.h

struct SessionOptions {
  bool ttt = true;                      // false: fast weights stay W0 (the same weights as a plain model)
  std::optional<bool> decode_update;    // update while decoding; unset = the model's ttt_decode_update
                                        // (true, as the official inference; false: frozen after the prompt)
  std::optional<double> ttt_clip;       // clip each update's norm; unset = the model's ttt_clip
  int64_t context = 0;                  // most tokens a session may hold; 0 = max_position_embeddings
  int64_t prefill_chunk = 512;          // tokens per forward step while prefilling (bounds memory)
  int64_t kv_block = 256;               // the KV cache grows by this many positions at a time
  int64_t sample_vocab = 0;             // generate() samples only ids below this (a tokenizer smaller
                                        // than the model's embedding table); 0 = every id
  bool decode_step = true;              // one token at a time through model::DecodeStep where it runs
                                        // (CPU, float32/bfloat16); false: the sequence path (comparisons)
};

// Called with each generated token; return false to stop generating.
using TokenCallback = std::function<bool(int64_t token)>;

class Session {
 public:
  Session(const model::CausalLM& lm, SessionOptions options = {});
  // Moves only: a copy would share cache buffers with the original.
  Session(Session&&) = default;
  Session& operator=(Session&&) = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Feeds tokens (prefill: TTT layers update whenever a chunk fills). Returns the logits after the
  // last token [vocab], or with all_logits the logits after every token [n, vocab] (teacher forcing).
  torch::Tensor append(const std::vector<int64_t>& tokens, bool all_logits = false);
  // Feeds one token the way decoding does (fast weights update only with decode_update); returns
  // the logits after it [vocab].
  torch::Tensor decode(int64_t token);
  // Feeds one token to each session in one step over the weights (continuous batching); each
  // session's state stays its own. Equal to calling decode() on each (tested). Sessions must be
  // distinct and share one model; where the decode step does not run, they decode one by one.
  static std::vector<torch::Tensor> decode_batch(const std::vector<Session*>& sessions,
                                                 const std::vector<int64_t>& tokens);
  // Samples up to max_new tokens from the latest logits, feeding each back with decode(). Stops at a
  // token in stop_ids (not fed, not returned; stopped_at_stop() becomes true), when on_token returns
  // false, or when the context is full. Needs at least one token appended before.
  // With a batcher, each token is decoded in a step shared with the other generations running
  // through it (continuous batching); the tokens are the same either way.
  std::vector<int64_t> generate(int64_t max_new, Sampler& sampler, const std::vector<int64_t>& stop_ids = {},
                                const TokenCallback& on_token = {}, DecodeBatcher* batcher = nullptr);

  int64_t position() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t context() const { return context_; }
  const std::vector<int64_t>& tokens() const { return tokens_; }
  const torch::Tensor& last_logits() const { return last_logits_; }  // undefined before the first token
  int64_t ttt_updates() const;  // chunk updates applied so far, summed over TTT layers
  bool stopped_at_stop() const { return stopped_at_stop_; }
  const SessionOptions& options() const { return options_; }
  int64_t memory_bytes() const;  // caches + fast weights + pending rows (what eviction accounts for)
  // An upper bound on memory_bytes() once the session holds `tokens` tokens: the server reserves
  // it before a request runs, so its budget also covers sessions that are still growing.
  int64_t memory_bytes_at(int64_t tokens) const;

  // Free-form strings saved with the session (the server keeps a chat's transcript here).
  void set_note(const std::string& key, std::string value) { notes_[key] = std::move(value); }
  std::string note(const std::string& key) const { auto it = notes_.find(key); return it == notes_.end() ? "" : it->second; }

  // A session file (safetensors): every layer's cache, fast weight and pending rows, the tokens,
  // the options and a fingerprint of the model; loading into another model is an error.
  void save(const std::string& path) const;
  static Session load(const model::CausalLM& lm, const std::string& path);

  // Identifies the model's config and weights (a hash of config.json and samples of every tensor).
  static std::string model_fingerprint(const model::CausalLMImpl& lm);

 private:
  struct LayerState {
    torch::Tensor k, v;        // [1, Hkv, capacity, D]; rows [0, length) hold positions start ..
    int64_t length = 0;        // valid rows
    int64_t start = 0;         // position of row 0 (> 0 once a sliding window trimmed the front)
    std::optional<model::MlpStream> stream;  // TTT layers (with ttt on)
  };

  torch::Tensor forward(const std::vector<int64_t>& tokens, bool decoding, bool all_logits);
  // One token through the decode step (model/decode_step.h): prepare (caches, fast weights,
  // RoPE), run, finish (cache lengths, TTT rows, logits).
  bool uses_decode_step() const;
  model::DecodeInput prepare_step(int64_t token);
  void finish_step(int64_t token, bool decoding);
  torch::Tensor forward_step(int64_t token, bool decoding);
  torch::Tensor attend(int64_t layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);
  void reserve_cache(int64_t layer, int64_t rows);  // room for `rows` more keys/values
  void slide_window(int64_t layer);                 // sliding-window layers drop keys no query can see
  void check_tokens(const std::vector<int64_t>& tokens) const;

  model::CausalLMImpl* lm_;  // shared, read only
  SessionOptions options_;
  int64_t context_;
  std::vector<LayerState> layers_;
  std::vector<int64_t> tokens_;
  torch::Tensor last_logits_;
  bool stopped_at_stop_ = false;
  std::map<std::string, std::string> notes_;
  // The decode step's scratch, and each TTT layer's fast weight packed for it (re-packed when the
  // stream's update count moves on).
  std::unique_ptr<model::DecodeStep> step_;
  std::vector<model::DecodeLayerIo> step_io_;
  std::vector<ops::quant::Matrix> fast_down_;
  std::vector<int64_t> fast_down_updates_;
  std::vector<float> step_logits_, step_cos_, step_sin_;
};

// One query against a cache without the blocked kernel: q [1, Hq, 1, D], k/v [1, Hkv, n, D] (any
// row stride), window 0 or >= 1 counted back from the last key. Equal to ops::attention with the
// query offset (tested).
torch::Tensor single_query_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     int64_t window);

}  // namespace ipt::infer
