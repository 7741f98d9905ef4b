#include "ipt/eval/perplexity.h"

#include <cmath>
#include <limits>

#include "ipt/common/error.h"
#include "ipt/data/shards.h"
#include "ipt/ops/loss/lm_loss.h"

namespace ipt::eval {

Documents Documents::from_ids(std::vector<std::vector<int64_t>> documents) {
  Documents d;
  d.in_memory_ = std::move(documents);
  return d;
}

Documents Documents::from_dataset(const std::string& dir) {
  Documents d;
  d.dataset_ = std::make_shared<const data::Dataset>(dir);
  return d;
}

int64_t Documents::count() const {
  return dataset_ ? dataset_->documents() : static_cast<int64_t>(in_memory_.size());
}

int64_t Documents::length(int64_t doc) const {
  return dataset_ ? dataset_->document_length(doc) : static_cast<int64_t>(in_memory_.at(doc).size());
}

std::vector<int64_t> Documents::tail(int64_t doc, int64_t n) const {
  const int64_t len = length(doc);
  IPT_CHECK(n <= len, "document ", doc, " has ", len, " tokens, fewer than the ", n, " asked for");
  if (dataset_) {
    std::vector<int64_t> out(n);
    dataset_->read(doc, len - n, n, out.data());
    return out;
  }
  const auto& d = in_memory_[doc];
  return {d.end() - n, d.end()};
}

void PerplexityOptions::validate() const {
  IPT_CHECK(!contexts.empty(), "perplexity: no --contexts given");
  IPT_CHECK(block >= 1, "perplexity: --block must be >= 1 (got ", block, ")");
  IPT_CHECK(max_documents >= 0, "perplexity: --docs must be >= 0 (got ", max_documents, ")");
  for (size_t i = 0; i < contexts.size(); ++i) {
    IPT_CHECK(contexts[i] >= 1, "perplexity: contexts must be >= 1 (got ", contexts[i], ")");
    IPT_CHECK(i == 0 || contexts[i] > contexts[i - 1], "perplexity: --contexts must be strictly increasing (",
              contexts[i - 1], " then ", contexts[i], ")");
  }
}

double ContextPerplexity::mean_nll() const {
  return tokens ? nll_sum / static_cast<double>(tokens) : std::numeric_limits<double>::quiet_NaN();
}

double ContextPerplexity::ppl() const { return std::exp(mean_nll()); }

std::vector<double> block_nll(model::CausalLM& lm, const std::vector<int64_t>& window, int64_t block) {
  const int64_t n = static_cast<int64_t>(window.size());
  IPT_CHECK(block >= 1 && n > block, "block_nll: a window of ", n, " tokens cannot score a block of ", block);
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::tensor(window, torch::kInt64).view({1, n}).to(lm->device());
  torch::Tensor hidden = lm->hidden_states(ids)[0];
  // Row t predicts token t + 1: the block's tokens n-block … n-1 come from rows n-block-1 … n-2.
  torch::Tensor rows = hidden.narrow(0, n - block - 1, block);
  torch::Tensor labels = ids[0].narrow(0, n - block, block).contiguous();
  torch::Tensor nll = ops::lm_loss(rows, lm->head_weight(), labels).token_nll.to(torch::kCPU, torch::kFloat64);
  return {nll.data_ptr<double>(), nll.data_ptr<double>() + block};
}

std::vector<ContextPerplexity> sliding_window_perplexity(model::CausalLM& lm, const Documents& documents,
                                                         const PerplexityOptions& options) {
  options.validate();
  int64_t docs = documents.count();
  if (options.max_documents > 0) docs = std::min(docs, options.max_documents);
  IPT_CHECK(docs > 0, "perplexity: the data holds no documents");
  std::vector<ContextPerplexity> results;
  for (int64_t context : options.contexts) {
    ContextPerplexity r;
    r.context = context;
    const int64_t needed = (options.same_documents ? options.contexts.back() : context) + options.block;
    for (int64_t doc = 0; doc < docs; ++doc) {
      if (documents.length(doc) < needed) {
        ++r.docs_skipped;
        continue;
      }
      for (double nll : block_nll(lm, documents.tail(doc, context + options.block), options.block)) r.nll_sum += nll;
      r.tokens += options.block;
      ++r.docs_used;
    }
    results.push_back(r);
  }
  return results;
}

}  // namespace ipt::eval
