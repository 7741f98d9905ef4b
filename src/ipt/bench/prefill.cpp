#include "ipt/bench/prefill.h"

#include <torch/torch.h>

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "ipt/common/device.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/common/stopwatch.h"
#include "ipt/model/checkpoint.h"

namespace ipt::bench {

nlohmann::json measure_prefill(const PrefillRun& run) {
  torch::NoGradGuard no_grad;
  model::ModelConfig config = model::ModelConfig::load(run.model + "/config.json");
  if (run.window > 0) config.layer_window.assign(config.num_hidden_layers, run.window);
  model::LoadOptions load;
  load.without_ttt = !run.ttt;
  load.config_override = &config;
  load.device = run.device;
  load.dtype = run.dtype;
  model::CausalLM lm = model::load_model(run.model, load);
  const int64_t vocab = lm->config().vocab_size;
  torch::manual_seed(0);
  // Thread pools, first-use costs (and on a GPU the kernels' first launch) outside the measurement:
  // a warm-up prefill of the same length, as llama-bench and scripts/bench_transformers.py run one,
  // capped at 4096 tokens (beyond, first-touch costs are a small part and the warm-up a long one).
  lm->hidden_states(torch::randint(0, vocab, {1, std::min<int64_t>(run.length, 4096)}, torch::kInt64).to(load.device));
  torch::Tensor ids = torch::randint(0, vocab, {1, run.length}, torch::kInt64).to(load.device);
  synchronize(load.device);
  reset_cuda_peak(load.device);
  Stopwatch watch;
  torch::Tensor hidden = lm->hidden_states(ids);
  torch::Tensor next = lm->logits(hidden[0][run.length - 1]);  // prefill ends with the next-token logits
  synchronize(load.device);
  const double ms = watch.ms();
  nlohmann::json out = {{"length", run.length}, {"ttt", run.ttt},
                        {"dtype", load.dtype == torch::kBFloat16 ? "bfloat16" : "float32"},
                        {"device", describe_device(load.device)}, {"window", run.window},
                        {"tokens_per_s", run.length / (ms / 1000)}, {"seconds", ms / 1000},
                        {"peak_mb", peak_rss_mb()}};
  if (load.device.is_cuda()) out["gpu_peak_mb"] = cuda_peak_allocated_mb(load.device);
  return out;
}

std::vector<int64_t> prefill_lengths(const PrefillOptions& o) {
  if (o.up_to <= 0) return o.lengths;
  IPT_CHECK(o.up_to >= 8192, "bench prefill --up-to ", o.up_to, ": the figure starts at 8192 tokens");
  std::vector<int64_t> lengths;
  for (int64_t length = 8192; length <= o.up_to; length *= 2) lengths.push_back(length);
  return lengths;
}

nlohmann::json run_prefill(const PrefillOptions& o, const std::string& dtype, const WorkerLauncher& workers) {
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  nlohmann::json report = {{"model", o.model}, {"threads", at::get_num_threads()}, {"dtype", dtype},
                           {"results", nlohmann::json::array()}};
  std::vector<int64_t> windows{0};
  if (o.window > 0) windows.push_back(o.window);
  for (int64_t length : prefill_lengths(o)) {
    IPT_CHECK(length > 0, "--lengths must be positive");
    nlohmann::json rows = nlohmann::json::array();
    try {
      for (int64_t window : windows)
        for (int ttt : has_ttt ? std::vector<int>{1, 0} : std::vector<int>{0}) {
          std::ostringstream args;
          args << "bench prefill -m '" << o.model << "' --worker-length " << length << " --worker-ttt " << ttt
               << " --worker-window " << window << " --dtype " << dtype;
          rows.push_back(workers.run(args.str()));
        }
    } catch (const Error& e) {
      if (o.up_to <= 0) throw;
      // --up-to measures until a length no longer fits (the worker runs out of memory).
      report["stopped"] = "stopped at " + std::to_string(length) + " tokens: " + e.what();
      break;
    }
    for (auto& row : rows) report["results"].push_back(row);
  }
  return report;
}

void print_prefill_table(const nlohmann::json& report, std::ostream& out) {
  out << "prefill  " << report["model"].get<std::string>() << "  threads " << report["threads"].get<int>()
      << "  dtype " << report["dtype"].get<std::string>()
      << "\n\n| length | attention | TTT | tokens/s | peak MB | TTT/no-TTT tok/s | TTT/no-TTT mem |\n"
      << "|-------:|:---|:---:|---------:|--------:|-----:|-----:|\n";
  const auto& r = report["results"];
  for (size_t i = 0; i < r.size(); ++i) {
    const int64_t window = r[i]["window"].get<int64_t>();
    out << "| " << std::setw(6) << r[i]["length"].get<int64_t>() << " | "
        << (window ? "window " + std::to_string(window) : std::string("full")) << " | "
        << (r[i]["ttt"].get<bool>() ? "yes" : "no ") << " | " << std::fixed << std::setprecision(0) << std::setw(8)
        << r[i]["tokens_per_s"].get<double>() << " | " << std::setw(7) << r[i]["peak_mb"].get<double>() << " | ";
    // The no-TTT row follows its TTT twin (same length and attention): the ratios go on it.
    if (!r[i]["ttt"].get<bool>() && i > 0 && r[i - 1]["ttt"].get<bool>())
      out << std::setprecision(3) << r[i - 1]["tokens_per_s"].get<double>() / r[i]["tokens_per_s"].get<double>()
          << " | " << r[i - 1]["peak_mb"].get<double>() / r[i]["peak_mb"].get<double>() << " |\n";
    else
      out << " | |\n";
  }
  if (report.contains("stopped")) out << "\n" << report["stopped"].get<std::string>() << "\n";
}

}  // namespace ipt::bench
