#pragma once
// Sliding-window perplexity as the paper measures it (docs/evaluation.md): for each document, a
// fixed final block of `block` tokens is scored while the context before it grows. A document of
// n tokens at context c is scored on its last c + block tokens: one forward over that window, then
// the NLL of the block's tokens, each predicted from everything before it in the window. The block
// is the same tokens at every context, so the curve shows what more context buys.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ipt/model/decoder.h"

namespace ipt::data {
class Dataset;
}

namespace ipt::eval {

// Token documents to evaluate on: tokenized text held in memory, or a shard dataset read lazily.
class Documents {
 public:
  static Documents from_ids(std::vector<std::vector<int64_t>> documents);
  static Documents from_dataset(const std::string& dir);  // a directory written by ipt data prepare

  int64_t count() const;
  int64_t length(int64_t doc) const;
  std::vector<int64_t> tail(int64_t doc, int64_t n) const;  // the last n tokens

 private:
  std::vector<std::vector<int64_t>> in_memory_;
  std::shared_ptr<const data::Dataset> dataset_;
};

struct PerplexityOptions {
  std::vector<int64_t> contexts{512, 1024, 2048, 4096};  // strictly increasing, each >= 1
  int64_t block = 256;                                   // scored tokens per document
  int64_t max_documents = 0;                             // only the first N documents (0 = all)
  // Score only documents long enough for the largest context, so every point of the curve averages
  // the same blocks (otherwise each context uses every document long enough for it).
  bool same_documents = false;
  void validate() const;                                 // throws ipt::Error naming the bad option
};

struct ContextPerplexity {
  int64_t context = 0;
  int64_t docs_used = 0, docs_skipped = 0;  // skipped: shorter than context + block
  int64_t tokens = 0;                       // scored tokens (docs_used * block)
  double nll_sum = 0;
  double mean_nll() const;  // NaN when no document was long enough
  double ppl() const;
};

// Scores every document at every context with one model (one forward per document and context).
std::vector<ContextPerplexity> sliding_window_perplexity(model::CausalLM& lm, const Documents& documents,
                                                         const PerplexityOptions& options);

// The NLL of each of the last `block` tokens of `window`, each predicted from the tokens before it
// (window.size() > block). Exposed so tests can compare it with the whole-sequence score.
std::vector<double> block_nll(model::CausalLM& lm, const std::vector<int64_t>& window, int64_t block);

}  // namespace ipt::eval
