#include "ipt/infer/openai_response.h"

namespace ipt::infer {

using json = nlohmann::json;

std::string json_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_body(const RequestError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

json usage_body(const Completion& c) {
  return {{"prompt_tokens", c.prompt_tokens},
          {"completion_tokens", c.completion_tokens},
          {"total_tokens", c.prompt_tokens + c.completion_tokens}};
}

json final_body(const ResponseHeader& h, const Completion& c, const json& logprobs) {
  json choice = {{"index", 0}, {"finish_reason", c.finish_reason}};
  if (h.chat) choice["message"] = {{"role", "assistant"}, {"content", c.text}};
  else choice["text"] = c.text;
  choice["logprobs"] = logprobs;
  json body = {{"id", h.id},
               {"object", h.chat ? "chat.completion" : "text_completion"},
               {"created", h.created},
               {"model", h.model},
               {"choices", json::array({choice})},
               {"usage", usage_body(c)}};
  if (!h.session.is_null()) body["session"] = h.session;
  return body;
}

json chunk_body(const ResponseHeader& h, const json& delta_or_text, const json& finish_reason, const json& logprobs) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason}};
  choice[h.chat ? "delta" : "text"] = delta_or_text;
  choice["logprobs"] = logprobs;
  json chunk = {{"id", h.id},
                {"object", h.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", h.created},
                {"model", h.model},
                {"choices", json::array({choice})}};
  if (h.include_usage) chunk["usage"] = nullptr;  // every chunk but the last, as OpenAI sends them
  return chunk;
}

json usage_chunk(const ResponseHeader& h, const Completion& c) {
  json last = chunk_body(h, "", nullptr);
  last["choices"] = json::array();
  last["usage"] = usage_body(c);
  return last;
}

json logprobs_body(bool chat, int64_t top, const std::vector<TokenLogprob>& tokens, const Spell& spell) {
  if (top < 0) return nullptr;
  return chat ? chat_logprobs(tokens, spell) : completion_logprobs(tokens, spell);
}

}  // namespace ipt::infer
