// ipt demo: the main job of `make run`. First a fact planted far beyond the attention window of a
// held-out document, and the model's answer to a question about it with In-Place TTT and with the
// same weights frozen (no TTT). Then the bundled model reads a long document it never saw in
// training both ways; the per-chunk loss shows what the fast weights learn while reading. Then it
// continues the document.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "command.h"
#include "inputs.h"
#include "model_flags.h"
#include "ipt/common/error.h"
#include "ipt/data/synth.h"
#include "ipt/eval/ruler.h"
#include "ipt/common/stopwatch.h"
#include "ipt/infer/completion.h"
#include "ipt/infer/sampler.h"
#include "ipt/infer/session.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/score.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::cli {
namespace {

struct DemoOptions {
  std::string model, document = IPT_DEMO_DOCUMENT;
  std::string retrieval;      // JSON lines of `ipt data synth`; default: the model's demo-retrieval.jsonl
  int64_t retrieval_sample = 0;
  bool retrieval_all = false;  // score every sample of the file instead of showing one
  int64_t max_tokens = 8192;  // of the document, read in one pass
  int64_t buckets = 8;        // rows of the per-chunk table
  int64_t prompt_tokens = 768, generate_tokens = 80;
  uint64_t seed = 0;
  DtypeFlag dtype;
  DeviceFlag device;
};

std::string bar(double value, double scale) {
  const int n = std::max(0, std::min(40, static_cast<int>(std::lround(value * scale))));
  return std::string(n, '#');
}

// The samples of an `ipt data synth` file (task, input, answers are what the demo uses).
std::vector<data::SynthSample> read_retrieval_samples(const std::string& path) {
  std::ifstream in(path);
  IPT_CHECK(in, "demo: cannot read ", path);
  std::vector<data::SynthSample> samples;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      data::SynthSample sample;
      sample.task = j.at("task").get<std::string>();
      sample.input = j.at("input").get<std::string>();
      sample.answers = j.at("answers").get<std::vector<std::string>>();
      samples.push_back(std::move(sample));
    } catch (const nlohmann::json::exception& e) {
      throw Error("demo: " + path + " line " + std::to_string(number) + " is not an `ipt data synth` sample: " + e.what());
    }
    IPT_CHECK(!samples.back().answers.empty(), "demo: ", path, " line ", number, " has no answers");
  }
  IPT_CHECK(!samples.empty(), "demo: ", path, " has no samples");
  return samples;
}

std::string one_line(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\t') c = ' ';
  return text;
}

