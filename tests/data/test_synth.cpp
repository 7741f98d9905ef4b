// Synthetic tasks: reproducible by seed, within the length budget and close to it, needles where
// the sample says, answers present in the context, RULER's scoring.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/data/synth.h"

using namespace ipt;
using namespace ipt::data;

namespace {

const Haystack& sample_haystack() {
  static Haystack h = [] {
    std::vector<std::string> docs;
    for (const auto& entry : std::filesystem::directory_iterator(std::string(IPT_SOURCE_DIR) + "/corpus/sample")) {
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      docs.push_back(text.str());
    }
    return Haystack(docs);
  }();
  return h;
}

// Whitespace-separated words stand in for a tokenizer here.
int64_t count_words(const std::string& s) {
  std::istringstream in(s);
  int64_t n = 0;
  for (std::string w; in >> w;) ++n;
  return n;
}

}  // namespace

TEST(Synth, EveryTaskFitsTheBudgetAndIsReproducible) {
  for (const std::string& task : synth_tasks()) {
    SynthOptions o{task, 1500, 32, 7};
    SynthSample a = generate(o, sample_haystack(), count_words);
    SynthSample b = generate(o, sample_haystack(), count_words);
    EXPECT_EQ(a.input, b.input) << task;
    EXPECT_EQ(a.answers, b.answers) << task;
    EXPECT_LE(a.length + 32, 1500) << task;
    EXPECT_GE(a.length, task == "cwe" ? 600 : 1250) << task;  // close to the budget
    EXPECT_FALSE(a.answers.empty()) << task;
    o.seed = 8;
    EXPECT_NE(generate(o, sample_haystack(), count_words).input, a.input) << task;
  }
}

TEST(Synth, NeedlesAreInTheContextAndAnswersMatchTheirKeys) {
  SynthSample s = generate({"niah_single_2", 2000, 32, 1}, sample_haystack(), count_words);
  ASSERT_EQ(s.answers.size(), 1u);
  ASSERT_EQ(s.depths.size(), 1u);
  // The needle names the queried key with the answer value.
  const std::string prefix = " The special magic numbers for ";
  const size_t q = s.input.rfind(prefix);
  ASSERT_NE(q, std::string::npos);
  const std::string key = s.input.substr(q + prefix.size(), s.input.find(' ', q + prefix.size()) - q - prefix.size());
  const std::string needle = "One of the special magic numbers for " + key + " is: " + s.answers[0] + ".";
  const size_t at = s.input.find(needle);
  ASSERT_NE(at, std::string::npos) << needle;
  // ... at the depth it reports (as a fraction of the context, within a sentence or two).
  const size_t begin = s.input.find('\n') + 1, end = s.input.rfind("\nWhat are all");
  const double depth = double(at - begin) / double(end - begin);
  EXPECT_NEAR(depth, s.depths[0], 0.05);

  SynthSample mv = generate({"niah_multivalue", 2000, 32, 2}, sample_haystack(), count_words);
  EXPECT_EQ(mv.answers.size(), 4u);
  SynthSample mq = generate({"niah_multiquery", 2000, 32, 3}, sample_haystack(), count_words);
  EXPECT_EQ(mq.answers.size(), 4u);
  EXPECT_NE(mq.input.find(", and "), std::string::npos);
  SynthSample mk = generate({"niah_multikey_3", 2000, 32, 4}, sample_haystack(), count_words);
  EXPECT_EQ(mk.answers[0].size(), 36u);  // a uuid
  for (const SynthSample* x : {&mv, &mq, &mk})
    for (const auto& a : x->answers) EXPECT_NE(x->input.find(a), std::string::npos);
}

TEST(Synth, VariableTrackingChainAndAggregationAnswers) {
  SynthSample vt = generate({"vt", 1000, 32, 5}, sample_haystack(), count_words);
  ASSERT_EQ(vt.answers.size(), 5u);
  EXPECT_NE(vt.input.find("VAR " + vt.answers[1] + " = VAR " + vt.answers[0] + "."), std::string::npos);
  EXPECT_LT(vt.input.find("VAR " + vt.answers[0] + " ="), vt.input.find("VAR " + vt.answers[4] + " ="));

  SynthSample cwe = generate({"cwe", 1200, 32, 6}, sample_haystack(), count_words);
  ASSERT_EQ(cwe.answers.size(), 10u);
  const size_t list_begin = cwe.input.find('\n') + 1;
  std::istringstream list(cwe.input.substr(list_begin, cwe.input.find("\nQuestion") - list_begin));
  std::map<std::string, int> counts;
  for (std::string item; list >> item;) counts[item]++;
  for (const auto& w : cwe.answers) EXPECT_EQ(counts[w], 30) << w;
  SynthSample fwe = generate({"fwe", 1200, 32, 7}, sample_haystack(), count_words);
  EXPECT_EQ(fwe.answers.size(), 3u);
}

TEST(Synth, StringMatchAll) {
  EXPECT_DOUBLE_EQ(string_match_all("The numbers are 123 and 456.", {"123", "456"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_all("only 123", {"123", "456"}), 0.5);
  EXPECT_DOUBLE_EQ(string_match_all("ABC-def", {"abc-DEF"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_all("nothing", {}), 0.0);
}

TEST(Synth, HaystackWordsAreOrdinaryWords) {
  // A code file's 40-letter identifier must not become a niah key: the prompt would outgrow any row.
  std::string doc;
  for (int i = 0; i < 120; ++i)  // 120 distinct words: "wab", "wac", ...
    doc += std::string{'w', static_cast<char>('a' + i / 26), static_cast<char>('a' + i % 26)} + " ";
  doc += "abcdefghijklmnopqrstuvwxyzabcdefghijklmn twelveletter thirteenlette.";
  const Haystack h({doc});
  for (const std::string& w : h.words()) EXPECT_TRUE(w.size() >= 3 && w.size() <= 12) << w;
  EXPECT_TRUE(std::count(h.words().begin(), h.words().end(), "twelveletter"));
  EXPECT_FALSE(std::count(h.words().begin(), h.words().end(), "thirteenlette"));
}

TEST(Synth, BadInput) {
  EXPECT_THROW(generate({"niah_single_9", 1000, 32, 0}, sample_haystack(), count_words), Error);
  EXPECT_THROW(generate({"passkey", 30, 32, 0}, sample_haystack(), count_words), Error);
  EXPECT_THROW(generate({"passkey", 60, 32, 0}, sample_haystack(), count_words), Error);  // prompt alone too long
  EXPECT_THROW(Haystack({"too short"}), Error);
}
