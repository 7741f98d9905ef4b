#include "ipt/eval/figures.h"

#include <cmath>
#include <map>

#include "ipt/common/error.h"

namespace ipt::eval {

namespace {

using nlohmann::json;

// report[key], checked: present and of the expected kind, else an error saying where.
const json& field(const json& object, const std::string& key, const std::string& where, json::value_t type) {
  IPT_CHECK(object.is_object(), where, " is not a JSON object");
  auto it = object.find(key);
  IPT_CHECK(it != object.end(), where, " has no \"", key, "\"");
  const bool number = type == json::value_t::number_float;
  IPT_CHECK(number ? it->is_number() : it->type() == type, where, ".", key, " has the wrong type (", it->type_name(),
            ")");
  return *it;
}

double number(const json& object, const std::string& key, const std::string& where) {
  return field(object, key, where, json::value_t::number_float).get<double>();
}

const json& array(const json& object, const std::string& key, const std::string& where) {
  const json& a = field(object, key, where, json::value_t::array);
  IPT_CHECK(!a.empty(), where, ".", key, " is empty: nothing to plot");
  return a;
}

bool flag(const json& object, const std::string& key, const std::string& where) {
  return field(object, key, where, json::value_t::boolean).get<bool>();
}

std::vector<PlotSpec> ppl_panels(const json& report) {
  PlotSpec spec{"Sliding-window perplexity of the final block", "context (tokens)", "perplexity", true, false, {}};
  const json& runs = array(report, "runs", "report");
  for (size_t r = 0; r < runs.size(); ++r) {
    const std::string where = "runs[" + std::to_string(r) + "]";
    // A run may name its own curve ("label"), e.g. when one report gathers several models.
    PlotSeries s{runs[r].contains("label") && runs[r]["label"].is_string() ? runs[r]["label"].get<std::string>()
                                                                             : run_label(flag(runs[r], "ttt", where)),
                 {}, {}};
    const json& points = array(runs[r], "points", where);
    for (size_t i = 0; i < points.size(); ++i) {
      const std::string at = where + ".points[" + std::to_string(i) + "]";
      s.x.push_back(number(points[i], "context", at));
      // A context no document was long enough for has null ppl: a gap in the curve.
      const json& ppl = field(points[i], "ppl", at, points[i].contains("ppl") && points[i]["ppl"].is_null()
                                                          ? json::value_t::null
                                                          : json::value_t::number_float);
      s.y.push_back(ppl.is_null() ? std::nan("") : ppl.get<double>());
    }
    spec.series.push_back(s);
  }
  if (report.contains("block") && report["block"].is_number())
    spec.title += " (" + std::to_string(report["block"].get<int64_t>()) + " tokens)";
  return {spec};
}

// A score panel of an eval ruler report: one curve per run, x and score read from each entry of the
// run's `field` array.
std::vector<PlotSpec> ruler_score_panels(const json& report, PlotSpec spec, const std::string& field, const std::string& x_key) {
  spec.y_min = 0;
  spec.y_max = 100;
  const json& runs = array(report, "runs", "report");
  for (size_t r = 0; r < runs.size(); ++r) {
    const std::string where = "runs[" + std::to_string(r) + "]";
    // A run may name its own curve ("label"), e.g. when one report gathers several models.
    PlotSeries s{runs[r].contains("label") && runs[r]["label"].is_string() ? runs[r]["label"].get<std::string>()
                                                                             : run_label(flag(runs[r], "ttt", where)),
                 {}, {}};
    const json& points = array(runs[r], field, where);
    for (size_t i = 0; i < points.size(); ++i) {
      const std::string at = where + "." + field + "[" + std::to_string(i) + "]";
      s.x.push_back(number(points[i], x_key, at));
      s.y.push_back(number(points[i], "score", at));
    }
    spec.series.push_back(s);
  }
  return {spec};
}

std::vector<PlotSpec> ruler_panels(const json& report) {
  return ruler_score_panels(report, {"RULER-style tasks: average score", "context length (tokens)", "score (%)", true, false, {}},
                            "average", "length");
}

// Score against the needle's distance from the question (eval ruler's by_distance buckets, drawn at
// each bucket's upper edge).
std::vector<PlotSpec> ruler_distance_panels(const json& report) {
  return ruler_score_panels(report,
                            {"Retrieval against the needle's distance",
                             "needle distance from the question (tokens, bucket upper edge)", "score (%)", true, false, {}},
                            "by_distance", "to");
}

std::vector<PlotSpec> prefill_panels(const json& report) {
  PlotSpec speed{"Prefill throughput", "sequence length (tokens)", "tokens / s", true, false, {}};
  PlotSpec memory{"Prefill peak memory", "sequence length (tokens)", "peak resident memory (MB)", true, false, {}};
  // One curve per (TTT, window) pair, in the order they first appear.
  std::map<std::pair<bool, int64_t>, size_t> index;
  const json& results = array(report, "results", "report");
  for (size_t i = 0; i < results.size(); ++i) {
    const std::string at = "results[" + std::to_string(i) + "]";
    const bool ttt = flag(results[i], "ttt", at);
    const int64_t window = results[i].contains("window") ? static_cast<int64_t>(number(results[i], "window", at)) : 0;
    auto [it, added] = index.emplace(std::make_pair(ttt, window), speed.series.size());
    if (added) {
      speed.series.push_back({run_label(ttt, window), {}, {}});
      memory.series.push_back({run_label(ttt, window), {}, {}});
    }
    const double length = number(results[i], "length", at);
    speed.series[it->second].x.push_back(length);
    speed.series[it->second].y.push_back(number(results[i], "tokens_per_s", at));
    memory.series[it->second].x.push_back(length);
    memory.series[it->second].y.push_back(number(results[i], "peak_mb", at));
  }
  // With sliding-window curves beside them, say which curves have full attention.
  bool any_window = false;
  for (const auto& [key, i] : index) any_window |= key.second > 0;
  for (const auto& [key, i] : index)
    if (any_window && key.second == 0) {
      speed.series[i].label += ", full attention";
      memory.series[i].label += ", full attention";
    }
  return {speed, memory};
}

}  // namespace

const std::vector<std::string>& figure_kinds() {
  static const std::vector<std::string> kinds{"ppl", "ruler", "ruler-distance", "prefill"};
  return kinds;
}

std::string run_label(bool ttt, int64_t window) {
  std::string label = ttt ? "TTT" : "no TTT";
  return window > 0 ? label + ", window " + std::to_string(window) : label;
}

std::vector<PlotSpec> figure_panels(const std::string& kind, const nlohmann::json& report) {
  if (kind == "ppl") return ppl_panels(report);
  if (kind == "ruler") return ruler_panels(report);
  if (kind == "ruler-distance") return ruler_distance_panels(report);
  if (kind == "prefill") return prefill_panels(report);
  throw Error("unknown figure kind '" + kind + "' (expected ppl, ruler, ruler-distance or prefill)");
}

void plot_report(const std::string& kind, const nlohmann::json& report, const std::string& png_path) {
  plot_png(figure_panels(kind, report), png_path);
}

}  // namespace ipt::eval
