// ipt bench tokenizer: encode throughput of a tokenizer on a text file, one thread and all cores,
// checking that both give the same ids.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "command.h"
#include "ipt/common/error.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::cli {
namespace {

struct TokenizerBenchOptions {
  std::string tokenizer, file;
  int repeat = 3;
  bool json = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run(const TokenizerBenchOptions& o) {
  std::ifstream in(o.file, std::ios::binary);
  IPT_CHECK(in, "bench tokenizer: cannot open -f '", o.file, "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  IPT_CHECK(!text.empty(), "bench tokenizer: '", o.file, "' is empty");
  const int threads = global_options().threads > 0 ? global_options().threads
                                                   : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  auto load_start = std::chrono::steady_clock::now();
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(o.tokenizer);
  const double load_s = seconds_since(load_start);

  // Cold: the first pass fills the per-thread word caches; then best of `repeat`.
  auto cold_start = std::chrono::steady_clock::now();
  std::vector<int32_t> single = tokenizer.encode(text);
  const double cold_s = seconds_since(cold_start);
  double single_s = 1e300, parallel_s = 1e300;
  std::vector<int32_t> parallel;
  for (int r = 0; r < o.repeat; ++r) {
    auto start = std::chrono::steady_clock::now();
    single = tokenizer.encode(text);
    single_s = std::min(single_s, seconds_since(start));
  }
  for (int r = 0; r < o.repeat + 1; ++r) {  // one extra pass warms the other threads' caches
    auto start = std::chrono::steady_clock::now();
    parallel = tokenizer.encode_parallel(text, threads);
    if (r > 0 || o.repeat == 0) parallel_s = std::min(parallel_s, seconds_since(start));
  }
  const bool identical = single == parallel;
  const double mb = text.size() / 1e6;
  nlohmann::json report{{"file", o.file},
                        {"bytes", text.size()},
                        {"tokens", single.size()},
                        {"bytes_per_token", double(text.size()) / std::max<size_t>(1, single.size())},
                        {"load_s", load_s},
                        {"cold_single_mb_s", mb / cold_s},
                        {"single_mb_s", mb / single_s},
                        {"threads", threads},
                        {"parallel_mb_s", mb / parallel_s},
                        {"parallel_cuts", tokenizer.parallel_safe()},
                        {"identical", identical},
                        {"tokenizer", tokenizer.summary()}};
  if (o.json) {
    std::cout << report.dump(2) << std::endl;
  } else {
    std::cout << std::fixed << std::setprecision(1) << "tokenizer: " << tokenizer.summary() << "\n"
              << "file " << o.file << ": " << mb << " MB, " << single.size() << " tokens ("
              << std::setprecision(2) << report["bytes_per_token"].get<double>() << " bytes/token), load "
              << load_s << " s\n"
              << std::setprecision(1) << "| mode | threads | MB/s |\n|------|--------:|-----:|\n"
              << "| cold (empty cache) | 1 | " << mb / cold_s << " |\n"
              << "| single thread | 1 | " << mb / single_s << " |\n"
              << "| parallel | " << threads << " | " << mb / parallel_s << " |\n"
              << "ids identical between single-thread and parallel: " << (identical ? "yes" : "NO") << "\n";
  }
  return identical ? 0 : 1;
}

Register bench_tokenizer("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<TokenizerBenchOptions>();
  CLI::App* cmd = parent.add_subcommand("tokenizer", "tokenizer encode MB/s, one thread and all cores (-t)");
  cmd->add_option("--tokenizer", o->tokenizer, "directory with tokenizer.json (or the file)")->required();
  cmd->add_option("-f,--file", o->file, "text file to encode")->required();
  cmd->add_option("--repeat", o->repeat, "best of N runs")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "print one JSON object");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
