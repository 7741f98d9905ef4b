#pragma once
// Per-token negative log-likelihood of one token sequence: the primitive behind `ipt score`,
// perplexity evaluation and context-parallel scoring. With a communicator the sequence is split
// across its ranks (context parallelism, parallel/context_parallel.h): every rank computes its
// slice, and the sums are combined, so every rank returns the same result as one process would.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <vector>

#include "ipt/parallel/communicator.h"
#include "ipt/model/decoder.h"

namespace ipt::model {

struct ScoreResult {
  int64_t tokens = 0;        // predicted positions: ids.size() - 1
  double total_nll = 0;      // sum over positions, in nats
  double mean_nll() const { return tokens ? total_nll / tokens : 0.0; }
  torch::Tensor token_nll;   // [tokens] float32 (only when asked for)
  int64_t slice_begin = 0, slice_end = 0;  // rows this rank computed (the whole sequence without CP)
  // With ScoreOptions::trace_fast_weights: per TTT layer, ||W - W0||_F / ||W0||_F after each update.
  std::map<int64_t, std::vector<double>> fast_weight_drift;
};

struct ScoreOptions {
  bool per_token = false;
  parallel::Communicator* context_parallel = nullptr;  // split the sequence over its ranks
  bool trace_fast_weights = false;  // fill ScoreResult::fast_weight_drift (one process, TTT model)
};

// ids: at least two tokens. No gradient.
ScoreResult score_tokens(CausalLM& lm, const std::vector<int64_t>& ids, const ScoreOptions& options = {});

}  // namespace ipt::model
