#include "ipt/bench/prefill_cp.h"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>

#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/common/stopwatch.h"
#include "ipt/model/checkpoint.h"
#include "ipt/parallel/context_parallel.h"
#include "ipt/parallel/gloo.h"

namespace ipt::bench {

void measure_prefill_rank(const std::string& model, int64_t length, bool ttt, parallel::Communicator* group,
                          const std::string& out_dir) {
  torch::NoGradGuard no_grad;
  model::LoadOptions load;
  load.without_ttt = !ttt;
  model::CausalLM lm = model::load_model(model, load);
  const model::ModelConfig& config = lm->config();
  torch::manual_seed(0);
  lm->hidden_states(torch::randint(0, config.vocab_size, {1, 64}, torch::kInt64));  // first-use costs
  torch::Tensor ids = torch::randint(0, config.vocab_size, {1, length}, torch::kInt64);
  const int rank = group ? group->rank() : 0, size = group ? group->size() : 1;
  const parallel::SlicePlan plan = parallel::plan_slices(length, {}, config.ttt_mode ? config.ttt_chunk : 0, size);
  torch::Tensor token = torch::zeros({1});
  if (group) group->all_reduce_sum(token);  // start together
  Stopwatch watch;
  double communication_ms = 0;
  torch::Tensor slice = ids.narrow(1, plan.begin(rank), plan.length(rank));
  if (group) {
    parallel::TimedCommunicator timed(*group);
    {
      parallel::ContextParallelScope scope(timed, plan);
      torch::Tensor hidden = lm->hidden_states(slice);
      if (rank == size - 1) lm->logits(hidden[0][-1]);  // prefill ends with the next-token logits
    }
    communication_ms = timed.milliseconds();
    group->all_reduce_sum(token);  // the prefill is done when the slowest rank is
  } else {
    lm->logits(lm->hidden_states(slice)[0][-1]);
  }
  const double ms = watch.ms();
  nlohmann::json j = {{"rank", rank}, {"slice", plan.length(rank)}, {"seconds", ms / 1000},
                      {"communication_seconds", communication_ms / 1000}, {"peak_mb", peak_rss_mb()}};
  const std::string path = out_dir + "/rank-" + std::to_string(rank) + ".json";
  std::ofstream(path) << j.dump() << "\n";
}

nlohmann::json measure_prefill_context_parallel(const std::string& executable, const std::string& model,
                                                int64_t length, bool ttt, int cp_size) {
  IPT_CHECK(cp_size >= 1, "--cp-size must be >= 1");
  const auto out_dir = std::filesystem::temp_directory_path() /
                       ("ipt-prefill-cp-" + std::to_string(::getpid()) + "-" + std::to_string(length) + "-" +
                        std::to_string(cp_size) + (ttt ? "-ttt" : ""));
  std::filesystem::create_directories(out_dir);
  // Each rank gets an equal share of this process's threads (at least one).
  const int threads = std::max(1, at::get_num_threads() / cp_size);
  const std::vector<std::string> argv{executable, "-t", std::to_string(threads), "bench",
                                      "prefill-cp-rank", "-m", model, "--length", std::to_string(length),
                                      "--ttt", ttt ? "1" : "0", "--out", out_dir.string()};
  const int status = parallel::launch_local(cp_size, argv);
  nlohmann::json result = {{"length", length}, {"ttt", ttt}, {"cp_size", cp_size}, {"threads_per_rank", threads}};
  std::vector<double> peaks;
  double seconds = 0, communication = 0;
  for (int rank = 0; rank < cp_size; ++rank) {
    std::ifstream in(out_dir / ("rank-" + std::to_string(rank) + ".json"));
    IPT_CHECK(status == 0 && in, "bench prefill --cp-size ", cp_size, ": rank ", rank, " failed (exit status ", status, ")");
    nlohmann::json r = nlohmann::json::parse(in);
    peaks.push_back(r["peak_mb"].get<double>());
    seconds = std::max(seconds, r["seconds"].get<double>());
    communication = std::max(communication, r["communication_seconds"].get<double>());
  }
  std::filesystem::remove_all(out_dir);
  result["seconds"] = seconds;
  result["tokens_per_s"] = length / seconds;
  result["communication_seconds"] = communication;
  result["peak_mb"] = *std::max_element(peaks.begin(), peaks.end());
  result["rank_peak_mb"] = peaks;
  return result;
}

nlohmann::json run_prefill_context_parallel(const std::string& executable, const PrefillOptions& o,
                                            const std::vector<int>& cp_sizes) {
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  nlohmann::json report = {{"model", o.model}, {"threads", at::get_num_threads()}, {"results", nlohmann::json::array()}};
  for (int64_t length : prefill_lengths(o))
    for (int ttt : has_ttt ? std::vector<int>{1, 0} : std::vector<int>{0})
      for (int cp : cp_sizes)
        report["results"].push_back(measure_prefill_context_parallel(executable, o.model, length, ttt, cp));
  return report;
}

void print_prefill_context_parallel_table(const nlohmann::json& report, std::ostream& out) {
  out << "context-parallel prefill  " << report["model"].get<std::string>() << "  " << report["threads"].get<int>()
      << " threads shared by the ranks\n\n"
      << "| length | TTT | ranks | tokens/s | communication s | peak MB per rank (largest) | vs 1 rank | every rank's peak MB |\n"
      << "|-------:|:---:|------:|---------:|------:|------:|-----:|:---|\n";
  double one_rank_peak = 0;
  for (const auto& r : report["results"]) {
    if (r["cp_size"].get<int>() == 1) one_rank_peak = r["peak_mb"].get<double>();
    std::string ranks;
    for (const auto& p : r["rank_peak_mb"]) ranks += (ranks.empty() ? "" : " ") + std::to_string(std::lround(p.get<double>()));
    out << "| " << std::setw(6) << r["length"].get<int64_t>() << " | " << (r["ttt"].get<bool>() ? "yes" : "no ")
        << " | " << std::setw(5) << r["cp_size"].get<int>() << " | " << std::fixed << std::setprecision(0)
        << std::setw(8) << r["tokens_per_s"].get<double>() << " | " << std::setprecision(2) << std::setw(5)
        << r["communication_seconds"].get<double>() << " | " << std::setprecision(0) << std::setw(5)
        << r["peak_mb"].get<double>() << " | " << std::setprecision(2)
        << (one_rank_peak > 0 ? r["peak_mb"].get<double>() / one_rank_peak : 0.0) << " | " << ranks << " |\n";
  }
}

}  // namespace ipt::bench
