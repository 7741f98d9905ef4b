// ipt bench decode: decode tokens/s after each context length with and without TTT, or the
// aggregate tokens/s of concurrent streams with --streams (ipt/bench/decode.h).
#include <iostream>
#include <memory>

#include "command.h"
#include "model_flags.h"
#include "worker.h"
#include "ipt/bench/decode.h"
#include "ipt/common/error.h"

namespace ipt::cli {
namespace {

struct DecodeBenchOptions {
  bench::DecodeOptions decode;
  bool json = false;
  DtypeFlag dtype;
  DecodeQuantFlag decode_quant;
  DeviceFlag device;
  int worker_streams = 0;       // internal
  std::string worker_batching;  // internal: on | off
  int64_t worker_context = 0;   // internal
  int worker_ttt = -1;          // internal
};

int run(DecodeBenchOptions& o) {
  bench::DecodeOptions& d = o.decode;
  d.decode_quant = o.decode_quant.name;
  IPT_CHECK(d.tokens > 0, "--tokens must be > 0, got ", d.tokens);
  if (o.worker_streams > 0 || o.worker_context > 0) {  // a worker: the model as the parent resolved it
    bench::DecodeModel m;
    m.device = o.device.resolve("bench decode", false);
    m.dtype = o.dtype.resolve(d.model, "bench decode", m.device, false);
    const nlohmann::json result = o.worker_streams > 0
        ? bench::measure_decode_streams(d, m, o.worker_streams, o.worker_batching == "on")
        : bench::measure_decode(d, m, o.worker_context, o.worker_ttt == 1);
    std::cout << result.dump() << std::endl;
    return 0;
  }
  if (d.streams.empty()) model::ModelConfig::load(d.model + "/config.json");  // a missing model fails first
  const torch::Device device = o.device.resolve("bench decode", !o.json);  // the workers inherit it
  const char* dtype = dtype_name(o.dtype.resolve(d.model, "bench decode", device, !o.json));
  const nlohmann::json report = bench::run_decode(d, dtype, worker_launcher());
  if (o.json)
    std::cout << report.dump(2) << std::endl;
  else
    bench::print_decode_table(d, report, std::cout);
  return 0;
}

Register bench_decode("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<DecodeBenchOptions>();
  bench::DecodeOptions& d = o->decode;
  CLI::App* cmd = parent.add_subcommand("decode", "decode tokens/s after each context length, with and without TTT");
  add_model_option(cmd, d.model);
  o->dtype.add_to(cmd);
  o->decode_quant.add_to(cmd);
  cmd->add_option("--decode-step", d.decode_step,
                  "on: tokens through the fused single-token step (default); off: the sequence path, for comparison")
      ->check(CLI::IsMember({"on", "off"}));
  o->device.add_to(cmd);
  cmd->add_option("--contexts", d.contexts, "prompt lengths before decoding (default 1024,8192)")->delimiter(',');
  cmd->add_option("--tokens", d.tokens, "tokens decoded per measurement (default 64)");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--streams", d.streams,
                  "concurrent generations, e.g. 1,2,4,8: aggregate tokens/s with continuous batching on and off "
                  "(instead of --contexts)")
      ->delimiter(',');
  cmd->add_option("--worker-streams", o->worker_streams)->group("");
  cmd->add_option("--worker-batching", o->worker_batching)->group("");
  cmd->add_option("--worker-context", o->worker_context)->group("");
  cmd->add_option("--worker-ttt", o->worker_ttt)->group("");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
