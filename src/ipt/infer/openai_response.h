#pragma once
// Response bodies of the OpenAI endpoints, without HTTP: the whole answer, the streamed chunks,
// usage, log-probabilities and error bodies, as OpenAI's clients read them.
#include <nlohmann/json.hpp>

#include <ctime>
#include <string>
#include <vector>

#include "ipt/infer/completion.h"
#include "ipt/infer/openai.h"
#include "ipt/infer/request_error.h"

namespace ipt::infer {

// JSON text; invalid UTF-8 (from a model's bytes or echoed input) becomes U+FFFD instead of throwing.
std::string json_text(const nlohmann::json& j);

// {"error": {"message", "type", "param", "code"}}.
nlohmann::json error_body(const RequestError& e);

// What every body of one response shares.
struct ResponseHeader {
  std::string id;  // chatcmpl-N / cmpl-N
  std::time_t created = 0;
  std::string model;
  bool chat = false;
  bool include_usage = false;   // streams: `usage: null` on every chunk, the usage on a last one
  nlohmann::json session;       // {"id", "position", "ttt_updates"} for a session request, else null
};

nlohmann::json usage_body(const Completion& c);
// `logprobs` from logprobs_body (null when not asked for).
nlohmann::json final_body(const ResponseHeader& h, const Completion& c, const nlohmann::json& logprobs);
// One streamed chunk: chat's delta object, or completions' text.
nlohmann::json chunk_body(const ResponseHeader& h, const nlohmann::json& delta_or_text,
                          const nlohmann::json& finish_reason, const nlohmann::json& logprobs = nullptr);
// The stream's last chunk with include_usage: no choices, the request's usage.
nlohmann::json usage_chunk(const ResponseHeader& h, const Completion& c);

// Log-probabilities in the endpoint's shape; null when `top` < 0 (not asked for).
nlohmann::json logprobs_body(bool chat, int64_t top, const std::vector<TokenLogprob>& tokens, const Spell& spell);

}  // namespace ipt::infer
