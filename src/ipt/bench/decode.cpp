#include "ipt/bench/decode.h"

#include <torch/torch.h>

#include <iomanip>
#include <memory>
#include <sstream>
#include <thread>

#include "ipt/common/device.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/common/stopwatch.h"
#include "ipt/infer/batcher.h"
#include "ipt/infer/session.h"
#include "ipt/model/checkpoint.h"
#include "ipt/ops/quant/quant.h"

namespace ipt::bench {
namespace {

const char* dtype_name(c10::ScalarType dtype) { return dtype == torch::kBFloat16 ? "bfloat16" : "float32"; }

model::CausalLM load_decode_model(const DecodeOptions& o, const DecodeModel& m, model::LoadOptions& load) {
  load.device = m.device;
  load.dtype = m.dtype;
  if (o.decode_quant != "none") load.decode_quantization = ops::quant::parse_type(o.decode_quant);
  return model::load_model(o.model, load);
}

// What every worker command line carries besides its own flags.
std::string worker_args(const DecodeOptions& o, const std::string& dtype) {
  std::ostringstream args;
  args << "bench decode -m '" << o.model << "' --tokens " << o.tokens << " --dtype " << dtype << " --decode-quant "
       << o.decode_quant << " --decode-step " << o.decode_step;
  return args.str();
}

void print_contexts_table(const DecodeOptions& o, const nlohmann::json& report, std::ostream& out) {
  out << "decode  " << o.model << "  threads " << at::get_num_threads() << "  dtype "
      << report["dtype"].get<std::string>() << "  decode-quant " << o.decode_quant << "  decode-step " << o.decode_step
      << "  tokens " << o.tokens << "\n\n"
      << "| context | TTT | decode tok/s | updates while decoding | prefill tok/s | peak MB | TTT/no-TTT decode |\n"
      << "|--------:|:---:|-------------:|------:|--------------:|--------:|-----:|\n";
  const auto& r = report["results"];
  for (size_t i = 0; i < r.size(); ++i) {
    out << "| " << std::setw(7) << r[i]["context"].get<int64_t>() << " | " << (r[i]["ttt"].get<bool>() ? "yes" : "no ")
        << " | " << std::fixed << std::setprecision(1) << std::setw(12) << r[i]["decode_tokens_per_s"].get<double>()
        << " | " << std::setw(5) << r[i]["decode_updates"].get<int64_t>() << " | " << std::setprecision(0)
        << std::setw(13) << r[i]["prefill_tokens_per_s"].get<double>() << " | " << std::setw(7)
        << r[i]["peak_mb"].get<double>() << " | ";
    if (!r[i]["ttt"].get<bool>() && i > 0 && r[i - 1]["ttt"].get<bool>())
      out << std::setprecision(3)
          << r[i - 1]["decode_tokens_per_s"].get<double>() / r[i]["decode_tokens_per_s"].get<double>();
    out << " |\n";
  }
}

void print_streams_table(const DecodeOptions& o, const nlohmann::json& report, std::ostream& out) {
  out << "decode streams  " << o.model << "  threads " << at::get_num_threads() << "  dtype "
      << report["dtype"].get<std::string>() << "  decode-quant " << o.decode_quant << "  tokens per stream "
      << o.tokens << "\n\n"
      << "| streams | batching | aggregate tok/s | mean batch | vs one stream | batching on/off |\n"
      << "|--:|:-:|--:|--:|--:|--:|\n";
  const auto& r = report["results"];
  const double one = r[0]["aggregate_tokens_per_s"].get<double>();
  for (size_t i = 0; i < r.size(); ++i) {
    const double rate = r[i]["aggregate_tokens_per_s"].get<double>();
    out << "| " << r[i]["streams"].get<int>() << " | " << r[i]["batching"].get<std::string>() << " | " << std::fixed
        << std::setprecision(1) << rate << " | " << std::setprecision(2) << r[i]["mean_batch"].get<double>() << " | "
        << rate / one << " | ";
    if (i % 2 == 1) out << r[i - 1]["aggregate_tokens_per_s"].get<double>() / rate;
    out << " |\n";
  }
}

}  // namespace

nlohmann::json measure_decode(const DecodeOptions& o, const DecodeModel& m, int64_t context, bool ttt) {
  IPT_CHECK(o.tokens > 0, "--tokens must be > 0, got ", o.tokens);
  torch::NoGradGuard no_grad;
  model::LoadOptions load;
  model::CausalLM lm = load_decode_model(o, m, load);
  infer::SessionOptions so;
  so.ttt = ttt;
  so.decode_step = o.decode_step == "on";
  so.context = context + o.tokens + 1;
  torch::manual_seed(0);
  torch::Tensor ids = torch::randint(0, lm->config().vocab_size, {context}, torch::kInt64);
  {  // first-use costs (thread pools, allocator) outside the measurement
    infer::Session warm(lm, so);
    warm.append({ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + std::min<int64_t>(64, context)});
    for (int i = 0; i < 4; ++i) warm.decode(1);
  }
  infer::Session session(lm, so);
  synchronize(load.device);
  Stopwatch prefill;
  session.append({ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + context});
  synchronize(load.device);
  const double prefill_s = prefill.ms() / 1000;
  const int64_t updates = session.ttt_updates();
  infer::SamplerOptions greedy;
  greedy.temperature = 0;
  infer::Sampler sampler(greedy);
  Stopwatch decode;
  const auto out = session.generate(o.tokens, sampler);  // no stop tokens: exactly `tokens` steps
  const double decode_s = decode.ms() / 1000;
  return {{"context", context},
          {"dtype", dtype_name(load.dtype)},
          {"decode_quant", o.decode_quant},
          {"decode_step", o.decode_step},
          {"device", describe_device(load.device)},
          {"ttt", so.ttt},
          {"tokens", static_cast<int64_t>(out.size())},
          {"decode_tokens_per_s", out.size() / decode_s},
          {"prefill_tokens_per_s", context / prefill_s},
          {"decode_updates", session.ttt_updates() - updates},
          {"peak_mb", peak_rss_mb()}};
}

nlohmann::json measure_decode_streams(const DecodeOptions& o, const DecodeModel& m, int streams, bool batching) {
  IPT_CHECK(o.tokens > 0, "--tokens must be > 0, got ", o.tokens);
  torch::NoGradGuard no_grad;
  model::LoadOptions load;
  model::CausalLM lm = load_decode_model(o, m, load);
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
          {"batching", batching ? "on" : "off"},
          {"tokens", total},
          {"aggregate_tokens_per_s", total / seconds},
          {"mean_batch", stats.steps > 0 ? static_cast<double>(stats.tokens) / stats.steps : 1.0},
          {"peak_mb", peak_rss_mb()}};
}

