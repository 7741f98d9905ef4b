// Chat formats: recognised from the chat_template text or, without one, from the vocabulary;
// rendered as the templates render plain system/user/assistant turns.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/infer/chat.h"

using namespace ipt;
using infer::ChatFormat;
using infer::ChatTemplate;

namespace {

// corpus/tokenizer's tokenizer.json with its added tokens replaced by `specials` (ids from 4093).
tok::Tokenizer tokenizer_with(const std::vector<std::string>& specials) {
  std::ifstream in(std::string(IPT_SOURCE_DIR) + "/corpus/tokenizer/tokenizer.json");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str());
  j["added_tokens"] = nlohmann::json::array();
  int id = 4093;
  for (const auto& s : specials)
    j["added_tokens"].push_back({{"id", id++}, {"content", s}, {"single_word", false}, {"lstrip", false},
                                 {"rstrip", false}, {"normalized", false}, {"special", true}});
  return tok::Tokenizer::from_json(j.dump());
}

}  // namespace

TEST(Chat, ChatMLFromTheTemplate) {
  const auto tokenizer = tokenizer_with({"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
  const ChatTemplate chat = ChatTemplate::detect(tokenizer, "{{ '<|im_start|>' + message['role'] }}", "test");
  EXPECT_EQ(chat.format(), ChatFormat::kChatML);
  EXPECT_EQ(chat.stop_ids(), std::vector<int64_t>{4095});
  EXPECT_EQ(chat.render({{"system", "Be brief."}, {"user", "Hi"}}),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(chat.render({{"user", "Hi"}}, false), "<|im_start|>user\nHi<|im_end|>\n");
}

TEST(Chat, Llama3FromTheVocabularyWithoutATemplate) {
  const auto tokenizer = tokenizer_with({"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                         "<|end_header_id|>", "<|eot_id|>"});
  const ChatTemplate chat = ChatTemplate::detect(tokenizer, "", "test");
  EXPECT_EQ(chat.format(), ChatFormat::kLlama3);
  EXPECT_EQ(chat.stop_ids(), (std::vector<int64_t>{4097, 4094}));  // <|eot_id|>, <|end_of_text|>
  EXPECT_EQ(chat.render({{"user", "  Hi there \n"}}),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // The rendered markers are single tokens of the vocabulary.
  const auto ids = tokenizer.encode(chat.render({{"user", "Hi"}}));
  EXPECT_EQ(ids.front(), 4093);
}

TEST(Chat, UnknownFormatsAreErrors) {
  const auto plain = tokenizer_with({"<|endoftext|>"});
  EXPECT_THROW(ChatTemplate::detect(plain, "", "plain"), Error);
  // A template that names markers the vocabulary lacks.
  EXPECT_THROW(ChatTemplate::detect(plain, "<|im_start|>{{ role }}", "plain"), Error);
  const auto qwen = tok::Tokenizer::load(std::string(IPT_SOURCE_DIR) + "/tests/fixtures/tokenizers/qwen3");
  const ChatTemplate chat = ChatTemplate::detect(qwen, std::string(IPT_SOURCE_DIR) + "/tests/fixtures/tokenizers/qwen3");
  EXPECT_EQ(chat.format(), ChatFormat::kChatML);
  EXPECT_EQ(chat.stop_ids(), std::vector<int64_t>{*qwen.token_to_id("<|im_end|>")});
}