// A fact far beyond the window: the document, where the fact sits, the question, and the greedy
// answers with and without TTT. With --retrieval-all: how often each is right over the whole file.
void show_retrieval(const DemoOptions& o, const std::string& path, const tok::Tokenizer& tokenizer,
                    const model::CausalLM& ttt_model, const model::CausalLM& base_model) {
  const std::vector<data::SynthSample> samples = read_retrieval_samples(path);
  const model::ModelConfig& config = ttt_model->config();
  const int64_t window = *std::max_element(config.layer_window.begin(), config.layer_window.end());
  const std::vector<int64_t>& stop = config.eos_token_ids;
  const eval::GreedyGenerator with_ttt = eval::session_generator(ttt_model, true, stop);
  const eval::GreedyGenerator without_ttt = eval::session_generator(base_model, false, stop);
  constexpr int64_t kAnswerTokens = 32;  // a pass key or a few words, for every task of the file
  const auto run = [&](const data::SynthSample& s, const eval::GreedyGenerator& generate) {
    return eval::evaluate_sample(s, tokenizer, generate, kAnswerTokens);
  };
  if (o.retrieval_all) {
    double right_with = 0, right_without = 0;
    for (const data::SynthSample& s : samples) {
      right_with += run(s, with_ttt).score;
      right_without += run(s, without_ttt).score;
    }
    const double n = static_cast<double>(samples.size());
    std::cout << std::fixed << std::setprecision(1) << "retrieval over " << samples.size() << " documents of " << path
              << ": right with TTT " << 100 * right_with / n << "%, without TTT " << 100 * right_without / n << "%\n\n";
    return;
  }
  IPT_CHECK(o.retrieval_sample >= 0 && o.retrieval_sample < static_cast<int64_t>(samples.size()), "demo: --sample ",
            o.retrieval_sample, " is not in ", path, " (", samples.size(), " samples)");
  const data::SynthSample& s = samples[o.retrieval_sample];
  const eval::RulerSampleResult with = run(s, with_ttt), without = run(s, without_ttt);
  const size_t fact = s.input.find(s.answers.front());
  std::cout << "A fact planted beyond the " << window << "-token attention window (sample " << o.retrieval_sample << " of "
            << path << ", task " << s.task << ", held-out text):\n"
            << "  document  " << with.prompt_tokens << " tokens\n";
  if (fact != std::string::npos) {
    const int64_t distance = with.needle_distance;
    const size_t from = s.input.rfind(". ", fact) == std::string::npos ? 0 : s.input.rfind(". ", fact) + 2;
    const size_t stop = s.input.find('.', fact + s.answers.front().size());
    const size_t to = stop == std::string::npos ? s.input.size() : stop + 1;
    std::cout << "  the fact  \"" << one_line(s.input.substr(from, to - from)) << "\"\n"
              << "            " << distance << " tokens before the question (" << std::fixed << std::setprecision(1)
              << static_cast<double>(distance) / static_cast<double>(window) << "x the window)\n";
  }
  const size_t question = s.input.rfind('\n', s.input.size() - 2);
  std::cout << "  question  \"" << one_line(s.input.substr(question == std::string::npos ? 0 : question + 1)) << "\"\n"
            << "  answer    \"" << s.answers.front() << "\"\n";
  for (const bool ttt : {true, false}) {
    const eval::RulerSampleResult& r = ttt ? with : without;
    std::cout << (ttt ? "  with TTT    " : "  without TTT ") << "\"" << one_line(r.prediction) << "\"  "
              << (r.score == 1.0 ? "right" : "wrong") << "\n";
  }
  std::cout << "\n";
}

