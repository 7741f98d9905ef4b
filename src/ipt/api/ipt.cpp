// include/ipt/ipt.h over the engine: the public types in, libtorch and the internal ones behind.
#include "ipt/ipt.h"

#include <cmath>
#include <filesystem>
#include <optional>

#include "ipt/common/device.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/infer/chat.h"
#include "ipt/infer/completion.h"
#include "ipt/infer/session.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/score.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt {

struct Model::Impl {
  mutable model::CausalLM lm{nullptr};  // scoring runs forward passes; the weights never change
  std::optional<tok::Tokenizer> tokenizer;
  std::optional<infer::ChatTemplate> chat;
  std::string chat_error;
  std::vector<int64_t> stop_ids;  // end-of-text and end-of-turn tokens
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

Model Model::load(const std::string& dir, const ModelOptions& options) {
  init_runtime({options.threads});
  IPT_CHECK(std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json"), "the model directory ", dir,
            " has no tokenizer.json (ipt init --tokenizer DIR copies one in)");
  auto impl = std::make_unique<Impl>();
  model::LoadOptions load;
  load.device = parse_device(options.device);
  if (options.dtype == "config") {
    load.dtype = model::parse_dtype(model::ModelConfig::load((std::filesystem::path(dir) / "config.json").string()).torch_dtype);
  } else {
    IPT_CHECK(options.dtype == "float32" || options.dtype == "bfloat16", "unknown dtype '", options.dtype,
              "' (expected float32, bfloat16 or config)");
    load.dtype = model::parse_dtype(options.dtype);
  }
  impl->lm = model::load_model(dir, load);
  impl->tokenizer = tok::Tokenizer::load(dir);
  try {
    impl->chat = infer::ChatTemplate::detect(*impl->tokenizer, dir);
  } catch (const Error& e) {
    impl->chat_error = e.what();  // completions still work; chat_prompt says why not
  }
  impl->stop_ids = impl->lm->config().eos_token_ids;
  if (auto eos = impl->tokenizer->eos_id()) impl->stop_ids.push_back(*eos);
  if (impl->chat) impl->stop_ids.insert(impl->stop_ids.end(), impl->chat->stop_ids().begin(), impl->chat->stop_ids().end());
  return Model(std::move(impl));
}

std::vector<int32_t> Model::tokenize(const std::string& text) const { return impl_->tokenizer->encode(text); }

std::string Model::detokenize(const std::vector<int32_t>& ids) const { return impl_->tokenizer->decode(ids, true); }

std::string Model::chat_prompt(const std::vector<Message>& messages) const {
  IPT_CHECK(impl_->chat, "this model has no chat format: ", impl_->chat_error);
  std::vector<infer::ChatMessage> converted;
  for (const Message& m : messages) converted.push_back({m.role, m.content});
  return impl_->chat->render(converted);
}

Score Model::score(const std::string& text) const {
  const std::vector<int64_t> ids = infer::prompt_ids(*impl_->tokenizer, text, true);
  IPT_CHECK(ids.size() >= 2, "score: the text needs at least two tokens");
  const model::ScoreResult r = model::score_tokens(impl_->lm, ids);
  return {r.tokens, r.total_nll, r.mean_nll(), std::exp(r.mean_nll())};
}

int64_t Model::vocab_size() const { return static_cast<int64_t>(impl_->tokenizer->vocab_size()); }
int64_t Model::context_length() const { return impl_->lm->config().max_position_embeddings; }
bool Model::has_ttt() const { return impl_->lm->config().ttt_mode; }

struct Session::Impl {
  const Model::Impl* model;
  infer::Session session;
};

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

namespace {

infer::SessionOptions internal_options(const Model::Impl& model, const SessionOptions& options) {
  infer::SessionOptions o;
  o.ttt = options.ttt;
  o.context = options.context;
  o.sample_vocab = static_cast<int64_t>(model.tokenizer->vocab_size());  // only ids it can decode
  return o;
}

}  // namespace

Session::Session(const Model& model, const SessionOptions& options)
    : impl_(std::make_unique<Impl>(Impl{model.impl_.get(), infer::Session(model.impl_->lm, internal_options(*model.impl_, options))})) {}

Completion Session::complete(const std::string& prompt, const GenerateOptions& options, const TextCallback& on_text) {
  const Model::Impl& model = *impl_->model;
  infer::Session& session = impl_->session;
  const tok::Tokenizer& tokenizer = *model.tokenizer;
  infer::CompletionRequest r;
  // A BOS at the start of a session, unless the text begins with it (a chat template wrote it).
  const std::string bos = tokenizer.bos_id() ? tokenizer.decode_bytes({static_cast<int32_t>(*tokenizer.bos_id())}, false) : "";
  const bool at_start = session.position() == 0 && (bos.empty() || prompt.compare(0, bos.size(), bos) != 0);
  r.prompt = infer::prompt_ids(tokenizer, prompt, at_start);
  IPT_CHECK(!r.prompt.empty() || session.position() > 0, "complete: the prompt is empty");
  IPT_CHECK(options.max_tokens >= 0, "complete: max_tokens must be >= 0, got ", options.max_tokens);
  r.max_tokens = options.max_tokens;
  r.sampling.temperature = options.temperature;
  r.sampling.top_k = options.top_k;
  r.sampling.top_p = options.top_p;
  r.sampling.min_p = options.min_p;
  r.sampling.repeat_penalty = options.repeat_penalty;
  r.sampling.seed = options.seed;
  infer::validate(r.sampling);
  r.stops = options.stop;
  if (options.stop_at_eos) r.stop_ids = model.stop_ids;
  infer::EmitText emit;
  if (on_text) emit = [&](const std::string& text, std::vector<infer::TokenLogprob>) { return on_text(text); };
  const infer::Completion c = infer::complete(session, tokenizer, r, emit);
  return {c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens};
}

int64_t Session::position() const { return impl_->session.position(); }
int64_t Session::ttt_updates() const { return impl_->session.ttt_updates(); }
void Session::save(const std::string& path) const { impl_->session.save(path); }

Session Session::load(const Model& model, const std::string& path) {
  return Session(std::make_unique<Impl>(Impl{model.impl_.get(), infer::Session::load(model.impl_->lm, path)}));
}

}  // namespace ipt
