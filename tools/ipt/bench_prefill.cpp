// ipt bench prefill: whole-sequence prefill throughput and peak memory per length, with and
// without TTT (the same weights loaded as a plain model), and with --window W also with every
// layer's attention turned into a sliding window of W at load time — the paper's efficiency
// figure. Each row runs in its own child process, so its peak memory is its own.
#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <sstream>

#include "bench_prefill_cp.h"
#include "command.h"
#include "model_flags.h"
#include "worker.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/eval/figures.h"
#include "ipt/common/stopwatch.h"
#include "ipt/model/checkpoint.h"

namespace ipt::cli {
namespace {

struct PrefillOptions {
  std::string model, plot;
  std::vector<int64_t> lengths{4096, 16384, 32768};
  int64_t up_to = 0;   // 8192, 16384, … up to this (replaces --lengths), stopping at the first that fails
  int64_t window = 0;  // also measure every layer with a sliding window of this size
  bool json = false;
  int64_t worker_length = 0;  // internal
  int worker_ttt = -1;        // internal
  int64_t worker_window = 0;  // internal
  std::vector<int> cp_sizes;  // context parallelism: processes per sequence (a table of its own)
  DtypeFlag dtype;
  DeviceFlag device;
};

nlohmann::json worker(const PrefillOptions& o) {
  torch::NoGradGuard no_grad;
  model::ModelConfig config = model::ModelConfig::load(o.model + "/config.json");
  if (o.worker_window > 0) config.layer_window.assign(config.num_hidden_layers, o.worker_window);
  model::LoadOptions load;
  load.without_ttt = o.worker_ttt == 0;
  load.config_override = &config;
  load.device = o.device.resolve("bench prefill", false);
  load.dtype = o.dtype.resolve(config, "bench prefill", load.device, false);
  model::CausalLM lm = model::load_model(o.model, load);
  const int64_t vocab = lm->config().vocab_size;
  torch::manual_seed(0);
  // Thread pools, first-use costs (and on a GPU the kernels' first launch) outside the measurement.
  lm->hidden_states(torch::randint(0, vocab, {1, 64}, torch::kInt64).to(load.device));
  torch::Tensor ids = torch::randint(0, vocab, {1, o.worker_length}, torch::kInt64).to(load.device);
  synchronize(load.device);
  reset_cuda_peak(load.device);
  Stopwatch watch;
  torch::Tensor hidden = lm->hidden_states(ids);
  torch::Tensor next = lm->logits(hidden[0][o.worker_length - 1]);  // prefill ends with the next-token logits
  synchronize(load.device);
  const double ms = watch.ms();
  nlohmann::json out = {{"length", o.worker_length}, {"ttt", o.worker_ttt == 1}, {"dtype", dtype_name(load.dtype)},
                        {"device", describe_device(load.device)}, {"window", o.worker_window},
                        {"tokens_per_s", o.worker_length / (ms / 1000)}, {"seconds", ms / 1000},
                        {"peak_mb", peak_rss_mb()}};
  if (load.device.is_cuda()) out["gpu_peak_mb"] = cuda_peak_allocated_mb(load.device);
  return out;
}

std::vector<int64_t> lengths_to_measure(const PrefillOptions& o) {
  if (o.up_to <= 0) return o.lengths;
  IPT_CHECK(o.up_to >= 8192, "bench prefill --up-to ", o.up_to, ": the figure starts at 8192 tokens");
  std::vector<int64_t> lengths;
  for (int64_t length = 8192; length <= o.up_to; length *= 2) lengths.push_back(length);
  return lengths;
}

void print_table(const nlohmann::json& report) {
  std::cout << "prefill  " << report["model"].get<std::string>() << "  threads " << report["threads"].get<int>()
            << "  dtype " << report["dtype"].get<std::string>()
            << "\n\n| length | attention | TTT | tokens/s | peak MB | TTT/no-TTT tok/s | TTT/no-TTT mem |\n"
            << "|-------:|:---|:---:|---------:|--------:|-----:|-----:|\n";
  const auto& r = report["results"];
  for (size_t i = 0; i < r.size(); ++i) {
    const int64_t window = r[i]["window"].get<int64_t>();
    std::cout << "| " << std::setw(6) << r[i]["length"].get<int64_t>() << " | "
              << (window ? "window " + std::to_string(window) : std::string("full")) << " | "
              << (r[i]["ttt"].get<bool>() ? "yes" : "no ") << " | " << std::fixed << std::setprecision(0)
              << std::setw(8) << r[i]["tokens_per_s"].get<double>() << " | " << std::setw(7)
              << r[i]["peak_mb"].get<double>() << " | ";
    // The no-TTT row follows its TTT twin (same length and attention): the ratios go on it.
    if (!r[i]["ttt"].get<bool>() && i > 0 && r[i - 1]["ttt"].get<bool>())
      std::cout << std::setprecision(3) << r[i - 1]["tokens_per_s"].get<double>() / r[i]["tokens_per_s"].get<double>()
                << " | " << r[i - 1]["peak_mb"].get<double>() / r[i]["peak_mb"].get<double>() << " |\n";
    else
      std::cout << " | |\n";
  }
  if (report.contains("stopped")) std::cout << "\n" << report["stopped"].get<std::string>() << "\n";
}

// --cp-size 1,2,4: each length prefilled by N processes (one Gloo group), with and without TTT.
int run_context_parallel(const PrefillOptions& o) {
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  nlohmann::json report = {{"model", o.model}, {"threads", at::get_num_threads()}, {"results", nlohmann::json::array()}};
  for (int64_t length : lengths_to_measure(o))
    for (int ttt : has_ttt ? std::vector<int>{1, 0} : std::vector<int>{0})
      for (int cp : o.cp_sizes) report["results"].push_back(measure_prefill_context_parallel(o.model, length, ttt, cp));
  if (o.json) {
    std::cout << report.dump(2) << std::endl;
    return 0;
  }
  std::cout << "context-parallel prefill  " << o.model << "  " << at::get_num_threads() << " threads shared by the ranks\n\n"
            << "| length | TTT | ranks | tokens/s | communication s | peak MB per rank (largest) | vs 1 rank | every rank's peak MB |\n"
            << "|-------:|:---:|------:|---------:|------:|------:|-----:|:---|\n";
  double one_rank_peak = 0;
  for (const auto& r : report["results"]) {
    if (r["cp_size"].get<int>() == 1) one_rank_peak = r["peak_mb"].get<double>();
    std::string ranks;
    for (const auto& p : r["rank_peak_mb"]) ranks += (ranks.empty() ? "" : " ") + std::to_string(std::lround(p.get<double>()));
    std::cout << "| " << std::setw(6) << r["length"].get<int64_t>() << " | " << (r["ttt"].get<bool>() ? "yes" : "no ")
              << " | " << std::setw(5) << r["cp_size"].get<int>() << " | " << std::fixed << std::setprecision(0)
              << std::setw(8) << r["tokens_per_s"].get<double>() << " | " << std::setprecision(2) << std::setw(5)
              << r["communication_seconds"].get<double>() << " | " << std::setprecision(0) << std::setw(5)
              << r["peak_mb"].get<double>() << " | " << std::setprecision(2)
              << (one_rank_peak > 0 ? r["peak_mb"].get<double>() / one_rank_peak : 0.0) << " | " << ranks << " |\n";
  }
  return 0;
}

int run(const PrefillOptions& o) {
  if (o.worker_length > 0) {
    std::cout << worker(o).dump() << std::endl;
    return 0;
  }
  if (!o.cp_sizes.empty()) {
    IPT_CHECK(o.window == 0 && o.plot.empty(), "bench prefill --cp-size measures the model as it is (no --window, --plot)");
    return run_context_parallel(o);
  }
  IPT_CHECK(o.window >= 0, "bench prefill --window must be >= 0");
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  const torch::Device device = o.device.resolve("bench prefill", !o.json);  // the workers inherit it
  const char* dtype = dtype_name(o.dtype.resolve(o.model, "bench prefill", device, !o.json));
  nlohmann::json report = {{"model", o.model}, {"threads", at::get_num_threads()}, {"dtype", dtype},
                           {"results", nlohmann::json::array()}};
  std::vector<int64_t> windows{0};
  if (o.window > 0) windows.push_back(o.window);
  for (int64_t length : lengths_to_measure(o)) {
    IPT_CHECK(length > 0, "--lengths must be positive");
    nlohmann::json rows = nlohmann::json::array();
    try {
      for (int64_t window : windows)
        for (int ttt : has_ttt ? std::vector<int>{1, 0} : std::vector<int>{0}) {
          std::ostringstream args;
          args << "bench prefill -m '" << o.model << "' --worker-length " << length << " --worker-ttt " << ttt
               << " --worker-window " << window << " --dtype " << dtype;
          rows.push_back(run_worker(args.str()));
        }
    } catch (const Error& e) {
      if (o.up_to <= 0) throw;
      // --up-to measures until a length no longer fits (the worker runs out of memory).
      report["stopped"] = "stopped at " + std::to_string(length) + " tokens: " + e.what();
      break;
    }
    for (auto& row : rows) report["results"].push_back(row);
  }
  if (!o.plot.empty()) eval::plot_report("prefill", report, o.plot);
  if (o.json) std::cout << report.dump(2) << std::endl;
  else print_table(report);
  return 0;
}

Register bench_prefill("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<PrefillOptions>();
  CLI::App* cmd = parent.add_subcommand("prefill", "prefill tokens/s and peak memory per length, with and without TTT");
  add_model_option(cmd, o->model);
  o->dtype.add_to(cmd);
  o->device.add_to(cmd);
  cmd->add_option("--lengths", o->lengths, "sequence lengths")->delimiter(',');
  cmd->add_option("--up-to", o->up_to, "lengths 8192, 16384, ... up to this one, stopping at the first that fails");
  cmd->add_option("--window", o->window, "also run with every layer's attention a sliding window of W tokens");
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
