#include "ipt/infer/chat.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "ipt/common/error.h"

namespace ipt::infer {

namespace {

void add_stop(const tok::Tokenizer& tokenizer, const std::string& token, std::vector<int64_t>& ids) {
  if (auto id = tokenizer.token_to_id(token))
    if (std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
}

// Leading and trailing whitespace removed, as the LLaMA-3 template's `| trim` does.
std::string trim(const std::string& s) {
  const char* space = " \t\n\r\f\v";
  const size_t begin = s.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(space) - begin + 1);
}

}  // namespace

ChatTemplate ChatTemplate::detect(const tok::Tokenizer& tokenizer, const std::string& dir) {
  std::string chat_template;
  const std::filesystem::path config = std::filesystem::path(dir) / "tokenizer_config.json";
  if (std::filesystem::exists(config)) {
    std::ifstream in(config);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    IPT_CHECK(!j.is_discarded() && j.is_object(), config.string(), ": not a JSON object");
    if (j.contains("chat_template")) {
      const auto& t = j["chat_template"];
      if (t.is_string()) {
        chat_template = t.get<std::string>();
      } else if (t.is_array()) {  // [{"name": "default", "template": "..."}, ...]
        for (const auto& entry : t)
          if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
              entry["template"].is_string())
            chat_template = entry["template"].get<std::string>();
      }
    }
  }
  return detect(tokenizer, chat_template, dir);
}

ChatTemplate ChatTemplate::detect(const tok::Tokenizer& tokenizer, const std::string& chat_template,
                                  const std::string& origin) {
  bool chatml = chat_template.find("<|im_start|>") != std::string::npos;
  bool llama3 = chat_template.find("<|start_header_id|>") != std::string::npos;
  if (!chatml && !llama3) {  // no (recognisable) template: the vocabulary decides
    chatml = tokenizer.token_to_id("<|im_start|>") && tokenizer.token_to_id("<|im_end|>");
    llama3 = !chatml && tokenizer.token_to_id("<|start_header_id|>") && tokenizer.token_to_id("<|eot_id|>");
  }
  IPT_CHECK(chatml || llama3, origin,
            ": cannot tell the chat format: neither ChatML (<|im_start|>, <|im_end|>) nor LLaMA-3 "
            "(<|start_header_id|>, <|eot_id|>) markers are in its chat_template or vocabulary");
  std::vector<int64_t> stops;
  if (chatml) {
    IPT_CHECK(tokenizer.token_to_id("<|im_start|>") && tokenizer.token_to_id("<|im_end|>"), origin,
              ": the chat template is ChatML but <|im_start|> / <|im_end|> are not tokens of the vocabulary");
    add_stop(tokenizer, "<|im_end|>", stops);
  } else {
    IPT_CHECK(tokenizer.token_to_id("<|start_header_id|>") && tokenizer.token_to_id("<|eot_id|>"), origin,
              ": the chat template is LLaMA-3 but <|start_header_id|> / <|eot_id|> are not tokens of the vocabulary");
    add_stop(tokenizer, "<|eot_id|>", stops);
    add_stop(tokenizer, "<|eom_id|>", stops);
    add_stop(tokenizer, "<|end_of_text|>", stops);
  }
  if (auto eos = tokenizer.eos_id())
    if (std::find(stops.begin(), stops.end(), *eos) == stops.end()) stops.push_back(*eos);
  return ChatTemplate(chatml ? ChatFormat::kChatML : ChatFormat::kLlama3, stops);
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  std::string out;
  if (format_ == ChatFormat::kChatML) {
    for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
  } else {
    out = "<|begin_of_text|>";
    for (const auto& m : messages)
      out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
    if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  return out;
}

}  // namespace ipt::infer
