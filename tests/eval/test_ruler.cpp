// RULER evaluation loop: a generator that knows the answers scores 100%, one that reads the needles
// out of the prompt it was fed scores 100% on the retrieval tasks, a silent one scores 0; prompts
// fit their length; bad options are refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/eval/ruler.h"
#include "ipt/infer/completion.h"
#include "ipt/model/presets.h"
#include "ipt/tokenizer/tokenizer.h"

using namespace ipt;

namespace {

const tok::Tokenizer& tokenizer() {
  static tok::Tokenizer t = tok::Tokenizer::load(std::string(IPT_SOURCE_DIR) + "/corpus/tokenizer");
  return t;
}

const data::Haystack& haystack() {
  static data::Haystack h = [] {
    std::vector<std::string> docs;
    for (const auto& entry : std::filesystem::directory_iterator(std::string(IPT_SOURCE_DIR) + "/corpus/sample")) {
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      docs.push_back(text.str());
    }
    return data::Haystack(docs);
  }();
  return h;
}

std::vector<int64_t> encode(const std::string& text) {
  std::vector<int64_t> ids;
  for (int32_t id : tokenizer().encode(text)) ids.push_back(id);
  return ids;
}

std::string decode(const std::vector<int64_t>& ids) {
  return tokenizer().decode(std::vector<int32_t>(ids.begin(), ids.end()), true);
}

// Answers the needle tasks the way a perfect reader would: from the decoded prompt alone, find the
// keys the question asks about and every "special magic ... for KEY is: VALUE." sentence.
std::vector<int64_t> needle_reader(const std::vector<int64_t>& prompt, int64_t max_new) {
  const std::string text = decode(prompt);
  std::smatch question;
  const std::regex ask("What are all the special magic (\\w+) for (.+) mentioned in the provided text\\?");
  if (!std::regex_search(text, question, ask)) return {};
  std::vector<std::string> keys;
  std::string list = std::regex_replace(question[2].str(), std::regex(", and |, "), "|");
  for (std::stringstream s(list); std::getline(s, list, '|');) keys.push_back(list);
  std::string answer;
  for (const std::string& key : keys) {
    const std::regex needle("special magic " + question[1].str() + " for " + key + " is: ([0-9a-f-]+)\\.");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), needle); it != std::sregex_iterator(); ++it)
      answer += " " + (*it)[1].str();
  }
  std::vector<int64_t> ids = encode(answer);
  if (static_cast<int64_t>(ids.size()) > max_new) ids.resize(max_new);
  return ids;
}

}  // namespace

