#pragma once
// Request bodies of the OpenAI endpoints (and our session extensions), parsed and validated without
// HTTP: every field honoured or refused by name (RequestError, a 400 naming the field).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "ipt/infer/chat.h"
#include "ipt/infer/completion.h"
#include "ipt/infer/session.h"

namespace ipt::infer {

// A /v1/completions or /v1/chat/completions request.
struct GenerationRequest {
  CompletionRequest completion;  // the prompt is filled in later: it depends on the session
  std::string max_tokens_field;  // the field the client set ("" = the server's default)
  bool stream = false, is_chat = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
  ChatRenderOptions chat_options;
  std::string session_id;
  std::string appended_text;  // chat sessions: the prompt text appended (for the transcript)
};

// The body as a JSON object (else invalid_json).
nlohmann::json parse_body(const std::string& body);

// The fields both endpoints share: sampling, max_tokens, stop, stream, logprobs, session_id.
void parse_common(const nlohmann::json& body, GenerationRequest& g, bool chat, int64_t default_max_tokens);

// /v1/completions' prompt: a string, an array of one string, or token ids below `vocab_size`.
struct CompletionPrompt {
  std::string text;
  std::vector<int64_t> ids;
  bool given_ids = false;
};
CompletionPrompt parse_completion_prompt(const nlohmann::json& body, int64_t vocab_size, bool in_session);

// The messages as the template will see them: each object as sent (tool_calls, name, ... pass
// through, in their order), its content made one string (text parts joined; null = "").
nlohmann::ordered_json parse_messages(const nlohmann::ordered_json& body);
// chat_template_kwargs: more variables for the template (enable_thinking, ...), as vLLM takes them.
ChatRenderOptions parse_chat_options(const nlohmann::json& body);

// POST /v1/sessions: per-session TTT settings over `defaults`, and an optional id.
struct SessionRequest {
  SessionOptions options;
  std::string id;
};
SessionRequest parse_session_request(const nlohmann::json& body, const SessionOptions& defaults);

}  // namespace ipt::infer
