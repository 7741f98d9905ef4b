// ipt: one command-line tool over the inplace-ttt library. Each subcommand lives in its own file
// and registers itself (command.h); this file only builds the parser and runs what was chosen.
#include <c10/util/Exception.h>

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>

#include "command.h"
#include "model_flags.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"

namespace ipt::cli {

std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}

static GlobalOptions g_options;
const GlobalOptions& global_options() { return g_options; }

// A --model declared by hand (not through add_model_option) would lose the shared default.
static void check_model_options(const CLI::App& cmd) {
  for (const CLI::Option* option : cmd.get_options())
    if (option->check_lname("model") && !model_options().count(option))
      throw std::logic_error("'" + cmd.get_name() + "' declares --model without add_model_option (model_flags.h)");
  for (const CLI::App* sub : cmd.get_subcommands({})) check_model_options(*sub);
}

}  // namespace ipt::cli

// libgomp reads OMP_WAIT_POLICY once, when it is loaded (before main). Its default keeps idle OpenMP
// workers spinning after every parallel region, on the cores OpenBLAS's own threads (Debian's libtorch
// multiplies with OpenBLAS's pthreads build) need next: float32 prefill and training ran at half speed,
// and on a busy machine everything did (docs/runtime.md). Unless the user chose a policy, run again
// with the passive one: same process, arguments and environment otherwise.
static void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("OMP_WAIT_POLICY");  // exec failed: go on with libgomp's default
}

int main(int argc, char** argv) {
  prefer_passive_openmp(argv);
  using namespace ipt::cli;
  CLI::App app{"ipt: In-Place Test-Time Training engine"};
  app.require_subcommand(1);
  app.add_option("-t,--threads", g_options.threads, "intra-op threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--no-malloc-tuning", g_options.no_malloc_tuning,
               "glibc's malloc defaults and libtorch's own CPU allocator, no large-block cache (for measuring what the tuning buys)");

  std::map<std::string, CLI::App*> parents{{"", &app}};
  parents["bench"] = app.add_subcommand("bench", "benchmarks (table, or one JSON object with --json)");
  parents["bench"]->require_subcommand(1);
  parents["tokenizer"] = app.add_subcommand("tokenizer", "byte-level BPE tokenizers: encode, decode, train");
  parents["tokenizer"]->require_subcommand(1);
  parents["data"] = app.add_subcommand("data", "datasets: token shards from text, synthetic long-context samples");
  parents["data"]->require_subcommand(1);
  parents["experiment"] = app.add_subcommand("experiment", "measurements from the paper's analysis (docs/RESULTS.md)");
  parents["experiment"]->require_subcommand(1);
  parents["eval"] = app.add_subcommand("eval", "evaluation: sliding-window perplexity, RULER-style tasks");
  parents["eval"]->require_subcommand(1);

  std::vector<std::pair<CLI::App*, Action>> actions;
  for (const Command& command : registry()) {
    CLI::App* parent = parents.at(command.parent);
    size_t before = parent->get_subcommands({}).size();
    Action action = command.define(*parent);
    actions.emplace_back(parent->get_subcommands({}).at(before), std::move(action));
  }

  check_model_options(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    ipt::init_runtime({g_options.threads, !g_options.no_malloc_tuning});
    for (auto& [sub, action] : actions)
      if (sub->parsed()) return action();
  } catch (const ipt::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
