#pragma once
// The drift monitor (`ipt score --trace-fast-weights`): how far each TTT layer's fast weight has
// moved from W0 after every chunk update, ||W - W0||_F / ||W0||_F, beside the loss per stretch of
// the document, so that a user sees drift before it costs them.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ipt/model/decoder.h"

namespace ipt::eval {

struct StretchLoss {
  int64_t begin = 0, end = 0;  // predicted positions [begin, end)
  double mean_nll = 0;
};

struct FastWeightTrace {
  int64_t tokens = 0;      // predicted positions
  int64_t chunk_size = 0;  // update i lands after token (i + 1) * chunk_size
  double decay = 1.0, clip = 0.0;
  std::map<int64_t, std::vector<double>> drift;  // TTT layer -> relative drift after each update
  std::vector<StretchLoss> loss;
  double mean_nll = 0;
};

// Scores `ids` (at least two tokens) with TTT on, recording the drift; `stretch` > 0 tokens per loss
// entry. Errors when the model has no TTT layers.
FastWeightTrace trace_fast_weights(model::CausalLM& lm, const std::vector<int64_t>& ids, int64_t stretch);

nlohmann::json to_json(const FastWeightTrace& trace);
// Two panels: drift against position per layer, and the loss per stretch.
void plot_trace(const FastWeightTrace& trace, const std::string& png_path, const std::string& title);

}  // namespace ipt::eval