nlohmann::json run_decode(const DecodeOptions& o, const std::string& dtype, const WorkerLauncher& workers) {
  IPT_CHECK(o.tokens > 0, "--tokens must be > 0, got ", o.tokens);
  nlohmann::json report = {{"model", o.model}, {"threads", at::get_num_threads()}, {"dtype", dtype},
                           {"tokens", o.tokens}, {"decode_quant", o.decode_quant},
                           {"results", nlohmann::json::array()}};
  if (!o.streams.empty()) {
    for (int streams : o.streams) {
      IPT_CHECK(streams > 0, "--streams must be positive, got ", streams);
      for (const char* batching : {"on", "off"}) {
        report["results"].push_back(workers.run(worker_args(o, dtype) + " --worker-streams " +
                                                std::to_string(streams) + " --worker-batching " + batching));
      }
    }
    return report;
  }
  report["decode_step"] = o.decode_step;
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  for (int64_t context : o.contexts) {
    IPT_CHECK(context > 0, "--contexts must be positive");
    for (int ttt : has_ttt ? std::vector<int>{1, 0} : std::vector<int>{0}) {
      report["results"].push_back(workers.run(worker_args(o, dtype) + " --worker-context " + std::to_string(context) +
                                              " --worker-ttt " + std::to_string(ttt)));
    }
  }
  return report;
}

void print_decode_table(const DecodeOptions& o, const nlohmann::json& report, std::ostream& out) {
  if (!o.streams.empty())
    print_streams_table(o, report, out);
  else
    print_contexts_table(o, report, out);
}

}  // namespace ipt::bench
