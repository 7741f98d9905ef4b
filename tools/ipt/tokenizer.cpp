// ipt tokenizer encode | decode | train: byte-level BPE tokenizers in Hugging Face's tokenizer.json
// format (Qwen2/Qwen3, LLaMA-3, GPT-2 and the ones `train` writes).
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "command.h"
#include "inputs.h"
#include "ipt/common/error.h"
#include "ipt/tokenizer/tokenizer.h"
#include "ipt/tokenizer/trainer.h"

namespace ipt::cli {
namespace {

int threads_to_use() {
  const int t = global_options().threads;
  return t > 0 ? t : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct EncodeOptions {
  std::string tokenizer, file, text;
  bool add_special_tokens = false;
};

int run_encode(const EncodeOptions& o) {
  IPT_CHECK(o.file.empty() != o.text.empty(), "tokenizer encode: give exactly one of -f FILE and --text STR");
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(o.tokenizer);
  const std::string text = o.file.empty() ? o.text : read_input(o.file);
  const std::vector<int32_t> ids = tokenizer.encode_parallel(text, threads_to_use(), o.add_special_tokens);
  std::string line;
  line.reserve(ids.size() * 7 + 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  std::cout.write(line.data(), static_cast<std::streamsize>(line.size()));
  return 0;
}

struct DecodeOptions {
  std::string tokenizer, file, ids;
  bool skip_special_tokens = false;
};

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  for (int64_t id : parse_token_ids(text, "tokenizer decode")) {
    IPT_CHECK(id <= INT32_MAX, "tokenizer decode: token id ", id, " is out of range");
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

int run_decode(const DecodeOptions& o) {
  IPT_CHECK(o.file.empty() != o.ids.empty(), "tokenizer decode: give exactly one of -f FILE and --ids \"1 2 3\"");
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(o.tokenizer);
  const std::string text = tokenizer.decode(parse_ids(o.file.empty() ? o.ids : read_input(o.file)), o.skip_special_tokens);
  std::cout.write(text.data(), static_cast<std::streamsize>(text.size()));
  std::cout.flush();
  return 0;
}

struct CheckOptions {
  std::string tokenizer, expected;
};

// Compares our ids with reference ids: one JSON object per line, {"text": ..., "ids": [...]}
// (what scripts/make-tokenizer-goldens.mjs writes from transformers.js).
int run_check(const CheckOptions& o) {
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(o.tokenizer);
  std::istringstream lines(read_input(o.expected));
  std::string line;
  size_t texts = 0, mismatches = 0, round_trip = 0, number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error("tokenizer check: line " + std::to_string(number) + " of '" + o.expected + "' is not JSON: " + e.what());
    }
    IPT_CHECK(j.is_object() && j.contains("text") && j["text"].is_string() && j.contains("ids") && j["ids"].is_array(),
              "tokenizer check: line ", number, " of '", o.expected, "' must be {\"text\": string, \"ids\": [int...]}");
    const std::string text = j["text"].get<std::string>();
    const std::vector<int32_t> ids = tokenizer.encode(text);
    ++texts;
    if (ids != j["ids"].get<std::vector<int32_t>>()) {
      ++mismatches;
      std::cout << "mismatch on line " << number << ": " << j["text"].dump().substr(0, 120) << "\n";
    }
    if (tokenizer.decode(ids) != text) ++round_trip;
  }
  std::cout << texts << " texts: " << texts - mismatches << " identical ids, " << mismatches << " different; "
            << texts - round_trip << " decode back to the same text\n";
  return mismatches == 0 ? 0 : 1;
}

struct TrainCliOptions {
  size_t vocab_size = 0;
  std::vector<std::string> inputs;
  std::string output;
  std::vector<std::string> special_tokens{"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  uint64_t min_frequency = 2;
};

int run_train(const TrainCliOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  tok::TrainOptions options;
  options.vocab_size = o.vocab_size;
  options.special_tokens = o.special_tokens;
  options.min_frequency = o.min_frequency;
  tok::BpeTrainer trainer(options);
  for (const std::string& path : o.inputs) trainer.feed(read_input(path));
  const tok::TrainResult result = trainer.train();
  std::error_code error;
  std::filesystem::create_directories(o.output, error);
  IPT_CHECK(!error, "tokenizer train: cannot create output directory '", o.output, "': ", error.message());
  for (const auto& [name, content] : {std::pair{std::string("tokenizer.json"), &result.tokenizer_json},
                                      std::pair{std::string("tokenizer_config.json"), &result.config_json}}) {
    std::ofstream out(o.output + "/" + name, std::ios::binary);
    IPT_CHECK(out, "tokenizer train: cannot write '", o.output, "/", name, "'");
    out << *content;
    IPT_CHECK(out.good(), "tokenizer train: failed writing '", o.output, "/", name, "'");
  }
  // Check what was written loads back.
  const tok::Tokenizer trained = tok::Tokenizer::load(o.output);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "trained on " << result.input_bytes << " bytes (" << result.unique_words << " distinct pre-tokens) in "
            << seconds << " s: " << result.merges << " merges, vocab size " << trained.vocab_size() << "\n"
            << "wrote " << o.output << "/tokenizer.json and " << o.output << "/tokenizer_config.json\n";
  if (trained.vocab_size() < o.vocab_size)
    std::cout << "note: stopped early, no pair occurs at least " << o.min_frequency << " times\n";
  return 0;
}

Register encode_command("tokenizer", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<EncodeOptions>();
  CLI::App* cmd = parent.add_subcommand("encode", "print the token ids of a text, space-separated on one line");
  cmd->add_option("--tokenizer", o->tokenizer, "directory with tokenizer.json (or the file)")->required();
  cmd->add_option("-f,--file", o->file, "text file to encode ('-' = stdin)");
  cmd->add_option("--text", o->text, "text to encode");
  cmd->add_flag("--add-special-tokens", o->add_special_tokens, "apply the post_processor template (e.g. BOS)");
  return [o] { return run_encode(*o); };
});

Register decode_command("tokenizer", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<DecodeOptions>();
  CLI::App* cmd = parent.add_subcommand("decode", "print the text of token ids (exactly, no newline added)");
  cmd->add_option("--tokenizer", o->tokenizer, "directory with tokenizer.json (or the file)")->required();
  cmd->add_option("-f,--file", o->file, "file of ids separated by spaces, commas or newlines ('-' = stdin)");
  cmd->add_option("--ids", o->ids, "ids, e.g. \"1 2 3\"");
  cmd->add_flag("--skip-special-tokens", o->skip_special_tokens, "leave out special tokens");
  return [o] { return run_decode(*o); };
});

Register check_command("tokenizer", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<CheckOptions>();
  CLI::App* cmd = parent.add_subcommand("check", "compare ids with reference ids (JSON lines {\"text\", \"ids\"})");
  cmd->add_option("--tokenizer", o->tokenizer, "directory with tokenizer.json (or the file)")->required();
  cmd->add_option("--expected", o->expected, "JSON-lines file of texts and expected ids")->required();
  return [o] { return run_check(*o); };
});

Register train_command("tokenizer", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<TrainCliOptions>();
  CLI::App* cmd = parent.add_subcommand("train", "train a byte-level BPE tokenizer (Qwen-style pre-tokenizer)");
  cmd->add_option("--vocab-size", o->vocab_size, "vocabulary size, special tokens included")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--input", o->inputs, "training text files")->required()->expected(1, -1);
  cmd->add_option("-o,--output", o->output, "output directory")->required();
  cmd->add_option("--special-tokens", o->special_tokens, "special tokens (comma-separated)")->delimiter(',');
  cmd->add_option("--min-frequency", o->min_frequency, "stop when the best pair is rarer than this")
      ->check(CLI::PositiveNumber);
  return [o] { return run_train(*o); };
});

}  // namespace
}  // namespace ipt::cli
