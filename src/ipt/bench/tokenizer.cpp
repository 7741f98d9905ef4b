#include "ipt/bench/tokenizer.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::bench {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

nlohmann::json measure_tokenizer(const TokenizerOptions& o) {
  std::ifstream in(o.file, std::ios::binary);
  IPT_CHECK(in, "bench tokenizer: cannot open -f '", o.file, "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  IPT_CHECK(!text.empty(), "bench tokenizer: '", o.file, "' is empty");

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
    parallel = tokenizer.encode_parallel(text, o.threads);
    if (r > 0 || o.repeat == 0) parallel_s = std::min(parallel_s, seconds_since(start));
  }
  const double mb = text.size() / 1e6;
  return {{"file", o.file},
          {"bytes", text.size()},
          {"tokens", single.size()},
          {"bytes_per_token", double(text.size()) / std::max<size_t>(1, single.size())},
          {"load_s", load_s},
          {"cold_single_mb_s", mb / cold_s},
          {"single_mb_s", mb / single_s},
          {"threads", o.threads},
          {"parallel_mb_s", mb / parallel_s},
          {"parallel_cuts", tokenizer.parallel_safe()},
          {"identical", single == parallel},
          {"tokenizer", tokenizer.summary()}};
}

void print_tokenizer_table(const nlohmann::json& report, std::ostream& out) {
  const double mb = report["bytes"].get<size_t>() / 1e6;
  out << std::fixed << std::setprecision(1) << "tokenizer: " << report["tokenizer"].get<std::string>() << "\n"
      << "file " << report["file"].get<std::string>() << ": " << mb << " MB, " << report["tokens"].get<size_t>()
      << " tokens (" << std::setprecision(2) << report["bytes_per_token"].get<double>() << " bytes/token), load "
      << report["load_s"].get<double>() << " s\n"
      << std::setprecision(1) << "| mode | threads | MB/s |\n|------|--------:|-----:|\n"
      << "| cold (empty cache) | 1 | " << report["cold_single_mb_s"].get<double>() << " |\n"
      << "| single thread | 1 | " << report["single_mb_s"].get<double>() << " |\n"
      << "| parallel | " << report["threads"].get<int>() << " | " << report["parallel_mb_s"].get<double>() << " |\n"
      << "ids identical between single-thread and parallel: " << (report["identical"].get<bool>() ? "yes" : "NO")
      << "\n";
}

}  // namespace ipt::bench
