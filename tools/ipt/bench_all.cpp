// ipt bench all: one llama-bench-like table over the other benchmarks on one model
// (ipt/bench/all.h), each run in child processes of this executable.
#include <iostream>
#include <memory>

#include "command.h"
#include "model_flags.h"
#include "worker.h"
#include "ipt/bench/all.h"
#include "ipt/model/config.h"

namespace ipt::cli {
namespace {

struct AllBenchOptions {
  bench::AllOptions all;
  bool json = false;
  DtypeFlag dtype;
  DeviceFlag device;
};

bool has_bench(const CLI::App* bench, const std::string& name) {
  return !bench->get_subcommands([&](const CLI::App* a) { return a->get_name() == name; }).empty();
}

int run(AllBenchOptions& o, const CLI::App* bench) {
  bench::AllOptions& a = o.all;
  const model::ModelConfig config = model::ModelConfig::load(a.model + "/config.json");
  a.device = o.device.resolve("bench all", !o.json);  // the workers inherit it
  a.dtype = dtype_name(o.dtype.resolve(config, "bench all", a.device, !o.json));
  a.has_decode = has_bench(bench, "decode");
  a.has_train = has_bench(bench, "train");
  const nlohmann::json report = bench::run_all(a, worker_launcher());
  if (o.json)
    std::cout << report.dump(2) << std::endl;
  else
    bench::print_all_table(report, config, std::cout);
  return 0;
}

Register bench_all("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<AllBenchOptions>();
  bench::AllOptions& a = o->all;
  CLI::App* cmd = parent.add_subcommand("all", "every benchmark on one model: a llama-bench-like table");
  add_model_option(cmd, a.model);
  o->dtype.add_to(cmd);
  o->device.add_to(cmd);
  cmd->add_option("--pp", a.pp, "prefill length")->check(CLI::PositiveNumber);
  cmd->add_option("--tg", a.tg, "tokens to decode")->check(CLI::PositiveNumber);
  cmd->add_option("--op-length", a.op_length, "sequence length for the TTT operator")->check(CLI::PositiveNumber);
  cmd->add_option("--tokenizer", a.tokenizer, "tokenizer for the tokenizer row (default: the model's)");
  cmd->add_option("--text", a.text, "text file for the tokenizer row");
  cmd->add_flag("--json", o->json, "print one JSON object");
  const CLI::App* bench = &parent;
  return [o, bench] { return run(*o, bench); };
});

}  // namespace
}  // namespace ipt::cli
