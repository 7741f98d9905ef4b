#pragma once
// Pieces of the OpenAI protocol that need no HTTP: which request fields `ipt serve` accepts, and
// token log-probabilities in the two shapes the API returns them (chat's `logprobs.content[]`,
// the legacy completions' `tokens` / `token_logprobs` / `top_logprobs` / `text_offset`).
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ipt::infer {

// The first field of `body` (in its order) that the endpoint does not accept, if any; null values
// count as absent. Fields accepted only at their default (n, echo, ...) are checked by the caller.
std::optional<std::string> unaccepted_field(const nlohmann::json& body, bool chat);
// The accepted fields, for documentation and error messages.
const std::vector<std::string>& accepted_fields(bool chat);

// One generated token's log-probability under the model (log-softmax of the raw logits: before
// repeat penalty, temperature, top-k/top-p/min-p) and the `top` most likely tokens.
struct TokenLogprob {
  int64_t token = 0;
  double logprob = 0;
  std::vector<std::pair<int64_t, double>> top;  // most likely first
  size_t text_offset = 0;                       // characters of completion text before this token
};

// `logits` [vocab] as the sampler saw them; ids at or above `vocab_limit` (> 0) are impossible.
TokenLogprob token_logprob(const torch::Tensor& logits, int64_t token, int64_t top, int64_t vocab_limit);

// A token's bytes (special tokens included), as the tokenizer spells it.
using Spell = std::function<std::string(int64_t)>;

// Chat: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}], "refusal": null}.
nlohmann::json chat_logprobs(const std::vector<TokenLogprob>& tokens, const Spell& spell);
// Legacy completions: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}.
nlohmann::json completion_logprobs(const std::vector<TokenLogprob>& tokens, const Spell& spell);

}  // namespace ipt::infer
