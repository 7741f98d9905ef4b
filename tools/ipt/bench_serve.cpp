// ipt bench serve: a load test of the HTTP server on loopback with a mixed workload, every answer
// classified, latency percentiles and peak memory (ipt/bench/serve.h); fails if any answer breaks
// the API or memory exceeds the model plus the session budget.
#include <iostream>
#include <memory>

#include "command.h"
#include "model_flags.h"
#include "ipt/bench/serve.h"

namespace ipt::cli {
namespace {

struct ServeBenchOptions {
  bench::ServeOptions serve;
  DtypeFlag dtype;
  DeviceFlag device;
  bool json = false;
};

int run(const ServeBenchOptions& o) {
  bench::check_serve_options(o.serve);  // before the device and dtype lines
  model::LoadOptions load;
  load.device = o.device.resolve("bench serve", !o.json);
  load.dtype = o.dtype.resolve(o.serve.model, "bench serve", load.device, !o.json);
  bench::run_serve(o.serve, load, std::cout, o.json);
  return 0;
}

Register bench_serve("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<ServeBenchOptions>();
  bench::ServeOptions& s = o->serve;
  CLI::App* cmd = parent.add_subcommand("serve", "load test of the HTTP server on loopback (mixed requests, latency, memory)");
  add_model_option(cmd, s.model);
  o->dtype.add_to(cmd);
  o->device.add_to(cmd);
  cmd->add_option("--clients", s.clients, "concurrent clients, one row per count (default 4), e.g. 2,8,32")->delimiter(',');
  cmd->add_option("--duration", s.duration, "seconds each row sends requests for (default 10)");
  cmd->add_option("--requests", s.requests, "stop each client after this many requests (default 0 = no limit)");
  cmd->add_option("--parallel", s.parallel, "server worker slots (default 2)");
  cmd->add_option("--queue", s.queue, "requests that may wait for a slot before 503 (default 8)");
  cmd->add_option("--max-tokens", s.max_tokens, "tokens generated per request (default 16)");
  cmd->add_option("--session-budget-mb", s.session_budget_mb, "the server's session memory budget (default 256)");
  cmd->add_flag("--json", o->json, "print one JSON object");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
