// ipt experiment theorem1: the paper's Theorem 1 measured with the engine's operator
// (src/ipt/experiments/theorem1.h): the logit change of the correct answer after one update with
// the next-token target versus the reconstruction target, against the prediction η‖e‖².
#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <memory>

#include "command.h"
#include "ipt/experiments/theorem1.h"

namespace ipt::cli {
namespace {

nlohmann::json to_json(const experiments::TargetEffect& e) {
  return {{"correct_mean", e.correct_mean}, {"correct_std", e.correct_std},
          {"others_mean_abs", e.others_mean_abs}, {"others_max_abs", e.others_max_abs}};
}

int run_theorem1(const experiments::Theorem1Options& o, bool json) {
  experiments::Theorem1Result r = experiments::measure_theorem1(o);
  if (json) {
    nlohmann::json j = {{"vocab", o.vocab}, {"dim", o.dim}, {"hidden", o.hidden}, {"context", o.context},
                        {"lr", o.lr}, {"embed_norm", o.embed_norm}, {"trials", o.trials}, {"seed", o.seed},
                        {"predicted_correct", r.predicted_correct}, {"next_token", to_json(r.next_token)},
                        {"reconstruction", to_json(r.reconstruction)}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "Theorem 1, induction setting: vocab " << o.vocab << ", d " << o.dim << ", h " << o.hidden
            << ", context " << o.context << " (one chunk), lr " << o.lr << ", |e| " << o.embed_norm << ", "
            << o.trials << " trials\n"
            << "prediction: next-token target raises the answer's logit by lr*|e|^2 = " << r.predicted_correct
            << "; reconstruction leaves it near 0\n\n"
            << "| target         | dlogit(answer) mean | std      | mean |dlogit(other)| | max |dlogit(other)| |\n"
            << "|----------------|---------------------|----------|---------------------|--------------------|\n";
  auto row = [](const char* name, const experiments::TargetEffect& e) {
    std::cout << "| " << std::left << std::setw(14) << name << std::right << " | " << std::setw(19) << std::fixed
              << std::setprecision(4) << e.correct_mean << " | " << std::setw(8) << e.correct_std << " | "
              << std::setw(19) << e.others_mean_abs << " | " << std::setw(18) << e.others_max_abs << " |\n";
  };
  row("next token", r.next_token);
  row("reconstruction", r.reconstruction);
  return 0;
}

Register experiment_theorem1("experiment", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<experiments::Theorem1Options>();
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = parent.add_subcommand("theorem1", "Theorem 1: logit change after one update, next-token vs reconstruction target");
  cmd->add_option("--vocab", o->vocab, "distinct tokens")->check(CLI::PositiveNumber);
  cmd->add_option("--dim", o->dim, "embedding width d")->check(CLI::PositiveNumber);
  cmd->add_option("--hidden", o->hidden, "MLP activation width h")->check(CLI::PositiveNumber);
  cmd->add_option("--context", o->context, "tokens before the query (one chunk)")->check(CLI::PositiveNumber);
  cmd->add_option("--lr", o->lr, "TTT learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--embed-norm", o->embed_norm, "norm of every embedding")->check(CLI::PositiveNumber);
  cmd->add_option("--trials", o->trials, "random draws averaged")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->seed, "seed");
  cmd->add_flag("--json", *json, "one JSON object");
  return [o, json] { return run_theorem1(*o, *json); };
});

}  // namespace
}  // namespace ipt::cli
