// ChatTemplate: the model's own chat_template rendered (its text, not a guess from its markers),
// the turn end and stop tokens learnt from it, and the fallback for tokenizers without one.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/infer/chat.h"

using namespace ipt;
using infer::ChatTemplate;

namespace {

// corpus/tokenizer's tokenizer.json with its added tokens replaced by `specials` (ids from 4093),
// and optionally a tokenizer_config.json.
tok::Tokenizer tokenizer_with(const std::vector<std::string>& specials, const std::string& config = "") {
  std::ifstream in(std::string(IPT_SOURCE_DIR) + "/corpus/tokenizer/tokenizer.json");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str());
  j["added_tokens"] = nlohmann::json::array();
  int id = 4093;
  for (const auto& s : specials)
    j["added_tokens"].push_back({{"id", id++}, {"content", s}, {"single_word", false}, {"lstrip", false},
                                 {"rstrip", false}, {"normalized", false}, {"special", true}});
  return tok::Tokenizer::from_json(j.dump(), config);
}

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(IPT_SOURCE_DIR) + "/tests/fixtures/chat_templates/" + name);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

// The issue this fixes: SmolLM2's template adds a default system prompt, which transformers renders.
TEST(Chat, TheModelsTemplateTextIsRenderedWithItsDefaultSystemPrompt) {
  const auto tokenizer = tokenizer_with({"<|endoftext|>", "<|im_start|>", "<|im_end|>"},
                                        R"({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})");
  const ChatTemplate chat = ChatTemplate::detect(tokenizer, fixture("smollm2-135m-instruct.jinja"), "smollm2");
  EXPECT_EQ(chat.name(), "template");
  EXPECT_EQ(chat.render({{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(chat.render({{"system", "Be brief."}, {"user", "Hi"}}, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(chat.turn_end(), "<|im_end|>\n");
  EXPECT_EQ(chat.stop_ids(), std::vector<int64_t>{4095});  // <|im_end|> (also the eos)
}

TEST(Chat, TurnEndAndStopTokensComeFromTheTemplate) {
  // Phi-3.5 writes <|end|> after a turn and its eos only at the very end of a closed conversation.
  const auto phi = tokenizer_with({"<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>", "<|system|>"},
                                  R"({"eos_token": "<|endoftext|>"})");
  const ChatTemplate chat = ChatTemplate::detect(phi, fixture("phi-3.5-mini-instruct.jinja"), "phi");
  EXPECT_EQ(chat.turn_end(), "<|end|>\n");
  EXPECT_EQ(chat.stop_ids(), (std::vector<int64_t>{4096, 4093}));  // <|end|>, then the eos <|endoftext|>
  EXPECT_EQ(chat.render({{"user", "Hi"}}), "<|user|>\nHi<|end|>\n<|assistant|>\n");
}

TEST(Chat, RenderJsonPassesToolsVariablesAndMessageFields) {
  const auto qwen = tok::Tokenizer::load(std::string(IPT_SOURCE_DIR) + "/tests/fixtures/tokenizers/qwen3");
  const ChatTemplate chat = ChatTemplate::detect(qwen, std::string(IPT_SOURCE_DIR) + "/tests/fixtures/tokenizers/qwen3");
  EXPECT_EQ(chat.stop_ids(), std::vector<int64_t>{*qwen.token_to_id("<|im_end|>")});
  EXPECT_EQ(chat.turn_end(), "<|im_end|>\n");
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "Hi"}])");
  infer::ChatRenderOptions o;
  o.variables["enable_thinking"] = false;
  EXPECT_EQ(chat.render_json(messages, o), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  o.tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f", "b": 1, "a": 2}}])");
  const std::string with_tools = chat.render_json(messages, o);
  EXPECT_NE(with_tools.find(R"({"type": "function", "function": {"name": "f", "b": 1, "a": 2}})"), std::string::npos) << with_tools;
}

TEST(Chat, FallbacksOnlyWithoutATemplate) {
  const auto chatml = tokenizer_with({"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
  const ChatTemplate a = ChatTemplate::detect(chatml, "", "test");
  EXPECT_EQ(a.name(), "chatml");
  EXPECT_EQ(a.stop_ids(), std::vector<int64_t>{4095});
  EXPECT_EQ(a.render({{"system", "Be brief."}, {"user", "Hi"}}),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const auto llama = tokenizer_with({"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"});
  const ChatTemplate b = ChatTemplate::detect(llama, "", "test");
  EXPECT_EQ(b.name(), "llama3");
  EXPECT_EQ(b.stop_ids(), std::vector<int64_t>{4097});  // <|eot_id|>
  EXPECT_EQ(b.render({{"user", "  Hi there \n"}}),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(llama.encode(b.render({{"user", "Hi"}})).front(), 4093);  // the markers are single tokens
  // Any template text, even one naming no known marker, is the model's own and is rendered.
  EXPECT_EQ(ChatTemplate::detect(llama, "{{ messages[0].content }}!", "t").render({{"user", "x"}}), "x!");
}

TEST(Chat, ErrorsNameTheTemplate) {
  const auto plain = tokenizer_with({"<|endoftext|>"});
  EXPECT_THROW(ChatTemplate::detect(plain, "", "plain"), Error);  // no template, no markers for a fallback
  try {
    ChatTemplate::detect(plain, "{% for m in messages %}{{ m.content }}", "model/tokenizer_config.json: chat_template");
    ADD_FAILURE() << "a malformed template was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model/tokenizer_config.json: chat_template:1:"), std::string::npos) << e.what();
  }
  const ChatTemplate mistral = ChatTemplate::detect(plain, fixture("mistral-nemo-instruct-2407.jinja"), "mistral");
  try {
    mistral.render({{"user", "a"}, {"user", "b"}});
    ADD_FAILURE() << "raise_exception did not raise";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conversation roles must alternate"), std::string::npos) << e.what();
  }
}
