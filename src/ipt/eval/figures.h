#pragma once
// The figures people expect, drawn from the JSON reports the commands print (so `ipt plot` can
// redraw saved results and `--plot` on a command draws the same picture):
//   ppl     (ipt eval ppl --json)      perplexity against context, one curve per run (TTT / no TTT)
//   ruler   (ipt eval ruler --json)    average score against length, one curve per run
//   ruler-distance (eval ruler --json) score against the needle's distance from the question
//   prefill (ipt bench prefill --json) tokens/s and peak memory against length, one curve per
//                                      (TTT, attention) pair, two panels
// A report that lacks what its kind needs is an ipt::Error naming the missing field.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "ipt/common/plot.h"

namespace ipt::eval {

const std::vector<std::string>& figure_kinds();  // ppl, ruler, ruler-distance, prefill

std::vector<PlotSpec> figure_panels(const std::string& kind, const nlohmann::json& report);

// figure_panels drawn into a PNG.
void plot_report(const std::string& kind, const nlohmann::json& report, const std::string& png_path);

// The label a run gets in every table and figure: "TTT" or "no TTT" (+ ", window W").
std::string run_label(bool ttt, int64_t window = 0);

}  // namespace ipt::eval