TEST(Ruler, AnOracleScoresFullMarksAndSilenceScoresNothing) {
  eval::RulerOptions o;
  o.lengths = {2600, 3000};  // cwe needs ~1300 tokens before any haystack: 300 numbered words
  o.samples = 2;
  o.seed = 11;
  // The oracle knows each prompt's answers: build the same samples the loop will build.
  std::map<std::vector<int64_t>, std::vector<std::string>> answers;
  const data::TokenCounter count = [](const std::string& s) {
    return static_cast<int64_t>(infer::prompt_ids(tokenizer(), s, true).size());
  };
  for (const auto& task : o.tasks)
    for (int64_t length : o.lengths)
      for (int64_t i = 0; i < o.samples; ++i) {
        const auto s = data::generate({task, length, eval::ruler_tokens_to_generate(task), o.seed + uint64_t(i)},
                                      haystack(), count);
        answers[infer::prompt_ids(tokenizer(), s.input, true)] = s.answers;
      }
  std::vector<eval::RulerSampleResult> seen;
  const auto oracle = [&](const std::vector<int64_t>& prompt, int64_t max_new) {
    std::string text;
    for (const auto& a : answers.at(prompt)) text += " " + a + ",";
    std::vector<int64_t> ids = encode(text);
    ids.insert(ids.begin() + 1, 1 << 20);  // an id past the tokenizer's vocabulary (a padded model) decodes to nothing
    return ids;
  };
  eval::RulerReport report = eval::evaluate_ruler(o, haystack(), tokenizer(), oracle,
                                                  [&](const eval::RulerSampleResult& r) { seen.push_back(r); });
  ASSERT_EQ(report.cells.size(), o.tasks.size() * 2);
  for (const auto& cell : report.cells) EXPECT_EQ(cell.score, 100.0) << cell.task << " " << cell.length;
  ASSERT_EQ(report.average.size(), 2u);
  EXPECT_EQ(report.average[1].first, 3000);
  EXPECT_EQ(report.average[1].second, 100.0);
  // Prompts (bos included) plus the answer budget fit the length, and come close to it.
  ASSERT_EQ(seen.size(), o.tasks.size() * 2 * 2);
  for (const auto& r : seen) {
    EXPECT_LE(r.prompt_tokens + eval::ruler_tokens_to_generate(r.task), r.length) << r.task;
    if (r.task != "cwe") {
      EXPECT_GE(r.prompt_tokens + eval::ruler_tokens_to_generate(r.task), r.length - 100) << r.task;  // a haystack unit is a sentence or a needle
    }
  }

  const auto silent = [](const std::vector<int64_t>&, int64_t) { return std::vector<int64_t>{}; };
  report = eval::evaluate_ruler(o, haystack(), tokenizer(), silent);
  for (const auto& cell : report.cells) EXPECT_EQ(cell.score, 0.0) << cell.task;
  EXPECT_EQ(report.average[0].second, 0.0);
}

TEST(Ruler, AReaderOfTheNeedlesScoresFullMarks) {
  eval::RulerOptions o;
  o.tasks.clear();
  for (const auto& t : eval::ruler_tasks())
    if (t.rfind("niah_", 0) == 0) o.tasks.push_back(t);
  o.lengths = {900};
  o.samples = 2;
  eval::RulerReport report = eval::evaluate_ruler(o, haystack(), tokenizer(), needle_reader);
  for (const auto& cell : report.cells) EXPECT_EQ(cell.score, 100.0) << cell.task;
  // A reader that answers only the first of several queries gets partial credit (string_match_all).
  const auto first_only = [](const std::vector<int64_t>& prompt, int64_t max_new) {
    std::vector<int64_t> ids = needle_reader(prompt, max_new);
    std::string text = decode(ids);
    return encode(text.substr(0, text.find(' ', 1)));
  };
  o.tasks = {"niah_multiquery", "niah_single_2"};
  report = eval::evaluate_ruler(o, haystack(), tokenizer(), first_only);
  EXPECT_EQ(report.score("niah_multiquery", 900), 25.0);
  EXPECT_EQ(report.score("niah_single_2", 900), 100.0);
}

TEST(Ruler, BadOptionsAreRefused) {
  const auto silent = [](const std::vector<int64_t>&, int64_t) { return std::vector<int64_t>{}; };
  eval::RulerOptions o;
  o.tasks = {"niah_single_1", "passkey_typo"};
  try {
    eval::evaluate_ruler(o, haystack(), tokenizer(), silent);
    FAIL() << "unknown task accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("passkey_typo"), std::string::npos);
  }
  o.tasks = {"vt"};
  o.lengths = {0};
  EXPECT_THROW(eval::evaluate_ruler(o, haystack(), tokenizer(), silent), Error);
  o.lengths = {20};  // shorter than vt's 30-token answer budget
  EXPECT_THROW(eval::evaluate_ruler(o, haystack(), tokenizer(), silent), Error);
  o.lengths = {500};
  o.samples = 0;
  EXPECT_THROW(eval::evaluate_ruler(o, haystack(), tokenizer(), silent), Error);
  EXPECT_THROW(eval::ruler_tokens_to_generate("passkey_typo"), Error);
}

