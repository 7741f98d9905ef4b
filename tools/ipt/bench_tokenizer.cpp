// ipt bench tokenizer: encode throughput of a tokenizer on a text file, one thread and all cores,
// checking that both give the same ids (ipt/bench/tokenizer.h); exits 1 when they differ.
#include <algorithm>
#include <iostream>
#include <memory>
#include <thread>

#include "command.h"
#include "ipt/bench/tokenizer.h"

namespace ipt::cli {
namespace {

struct TokenizerBenchOptions {
  bench::TokenizerOptions tokenizer;
  bool json = false;
};

int run(TokenizerBenchOptions& o) {
  o.tokenizer.threads = global_options().threads > 0
                            ? global_options().threads
                            : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const nlohmann::json report = bench::measure_tokenizer(o.tokenizer);
  if (o.json)
    std::cout << report.dump(2) << std::endl;
  else
    bench::print_tokenizer_table(report, std::cout);
  return report["identical"].get<bool>() ? 0 : 1;
}

Register bench_tokenizer("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<TokenizerBenchOptions>();
  bench::TokenizerOptions& t = o->tokenizer;
  CLI::App* cmd = parent.add_subcommand("tokenizer", "tokenizer encode MB/s, one thread and all cores (-t)");
  cmd->add_option("--tokenizer", t.tokenizer, "directory with tokenizer.json (or the file)")->required();
  cmd->add_option("-f,--file", t.file, "text file to encode")->required();
  cmd->add_option("--repeat", t.repeat, "best of N runs")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "print one JSON object");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
