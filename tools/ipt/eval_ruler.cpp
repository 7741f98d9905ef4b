// ipt eval ruler: RULER-style tasks (src/ipt/eval/ruler.h) with greedy decoding through inference
// sessions, with and without TTT in the same run when asked; a table task x length, JSON or a figure.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "command.h"
#include "model_flags.h"
#include "inputs.h"
#include "ipt/common/error.h"
#include "ipt/data/prepare.h"
#include "ipt/eval/figures.h"
#include "ipt/eval/ruler.h"
#include "ipt/common/stopwatch.h"
#include "ipt/model/checkpoint.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::cli {
namespace {

namespace fs = std::filesystem;

struct RulerCliOptions {
  std::string model, tokenizer, plot, predictions;
  std::vector<std::string> haystack{"corpus/sample"};
  eval::RulerOptions eval;
  bool no_ttt = false, compare_no_ttt = false, json = false;
  DtypeFlag dtype;
  DeviceFlag device;
};

// Scores by how far the needle sits from the question, in buckets [0, 64), [64, 128), [128, 256), …
// (samples whose answer is not in the prompt are left out), so retrieval can be read against the
// attention window whatever the lengths asked for.
nlohmann::json by_distance(const std::vector<eval::RulerSampleResult>& samples) {
  std::map<int64_t, std::pair<double, int64_t>> buckets;  // upper edge -> (score sum, count)
  for (const auto& r : samples) {
    if (r.needle_distance < 0) continue;
    int64_t upper = 64;
    while (upper <= r.needle_distance) upper *= 2;
    buckets[upper].first += r.score;
    ++buckets[upper].second;
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [upper, sum] : buckets)
    out.push_back({{"from", upper == 64 ? 0 : upper / 2}, {"to", upper}, {"score", 100.0 * sum.first / sum.second},
                   {"samples", sum.second}});
  return out;
}

nlohmann::json ruler_run_json(bool ttt, const eval::RulerReport& report, const std::vector<eval::RulerSampleResult>& samples) {
  nlohmann::json results = nlohmann::json::array(), average = nlohmann::json::array();
  for (const auto& c : report.cells)
    results.push_back({{"task", c.task}, {"length", c.length}, {"score", c.score}, {"samples", c.samples}});
  for (const auto& [length, score] : report.average) average.push_back({{"length", length}, {"score", score}});
  return {{"ttt", ttt}, {"results", results}, {"average", average}, {"by_distance", by_distance(samples)}};
}

void print_distance_table(const nlohmann::json& report) {
  std::cout << "\nby the needle's distance from the question (tokens; all tasks pooled; score %, samples)\n| distance |";
  for (const auto& run : report["runs"]) std::cout << " " << eval::run_label(run["ttt"].get<bool>()) << " |";
  std::cout << "\n|:--|";
  for (size_t i = 0; i < report["runs"].size(); ++i) std::cout << "--:|";
  std::cout << "\n";
  std::map<int64_t, std::vector<std::string>> rows;  // from -> one cell per run
  for (size_t r = 0; r < report["runs"].size(); ++r)
    for (const auto& b : report["runs"][r]["by_distance"]) {
      auto& row = rows[b["from"].get<int64_t>()];
      row.resize(report["runs"].size(), "");
      std::ostringstream cell;
      cell << std::fixed << std::setprecision(1) << b["score"].get<double>() << " (" << b["samples"].get<int64_t>() << ")";
      row[r] = cell.str();
    }
  for (const auto& [from, cells] : rows) {
    std::cout << "| " << from << "-" << (from == 0 ? 64 : 2 * from) << " |";
    for (const auto& c : cells) std::cout << " " << c << " |";
    std::cout << "\n";
  }
}

void print_ruler_table(const nlohmann::json& report) {
  const auto& runs = report["runs"];
  std::cout << "RULER-style tasks  " << report["model"].get<std::string>() << "  " << report["samples"].get<int64_t>()
            << " samples per cell, seed " << report["seed"].get<uint64_t>() << ", score = string_match_all %  ("
            << std::fixed << std::setprecision(1) << report["seconds"].get<double>() << " s)\n\n| task |";
  for (const auto& length : report["lengths"])
    for (const auto& run : runs)
      std::cout << " " << length.get<int64_t>() << (runs.size() > 1 ? " " + eval::run_label(run["ttt"].get<bool>()) : "") << " |";
  std::cout << "\n|:--|";
  for (size_t i = 0; i < report["lengths"].size() * runs.size(); ++i) std::cout << "--:|";
  std::cout << "\n";
  auto score_of = [](const nlohmann::json& list, const std::string& task, int64_t length) {
    for (const auto& r : list)
      if ((task.empty() || r["task"] == task) && r["length"] == length) return r["score"].get<double>();
    return std::nan("");
  };
  std::vector<std::string> tasks = report["tasks"];
  tasks.push_back("");  // the average row
  for (const std::string& task : tasks) {
    std::cout << "| " << (task.empty() ? "**average**" : task) << " |";
    for (const auto& length : report["lengths"])
      for (const auto& run : runs)
        std::cout << " " << std::setprecision(1)
                  << score_of(task.empty() ? run["average"] : run["results"], task, length.get<int64_t>()) << " |";
    std::cout << "\n";
  }
}

int run_ruler(const RulerCliOptions& o) {
  o.eval.validate();
  IPT_CHECK(!(o.no_ttt && o.compare_no_ttt), "eval ruler: --no-ttt and --compare-no-ttt contradict each other");
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  IPT_CHECK(has_ttt || !o.compare_no_ttt, "eval ruler --compare-no-ttt: ", o.model, " has no TTT layers");
  const std::string dir = o.tokenizer.empty() ? o.model : o.tokenizer;
  IPT_CHECK(fs::exists(fs::path(dir) / "tokenizer.json") || fs::is_regular_file(dir), "eval ruler: ", dir,
            " has no tokenizer.json; pass --tokenizer DIR");
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(dir);
  std::vector<std::string> documents;
  for (const std::string& path : data::list_input_files(o.haystack)) {
    documents.push_back(read_input(path));
  }
  const data::Haystack haystack(documents);
  model::LoadOptions load;
  load.device = o.device.resolve("eval ruler", !o.json);
  load.dtype = o.dtype.resolve(o.model, "eval ruler", load.device, !o.json);
  model::CausalLM lm = model::load_model(o.model, load);
  IPT_CHECK(lm->config().vocab_size >= static_cast<int64_t>(tokenizer.vocab_size()), "eval ruler: the tokenizer has ",
            tokenizer.vocab_size(), " ids but the model only ", lm->config().vocab_size);
  std::vector<bool> runs;  // TTT first
  if (has_ttt && !o.no_ttt) runs.push_back(true);
  if (!has_ttt || o.no_ttt || o.compare_no_ttt) runs.push_back(false);

  std::unique_ptr<std::ofstream> predictions;
  if (!o.predictions.empty()) {
    predictions = std::make_unique<std::ofstream>(o.predictions);
    IPT_CHECK(*predictions, "eval ruler: cannot write ", o.predictions);
  }
  nlohmann::json report = {{"model", o.model}, {"dtype", dtype_name(load.dtype)}, {"samples", o.eval.samples}, {"seed", o.eval.seed},
                           {"tasks", o.eval.tasks}, {"lengths", o.eval.lengths}, {"runs", nlohmann::json::array()}};
  Stopwatch watch;
  for (bool ttt : runs) {
    std::vector<eval::RulerSampleResult> samples;
    const auto on_sample = [&](const eval::RulerSampleResult& r) {
      samples.push_back(r);
      if (predictions)
        *predictions << nlohmann::json{{"ttt", ttt}, {"task", r.task}, {"length", r.length}, {"index", r.index},
                                       {"prompt_tokens", r.prompt_tokens}, {"needle_distance", r.needle_distance},
                                       {"prediction", r.prediction},
                                       {"answers", r.answers}, {"score", r.score}}
                            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                     << "\n";
    };
    const eval::RulerReport scores = eval::evaluate_ruler(
        o.eval, haystack, tokenizer, eval::session_generator(lm, ttt, lm->config().eos_token_ids), on_sample);
    report["runs"].push_back(ruler_run_json(ttt, scores, samples));
  }
  report["seconds"] = watch.ms() / 1000;
  if (!o.plot.empty()) eval::plot_report("ruler", report, o.plot);
  if (o.json) std::cout << report.dump(2) << std::endl;
  else {
    print_ruler_table(report);
    print_distance_table(report);
  }
  return 0;
}

Register eval_ruler("eval", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<RulerCliOptions>();
  CLI::App* cmd = parent.add_subcommand("ruler", "RULER-style synthetic tasks, greedy decoding, string-match score");
  add_model_option(cmd, o->model);
  o->dtype.add_to(cmd);
  o->device.add_to(cmd);
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer (default: the model's); lengths count its tokens");
  cmd->add_option("--tasks", o->eval.tasks, "tasks (default: RULER's 11; also passkey, induction)")->delimiter(',');
  cmd->add_option("--lengths", o->eval.lengths, "context lengths in tokens, answer included")->delimiter(',');
  cmd->add_option("--samples", o->eval.samples, "samples per task and length");
  cmd->add_option("--seed", o->eval.seed, "sample i uses seed + i");
  cmd->add_option("--haystack", o->haystack, "files or directories of natural text (default corpus/sample)");
  cmd->add_flag("--no-ttt", o->no_ttt, "only without TTT (fast weights frozen at W0)");
  cmd->add_flag("--compare-no-ttt", o->compare_no_ttt, "with and without TTT in the same run");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--plot", o->plot, "draw the average score against length into this PNG");
  cmd->add_option("--predictions", o->predictions, "write every sample's prediction and score (JSON lines)");
  return [o] { return run_ruler(*o); };
});

}  // namespace
}  // namespace ipt::cli
