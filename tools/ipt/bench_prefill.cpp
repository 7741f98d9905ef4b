// ipt bench prefill: whole-sequence prefill throughput and peak memory per length, with and
// without TTT (the same weights loaded as a plain model), each in its own child process.
#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <sstream>

#include "command.h"
#include "model_flags.h"
#include "worker.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/eval/timing.h"
#include "ipt/model/checkpoint.h"

namespace ipt::cli {
namespace {

struct PrefillOptions {
  std::string model;
  std::vector<int64_t> lengths{4096, 16384, 32768};
  bool json = false;
  int64_t worker_length = 0;  // internal
  int worker_ttt = -1;        // internal
};

nlohmann::json worker(const PrefillOptions& o) {
  torch::NoGradGuard no_grad;
  model::LoadOptions load;
  load.without_ttt = o.worker_ttt == 0;
  model::CausalLM lm = model::load_model(o.model, load);
  const int64_t vocab = lm->config().vocab_size;
  torch::manual_seed(0);
  lm->hidden_states(torch::randint(0, vocab, {1, 64}, torch::kInt64));  // thread pools, first-use costs
  torch::Tensor ids = torch::randint(0, vocab, {1, o.worker_length}, torch::kInt64);
  Stopwatch watch;
  torch::Tensor hidden = lm->hidden_states(ids);
  torch::Tensor next = lm->logits(hidden[0][o.worker_length - 1]);  // prefill ends with the next-token logits
  const double ms = watch.ms();
  return {{"length", o.worker_length}, {"ttt", o.worker_ttt == 1}, {"tokens_per_s", o.worker_length / (ms / 1000)},
          {"seconds", ms / 1000}, {"peak_mb", peak_rss_mb()}};
}

int run(const PrefillOptions& o) {
  if (o.worker_length > 0) {
    std::cout << worker(o).dump() << std::endl;
    return 0;
  }
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  nlohmann::json report = {{"model", o.model}, {"threads", at::get_num_threads()}, {"results", nlohmann::json::array()}};
  for (int64_t length : o.lengths) {
    IPT_CHECK(length > 0, "--lengths must be positive");
    for (int ttt : has_ttt ? std::vector<int>{1, 0} : std::vector<int>{0}) {
      std::ostringstream args;
      args << "bench prefill -m '" << o.model << "' --worker-length " << length << " --worker-ttt " << ttt;
      report["results"].push_back(run_worker(args.str()));
    }
  }
  if (o.json) {
    std::cout << report.dump(2) << std::endl;
    return 0;
  }
  std::cout << "prefill  " << o.model << "  threads " << at::get_num_threads() << "\n\n"
            << "| length | TTT | tokens/s | peak MB | TTT/no-TTT tok/s |\n|-------:|:---:|---------:|--------:|-----:|\n";
  const auto& r = report["results"];
  for (size_t i = 0; i < r.size(); ++i) {
    std::cout << "| " << std::setw(6) << r[i]["length"].get<int64_t>() << " | " << (r[i]["ttt"].get<bool>() ? "yes" : "no ")
              << " | " << std::fixed << std::setprecision(0) << std::setw(8) << r[i]["tokens_per_s"].get<double>()
              << " | " << std::setw(7) << r[i]["peak_mb"].get<double>() << " | ";
    if (!r[i]["ttt"].get<bool>() && i > 0 && r[i - 1]["ttt"].get<bool>())
      std::cout << std::setprecision(3) << r[i - 1]["tokens_per_s"].get<double>() / r[i]["tokens_per_s"].get<double>();
    std::cout << " |\n";
  }
  return 0;
}

Register bench_prefill("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<PrefillOptions>();
  CLI::App* cmd = parent.add_subcommand("prefill", "prefill tokens/s and peak memory per length, with and without TTT");
  add_model_option(cmd, o->model);
  cmd->add_option("--lengths", o->lengths, "sequence lengths")->delimiter(',');
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--worker-length", o->worker_length)->group("");
  cmd->add_option("--worker-ttt", o->worker_ttt)->group("");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
