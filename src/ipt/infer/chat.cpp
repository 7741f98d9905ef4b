#include "ipt/infer/chat.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "ipt/common/error.h"

namespace ipt::infer {

namespace {

using ojson = nlohmann::ordered_json;

// The fallbacks for tokenizers without a chat_template (see chat.h).
const char* kChatML =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const char* kLlama3 =
    "{{ bos_token if bos_token is defined else '<|begin_of_text|>' }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

std::string read_chat_template(const std::string& dir) {
  const std::filesystem::path config = std::filesystem::path(dir) / "tokenizer_config.json";
  if (!std::filesystem::exists(config)) return "";
  std::ifstream in(config);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  IPT_CHECK(!j.is_discarded() && j.is_object(), config.string(), ": not a JSON object");
  if (!j.contains("chat_template")) return "";
  const auto& t = j["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {  // [{"name": "default", "template": "..."}, ...]: transformers uses "default"
    for (const auto& entry : t)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string())
        return entry["template"].get<std::string>();
    IPT_CHECK(false, config.string(), ": chat_template is a list without a \"default\" template");
  }
  IPT_CHECK(t.is_null(), config.string(), ": chat_template must be a string or a list of named templates");
  return "";
}

std::map<std::string, std::string> special_tokens_of(const tok::Tokenizer& tokenizer) {
  std::map<std::string, std::string> out;
  const auto& c = tokenizer.config();
  if (c.bos_token) out["bos_token"] = *c.bos_token;
  if (c.eos_token) out["eos_token"] = *c.eos_token;
  if (c.pad_token) out["pad_token"] = *c.pad_token;
  if (c.unk_token) out["unk_token"] = *c.unk_token;
  return out;
}

bool has_tokens(const tok::Tokenizer& tokenizer, std::initializer_list<const char*> tokens) {
  return std::all_of(tokens.begin(), tokens.end(), [&](const char* t) { return tokenizer.token_to_id(t).has_value(); });
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& source, std::map<std::string, std::string> special_tokens,
                           std::string origin)
    : template_(std::make_shared<const jinja::Template>(source, std::move(origin))),
      special_tokens_(std::move(special_tokens)) {}

ChatTemplate ChatTemplate::detect(const tok::Tokenizer& tokenizer, const std::string& dir) {
  return detect(tokenizer, read_chat_template(dir), dir + "/tokenizer_config.json: chat_template");
}

ChatTemplate ChatTemplate::detect(const tok::Tokenizer& tokenizer, const std::string& chat_template,
                                  const std::string& origin) {
  std::string name = "template";
  const char* source = nullptr;
  if (chat_template.empty()) {
    if (has_tokens(tokenizer, {"<|im_start|>", "<|im_end|>"})) name = "chatml", source = kChatML;
    else if (has_tokens(tokenizer, {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"})) name = "llama3", source = kLlama3;
    IPT_CHECK(source, origin,
              ": no chat_template, and the vocabulary has neither ChatML (<|im_start|>, <|im_end|>) nor LLaMA-3 "
              "(<|start_header_id|>, <|eot_id|>) markers for a fallback");
  }
  ChatTemplate chat(source ? std::string(source) : chat_template, special_tokens_of(tokenizer),
                    source ? "built-in " + name + " template" : origin);
  chat.name_ = name;
  chat.learn_turn_end(tokenizer);
  return chat;
}

// Renders a short exchange ending with an assistant message (and the same continued by a user)
// to see what the template writes after the assistant's text; its special tokens end a turn.
void ChatTemplate::learn_turn_end(const tok::Tokenizer& tokenizer) {
  const std::string mark = "\x01reply\x01";
  ojson exchange = ojson::array({{{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", mark}}});
  ojson continued = exchange;
  continued.push_back({{"role", "user"}, {"content", "Again"}});
  ChatRenderOptions closed;
  closed.add_generation_prompt = false;
  std::vector<int32_t> common;
  try {
    const std::string a = render_json(exchange, closed), b = render_json(continued, closed);
    const size_t at_a = a.find(mark), at_b = b.find(mark);
    if (at_a != std::string::npos && at_b != std::string::npos) {
      // The tokens both renderings share after the reply (a final eos of the first one is not
      // part of the turn's end when the conversation goes on).
      const auto ta = tokenizer.encode(a.substr(at_a + mark.size()));
      const auto tb = tokenizer.encode(b.substr(at_b + mark.size()));
      while (common.size() < ta.size() && common.size() < tb.size() && ta[common.size()] == tb[common.size()])
        common.push_back(ta[common.size()]);
    }
  } catch (const Error&) {
    // A template that refuses this exchange (e.g. one that demands a system message) still
    // renders conversations; the tokenizer's eos alone then ends a turn.
  }
  turn_end_ = tokenizer.decode_bytes(common, false);
  auto add = [&](int64_t id) {
    if (std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) stop_ids_.push_back(id);
  };
  for (int32_t id : common)
    for (const auto& added : tokenizer.added_tokens())
      if (added.id == id && added.special) add(id);
  if (auto eos = tokenizer.eos_id()) add(*eos);
}

std::string ChatTemplate::bos_text() const {
  auto it = special_tokens_.find("bos_token");
  return it == special_tokens_.end() ? "" : it->second;
}

std::string ChatTemplate::render_json(const nlohmann::ordered_json& messages, const ChatRenderOptions& options) const {
  IPT_CHECK(messages.is_array(), "chat: messages must be a JSON array");
  IPT_CHECK(options.variables.is_object(), "chat: template variables must be a JSON object");
  jinja::Dict vars;
  // The order transformers uses: the special tokens, then the call's keywords over them.
  for (const auto& [key, text] : special_tokens_) vars.set(key, jinja::Value(text));
  for (const auto& [key, value] : options.variables.items()) vars.set(key, jinja::Value::from_json(value));
  vars.set("messages", jinja::Value::from_json(messages));
  vars.set("tools", options.tools.is_null() ? jinja::Value::none() : jinja::Value::from_json(options.tools));
  vars.set("documents", jinja::Value::none());
  vars.set("add_generation_prompt", jinja::Value(options.add_generation_prompt));
  return template_->render(vars);
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  ojson list = ojson::array();
  for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  ChatRenderOptions options;
  options.add_generation_prompt = add_generation_prompt;
  return render_json(list, options);
}

}  // namespace ipt::infer
