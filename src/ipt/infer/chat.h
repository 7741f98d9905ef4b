#pragma once
// Chat prompts in the two formats the supported model families use, chosen from the tokenizer's
// config (no Jinja: the chat_template text, or failing that the special tokens, tell which):
//   ChatML (Qwen):  <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
//   LLaMA-3:        <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>
//                   ... <|start_header_id|>assistant<|end_header_id|>\n\n
#include <cstdint>
#include <string>
#include <vector>

#include "ipt/tokenizer/tokenizer.h"

namespace ipt::infer {

enum class ChatFormat { kChatML, kLlama3 };

struct ChatMessage {
  std::string role, content;  // role: system | user | assistant | tool (any word is passed through)
};

class ChatTemplate {
 public:
  ChatTemplate(ChatFormat format, std::vector<int64_t> stop_ids) : format_(format), stop_ids_(std::move(stop_ids)) {}

  // From a model or tokenizer directory (tokenizer.json + tokenizer_config.json): the chat_template
  // text names its markers; without one, the tokenizer's special tokens decide. Throws ipt::Error
  // when neither format's markers are in the vocabulary.
  static ChatTemplate detect(const tok::Tokenizer& tokenizer, const std::string& dir);
  // The same from the texts (for tests): chat_template may be "".
  static ChatTemplate detect(const tok::Tokenizer& tokenizer, const std::string& chat_template,
                             const std::string& origin);

  // The conversation as prompt text; with add_generation_prompt, the assistant's header follows.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;

  ChatFormat format() const { return format_; }
  const char* name() const { return format_ == ChatFormat::kChatML ? "chatml" : "llama3"; }
  // Tokens that end an assistant turn (<|im_end|>, <|eot_id|>, the tokenizer's eos ...).
  const std::vector<int64_t>& stop_ids() const { return stop_ids_; }

 private:
  ChatFormat format_;
  std::vector<int64_t> stop_ids_;
};

}  // namespace ipt::infer