// needle_distance: the needle's answer lies within the prompt's last needle_distance (+1 for a token
// the answer's first characters share with the text before it) tokens and not within fewer; the
// tasks past RULER's 11 (passkey, induction) run.
TEST(Ruler, NeedleDistanceCountsTokensFromTheNeedleToTheQuestion) {
  eval::RulerOptions o;
  o.tasks = {"niah_single_1", "passkey", "induction"};
  o.lengths = {400, 900};
  o.samples = 3;
  std::vector<eval::RulerSampleResult> seen;
  std::map<std::string, std::vector<int64_t>> prompts;  // the prompt of every sample, by task/length/index
  const auto remember = [&](const std::vector<int64_t>& prompt, int64_t) {
    prompts[std::to_string(prompts.size())] = prompt;
    return std::vector<int64_t>{};
  };
  eval::evaluate_ruler(o, haystack(), tokenizer(), remember, [&](const eval::RulerSampleResult& r) { seen.push_back(r); });
  ASSERT_EQ(seen.size(), 18u);
  int64_t checked = 0;
  for (size_t i = 0; i < seen.size(); ++i) {
    const auto& r = seen[i];
    const std::vector<int64_t>& prompt = prompts.at(std::to_string(i));
    ASSERT_EQ(static_cast<int64_t>(prompt.size()), r.prompt_tokens);
    ASSERT_GT(r.needle_distance, 0) << r.task;  // every one of these tasks' answers is in its prompt
    ASSERT_LT(r.needle_distance, r.prompt_tokens);
    const auto tail = [&](int64_t n) { return decode(std::vector<int64_t>(prompt.end() - n, prompt.end())); };
    const std::string& answer = r.answers.front();
    EXPECT_NE(tail(r.needle_distance + 1).find(answer), std::string::npos) << r.task << " " << r.index;
    if (r.task == "niah_single_1") {  // its answer occurs once, so fewer tokens miss it
      EXPECT_EQ(tail(r.needle_distance - 2).find(answer), std::string::npos) << r.index;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6);
}

// The session path (KV cache, streaming fast weights, updates while decoding) against one
// whole-sequence forward per token, with TTT doing real updates: chunk 8, non-zero convolution, a
// 30-token prompt and 14 new tokens, so chunks complete both in the prompt and while decoding.
TEST(Ruler, SessionGreedyEqualsFullForwardGreedy) {
  model::ModelConfig c = model::preset_config("test");
  c.ttt_mode = true;
  c.ttt_layers = {1};
  c.ttt_chunk = 8;
  c.ttt_decode_update = true;
  c.max_position_embeddings = 256;
  model::CausalLM lm(c);
  lm->init_weights(9);
  {
    torch::NoGradGuard no_grad;
    lm->named_parameters()["model.layers.1.mlp.ttt_conv.weight"].normal_(0, 0.5);
  }
  model::ModelConfig plain_config = c;
  plain_config.ttt_mode = false;
  model::CausalLM plain(plain_config);
  {
    torch::NoGradGuard no_grad;
    auto dst = plain->named_parameters();
    for (const auto& p : lm->named_parameters())
      if (dst.contains(p.key())) dst[p.key()].copy_(p.value());
  }
  for (uint64_t seed : {1, 2, 3}) {
    torch::manual_seed(seed);
    torch::Tensor t = torch::randint(0, 256, {30}, torch::kInt64);
    const std::vector<int64_t> prompt(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + 30);
    const std::vector<int64_t> with_ttt = eval::session_generator(lm, true, {})(prompt, 14);
    EXPECT_EQ(with_ttt.size(), 14u);
    EXPECT_EQ(with_ttt, eval::full_forward_generator(lm, {})(prompt, 14)) << seed;
    EXPECT_EQ(eval::session_generator(lm, false, {})(prompt, 14), eval::full_forward_generator(plain, {})(prompt, 14))
        << seed;
    // A stop token ends generation before it: stop at the third token of the continuation.
    const std::vector<int64_t> stopped = eval::session_generator(lm, true, {with_ttt[2]})(prompt, 14);
    EXPECT_LE(stopped.size(), 2u);
  }
}
