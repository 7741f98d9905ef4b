// ipt data prepare | synth: text corpora into token shards; synthetic long-context samples as JSON lines.
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "command.h"
#include "ipt/common/error.h"
#include "ipt/data/prepare.h"
#include "ipt/data/synth.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::cli {
namespace {

namespace fs = std::filesystem;

// A one-line progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label) : label_(std::move(label)), tty_(::isatty(2)) {}
  void update(int64_t done, int64_t total) {
    const double fraction = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - start_).count();
    if (tty_) {
      if (done < total && now - last_ < std::chrono::milliseconds(200)) return;
      last_ = now;
      const int width = 30, filled = static_cast<int>(fraction * width);
      std::fprintf(stderr, "\r%s [%s%s] %5.1f%%  %.1f MB  %.1f MB/s ", label_.c_str(), std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), 100 * fraction, done / 1e6,
                   seconds > 0 ? done / 1e6 / seconds : 0.0);
      if (done >= total) std::fprintf(stderr, "\n");
    } else {
      const int decile = static_cast<int>(fraction * 10);
      if (decile <= last_decile_) return;
      last_decile_ = decile;
      std::fprintf(stderr, "%s %3d%%  %.1f MB  %.1f s\n", label_.c_str(), decile * 10, done / 1e6, seconds);
    }
  }

 private:
  std::string label_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

struct PrepareCli {
  std::string tokenizer;
  data::PrepareOptions options;
  bool no_eos = false, quiet = false;
};

int run_prepare(PrepareCli& o) {
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(o.tokenizer);
  o.options.add_eos = !o.no_eos;
  const int threads = global_options().threads;
  o.options.threads = threads > 0 ? threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ProgressBar bar("prepare");
  data::PrepareProgress progress;
  if (!o.quiet) progress = [&](int64_t done, int64_t total) { bar.update(done, total); };
  const data::PrepareReport r = data::prepare(tokenizer, o.options, progress);
  std::cout << "read " << r.files << " files (" << std::fixed << std::setprecision(1) << r.bytes / 1e6 << " MB) in "
            << std::setprecision(2) << r.seconds << " s: " << r.train_documents << " training documents ("
            << r.train_tokens << " tokens) in " << o.options.out;
  if (o.options.val_fraction > 0)
    std::cout << ", " << r.val_documents << " validation documents (" << r.val_tokens << " tokens) in "
              << (fs::path(o.options.out) / "val").string();
  if (r.empty_documents) std::cout << "; skipped " << r.empty_documents << " empty documents";
  std::cout << "\n";
  return 0;
}

struct SynthCli {
  std::string tokenizer, output;
  std::vector<std::string> tasks, haystack{"corpus/sample"};
  int64_t length = 4096, count = 1, tokens_to_generate = 64;
  uint64_t seed = 0;
};

int run_synth(const SynthCli& o) {
  IPT_CHECK(o.count > 0, "data synth: --count must be > 0");
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(o.tokenizer);
  std::vector<std::string> documents;
  for (const std::string& path : data::list_input_files(o.haystack)) {
    std::ifstream in(path, std::ios::binary);
    IPT_CHECK(in, "data synth: cannot read haystack file ", path);
    std::stringstream text;
    text << in.rdbuf();
    documents.push_back(text.str());
  }
  const data::Haystack haystack(documents);
  std::vector<std::string> tasks = o.tasks;
  if (tasks.size() == 1 && tasks[0] == "all") tasks = data::synth_tasks();
  const data::TokenCounter count = [&](const std::string& s) { return static_cast<int64_t>(tokenizer.encode(s).size()); };

  std::ofstream file;
  if (!o.output.empty()) {
    file.open(o.output);
    IPT_CHECK(file, "data synth: cannot write ", o.output);
  }
  std::ostream& out = o.output.empty() ? std::cout : file;
  for (const std::string& task : tasks)
    for (int64_t i = 0; i < o.count; ++i) {
      data::SynthOptions so;
      so.task = task;
      so.max_length = o.length;
      so.tokens_to_generate = o.tokens_to_generate;
      so.seed = o.seed + static_cast<uint64_t>(i);
      const data::SynthSample s = data::generate(so, haystack, count);
      out << nlohmann::json{{"task", s.task},     {"index", i},           {"seed", so.seed},
                            {"length", s.length}, {"input", s.input},     {"answer_prefix", s.answer_prefix},
                            {"answers", s.answers}, {"depths", s.depths}}
                 .dump()
          << "\n";
    }
  out.flush();
  IPT_CHECK(out.good(), "data synth: writing ", o.output.empty() ? "standard output" : o.output, " failed");
  if (!o.output.empty())
    std::cerr << "wrote " << tasks.size() * o.count << " samples (" << tasks.size() << " tasks x " << o.count << ") to "
              << o.output << "\n";
  return 0;
}

Register prepare_command("data", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<PrepareCli>();
  CLI::App* cmd = parent.add_subcommand("prepare", "tokenize text files into token shards (plus a validation split)");
  cmd->add_option("--tokenizer", o->tokenizer, "directory with tokenizer.json")->required();
  cmd->add_option("--input", o->options.inputs, "files or directories (.jsonl: one {\"text\"} per line)")->required();
  cmd->add_option("--out", o->options.out, "output dataset directory (validation in OUT/val)")->required();
  cmd->add_option("--val-fraction", o->options.val_fraction, "fraction of documents for validation, in [0, 1)");
  cmd->add_option("--seed", o->options.seed, "seed of the validation split");
  cmd->add_option("--shard-tokens", o->options.shard_tokens, "tokens per shard file")->check(CLI::PositiveNumber);
  cmd->add_flag("--append", o->options.append, "add to an existing dataset (same vocabulary)");
  cmd->add_flag("--no-eos", o->no_eos, "do not end documents with the eos token");
  cmd->add_flag("-q,--quiet", o->quiet, "no progress bar");
  return [o] { return run_prepare(*o); };
});

Register synth_command("data", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<SynthCli>();
  CLI::App* cmd = parent.add_subcommand("synth", "synthetic long-context samples (RULER tasks, passkey, induction) as JSON lines");
  cmd->add_option("--task", o->tasks, "task names (comma-separated) or 'all'")->required()->delimiter(',');
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer that counts the length")->required();
  cmd->add_option("--length", o->length, "tokens per sample, answer budget included")->check(CLI::PositiveNumber);
  cmd->add_option("--count", o->count, "samples per task")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->seed, "seed of the first sample (sample i uses seed + i)");
  cmd->add_option("--tokens-to-generate", o->tokens_to_generate, "answer budget kept free")->check(CLI::NonNegativeNumber);
  cmd->add_option("--haystack", o->haystack, "files or directories of natural text for haystacks (default corpus/sample)");
  cmd->add_option("-o,--output", o->output, "JSON-lines file (default: standard output)");
  return [o] { return run_synth(*o); };
});

}  // namespace
}  // namespace ipt::cli
