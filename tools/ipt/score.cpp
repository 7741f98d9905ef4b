// ipt score: per-token negative log-likelihood of a sequence under a model, with or without TTT.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iomanip>
#include <iostream>

#include "command.h"
#include "inputs.h"
#include "launch.h"
#include "model_flags.h"
#include "ipt/common/error.h"
#include "ipt/eval/fast_weight_trace.h"
#include "ipt/common/stopwatch.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/score.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::cli {
namespace {

struct ScoreOptions {
  std::string model, ids_file, text_file, tokenizer;
  bool no_ttt = false, json = false, per_token = false;
  std::string trace_json, trace_plot;  // the drift monitor
  int64_t trace_stretch = 512;
  int cp_size = 1, nproc_per_node = 0;
  DtypeFlag dtype;
  DeviceFlag device;
};

std::vector<int64_t> read_ids(const std::string& path) {
  std::vector<int64_t> ids = parse_token_ids(read_input(path), path);
  IPT_CHECK(ids.size() >= 2, path, ": need at least two token ids to score");
  return ids;
}

// The text's ids under the given tokenizer (default: the one saved with the model), with the
// tokenizer's bos token first when its config asks for it.
std::vector<int64_t> tokenize_file(const ScoreOptions& o) {
  const std::string dir = o.tokenizer.empty() ? o.model : o.tokenizer;
  IPT_CHECK(!o.tokenizer.empty() || std::filesystem::exists(std::filesystem::path(o.model) / "tokenizer.json"),
            "score --text: the model directory ", o.model, " has no tokenizer.json; pass --tokenizer DIR");
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(dir);
  std::vector<int64_t> ids = encode_document(tokenizer, read_input(o.text_file));
  IPT_CHECK(ids.size() >= 2, o.text_file, ": need at least two tokens to score");
  return ids;
}

// --trace-fast-weights / --trace-plot: the drift monitor instead of the plain score.
int run_trace(const ScoreOptions& o, model::CausalLM& lm, const std::vector<int64_t>& ids, torch::Dtype dtype) {
  IPT_CHECK(!o.no_ttt, "score: --trace-fast-weights needs the fast weights on (drop --no-ttt)");
  const eval::FastWeightTrace trace = eval::trace_fast_weights(lm, ids, o.trace_stretch);
  nlohmann::json out = eval::to_json(trace);
  out["dtype"] = dtype_name(dtype);
  if (!o.trace_json.empty()) {
    std::ofstream file(o.trace_json);
    file << out.dump(1) << "\n";
    IPT_CHECK(file.good(), "score: cannot write ", o.trace_json);
  }
  if (!o.trace_plot.empty()) eval::plot_trace(trace, o.trace_plot, std::filesystem::path(o.model).filename().string());
  if (o.json) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::cout << std::fixed << std::setprecision(4) << "tokens " << trace.tokens << "  mean NLL " << trace.mean_nll
            << "  (TTT on; fast weights traced)\n";
  for (const auto& [layer, drift] : trace.drift)
    std::cout << "layer " << layer << ": " << drift.size() << " updates, ||W - W0|| / ||W0|| last "
              << (drift.empty() ? 0.0 : drift.back()) << ", max "
              << (drift.empty() ? 0.0 : *std::max_element(drift.begin(), drift.end())) << "\n";
  std::cout << "loss per stretch:";
  for (const eval::StretchLoss& s : trace.loss) std::cout << " " << s.mean_nll;
  std::cout << "\n";
  return 0;
}

int run(const ScoreOptions& o) {
  const bool tracing = !o.trace_json.empty() || !o.trace_plot.empty();
  IPT_CHECK(!tracing || o.cp_size == 1, "score: --trace-fast-weights runs in one process (drop --cp-size)");
  if (o.nproc_per_node > 0) {
    IPT_CHECK(o.nproc_per_node == o.cp_size, "score: --nproc-per-node ", o.nproc_per_node, " must equal --cp-size ",
              o.cp_size, " (scoring one sequence parallelises over context only)");
    return relaunch_local(o.nproc_per_node);
  }
  // Context parallelism: this process is one rank of a torchrun/Slurm-style group.
  std::unique_ptr<parallel::GlooCommunicator> group = join_group_from_environment();
  const int world = group ? group->size() : 1;
  IPT_CHECK(world == o.cp_size, "score: --cp-size ", o.cp_size, " but the group has ", world,
            " processes (launch with --nproc-per-node N, torchrun or srun)");
  std::unique_ptr<parallel::TimedCommunicator> timed;
  if (group) timed = std::make_unique<parallel::TimedCommunicator>(*group);
  torch::NoGradGuard no_grad;
  model::LoadOptions load;
  load.without_ttt = o.no_ttt;  // the same weights as a plain model: W_down never moves
  load.device = o.device.resolve("score", !o.json && (!group || group->rank() == 0));
  load.dtype = o.dtype.resolve(o.model, "score", load.device, !o.json && (!group || group->rank() == 0));
  model::CausalLM lm = model::load_model(o.model, load);
  IPT_CHECK(o.ids_file.empty() != o.text_file.empty(), "score: give exactly one of --ids FILE and --text FILE");
  std::vector<int64_t> ids = o.text_file.empty() ? read_ids(o.ids_file) : tokenize_file(o);
  if (!o.trace_json.empty() || !o.trace_plot.empty()) return run_trace(o, lm, ids, load.dtype);
  model::ScoreOptions options;
  options.per_token = o.per_token;
  options.context_parallel = timed.get();
  Stopwatch watch;
  const model::ScoreResult result = model::score_tokens(lm, ids, options);
  const double ms = watch.ms(), mean = result.mean_nll();
  if (group && group->rank() != 0) return 0;  // every rank holds the result; rank 0 prints it
  const int64_t n = result.tokens;
  if (o.json) {
    nlohmann::json out = {{"tokens", n}, {"mean_nll", mean}, {"ppl", std::exp(mean)}, {"ttt", !o.no_ttt},
                          {"dtype", dtype_name(load.dtype)}, {"seconds", ms / 1000}};
    if (timed) out["context_parallel"] = {{"ranks", world}, {"communication_seconds", timed->milliseconds() / 1000}};
    if (o.per_token) out["per_token"] = std::vector<double>(result.token_nll.data_ptr<float>(), result.token_nll.data_ptr<float>() + n);
    std::cout << out.dump() << "\n";
  } else {
    std::cout << std::fixed << std::setprecision(4) << "tokens " << n << "  mean NLL " << mean << "  ppl "
              << std::exp(mean) << "  (" << (o.no_ttt ? "TTT off" : "TTT as configured") << ", " << std::setprecision(0)
              << n / (ms / 1000) << " tok/s)\n";
    if (o.per_token)
      for (int64_t i = 0; i < n; ++i) std::cout << result.token_nll[i].item<double>() << "\n";
  }
  return 0;
}

Register score_command("", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<ScoreOptions>();
  CLI::App* cmd = parent.add_subcommand("score", "per-token negative log-likelihood of a sequence");
  add_model_option(cmd, o->model);
  o->dtype.add_to(cmd);
  o->device.add_to(cmd);
  cmd->add_option("--ids", o->ids_file, "file of whitespace-separated token ids");
  cmd->add_option("--text", o->text_file, "text file, tokenized with --tokenizer");
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer directory for --text (default: the model's)");
  cmd->add_flag("--no-ttt", o->no_ttt, "score with the fast weights frozen at W0");
  cmd->add_flag("--json", o->json, "print {\"tokens\", \"mean_nll\", \"ppl\"}");
  cmd->add_flag("--per-token", o->per_token, "also print every token's NLL");
  cmd->add_option("--trace-fast-weights", o->trace_json,
                  "drift monitor: write each TTT layer's ||W - W0|| / ||W0|| after every update and the loss per "
                  "stretch to this JSON file");
  cmd->add_option("--trace-plot", o->trace_plot, "drift monitor: draw the drift and the loss per stretch into this PNG");
  cmd->add_option("--trace-stretch", o->trace_stretch, "drift monitor: tokens per loss stretch (default 512)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--cp-size", o->cp_size, "context parallelism: split the sequence over this many processes")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--nproc-per-node", o->nproc_per_node, "launch N local ranks (with --cp-size N)")
      ->check(CLI::PositiveNumber);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
