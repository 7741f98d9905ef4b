// ipt bench decode: decode tokens/s after a prompt of each context length, with and without TTT
// (the same weights, fast weights frozen), each configuration in its own child process. With
// --streams: aggregate tokens/s of that many concurrent generations, each on its own thread as
// the server runs them, decoding in shared steps (continuous batching) and each alone.
#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "command.h"
#include "model_flags.h"
#include "worker.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/common/stopwatch.h"
#include "ipt/infer/batcher.h"
#include "ipt/infer/session.h"
#include "ipt/model/checkpoint.h"

namespace ipt::cli {
namespace {

struct DecodeOptions {
  std::string model;
  std::vector<int64_t> contexts{1024, 8192};
  int64_t tokens = 64;
  bool json = false;
  DtypeFlag dtype;
  DecodeQuantFlag decode_quant;
  std::string decode_step = "on";  // off: the session's sequence path, for comparison
  DeviceFlag device;
  std::vector<int> streams;    // concurrent generations (aggregate throughput)
  int worker_streams = 0;      // internal
  std::string worker_batching;  // internal: on | off
  int64_t worker_context = 0;  // internal
  int worker_ttt = -1;         // internal
};

// The model as a worker runs it (device, dtype and decode weights as the parent chose).
model::CausalLM load_worker_model(const DecodeOptions& o, model::LoadOptions& load) {
  load.device = o.device.resolve("bench decode", false);
  load.dtype = o.dtype.resolve(o.model, "bench decode", load.device, false);
  load.decode_quantization = o.decode_quant.resolve();
  return model::load_model(o.model, load);
}

// What every worker command line carries besides its own flags.
std::string worker_args(const DecodeOptions& o, const char* dtype) {
  std::ostringstream args;
  args << "bench decode -m '" << o.model << "' --tokens " << o.tokens << " --dtype " << dtype << " --decode-quant "
       << o.decode_quant.name << " --decode-step " << o.decode_step;
  return args.str();
}

nlohmann::json worker(const DecodeOptions& o) {
  torch::NoGradGuard no_grad;
  model::LoadOptions load;
  model::CausalLM lm = load_worker_model(o, load);
  infer::SessionOptions so;
  so.ttt = o.worker_ttt == 1;
  so.decode_step = o.decode_step == "on";
  so.context = o.worker_context + o.tokens + 1;
  torch::manual_seed(0);
  torch::Tensor ids = torch::randint(0, lm->config().vocab_size, {o.worker_context}, torch::kInt64);
  {  // first-use costs (thread pools, allocator) outside the measurement
    infer::Session warm(lm, so);
    warm.append({ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + std::min<int64_t>(64, o.worker_context)});
    for (int i = 0; i < 4; ++i) warm.decode(1);
  }
  infer::Session session(lm, so);
  synchronize(load.device);
  Stopwatch prefill;
  session.append({ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + o.worker_context});
  synchronize(load.device);
  const double prefill_s = prefill.ms() / 1000;
  const int64_t updates = session.ttt_updates();
  infer::SamplerOptions greedy;
  greedy.temperature = 0;
  infer::Sampler sampler(greedy);
  Stopwatch decode;
  const auto out = session.generate(o.tokens, sampler);  // no stop tokens: exactly `tokens` steps
  const double decode_s = decode.ms() / 1000;
  return {{"context", o.worker_context},
          {"dtype", dtype_name(load.dtype)},
          {"decode_quant", o.decode_quant.name},
          {"decode_step", o.decode_step},
          {"device", describe_device(load.device)},
          {"ttt", so.ttt},
          {"tokens", static_cast<int64_t>(out.size())},
          {"decode_tokens_per_s", out.size() / decode_s},
          {"prefill_tokens_per_s", o.worker_context / prefill_s},
          {"decode_updates", session.ttt_updates() - updates},
          {"peak_mb", peak_rss_mb()}};
}

// `worker_streams` sessions after a short prompt each, generating `tokens` tokens at once from
// their own threads: through one batcher (shared steps) or each alone.
nlohmann::json streams_worker(const DecodeOptions& o) {
  torch::NoGradGuard no_grad;
  model::LoadOptions load;
  model::CausalLM lm = load_worker_model(o, load);
  const int streams = o.worker_streams;
  const bool batching = o.worker_batching == "on";
  infer::SessionOptions so;
  so.decode_step = o.decode_step == "on";
  std::vector<std::unique_ptr<infer::Session>> sessions;
  for (int i = 0; i < streams; ++i) {
    sessions.push_back(std::make_unique<infer::Session>(lm, so));
    torch::manual_seed(i);
    torch::Tensor ids = torch::randint(0, lm->config().vocab_size, {16}, torch::kInt64);
    sessions.back()->append({ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + 16});
    sessions.back()->decode(1);  // first-use costs (packing, scratch) outside the measurement
  }
  infer::DecodeBatcher batcher(streams);
  std::vector<int64_t> generated(streams, 0);
  Stopwatch clock;
  std::vector<std::thread> threads;
  for (int i = 0; i < streams; ++i)
    threads.emplace_back([&, i] {
      torch::NoGradGuard no_grad;
      infer::SamplerOptions greedy;
      greedy.temperature = 0;
      infer::Sampler sampler(greedy);
      generated[i] = static_cast<int64_t>(sessions[i]->generate(o.tokens, sampler, {}, {}, batching ? &batcher : nullptr).size());
    });
  for (auto& t : threads) t.join();
  const double seconds = clock.ms() / 1000;
  int64_t total = 0;
  for (int64_t n : generated) total += n;
  const auto stats = batcher.stats();
  return {{"streams", streams},
          {"batching", o.worker_batching},
          {"tokens", total},
          {"aggregate_tokens_per_s", total / seconds},
          {"mean_batch", stats.steps > 0 ? static_cast<double>(stats.tokens) / stats.steps : 1.0},
          {"peak_mb", peak_rss_mb()}};
}

int run_streams(const DecodeOptions& o) {
  const torch::Device device = o.device.resolve("bench decode", !o.json);
  const char* dtype = dtype_name(o.dtype.resolve(o.model, "bench decode", device, !o.json));
  nlohmann::json report = {{"model", o.model}, {"threads", at::get_num_threads()}, {"dtype", dtype},
                           {"tokens", o.tokens}, {"decode_quant", o.decode_quant.name},
                           {"results", nlohmann::json::array()}};
  for (int streams : o.streams) {
    IPT_CHECK(streams > 0, "--streams must be positive, got ", streams);
    for (const char* batching : {"on", "off"}) {
      report["results"].push_back(run_worker(worker_args(o, dtype) + " --worker-streams " + std::to_string(streams) +
                                             " --worker-batching " + batching));
    }
  }
  if (o.json) {
    std::cout << report.dump(2) << std::endl;
    return 0;
  }
  std::cout << "decode streams  " << o.model << "  threads " << at::get_num_threads() << "  dtype " << dtype
            << "  decode-quant " << o.decode_quant.name << "  tokens per stream " << o.tokens << "\n\n"
            << "| streams | batching | aggregate tok/s | mean batch | vs one stream | batching on/off |\n"
            << "|--:|:-:|--:|--:|--:|--:|\n";
  const auto& r = report["results"];
  const double one = r[0]["aggregate_tokens_per_s"].get<double>();
  for (size_t i = 0; i < r.size(); ++i) {
    const double rate = r[i]["aggregate_tokens_per_s"].get<double>();
    std::cout << "| " << r[i]["streams"].get<int>() << " | " << r[i]["batching"].get<std::string>() << " | "
              << std::fixed << std::setprecision(1) << rate << " | " << std::setprecision(2)
              << r[i]["mean_batch"].get<double>() << " | " << rate / one << " | ";
    if (i % 2 == 1) std::cout << r[i - 1]["aggregate_tokens_per_s"].get<double>() / rate;
    std::cout << " |\n";
  }
  return 0;
}

int run(const DecodeOptions& o) {
  IPT_CHECK(o.tokens > 0, "--tokens must be > 0, got ", o.tokens);
  if (o.worker_streams > 0) {
    std::cout << streams_worker(o).dump() << std::endl;
    return 0;
  }
  if (!o.streams.empty()) return run_streams(o);
  if (o.worker_context > 0) {
    std::cout << worker(o).dump() << std::endl;
    return 0;
  }
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  const torch::Device device = o.device.resolve("bench decode", !o.json);  // the workers inherit it
  const char* dtype = dtype_name(o.dtype.resolve(o.model, "bench decode", device, !o.json));
  nlohmann::json report = {{"model", o.model}, {"threads", at::get_num_threads()}, {"dtype", dtype}, {"tokens", o.tokens},
                           {"decode_quant", o.decode_quant.name}, {"decode_step", o.decode_step},
                           {"results", nlohmann::json::array()}};
  for (int64_t context : o.contexts) {
    IPT_CHECK(context > 0, "--contexts must be positive");
    for (int ttt : has_ttt ? std::vector<int>{1, 0} : std::vector<int>{0}) {
      report["results"].push_back(run_worker(worker_args(o, dtype) + " --worker-context " + std::to_string(context) +
                                             " --worker-ttt " + std::to_string(ttt)));
    }
  }
  if (o.json) {
    std::cout << report.dump(2) << std::endl;
    return 0;
  }
  std::cout << "decode  " << o.model << "  threads " << at::get_num_threads() << "  dtype " << dtype << "  decode-quant "
            << o.decode_quant.name << "  decode-step " << o.decode_step << "  tokens " << o.tokens << "\n\n"
            << "| context | TTT | decode tok/s | updates while decoding | prefill tok/s | peak MB | TTT/no-TTT decode |\n"
            << "|--------:|:---:|-------------:|------:|--------------:|--------:|-----:|\n";
  const auto& r = report["results"];
  for (size_t i = 0; i < r.size(); ++i) {
    std::cout << "| " << std::setw(7) << r[i]["context"].get<int64_t>() << " | " << (r[i]["ttt"].get<bool>() ? "yes" : "no ")
              << " | " << std::fixed << std::setprecision(1) << std::setw(12) << r[i]["decode_tokens_per_s"].get<double>()
              << " | " << std::setw(5) << r[i]["decode_updates"].get<int64_t>() << " | " << std::setprecision(0)
              << std::setw(13) << r[i]["prefill_tokens_per_s"].get<double>() << " | " << std::setw(7)
              << r[i]["peak_mb"].get<double>() << " | ";
    if (!r[i]["ttt"].get<bool>() && i > 0 && r[i - 1]["ttt"].get<bool>())
      std::cout << std::setprecision(3)
                << r[i - 1]["decode_tokens_per_s"].get<double>() / r[i]["decode_tokens_per_s"].get<double>();
    std::cout << " |\n";
  }
  return 0;
}

Register bench_decode("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<DecodeOptions>();
  CLI::App* cmd = parent.add_subcommand("decode", "decode tokens/s after each context length, with and without TTT");
  add_model_option(cmd, o->model);
  o->dtype.add_to(cmd);
  o->decode_quant.add_to(cmd);
  cmd->add_option("--decode-step", o->decode_step,
                  "on: tokens through the fused single-token step (default); off: the sequence path, for comparison")
      ->check(CLI::IsMember({"on", "off"}));
  o->device.add_to(cmd);
  cmd->add_option("--contexts", o->contexts, "prompt lengths before decoding (default 1024,8192)")->delimiter(',');
  cmd->add_option("--tokens", o->tokens, "tokens decoded per measurement (default 64)");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--streams", o->streams,
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
