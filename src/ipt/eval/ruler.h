#pragma once
// RULER-style evaluation (docs/evaluation.md): for each task and length, `samples` prompts from the
// synthetic generators (src/ipt/data/synth.h; RULER's templates), greedy continuations, and RULER's
// string_match_all score (the fraction of expected answers that appear in the continuation), as a
// percentage averaged over samples; the average row is the mean over tasks at each length.
//
// Lengths count the model's tokens: a prompt (bos included when the tokenizer adds one) plus the
// task's answer budget fits the length. The model is reached through a greedy generator, so the
// same loop scores a model through inference sessions (TTT as in ipt generate) or a test oracle.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ipt/data/synth.h"
#include "ipt/model/decoder.h"

namespace ipt::tok {
class Tokenizer;
}

namespace ipt::eval {

// Greedy continuation of `prompt`: at most max_new tokens, stop tokens left out.
using GreedyGenerator = std::function<std::vector<int64_t>(const std::vector<int64_t>& prompt, int64_t max_new)>;

// Greedy decoding through an inference session (src/ipt/infer/session.h), exactly as ipt generate
// runs the model: TTT updates while prefilling, and while decoding when the model's
// ttt_decode_update says so; `ttt` false keeps the fast weights at W0. Stops at a token in stop_ids.
// Holds a reference to `lm`, which must outlive the generator.
GreedyGenerator session_generator(const model::CausalLM& lm, bool ttt, std::vector<int64_t> stop_ids);
// The simple reference it is tested against: one whole-sequence forward per new token.
GreedyGenerator full_forward_generator(model::CausalLM lm, std::vector<int64_t> stop_ids);

const std::vector<std::string>& ruler_tasks();  // RULER's 11 synthetic tasks, in its order (the default)
// Accepted tasks: data::synth_tasks(), i.e. RULER's 11 plus passkey and induction.
// RULER's answer budget per task (niah 128, vt 30, cwe 120, fwe 50; ours: passkey and induction 32).
int64_t ruler_tokens_to_generate(const std::string& task);

struct RulerOptions {
  std::vector<std::string> tasks = ruler_tasks();
  std::vector<int64_t> lengths{4096};
  int64_t samples = 10;  // per task and length; sample i uses seed + i (as ipt data synth does)
  uint64_t seed = 0;
  void validate() const;  // unknown tasks, lengths <= 0, samples < 1: ipt::Error naming them
};

struct RulerSampleResult {
  std::string task;
  int64_t length = 0;          // the length asked for
  int64_t index = 0;           // sample number
  int64_t prompt_tokens = 0;   // tokens fed to the model
  std::string prediction;      // the decoded continuation
  std::vector<std::string> answers;
  double score = 0;            // string_match_all, 0..1
  int64_t needle_distance = -1;  // tokens from the needle (the first answer's first occurrence) to the prompt's end; -1 = not in the prompt
};

struct RulerCell {
  std::string task;
  int64_t length = 0;
  double score = 0;  // percent, mean over samples
  int64_t samples = 0;
};

struct RulerReport {
  std::vector<RulerCell> cells;                     // task-major, lengths in order
  std::vector<std::pair<int64_t, double>> average;  // (length, mean over tasks in percent)
  double score(const std::string& task, int64_t length) const;
};

// One sample through the model: its prompt as the model sees it (infer::prompt_ids: bos first when
// the tokenizer's config adds it), the greedy answer of at most max_new tokens decoded, its
// string_match_all score and the needle's distance. Sets task, prompt_tokens, prediction, answers,
// score and needle_distance; length and index are the caller's.
RulerSampleResult evaluate_sample(const data::SynthSample& sample, const tok::Tokenizer& tokenizer,
                                  const GreedyGenerator& generate, int64_t max_new);

RulerReport evaluate_ruler(const RulerOptions& options, const data::Haystack& haystack, const tok::Tokenizer& tokenizer,
                           const GreedyGenerator& generate,
                           const std::function<void(const RulerSampleResult&)>& on_sample = {});

}  // namespace ipt::eval
