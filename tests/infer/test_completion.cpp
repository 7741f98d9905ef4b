// infer/completion: what generate, serve, demo and the library API share. Streamed pieces add up
// to the final text, never end inside a UTF-8 character, stop strings cut the text (and are never
// streamed), the BOS rule of prompt_ids.
#include <gtest/gtest.h>

#include <cctype>

#include "ipt/infer/completion.h"
#include "ipt/model/presets.h"
#include "ipt/tokenizer/tokenizer.h"

using namespace ipt;

namespace {

const tok::Tokenizer& tokenizer() {
  static const tok::Tokenizer t = tok::Tokenizer::load(std::string(IPT_SOURCE_DIR) + "/corpus/tokenizer");
  return t;
}

model::CausalLM& model_4096() {
  static model::CausalLM lm = [] {
    model::CausalLM m(model::preset_config("test", "qwen3", 4096));
    m->init_weights(5);
    return m;
  }();
  return lm;
}

infer::CompletionRequest sampled(int64_t max_tokens) {
  infer::CompletionRequest r;
  r.prompt = infer::prompt_ids(tokenizer(), "The state of the Union", true);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 1.5;  // a random model sampled hot: all sorts of bytes
  r.sampling.top_k = 0;
  r.sampling.top_p = 1;
  r.sampling.min_p = 0;
  r.sampling.seed = 11;
  return r;
}

bool ends_inside_character(const std::string& s) { return infer::utf8_safe_end(s, s.size()) != s.size(); }

}  // namespace

TEST(Completion, Utf8SafeEndKeepsWholeCharacters) {
  const std::string euro = "a\xE2\x82\xAC";  // 'a' then U+20AC in three bytes
  EXPECT_EQ(infer::utf8_safe_end(euro, 4), 4u);
  EXPECT_EQ(infer::utf8_safe_end(euro, 3), 1u);
  EXPECT_EQ(infer::utf8_safe_end(euro, 2), 1u);
  EXPECT_EQ(infer::utf8_safe_end(euro, 1), 1u);
  EXPECT_EQ(infer::utf8_safe_end("plain", 3), 3u);
}

TEST(Completion, StreamedPiecesAddUpToTheText) {
  infer::Session streamed(model_4096(), {}), whole(model_4096(), {});
  std::string pieces;
  const infer::Completion c = infer::complete(streamed, tokenizer(), sampled(40), [&](const std::string& text, auto) {
    EXPECT_FALSE(ends_inside_character(text)) << text;
    pieces += text;
    return true;
  });
  const infer::Completion d = infer::complete(whole, tokenizer(), sampled(40));
  EXPECT_EQ(c.completion_tokens, 40);
  EXPECT_EQ(c.finish_reason, "length");
  EXPECT_EQ(pieces, c.text);
  EXPECT_EQ(c.text, d.text);  // streaming changes nothing
}

TEST(Completion, StopStringEndsTheTextAndIsNeverStreamed) {
  infer::Session first(model_4096(), {});
  const infer::Completion free_run = infer::complete(first, tokenizer(), sampled(40));
  ASSERT_GT(free_run.text.size(), 6u);
  // A stop string from the middle of what the model writes anyway: three ASCII letters.
  size_t at = free_run.text.size() / 2;
  auto letter = [&](size_t i) { return std::isalpha(static_cast<unsigned char>(free_run.text[i])) != 0; };
  while (at + 3 <= free_run.text.size() && !(letter(at) && letter(at + 1) && letter(at + 2))) ++at;
  ASSERT_LE(at + 3, free_run.text.size()) << "no three letters in a row after the middle: " << free_run.text;
  const std::string stop = free_run.text.substr(at, 3);
  infer::CompletionRequest r = sampled(40);
  r.stops = {stop};
  infer::Session second(model_4096(), {});
  std::string pieces;
  const infer::Completion c = infer::complete(second, tokenizer(), r, [&](const std::string& text, auto) {
    pieces += text;
    return true;
  });
  EXPECT_EQ(c.finish_reason, "stop");
  EXPECT_EQ(c.text, free_run.text.substr(0, free_run.text.find(stop)));
  EXPECT_EQ(pieces, c.text);
}

TEST(Completion, PromptIdsPutBosFirstOnlyAtTheStart) {
  const std::vector<int32_t> text = tokenizer().encode("Hello");
  const std::vector<int64_t> start = infer::prompt_ids(tokenizer(), "Hello", true);
  const std::vector<int64_t> later = infer::prompt_ids(tokenizer(), "Hello", false);
  EXPECT_EQ(later, std::vector<int64_t>(text.begin(), text.end()));
  const bool wants_bos = tokenizer().config().add_bos_token && tokenizer().bos_id();
  EXPECT_EQ(start.size(), later.size() + (wants_bos ? 1 : 0));
}
