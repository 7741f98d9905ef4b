// ipt bench prefill: whole-sequence prefill throughput and peak memory per length, with and
// without TTT, optionally with a sliding window (ipt/bench/prefill.h), or across context-parallel
// ranks with --cp-size (ipt/bench/prefill_cp.h).
#include <iostream>
#include <memory>

#include "command.h"
#include "model_flags.h"
#include "worker.h"
#include "ipt/bench/prefill.h"
#include "ipt/bench/prefill_cp.h"
#include "ipt/common/error.h"
#include "ipt/eval/figures.h"

namespace ipt::cli {
namespace {

struct PrefillBenchOptions {
  bench::PrefillOptions prefill;
  std::string plot;
  bool json = false;
  int64_t worker_length = 0;  // internal
  int worker_ttt = -1;        // internal
  int64_t worker_window = 0;  // internal
  std::vector<int> cp_sizes;  // context parallelism: processes per sequence (a table of its own)
  DtypeFlag dtype;
  DeviceFlag device;
};

int run(const PrefillBenchOptions& o) {
  const bench::PrefillOptions& p = o.prefill;
  if (o.worker_length > 0) {
    bench::PrefillRun run;
    run.model = p.model;
    run.length = o.worker_length;
    run.ttt = o.worker_ttt != 0;
    run.window = o.worker_window;
    run.device = o.device.resolve("bench prefill", false);
    run.dtype = o.dtype.resolve(p.model, "bench prefill", run.device, false);
    std::cout << bench::measure_prefill(run).dump() << std::endl;
    return 0;
  }
  if (!o.cp_sizes.empty()) {
    IPT_CHECK(p.window == 0 && o.plot.empty(), "bench prefill --cp-size measures the model as it is (no --window, --plot)");
    const nlohmann::json report = bench::run_prefill_context_parallel(worker_launcher().executable, p, o.cp_sizes);
    if (o.json)
      std::cout << report.dump(2) << std::endl;
    else
      bench::print_prefill_context_parallel_table(report, std::cout);
    return 0;
  }
  IPT_CHECK(p.window >= 0, "bench prefill --window must be >= 0");
  model::ModelConfig::load(p.model + "/config.json");  // a missing model fails before anything is said
  const torch::Device device = o.device.resolve("bench prefill", !o.json);  // the workers inherit it
  const char* dtype = dtype_name(o.dtype.resolve(p.model, "bench prefill", device, !o.json));
  const nlohmann::json report = bench::run_prefill(p, dtype, worker_launcher());
  if (!o.plot.empty()) eval::plot_report("prefill", report, o.plot);
  if (o.json)
    std::cout << report.dump(2) << std::endl;
  else
    bench::print_prefill_table(report, std::cout);
  return 0;
}

Register bench_prefill("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<PrefillBenchOptions>();
  bench::PrefillOptions& p = o->prefill;
  CLI::App* cmd = parent.add_subcommand("prefill", "prefill tokens/s and peak memory per length, with and without TTT");
  add_model_option(cmd, p.model);
  o->dtype.add_to(cmd);
  o->device.add_to(cmd);
  cmd->add_option("--lengths", p.lengths, "sequence lengths")->delimiter(',');
  cmd->add_option("--up-to", p.up_to, "lengths 8192, 16384, ... up to this one, stopping at the first that fails");
  cmd->add_option("--window", p.window, "also run with every layer's attention a sliding window of W tokens");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--plot", o->plot, "draw throughput and memory against length into this PNG");
  cmd->add_option("--cp-size", o->cp_sizes, "context parallelism: prefill each length with N processes (e.g. 1,2,4)")
      ->delimiter(',')->check(CLI::Range(1, 64));
  cmd->add_option("--worker-length", o->worker_length)->group("");
  cmd->add_option("--worker-ttt", o->worker_ttt)->group("");
  cmd->add_option("--worker-window", o->worker_window)->group("");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
