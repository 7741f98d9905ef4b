#include "bench_prefill_cp.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "command.h"
#include "model_flags.h"
#include "launch.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/parallel/context_parallel.h"
#include "ipt/common/stopwatch.h"
#include "ipt/model/checkpoint.h"

namespace ipt::cli {
namespace {

struct RankOptions {
  std::string model, out_dir;
  int64_t length = 0;
  int ttt = 1;
};

// One rank: its slice of a random sequence, timed between two barriers so that every rank
// measures the same interval.
int run_rank(const RankOptions& o) {
  torch::NoGradGuard no_grad;
  std::unique_ptr<parallel::GlooCommunicator> group = join_group_from_environment();
  model::LoadOptions load;
  load.without_ttt = o.ttt == 0;
  model::CausalLM lm = model::load_model(o.model, load);
  const model::ModelConfig& config = lm->config();
  torch::manual_seed(0);
  lm->hidden_states(torch::randint(0, config.vocab_size, {1, 64}, torch::kInt64));  // first-use costs
  torch::Tensor ids = torch::randint(0, config.vocab_size, {1, o.length}, torch::kInt64);
  const int rank = group ? group->rank() : 0, size = group ? group->size() : 1;
  const parallel::SlicePlan plan = parallel::plan_slices(o.length, {}, config.ttt_mode ? config.ttt_chunk : 0, size);
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
  const std::string path = o.out_dir + "/rank-" + std::to_string(rank) + ".json";
  std::ofstream(path) << j.dump() << "\n";
  return 0;
}

Register bench_cp_rank("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<RankOptions>();
  CLI::App* cmd = parent.add_subcommand("prefill-cp-rank", "internal: one rank of bench prefill --cp-size");
  cmd->group("");
  add_model_option(cmd, o->model);
  cmd->add_option("--length", o->length)->required()->check(CLI::PositiveNumber);
  cmd->add_option("--ttt", o->ttt)->required();
  cmd->add_option("--out", o->out_dir)->required();
  return [o] { return run_rank(*o); };
});

}  // namespace

nlohmann::json measure_prefill_context_parallel(const std::string& model, int64_t length, bool ttt, int cp_size) {
  IPT_CHECK(cp_size >= 1, "--cp-size must be >= 1");
  const auto out_dir = std::filesystem::temp_directory_path() /
                       ("ipt-prefill-cp-" + std::to_string(::getpid()) + "-" + std::to_string(length) + "-" +
                        std::to_string(cp_size) + (ttt ? "-ttt" : ""));
  std::filesystem::create_directories(out_dir);
  // Each rank gets an equal share of this process's threads (at least one).
  const int threads = std::max(1, at::get_num_threads() / cp_size);
  const std::vector<std::string> argv{parallel::current_executable(), "-t", std::to_string(threads), "bench",
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

}  // namespace ipt::cli
