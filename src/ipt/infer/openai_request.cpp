#include "ipt/infer/openai_request.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>

#include "ipt/common/error.h"
#include "ipt/infer/openai.h"
#include "ipt/infer/request_error.h"

namespace ipt::infer {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Typed optional fields: absent or null = not given; any other type is a 400 naming the field.
const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) reject(std::string("'") + key + "' must be a number", key, "invalid_type");
  const double x = v->get<double>();
  if (!std::isfinite(x)) reject(std::string("'") + key + "' must be finite", key, "invalid_value");
  return x;
}

std::optional<int64_t> integer_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) reject(std::string("'") + key + "' must be an integer", key, "invalid_type");
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    reject(std::string("'") + key + "' is too large", key, "invalid_value");
  return v->get<int64_t>();
}

std::optional<bool> bool_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) reject(std::string("'") + key + "' must be a boolean", key, "invalid_type");
  return v->get<bool>();
}

std::optional<std::string> string_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) reject(std::string("'") + key + "' must be a string", key, "invalid_type");
  return v->get<std::string>();
}

// Chat: logprobs (bool) + top_logprobs (0..20); completions: logprobs (int 0..5), as OpenAI has them.
void parse_logprobs(const json& body, GenerationRequest& g, bool chat) {
  if (chat) {
    const bool wanted = bool_field(body, "logprobs").value_or(false);
    const auto top = integer_field(body, "top_logprobs");
    if (top && (*top < 0 || *top > 20)) reject("'top_logprobs' must be in [0, 20]", "top_logprobs", "invalid_value");
    if (top && !wanted) reject("'top_logprobs' needs 'logprobs': true", "top_logprobs", "invalid_value");
    if (wanted) g.completion.logprobs = top.value_or(0);
    return;
  }
  if (const json* v = field(body, "logprobs")) {
    if (!v->is_number_integer()) reject("'logprobs' must be an integer (0 to 5) on /v1/completions", "logprobs", "invalid_type");
    const int64_t n = v->get<int64_t>();
    if (n < 0 || n > 5) reject("'logprobs' must be in [0, 5]", "logprobs", "invalid_value");
    g.completion.logprobs = n;
  }
  if (bool_field(body, "echo").value_or(false)) reject("'echo' is not supported", "echo", "unsupported");
  if (integer_field(body, "best_of").value_or(1) != 1) reject("only best_of = 1 is supported", "best_of", "unsupported");
}

}  // namespace

json parse_body(const std::string& text) {
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded()) reject("the request body is not valid JSON", "", "invalid_json");
  if (!body.is_object()) reject("the request body must be a JSON object", "", "invalid_json");
  return body;
}

void parse_common(const json& body, GenerationRequest& g, bool chat, int64_t default_max_tokens) {
  if (auto unknown = unaccepted_field(body, chat))
    reject("'" + *unknown + "' is not supported by this server", *unknown, "unsupported_field");
  if (auto model = field(body, "model"); model && !model->is_string()) reject("'model' must be a string", "model", "invalid_type");
  auto max_tokens = integer_field(body, "max_tokens");
  if (max_tokens) g.max_tokens_field = "max_tokens";
  if (chat && !max_tokens) {
    max_tokens = integer_field(body, "max_completion_tokens");
    if (max_tokens) g.max_tokens_field = "max_completion_tokens";
  }
  CompletionRequest& c = g.completion;
  c.max_tokens = max_tokens.value_or(default_max_tokens);
  if (c.max_tokens < 0) reject("'" + g.max_tokens_field + "' must be >= 0", g.max_tokens_field, "invalid_value");
  SamplerOptions& s = c.sampling;
  s.temperature = number_field(body, "temperature").value_or(1.0);  // OpenAI's default
  s.top_p = number_field(body, "top_p").value_or(1.0);
  s.top_k = integer_field(body, "top_k").value_or(0);
  s.min_p = number_field(body, "min_p").value_or(0.0);
  s.repeat_penalty = number_field(body, "repeat_penalty").value_or(1.0);
  if (auto seed = integer_field(body, "seed")) {
    if (*seed < 0) reject("'seed' must be >= 0", "seed", "invalid_value");
    s.seed = static_cast<uint64_t>(*seed);
  } else {
    s.seed = std::random_device{}();
  }
  if (s.temperature < 0) reject("'temperature' must be >= 0", "temperature", "invalid_value");
  if (s.top_p <= 0 || s.top_p > 1) reject("'top_p' must be in (0, 1]", "top_p", "invalid_value");
  if (s.top_k < 0) reject("'top_k' must be >= 0", "top_k", "invalid_value");
  if (s.min_p < 0 || s.min_p > 1) reject("'min_p' must be in [0, 1]", "min_p", "invalid_value");
  if (s.repeat_penalty <= 0) reject("'repeat_penalty' must be > 0", "repeat_penalty", "invalid_value");
  for (const char* unsupported : {"frequency_penalty", "presence_penalty"})
    if (number_field(body, unsupported).value_or(0.0) != 0.0)
      reject(std::string("'") + unsupported + "' is not supported (use repeat_penalty)", unsupported, "unsupported");
  if (integer_field(body, "n").value_or(1) != 1) reject("only n = 1 is supported", "n", "unsupported");
  try {
    validate(s);
  } catch (const Error& e) {
    reject(e.what(), "", "invalid_value");
  }
  g.stream = bool_field(body, "stream").value_or(false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) reject("'stream_options' must be an object", "stream_options", "invalid_type");
    if (!g.stream) reject("'stream_options' is only allowed with stream: true", "stream_options", "invalid_value");
    for (const auto& [key, value] : so->items())
      if (key != "include_usage" && !value.is_null())
        reject("'stream_options." + key + "' is not supported by this server", "stream_options", "unsupported_field");
    g.include_usage = bool_field(*so, "include_usage").value_or(false);
  }
  parse_logprobs(body, g, chat);
  if (auto bias = field(body, "logit_bias"); bias && !(bias->is_object() && bias->empty()))
    reject("'logit_bias' is not supported", "logit_bias", "unsupported");
  if (const json* stop = field(body, "stop")) {
    std::vector<std::string>& stops = c.stops;
    if (stop->is_string()) {
      stops.push_back(stop->get<std::string>());
    } else if (stop->is_array() && stop->size() <= 4) {
      for (const auto& item : *stop) {
        if (!item.is_string()) reject("'stop' must be a string or an array of up to 4 strings", "stop", "invalid_type");
        stops.push_back(item.get<std::string>());
      }
    } else {
      reject("'stop' must be a string or an array of up to 4 strings", "stop", "invalid_type");
    }
    for (const auto& s : stops)
      if (s.empty()) reject("'stop' strings must not be empty", "stop", "invalid_value");
  }
  g.session_id = string_field(body, "session_id").value_or("");
}

