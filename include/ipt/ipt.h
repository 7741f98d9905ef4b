#pragma once
// inplace-ttt as a library: load a model with its tokenizer, open sessions that keep their KV cache
// and In-Place TTT fast weights, run completions (streamed as text), score texts. No libtorch type
// appears here; link the CMake target ipt_api (over the core library, ipt_lib). Errors are
// std::runtime_error whose message names what was wrong. docs/library.md describes it;
// examples/complete.cpp uses it.
//
//   ipt::Model model = ipt::Model::load("models/default");
//   ipt::Session session(model);
//   ipt::GenerateOptions options;
//   options.max_tokens = 32;
//   ipt::Completion c = session.complete("Once upon a time", options,
//                                        [](const std::string& text) { std::cout << text; return true; });
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ipt {

struct ModelOptions {
  std::string device = "cpu";     // cpu | cuda | cuda:N | auto (a GPU when this build and machine have one)
  std::string dtype = "float32";  // float32 | bfloat16 | config (the model's torch_dtype)
  int threads = 0;                // compute threads; 0 = every core
};

struct Message {
  std::string role;  // system | user | assistant | tool
  std::string content;
};

// The negative log-likelihood of a text under the model (its first token is not predicted).
struct Score {
  int64_t tokens = 0;     // predicted tokens
  double total_nll = 0;   // nats
  double mean_nll = 0;
  double perplexity = 0;  // exp(mean_nll)
};

class Session;

// A model directory (config.json, safetensors, tokenizer.json; tokenizer_config.json's chat
// template when there is one). Sessions share it read-only; keep it alive while they exist.
class Model {
 public:
  static Model load(const std::string& dir, const ModelOptions& options = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  std::vector<int32_t> tokenize(const std::string& text) const;  // no BOS added
  std::string detokenize(const std::vector<int32_t>& ids) const;
  // The conversation as the model's own chat template writes it, ready for Session::complete
  // (an error when the model has no chat template).
  std::string chat_prompt(const std::vector<Message>& messages) const;
  // The whole text in one pass (the tokenizer's BOS first when its config asks for one).
  Score score(const std::string& text) const;

  int64_t vocab_size() const;
  int64_t context_length() const;  // max_position_embeddings
  bool has_ttt() const;            // In-Place TTT layers present and on

  struct Impl;  // opaque: the engine's types live behind it

 private:
  friend class Session;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct SessionOptions {
  bool ttt = true;      // false: the fast weights stay W0 in this session
  int64_t context = 0;  // most tokens the session may hold; 0 = the model's context length
};

struct GenerateOptions {
  int64_t max_tokens = 128;
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  double min_p = 0.0;        // 0 = off
  double repeat_penalty = 1.0;
  uint64_t seed = 0;
  std::vector<std::string> stop;  // stop strings: the text ends before the first match
  bool stop_at_eos = true;        // end at the model's end-of-text / end-of-turn tokens
};

struct Completion {
  std::string text;           // the generated text (valid UTF-8)
  std::string finish_reason;  // "stop" (a stop token or string) or "length"
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

// Text as it becomes final (never part of a character or of a stop string); false stops generating.
using TextCallback = std::function<bool(const std::string& text)>;

// One conversation or document: each complete() continues where the last one ended (the prompt
// is appended to everything so far; its fast weights keep what they learned).
class Session {
 public:
  explicit Session(const Model& model, const SessionOptions& options = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  Completion complete(const std::string& prompt, const GenerateOptions& options = {},
                      const TextCallback& on_text = {});

  int64_t position() const;     // tokens held
  int64_t ttt_updates() const;  // fast-weight updates so far, summed over TTT layers
  void save(const std::string& path) const;
  static Session load(const Model& model, const std::string& path);

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ipt
