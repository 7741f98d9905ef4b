// ipt eval ppl: the paper's sliding-window perplexity (src/ipt/eval/perplexity.h), with and without
// TTT in the same run when asked, as a table, JSON or a figure.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "command.h"
#include "model_flags.h"
#include "inputs.h"
#include "ipt/common/error.h"
#include "ipt/data/prepare.h"
#include "ipt/eval/figures.h"
#include "ipt/eval/perplexity.h"
#include "ipt/common/stopwatch.h"
#include "ipt/model/checkpoint.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::cli {
namespace {

namespace fs = std::filesystem;

struct PplOptions {
  std::string model, data, tokenizer, plot;
  eval::PerplexityOptions eval;
  bool no_ttt = false, compare_no_ttt = false, json = false;
  DtypeFlag dtype;
  DeviceFlag device;
};

// Token documents from a shard dataset (a directory with meta.json) or from text files, each file
// one document tokenized with the model's tokenizer (bos first when its config asks for it).
eval::Documents load_documents(const PplOptions& o) {
  IPT_CHECK(fs::exists(o.data), "eval ppl: --data ", o.data, " does not exist");
  if (fs::is_directory(o.data) && fs::exists(fs::path(o.data) / "meta.json")) return eval::Documents::from_dataset(o.data);
  const std::string dir = o.tokenizer.empty() ? o.model : o.tokenizer;
  IPT_CHECK(fs::exists(fs::path(dir) / "tokenizer.json") || fs::is_regular_file(dir), "eval ppl: ", dir,
            " has no tokenizer.json to tokenize text with; pass --tokenizer DIR (or token shards as --data)");
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(dir);
  std::vector<std::vector<int64_t>> documents;
  for (const std::string& path : data::list_input_files({o.data})) {
    documents.push_back(encode_document(tokenizer, read_input(path)));
  }
  return eval::Documents::from_ids(std::move(documents));
}

nlohmann::json run_json(bool ttt, const std::vector<eval::ContextPerplexity>& results) {
  nlohmann::json points = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json p = {{"context", r.context}, {"tokens", r.tokens}, {"docs_used", r.docs_used},
                        {"docs_skipped", r.docs_skipped}, {"mean_nll", nullptr}, {"ppl", nullptr}};
    if (r.tokens) p["mean_nll"] = r.mean_nll(), p["ppl"] = r.ppl();
    points.push_back(p);
  }
  return {{"ttt", ttt}, {"points", points}};
}

std::string cell(const nlohmann::json& v, int precision) {
  if (v.is_null()) return "-";
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v.get<double>();
  return s.str();
}

void print_table(const nlohmann::json& report) {
  const auto& runs = report["runs"];
  std::cout << "sliding-window perplexity  " << report["model"].get<std::string>() << "  block "
            << report["block"].get<int64_t>() << " tokens  (" << std::fixed << std::setprecision(1)
            << report["seconds"].get<double>() << " s)\n\n| context | docs | skipped |";
  for (const auto& run : runs) std::cout << " ppl " << eval::run_label(run["ttt"].get<bool>()) << " |";
  if (runs.size() == 2) std::cout << " no-TTT / TTT ppl |";
  std::cout << "\n|--:|--:|--:|";
  for (size_t i = 0; i < runs.size() + (runs.size() == 2); ++i) std::cout << "--:|";
  std::cout << "\n";
  for (size_t i = 0; i < runs[0]["points"].size(); ++i) {
    const auto& p = runs[0]["points"][i];
    std::cout << "| " << p["context"].get<int64_t>() << " | " << p["docs_used"].get<int64_t>() << " | "
              << p["docs_skipped"].get<int64_t>() << " |";
    for (const auto& run : runs) std::cout << " " << cell(run["points"][i]["ppl"], 3) << " |";
    if (runs.size() == 2) {
      const auto &a = runs[0]["points"][i]["ppl"], &b = runs[1]["points"][i]["ppl"];
      std::cout << " " << (a.is_null() ? "-" : cell(b.get<double>() / a.get<double>(), 4)) << " |";
    }
    std::cout << "\n";
  }
}

int run_ppl(const PplOptions& o) {
  o.eval.validate();
  IPT_CHECK(!(o.no_ttt && o.compare_no_ttt), "eval ppl: --no-ttt and --compare-no-ttt contradict each other");
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  IPT_CHECK(has_ttt || !o.compare_no_ttt, "eval ppl --compare-no-ttt: ", o.model, " has no TTT layers");
  const eval::Documents documents = load_documents(o);
  std::vector<bool> runs;  // the TTT setting of each run, TTT first
  if (has_ttt && !o.no_ttt) runs.push_back(true);
  if (!has_ttt || o.no_ttt || o.compare_no_ttt) runs.push_back(false);
  const torch::Device device = o.device.resolve("eval ppl", !o.json);
  const torch::Dtype dtype = o.dtype.resolve(o.model, "eval ppl", device, !o.json);
  nlohmann::json report = {{"model", o.model}, {"data", o.data}, {"dtype", dtype_name(dtype)},
                           {"device", describe_device(device)}, {"block", o.eval.block},
                           {"same_documents", o.eval.same_documents},
                           {"documents", documents.count()}, {"runs", nlohmann::json::array()}};
  Stopwatch watch;
  for (bool ttt : runs) {
    model::LoadOptions load;
    load.without_ttt = !ttt;  // the same weights, fast weights never moving
    load.dtype = dtype;
    load.device = device;
    model::CausalLM lm = model::load_model(o.model, load);
    report["runs"].push_back(run_json(ttt, eval::sliding_window_perplexity(lm, documents, o.eval)));
  }
  report["seconds"] = watch.ms() / 1000;
  if (!o.plot.empty()) eval::plot_report("ppl", report, o.plot);
  if (o.json) std::cout << report.dump(2) << std::endl;
  else print_table(report);
  return 0;
}

Register eval_ppl("eval", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<PplOptions>();
  CLI::App* cmd = parent.add_subcommand("ppl", "sliding-window perplexity of each document's final block as context grows");
  add_model_option(cmd, o->model);
  o->dtype.add_to(cmd);
  o->device.add_to(cmd);
  cmd->add_option("--data", o->data, "text file or directory (one document per file), or a token shard dataset")
      ->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer for text data (default: the model's)");
  cmd->add_option("--contexts", o->eval.contexts, "context lengths before the block, increasing")->delimiter(',');
  cmd->add_option("--block", o->eval.block, "scored tokens at the end of each document");
  cmd->add_option("--docs", o->eval.max_documents, "use only the first N documents (0 = all)");
  cmd->add_flag("--same-docs", o->eval.same_documents,
               "only documents long enough for the largest context, so every point averages the same blocks");
  cmd->add_flag("--no-ttt", o->no_ttt, "only without TTT (fast weights frozen at W0)");
  cmd->add_flag("--compare-no-ttt", o->compare_no_ttt, "with and without TTT in the same run");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--plot", o->plot, "draw perplexity against context into this PNG");
  return [o] { return run_ppl(*o); };
});

}  // namespace
}  // namespace ipt::cli
