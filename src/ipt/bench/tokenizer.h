#pragma once
// `ipt bench tokenizer`: a tokenizer's encode throughput on a text file — the first (cold) pass,
// then the best of `repeat` on one thread and across `threads` — checking that both give the same
// ids.
#include <nlohmann/json.hpp>

#include <ostream>
#include <string>

namespace ipt::bench {

struct TokenizerOptions {
  std::string tokenizer;  // directory with tokenizer.json (or the file)
  std::string file;       // the text to encode
  int repeat = 3;         // best of
  int threads = 1;        // for the parallel encode
};

// {"file", "bytes", "tokens", "bytes_per_token", "load_s", "cold_single_mb_s", "single_mb_s",
//  "threads", "parallel_mb_s", "parallel_cuts", "identical", "tokenizer"}.
nlohmann::json measure_tokenizer(const TokenizerOptions& options);

void print_tokenizer_table(const nlohmann::json& report, std::ostream& out);

}  // namespace ipt::bench