int run(const DemoOptions& o) {
  Stopwatch total;
  IPT_CHECK(std::filesystem::exists(std::filesystem::path(o.model) / "tokenizer.json"), "demo: ", o.model,
            " has no tokenizer.json (the demo reads text)");
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(o.model);
  std::vector<int64_t> ids = encode_document(tokenizer, read_input(o.document));
  IPT_CHECK(ids.size() >= 2 * static_cast<size_t>(o.buckets), "demo: ", o.document, " is too short (", ids.size(), " tokens)");
  if (static_cast<int64_t>(ids.size()) > o.max_tokens) ids.resize(o.max_tokens);

  model::LoadOptions load;
  load.device = o.device.resolve("demo");
  load.dtype = o.dtype.resolve(o.model, "demo", load.device);
  model::CausalLM ttt_model = model::load_model(o.model, load);
  model::LoadOptions plain = load;
  plain.without_ttt = true;
  model::CausalLM base_model = model::load_model(o.model, plain);
  const model::ModelConfig& config = ttt_model->config();
  IPT_CHECK(config.ttt_mode, "demo: ", o.model, " has no TTT layers; the demo compares TTT with no TTT");
  std::cout << "model    " << o.model << " (" << config.num_hidden_layers << " layers, TTT in " << config.ttt_layers.size()
            << " of them, chunk " << config.ttt_chunk << ", lr " << config.ttt_lr << ")\n"
            << "\n";
  const std::string retrieval = o.retrieval.empty() ? o.model + "/demo-retrieval.jsonl" : o.retrieval;
  if (std::filesystem::exists(retrieval) || !o.retrieval.empty()) {
    show_retrieval(o, retrieval, tokenizer, ttt_model, base_model);
    if (o.retrieval_all) return 0;
  }
  std::cout << "document " << o.document << ": " << ids.size() << " tokens, read in one pass\n\n";

  model::ScoreOptions per_token;
  per_token.per_token = true;
  // Warm both models up on the document's start first: the first forward of a process pays for
  // lazy symbol binding, the BLAS thread pool and first-touch page faults, and would otherwise be
  // charged to whichever pass runs first (it made TTT look ~0.6x of no TTT in the timing below).
  const std::vector<int64_t> warmup(ids.begin(), ids.begin() + std::min<size_t>(ids.size(), 2 * config.ttt_chunk + 1));
  model::score_tokens(ttt_model, warmup, {});
  model::score_tokens(base_model, warmup, {});
  Stopwatch watch;
  const model::ScoreResult with = model::score_tokens(ttt_model, ids, per_token);
  const double with_s = watch.ms() / 1000;
  watch = Stopwatch();
  const model::ScoreResult without = model::score_tokens(base_model, ids, per_token);
  const double without_s = watch.ms() / 1000;

  // Mean loss per stretch of the document: the fast weights start at W0 and learn chunk by chunk,
  // so the gap opens as the model reads.
  const int64_t n = with.tokens, per = (n + o.buckets - 1) / o.buckets;
  std::cout << "loss (nats/token) per stretch of the document; '#' = the gain from TTT\n"
            << "   tokens        TTT   no TTT     gain\n";
  for (int64_t begin = 0; begin < n; begin += per) {
    const int64_t len = std::min(per, n - begin);
    const double a = with.token_nll.narrow(0, begin, len).mean().item<double>();
    const double b = without.token_nll.narrow(0, begin, len).mean().item<double>();
    std::cout << std::setw(5) << begin << "-" << std::left << std::setw(6) << begin + len << std::right << std::fixed
              << std::setprecision(3) << std::setw(8) << a << std::setw(9) << b << std::showpos << std::setw(9)
              << b - a << std::noshowpos << "  " << bar(b - a, 200) << "\n";
  }
  std::cout << "whole document: TTT " << with.mean_nll() << " (ppl " << std::setprecision(2) << std::exp(with.mean_nll())
            << "), no TTT " << std::setprecision(3) << without.mean_nll() << " (ppl " << std::setprecision(2)
            << std::exp(without.mean_nll()) << "); " << std::setprecision(1) << n / with_s << " vs " << n / without_s
            << " tokens/s\n\n";

  // Continue the document from a point in its middle, the fast weights adapting as they read.
  const int64_t cut = std::min<int64_t>(static_cast<int64_t>(ids.size()), o.prompt_tokens);
  std::vector<int64_t> prompt(ids.begin(), ids.begin() + cut);
  infer::Session session(ttt_model);
  std::vector<int32_t> tail(prompt.end() - std::min<int64_t>(cut, 40), prompt.end());
  std::cout << "continuing the document after its first " << cut << " tokens (temperature 0.7, seed " << o.seed
            << "):\n...";
  std::cout << tokenizer.decode(tail) << "\033[1m" << std::flush;
  infer::CompletionRequest request;
  request.prompt = prompt;
  request.max_tokens = o.generate_tokens;
  request.sampling.temperature = 0.7;
  request.sampling.seed = o.seed;
  request.sampling.repeat_penalty = 1.1;
  if (auto eos = tokenizer.eos_id()) request.stop_ids.push_back(*eos);
  infer::complete(session, tokenizer, request, [](const std::string& text, auto) {
    std::cout << text << std::flush;
    return true;
  });
  std::cout << "\033[0m\n\n" << session.ttt_updates() << " fast-weight updates while reading and writing; done in "
            << std::setprecision(1) << total.ms() / 1000 << " s\n";
  return 0;
}

Register demo("", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* cmd = parent.add_subcommand("demo", "the main job: a fact beyond the window recalled with and without TTT, per-chunk loss on a long document, a continuation");
  add_model_option(cmd, o->model);
  o->dtype.add_to(cmd);
  o->device.add_to(cmd);
  cmd->add_option("-f,--file", o->document, "document to read (default: the bundled one)");
  cmd->add_option("--max-tokens", o->max_tokens, "read at most this many tokens")->check(CLI::Range(64, 1 << 20));
  cmd->add_option("--rows", o->buckets, "rows of the per-stretch table")->check(CLI::Range(1, 64));
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "document tokens before the continuation")->check(CLI::PositiveNumber);
  cmd->add_option("-n,--n-predict", o->generate_tokens, "tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "sampling seed");
  cmd->add_option("--retrieval", o->retrieval,
                  "retrieval documents (JSON lines of ipt data synth; default: the model's demo-retrieval.jsonl, skipped when absent)");
  cmd->add_option("--sample", o->retrieval_sample, "which retrieval document to show")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--retrieval-all", o->retrieval_all, "score every retrieval document with and without TTT, then stop");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
