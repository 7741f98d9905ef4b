#include "ipt/infer/openai.h"

#include <algorithm>

#include "ipt/tokenizer/utf8.h"

namespace ipt::infer {

namespace {

// Sampling and output fields both endpoints take; `user` is an end-user id the API records
// and that changes no output, `session_id` is ipt's own (kept sessions).
const char* kCommon[] = {"model", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty",
                         "seed", "stream", "stream_options", "stop", "n", "logprobs", "frequency_penalty",
                         "presence_penalty", "logit_bias", "user", "session_id"};
const char* kChat[] = {"messages", "max_completion_tokens", "top_logprobs", "chat_template_kwargs"};
const char* kCompletions[] = {"prompt", "echo", "best_of"};

std::vector<std::string> fields(bool chat) {
  std::vector<std::string> out(std::begin(kCommon), std::end(kCommon));
  if (chat) out.insert(out.end(), std::begin(kChat), std::end(kChat));
  else out.insert(out.end(), std::begin(kCompletions), std::end(kCompletions));
  return out;
}

nlohmann::json byte_list(const std::string& bytes) {
  nlohmann::json out = nlohmann::json::array();
  for (unsigned char c : bytes) out.push_back(static_cast<int>(c));
  return out;
}

}  // namespace

const std::vector<std::string>& accepted_fields(bool chat) {
  static const std::vector<std::string> chat_fields = fields(true), completion_fields = fields(false);
  return chat ? chat_fields : completion_fields;
}

std::optional<std::string> unaccepted_field(const nlohmann::json& body, bool chat) {
  const auto& accepted = accepted_fields(chat);
  for (const auto& [key, value] : body.items())
    if (!value.is_null() && std::find(accepted.begin(), accepted.end(), key) == accepted.end()) return key;
  return std::nullopt;
}

TokenLogprob token_logprob(const torch::Tensor& logits, int64_t token, int64_t top, int64_t vocab_limit) {
  torch::Tensor x = logits.to(torch::kCPU, torch::kFloat);
  if (vocab_limit > 0 && vocab_limit < x.size(0)) x = x.narrow(0, 0, vocab_limit);
  const torch::Tensor logp = torch::log_softmax(x, 0);
  TokenLogprob out;
  out.token = token;
  out.logprob = logp[token].item<double>();
  if (top > 0) {
    auto [values, ids] = logp.topk(std::min<int64_t>(top, logp.size(0)));
    for (int64_t i = 0; i < values.size(0); ++i) out.top.emplace_back(ids[i].item<int64_t>(), values[i].item<double>());
  }
  return out;
}

nlohmann::json chat_logprobs(const std::vector<TokenLogprob>& tokens, const Spell& spell) {
  nlohmann::json content = nlohmann::json::array();
  for (const auto& t : tokens) {
    const std::string bytes = spell(t.token);
    nlohmann::json top = nlohmann::json::array();
    for (const auto& [id, logprob] : t.top) {
      const std::string b = spell(id);
      top.push_back({{"token", tok::to_valid_utf8(b)}, {"logprob", logprob}, {"bytes", byte_list(b)}});
    }
    content.push_back({{"token", tok::to_valid_utf8(bytes)}, {"logprob", t.logprob}, {"bytes", byte_list(bytes)},
                       {"top_logprobs", top}});
  }
  return {{"content", content}, {"refusal", nullptr}};
}

nlohmann::json completion_logprobs(const std::vector<TokenLogprob>& tokens, const Spell& spell) {
  nlohmann::json text = nlohmann::json::array(), logprobs = nlohmann::json::array(),
                 top = nlohmann::json::array(), offsets = nlohmann::json::array();
  for (const auto& t : tokens) {
    text.push_back(tok::to_valid_utf8(spell(t.token)));
    logprobs.push_back(t.logprob);
    nlohmann::json best = nlohmann::json::object();
    for (const auto& [id, logprob] : t.top) {
      const std::string s = tok::to_valid_utf8(spell(id));
      if (!best.contains(s)) best[s] = logprob;  // two ids that spell alike: the likelier one
    }
    top.push_back(best);
    offsets.push_back(t.text_offset);
  }
  return {{"tokens", text}, {"token_logprobs", logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

}  // namespace ipt::infer
