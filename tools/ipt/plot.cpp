// ipt plot: redraws a figure from a JSON report saved by ipt eval ppl / eval ruler / bench prefill.
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

#include "command.h"
#include "ipt/common/error.h"
#include "ipt/eval/figures.h"

namespace ipt::cli {
namespace {

struct PlotOptions {
  std::string kind, input, output;
};

int run(const PlotOptions& o) {
  std::ifstream in(o.input);
  IPT_CHECK(in, "plot: cannot read ", o.input);
  nlohmann::json report;
  try {
    report = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error("plot: " + o.input + " is not valid JSON: " + e.what());
  }
  try {
    eval::plot_report(o.kind, report, o.output);
  } catch (const Error& e) {
    throw Error("plot --kind " + o.kind + ": " + o.input + ": " + e.what());
  }
  std::cerr << "wrote " << o.output << "\n";
  return 0;
}

Register plot_command("", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<PlotOptions>();
  CLI::App* cmd = parent.add_subcommand("plot", "draw a figure (PNG) from a saved JSON report");
  cmd->add_option("--kind", o->kind, "ppl (eval ppl), ruler or ruler-distance (eval ruler) or prefill (bench prefill)")
      ->required()
      ->check(CLI::IsMember(eval::figure_kinds()));
  cmd->add_option("report", o->input, "the JSON report (what --json printed)")->required();
  cmd->add_option("-o,--output", o->output, "PNG to write")->required();
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
