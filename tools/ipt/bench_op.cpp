// ipt bench op: the TTT operator's algorithms, forward and forward+backward, each in a child
// process of its own so that its peak memory (ru_maxrss) is its own (ipt/bench/op.h).
#include <iostream>
#include <memory>

#include "command.h"
#include "model_flags.h"
#include "worker.h"
#include "ipt/bench/op.h"

namespace ipt::cli {
namespace {

struct OpBenchOptions {
  bench::OpOptions op;
  bool json = false;
  std::string worker;  // internal: run one algorithm and print one JSON line
  DeviceFlag device;
};

int run(const OpBenchOptions& o) {
  if (!o.worker.empty()) {
    std::cout << bench::measure_op_algorithm(o.op, o.worker, o.device.resolve("bench op", false)).dump() << std::endl;
    return 0;
  }
  bench::check_op_options(o.op);  // before the device line
  const torch::Device device = o.device.resolve("bench op", !o.json);  // the workers inherit it
  const nlohmann::json report = bench::run_op(o.op, device, worker_launcher());
  if (o.json)
    std::cout << report.dump(2) << std::endl;
  else
    bench::print_op_table(o.op, report, std::cout);
  return 0;
}

Register bench_op("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<OpBenchOptions>();
  bench::OpOptions& op = o->op;
  CLI::App* cmd = parent.add_subcommand("op", "TTT operator: reference vs recurrent vs scan, time and peak memory");
  cmd->add_option("--L", op.L, "sequence length")->check(CLI::PositiveNumber);
  cmd->add_option("--d", op.d, "hidden size")->check(CLI::PositiveNumber);
  cmd->add_option("--h", op.h, "MLP intermediate size")->check(CLI::PositiveNumber);
  cmd->add_option("--chunk", op.chunk, "TTT chunk size")->check(CLI::PositiveNumber);
  cmd->add_option("--scan-group", op.scan_group, "chunks in flight for the scan (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--lr", op.lr, "TTT learning rate");
  cmd->add_option("--clip", op.clip, "update clip (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--repeat", op.repeat, "best of N runs")->check(CLI::PositiveNumber);
  cmd->add_option("--algorithms", op.algorithms, "which algorithms to run")->delimiter(',');
  cmd->add_option("--dtype", op.dtype, "inputs' type: float32, or bfloat16 (bf16 products, float32 fast-weight masters)")
      ->check(CLI::IsMember({"float32", "bfloat16"}));
  o->device.add_to(cmd);
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--worker", o->worker)->group("");  // internal
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
