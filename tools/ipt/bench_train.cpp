// ipt bench train: training tokens/s, peak memory and MFU with and without TTT and gradient
// checkpointing, in float32 and mixed precision (ipt/bench/train.h).
#include <iostream>
#include <memory>

#include "command.h"
#include "model_flags.h"
#include "worker.h"
#include "ipt/bench/train.h"
#include "ipt/common/error.h"

namespace ipt::cli {
namespace {

struct TrainBenchOptions {
  bench::TrainOptions train;
  bool json = false;
  int worker_ttt = -1, worker_checkpointing = -1, worker_mixed = 0;  // internal
  DeviceFlag device;
};

int run(const TrainBenchOptions& o) {
  const bench::TrainOptions& t = o.train;
  IPT_CHECK(t.seq_len > 0 && t.steps > 0, "--seq-len and --steps must be positive");
  if (o.worker_ttt >= 0) {
    std::cout << bench::measure_train_steps(t, o.worker_ttt == 1, o.worker_checkpointing == 1, o.worker_mixed == 1,
                                            o.device.resolve("bench train", false))
                     .dump()
              << std::endl;
    return 0;
  }
  model::ModelConfig::load(t.model + "/config.json");  // a missing model fails before anything is said
  bench::check_train_options(t);                        // and so do unknown precisions
  const torch::Device device = o.device.resolve("bench train", !o.json);  // the workers inherit it
  const nlohmann::json report = bench::run_train(t, device, worker_launcher());
  if (o.json)
    std::cout << report.dump(2) << std::endl;
  else
    bench::print_train_table(t, report, std::cout);
  return 0;
}

Register bench_train("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<TrainBenchOptions>();
  bench::TrainOptions& t = o->train;
  CLI::App* cmd = parent.add_subcommand("train", "training tokens/s, peak memory and MFU, with/without TTT and checkpointing");
  add_model_option(cmd, t.model);
  cmd->add_option("--seq-len", t.seq_len, "tokens per training sequence");
  cmd->add_option("--steps", t.steps, "timed steps per configuration (after one warm-up step)");
  cmd->add_option("--precision", t.precisions, "float32 and/or mixed (bf16 compute, float32 master; default both)")
      ->delimiter(',');
  o->device.add_to(cmd);
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--worker-mixed", o->worker_mixed)->group("");
  cmd->add_option("--worker-ttt", o->worker_ttt)->group("");
  cmd->add_option("--worker-checkpointing", o->worker_checkpointing)->group("");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