CompletionPrompt parse_completion_prompt(const json& body, int64_t vocab_size, bool in_session) {
  CompletionPrompt out;
  const json* prompt = field(body, "prompt");
  if (!prompt) {
    if (!in_session) reject("'prompt' is required", "prompt", "missing_field");
  } else if (prompt->is_string()) {
    out.text = prompt->get<std::string>();
  } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    out.text = (*prompt)[0].get<std::string>();
  } else if (prompt->is_array() &&
             std::all_of(prompt->begin(), prompt->end(), [](const json& v) { return v.is_number_integer(); })) {
    out.given_ids = true;
    for (const auto& v : *prompt) {
      const int64_t id = v.get<int64_t>();
      if (id < 0 || id >= vocab_size)
        reject("prompt token " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab_size) +
                   ")", "prompt", "invalid_value");
      out.ids.push_back(id);
    }
  } else {
    reject("'prompt' must be a string, an array of one string or an array of token ids (batches are not supported)",
           "prompt", "invalid_type");
  }
  return out;
}

ojson parse_messages(const ojson& body) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) reject("'messages' is required", "messages", "missing_field");
  if (!it->is_array() || it->empty()) reject("'messages' must be a non-empty array", "messages", "invalid_type");
  ojson out = ojson::array();
  for (const auto& m : *it) {
    if (!m.is_object()) reject("each message must be an object", "messages", "invalid_type");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string() || role->get<std::string>().empty())
      reject("each message needs a 'role' string", "messages", "invalid_type");
    static const char* roles[] = {"system", "user", "assistant", "tool", "developer"};
    if (std::none_of(std::begin(roles), std::end(roles), [&](const char* r) { return *role == r; }))
      reject("unknown message role '" + role->get<std::string>() + "'", "messages", "invalid_value");
    std::string content;
    auto c = m.find("content");
    if (c != m.end() && !c->is_null()) {
      if (c->is_string()) {
        content = c->get<std::string>();
      } else if (c->is_array()) {
        for (const auto& part : *c) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
            reject("message content parts must be {\"type\": \"text\", \"text\": string}", "messages", "invalid_type");
          content += part["text"].get<std::string>();
        }
      } else {
        reject("message 'content' must be a string or an array of text parts", "messages", "invalid_type");
      }
    }
    ojson message = m;
    message["content"] = content;
    out.push_back(std::move(message));
  }
  return out;
}

ChatRenderOptions parse_chat_options(const json& body) {
  ChatRenderOptions o;
  if (const json* kwargs = field(body, "chat_template_kwargs")) {
    if (!kwargs->is_object()) reject("'chat_template_kwargs' must be an object", "chat_template_kwargs", "invalid_type");
    for (const auto& [key, value] : kwargs->items()) {
      if (key == "messages" || key == "tools" || key == "documents" || key == "add_generation_prompt")
        reject("'chat_template_kwargs' must not set '" + key + "'", "chat_template_kwargs", "invalid_value");
      o.variables[key] = ojson::parse(value.dump());
    }
  }
  return o;
}

SessionRequest parse_session_request(const json& body, const SessionOptions& defaults) {
  SessionRequest r{defaults, ""};
  if (auto ttt = bool_field(body, "ttt")) r.options.ttt = *ttt;
  if (auto update = bool_field(body, "ttt_decode_update")) r.options.decode_update = *update;
  if (auto clip = number_field(body, "ttt_clip")) {
    if (*clip < 0) reject("'ttt_clip' must be >= 0", "ttt_clip", "invalid_value");
    r.options.ttt_clip = *clip;
  }
  r.id = string_field(body, "id").value_or("");
  return r;
}

}  // namespace ipt::infer
