#include "ipt/eval/fast_weight_trace.h"

#include <algorithm>

#include "ipt/common/error.h"
#include "ipt/common/plot.h"
#include "ipt/model/score.h"

namespace ipt::eval {

FastWeightTrace trace_fast_weights(model::CausalLM& lm, const std::vector<int64_t>& ids, int64_t stretch) {
  IPT_CHECK(stretch > 0, "fast-weight trace: the loss stretch must be > 0 tokens, got ", stretch);
  model::ScoreOptions options;
  options.per_token = true;
  options.trace_fast_weights = true;
  model::ScoreResult scored = model::score_tokens(lm, ids, options);

  FastWeightTrace trace;
  trace.tokens = scored.tokens;
  trace.chunk_size = lm->config().ttt_chunk;
  trace.decay = lm->config().ttt_decay;
  trace.clip = lm->config().ttt_clip;
  trace.drift = std::move(scored.fast_weight_drift);
  trace.mean_nll = scored.mean_nll();
  const float* nll = scored.token_nll.data_ptr<float>();
  for (int64_t begin = 0; begin < scored.tokens; begin += stretch) {
    const int64_t end = std::min(scored.tokens, begin + stretch);
    double sum = 0;
    for (int64_t i = begin; i < end; ++i) sum += nll[i];
    trace.loss.push_back({begin, end, sum / static_cast<double>(end - begin)});
  }
  return trace;
}

nlohmann::json to_json(const FastWeightTrace& trace) {
  nlohmann::json layers = nlohmann::json::object();
  for (const auto& [layer, drift] : trace.drift) layers[std::to_string(layer)] = drift;
  nlohmann::json loss = nlohmann::json::array();
  for (const StretchLoss& s : trace.loss) loss.push_back({{"begin", s.begin}, {"end", s.end}, {"mean_nll", s.mean_nll}});
  return {{"tokens", trace.tokens},
          {"mean_nll", trace.mean_nll},
          {"ttt_chunk", trace.chunk_size},
          {"ttt_decay", trace.decay},
          {"ttt_clip", trace.clip},
          {"drift_note", "per TTT layer, ||W - W0||_F / ||W0||_F after update i, i.e. after token (i + 1) * ttt_chunk"},
          {"drift", layers},
          {"loss_per_stretch", loss}};
}

void plot_trace(const FastWeightTrace& trace, const std::string& png_path, const std::string& title) {
  PlotSpec drift;
  drift.title = title + ": fast-weight drift";
  drift.xlabel = "tokens read";
  drift.ylabel = "||W - W0|| / ||W0||";
  for (const auto& [layer, values] : trace.drift) {
    PlotSeries s{"layer " + std::to_string(layer), {}, {}};
    for (size_t i = 0; i < values.size(); ++i) {
      s.x.push_back(static_cast<double>((i + 1) * trace.chunk_size));
      s.y.push_back(values[i]);
    }
    if (!s.x.empty()) drift.series.push_back(std::move(s));
  }
  IPT_CHECK(!drift.series.empty(), "fast-weight trace: no update happened (the document is shorter than ttt_chunk ",
            trace.chunk_size, "), nothing to plot");
  PlotSpec loss;
  loss.title = title + ": loss per stretch";
  loss.xlabel = "position (stretch midpoint)";
  loss.ylabel = "mean NLL (nats/token)";
  PlotSeries s{"with TTT", {}, {}};
  for (const StretchLoss& l : trace.loss) {
    s.x.push_back(0.5 * static_cast<double>(l.begin + l.end));
    s.y.push_back(l.mean_nll);
  }
  loss.series.push_back(std::move(s));
  plot_png(std::vector<PlotSpec>{drift, loss}, png_path);
}

}  // namespace ipt::eval
