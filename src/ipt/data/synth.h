#pragma once
// Synthetic long-context tasks, shared by training mixes and evaluation (docs/synthetic.md):
// passkey retrieval, RULER's needle-in-a-haystack family (niah_single_1/2/3, niah_multikey_1/2/3,
// niah_multivalue, niah_multiquery), variable tracking (vt), common and frequent word extraction
// (cwe, fwe), and induction/copy sequences. RULER's task definitions and prompt templates, our code.
//
// Lengths are counted in the model's tokens through a caller-supplied counter, so a sample fits
// `max_length` tokens including room for the answer; the haystack size is found by bisection.
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace ipt::data {

struct SynthSample {
  std::string task;
  std::string input;                 // the prompt, ending where the answer should start
  std::string answer_prefix;         // RULER's answer prefix (already part of `input`)
  std::vector<std::string> answers;  // every string the output should contain
  int64_t length = 0;                // tokens of `input`, by the counter
  std::vector<double> depths;        // where the needles sit, as fractions of the context (0 = start)
};

using TokenCounter = std::function<int64_t(const std::string&)>;

// Haystack text: sentences of natural documents (the "essay" haystack), and a vocabulary of
// words drawn from them for keys and word lists.
class Haystack {
 public:
  explicit Haystack(const std::vector<std::string>& documents);
  const std::vector<std::string>& sentences() const { return sentences_; }
  const std::vector<std::string>& words() const { return words_; }

 private:
  std::vector<std::string> sentences_;
  std::vector<std::string> words_;  // distinct lowercase alphabetic words of 3-12 letters, sorted
};

const std::vector<std::string>& synth_tasks();  // every task name, in RULER's order, then ours

struct SynthOptions {
  std::string task;
  int64_t max_length = 4096;       // tokens, prompt plus answer budget
  int64_t tokens_to_generate = 64; // answer budget kept free inside max_length
  uint64_t seed = 0;
};

// One sample; the same options and seed give the same sample.
SynthSample generate(const SynthOptions& options, const Haystack& haystack, const TokenCounter& count);

// RULER's string_match_all: the fraction of answers found (case-insensitively) in the prediction.
double string_match_all(const std::string& prediction, const std::vector<std::string>& answers);

}  // namespace ipt::data
