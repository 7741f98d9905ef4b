#pragma once
// Chat prompts rendered by the model's own chat template (tokenizer_config.json's `chat_template`,
// which `ipt convert` copies from a GGUF's tokenizer.chat_template), with the variables
// transformers' apply_chat_template passes: messages, tools, add_generation_prompt, the special
// tokens (bos_token, eos_token, pad_token, unk_token) and any extra keyword (enable_thinking, ...).
// The template runs in infer/jinja, so the text is byte for byte what transformers renders
// (tests/fixtures/chat_templates holds the goldens).
//
// Fallback, only for tokenizers without any chat_template: a built-in ChatML template when the
// vocabulary has <|im_start|>/<|im_end|>, else a built-in LLaMA-3 one when it has
// <|start_header_id|>/<|eot_id|>; otherwise there is no chat format (an error).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ipt/infer/jinja/template.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::infer {

struct ChatMessage {
  std::string role, content;  // role: system | user | assistant | tool (any word is passed through)
};

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  nlohmann::ordered_json tools;                                      // null: no `tools` variable
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();  // e.g. {"enable_thinking": false}
};

class ChatTemplate {
 public:
  // `special_tokens`: {"bos_token": "<s>", ...}, the strings transformers passes to the template.
  ChatTemplate(const std::string& source, std::map<std::string, std::string> special_tokens,
               std::string origin = "chat_template");

  // From a model or tokenizer directory (tokenizer.json + tokenizer_config.json); without a
  // chat_template, the fallback above. Throws ipt::Error for a malformed template or no format.
  static ChatTemplate detect(const tok::Tokenizer& tokenizer, const std::string& dir);
  // The same from the template text ("" = none, the fallback).
  static ChatTemplate detect(const tok::Tokenizer& tokenizer, const std::string& chat_template,
                             const std::string& origin);

  // messages: a JSON array of message objects, passed to the template as they are.
  std::string render_json(const nlohmann::ordered_json& messages, const ChatRenderOptions& options = {}) const;
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;

  // "template" (the model's own) or the fallback's name ("chatml", "llama3").
  const std::string& name() const { return name_; }
  // Tokens that end an assistant turn: the special tokens the template writes right after an
  // assistant message (<|im_end|>, <|eot_id|>, <|end|>, </s> ...) and the tokenizer's eos.
  const std::vector<int64_t>& stop_ids() const { return stop_ids_; }
  // The text the template writes right after an assistant message ("<|im_end|>\n", "<|eot_id|>"):
  // what a kept session lacks when generation stopped at the stop token.
  const std::string& turn_end() const { return turn_end_; }
  // The text of bos_token ("" if none), which a template may write at the start.
  std::string bos_text() const;

 private:
  void learn_turn_end(const tok::Tokenizer& tokenizer);

  std::shared_ptr<const jinja::Template> template_;
  std::map<std::string, std::string> special_tokens_;
  std::string name_ = "template";
  std::vector<int64_t> stop_ids_;
  std::string turn_end_;
};

}  // namespace ipt::infer
