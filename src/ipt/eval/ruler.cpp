#include "ipt/eval/ruler.h"

#include <algorithm>

#include "ipt/common/error.h"
#include "ipt/infer/completion.h"
#include "ipt/infer/session.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::eval {

const std::vector<std::string>& ruler_tasks() {
  static const std::vector<std::string> tasks{"niah_single_1",   "niah_single_2",   "niah_single_3", "niah_multikey_1",
                                              "niah_multikey_2", "niah_multikey_3", "niah_multivalue",
                                              "niah_multiquery", "vt",              "cwe",           "fwe"};
  return tasks;
}

int64_t ruler_tokens_to_generate(const std::string& task) {
  if (task.rfind("niah_", 0) == 0) return 128;
  if (task == "vt") return 30;
  if (task == "cwe") return 120;
  if (task == "fwe") return 50;
  if (task == "passkey" || task == "induction") return 32;  // ours: a number, four words
  throw Error("unknown RULER task '" + task + "'");
}

void RulerOptions::validate() const {
  IPT_CHECK(!tasks.empty(), "ruler: no tasks given");
  for (const std::string& task : tasks) {
    if (std::find(data::synth_tasks().begin(), data::synth_tasks().end(), task) != data::synth_tasks().end()) continue;
    std::string known;
    for (const std::string& t : data::synth_tasks()) known += (known.empty() ? "" : ", ") + t;
    throw Error("ruler: unknown task '" + task + "' (expected one of: " + known + ")");
  }
  IPT_CHECK(!lengths.empty(), "ruler: no lengths given");
  for (int64_t length : lengths) IPT_CHECK(length > 0, "ruler: lengths must be positive (got ", length, ")");
  IPT_CHECK(samples >= 1, "ruler: --samples must be >= 1 (got ", samples, ")");
}

double RulerReport::score(const std::string& task, int64_t length) const {
  for (const RulerCell& c : cells)
    if (c.task == task && c.length == length) return c.score;
  throw Error("ruler report has no cell for " + task + " at " + std::to_string(length));
}

GreedyGenerator session_generator(const model::CausalLM& lm, bool ttt, std::vector<int64_t> stop_ids) {
  return [&lm, ttt, stop_ids](const std::vector<int64_t>& prompt, int64_t max_new) {
    infer::SessionOptions options;
    options.ttt = ttt;
    options.context = static_cast<int64_t>(prompt.size()) + max_new;
    infer::Session session(lm, options);
    session.append(prompt);
    infer::SamplerOptions greedy;
    greedy.temperature = 0;
    infer::Sampler sampler(greedy);
    return session.generate(max_new, sampler, stop_ids);
  };
}

GreedyGenerator full_forward_generator(model::CausalLM lm, std::vector<int64_t> stop_ids) {
  return [lm, stop_ids](const std::vector<int64_t>& prompt, int64_t max_new) mutable {
    torch::NoGradGuard no_grad;
    std::vector<int64_t> sequence = prompt, out;
    while (static_cast<int64_t>(out.size()) < max_new) {
      const int64_t n = static_cast<int64_t>(sequence.size());
      torch::Tensor hidden = lm->hidden_states(torch::tensor(sequence).view({1, n}).to(lm->device()));
      const int64_t next = lm->logits(hidden[0][n - 1]).argmax().item<int64_t>();
      if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
      out.push_back(next);
      sequence.push_back(next);
    }
    return out;
  };
}

RulerSampleResult evaluate_sample(const data::SynthSample& sample, const tok::Tokenizer& tokenizer,
                                  const GreedyGenerator& generate, int64_t max_new) {
  const auto count = [&](const std::string& s) {
    return static_cast<int64_t>(infer::prompt_ids(tokenizer, s, true).size());
  };
  const std::vector<int64_t> prompt = infer::prompt_ids(tokenizer, sample.input, true);
  // Ids past the tokenizer's vocabulary (models pad their embedding tables) decode to nothing.
  std::vector<int32_t> generated;
  for (int64_t id : generate(prompt, max_new))
    if (id >= 0 && id < static_cast<int64_t>(tokenizer.vocab_size())) generated.push_back(static_cast<int32_t>(id));
  RulerSampleResult r{sample.task, 0, 0, static_cast<int64_t>(prompt.size()), tokenizer.decode(generated, true),
                      sample.answers, 0};
  r.score = data::string_match_all(r.prediction, r.answers);
  // How far back the model must look: from the first answer's first occurrence in the prompt
  // (the needle) to the prompt's end, in the model's tokens.
  const size_t needle = sample.answers.empty() ? std::string::npos : sample.input.find(sample.answers.front());
  if (needle != std::string::npos) r.needle_distance = r.prompt_tokens - count(sample.input.substr(0, needle));
  return r;
}

RulerReport evaluate_ruler(const RulerOptions& options, const data::Haystack& haystack, const tok::Tokenizer& tokenizer,
                           const GreedyGenerator& generate,
                           const std::function<void(const RulerSampleResult&)>& on_sample) {
  options.validate();
  // The length budget counts exactly what the model will be fed.
  const data::TokenCounter count = [&](const std::string& s) {
    return static_cast<int64_t>(infer::prompt_ids(tokenizer, s, true).size());
  };
  RulerReport report;
  for (const std::string& task : options.tasks)
    for (int64_t length : options.lengths) {
      const int64_t budget = ruler_tokens_to_generate(task);
      IPT_CHECK(length > budget, "ruler: length ", length, " leaves no room for ", task, "'s ", budget,
                "-token answer");
      RulerCell cell{task, length, 0, 0};
      for (int64_t i = 0; i < options.samples; ++i) {
        const data::SynthSample sample =
            data::generate({task, length, budget, options.seed + static_cast<uint64_t>(i)}, haystack, count);
        RulerSampleResult r = evaluate_sample(sample, tokenizer, generate, budget);
        r.task = task;
        r.length = length;
        r.index = i;
        cell.score += r.score;
        ++cell.samples;
        if (on_sample) on_sample(r);
      }
      cell.score = 100.0 * cell.score / static_cast<double>(cell.samples);
      report.cells.push_back(cell);
    }
  for (int64_t length : options.lengths) {
    double sum = 0;
    for (const std::string& task : options.tasks) sum += report.score(task, length);
    report.average.emplace_back(length, sum / static_cast<double>(options.tasks.size()));
  }
  return report;
}

}  // namespace ipt::eval
