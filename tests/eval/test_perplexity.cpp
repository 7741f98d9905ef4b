// Sliding-window perplexity: the block's NLL equals the whole-window score, documents too short
// are skipped and counted, shards and in-memory ids agree, bad options are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "ipt/common/error.h"
#include "ipt/data/shards.h"
#include "ipt/eval/perplexity.h"
#include "ipt/model/presets.h"
#include "ipt/ops/loss/lm_loss.h"
#include "support/temp_dir.h"

using namespace ipt;

namespace {

// The `test` preset with TTT in layer 1 (chunk 8) and a non-zero convolution, so TTT changes scores.
model::CausalLM ttt_model() {
  model::ModelConfig c = model::preset_config("test");
  c.ttt_mode = true;
  c.ttt_layers = {1};
  c.ttt_chunk = 8;
  model::CausalLM lm(c);
  lm->init_weights(5);
  torch::NoGradGuard no_grad;
  lm->named_parameters()["model.layers.1.mlp.ttt_conv.weight"].normal_(0, 0.5);
  return lm;
}

std::vector<int64_t> random_ids(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor t = torch::randint(0, 256, {n}, torch::kInt64);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n};
}

}  // namespace

TEST(Perplexity, BlockNllEqualsTheWholeWindowScore) {
  model::CausalLM lm = ttt_model();
  torch::NoGradGuard no_grad;
  const std::vector<int64_t> window = random_ids(70, 1);
  const int64_t n = 70, block = 12;
  // What ipt score computes: every row's NLL over the whole window.
  torch::Tensor ids = torch::tensor(window).view({1, n});
  torch::Tensor hidden = lm->hidden_states(ids)[0].narrow(0, 0, n - 1);
  torch::Tensor all = ops::lm_loss(hidden, lm->head_weight(), ids[0].narrow(0, 1, n - 1).contiguous()).token_nll;
  const std::vector<double> nll = eval::block_nll(lm, window, block);
  ASSERT_EQ(nll.size(), size_t(block));
  for (int64_t i = 0; i < block; ++i) EXPECT_NEAR(nll[i], all[n - 1 - block + i].item<double>(), 1e-5) << i;
  EXPECT_THROW(eval::block_nll(lm, window, 70), Error);
}

TEST(Perplexity, SkipsShortDocumentsAndAveragesTheFinalBlock) {
  model::CausalLM lm = ttt_model();
  std::vector<std::vector<int64_t>> docs{random_ids(100, 2), random_ids(30, 3), random_ids(60, 4)};
  eval::PerplexityOptions o;
  o.contexts = {8, 40, 80};
  o.block = 16;
  const auto results = eval::sliding_window_perplexity(lm, eval::Documents::from_ids(docs), o);
  ASSERT_EQ(results.size(), 3u);
  // Context 8 needs 24 tokens: all three; 40 needs 56: two; 80 needs 96: one.
  EXPECT_EQ(results[0].docs_used, 3);
  EXPECT_EQ(results[1].docs_used, 2);
  EXPECT_EQ(results[1].docs_skipped, 1);
  EXPECT_EQ(results[2].docs_used, 1);
  EXPECT_EQ(results[2].docs_skipped, 2);
  EXPECT_EQ(results[1].tokens, 32);
  // Context 40: the mean over the final 16 tokens of documents 0 and 2, each from its last 56 tokens.
  double sum = 0;
  for (int d : {0, 2}) {
    std::vector<int64_t> tail(docs[d].end() - 56, docs[d].end());
    for (double x : eval::block_nll(lm, tail, 16)) sum += x;
  }
  EXPECT_NEAR(results[1].mean_nll(), sum / 32, 1e-9);
  EXPECT_NEAR(results[1].ppl(), std::exp(sum / 32), 1e-6);
  // Reproducible.
  EXPECT_EQ(eval::sliding_window_perplexity(lm, eval::Documents::from_ids(docs), o)[2].nll_sum, results[2].nll_sum);
  // No document long enough: NaN, not zero.
  o.contexts = {500};
  EXPECT_TRUE(std::isnan(eval::sliding_window_perplexity(lm, eval::Documents::from_ids(docs), o)[0].ppl()));
  // With same_documents every context scores only document 0 (the one long enough for 80).
  o.contexts = {8, 40, 80};
  o.same_documents = true;
  const auto same = eval::sliding_window_perplexity(lm, eval::Documents::from_ids(docs), o);
  for (const auto& r : same) EXPECT_EQ(r.docs_used, 1) << r.context;
  EXPECT_EQ(same[2].nll_sum, results[2].nll_sum);
  o.same_documents = false;
  // --docs limits the documents looked at.
  o.contexts = {8};
  o.max_documents = 2;
  EXPECT_EQ(eval::sliding_window_perplexity(lm, eval::Documents::from_ids(docs), o)[0].docs_used, 2);
}

TEST(Perplexity, ShardsGiveTheSameNumbersAsIds) {
  model::CausalLM lm = ttt_model();
  std::vector<std::vector<int64_t>> docs{random_ids(50, 6), random_ids(90, 7)};
  const auto dir = std::filesystem::temp_directory_path() / ("ipt-ppl-" + ipt::test::process_tag());
  {
    data::ShardWriter writer(dir.string(), 256, 64);
    for (const auto& d : docs) writer.add(d);
  }
  eval::PerplexityOptions o;
  o.contexts = {10, 30};
  o.block = 8;
  const auto a = eval::sliding_window_perplexity(lm, eval::Documents::from_ids(docs), o);
  const auto b = eval::sliding_window_perplexity(lm, eval::Documents::from_dataset(dir.string()), o);
  std::filesystem::remove_all(dir);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].nll_sum, b[i].nll_sum);
    EXPECT_EQ(a[i].docs_used, b[i].docs_used);
  }
}

TEST(Perplexity, TttChangesTheScoreAndBadOptionsAreRefused) {
  model::CausalLM lm = ttt_model();
  model::ModelConfig plain_config = lm->config();
  plain_config.ttt_mode = false;
  model::CausalLM plain(plain_config);
  {
    torch::NoGradGuard no_grad;
    auto dst = plain->named_parameters();
    for (const auto& p : lm->named_parameters())
      if (dst.contains(p.key())) dst[p.key()].copy_(p.value());
  }
  eval::PerplexityOptions o;
  o.contexts = {40};
  o.block = 16;
  const auto docs = eval::Documents::from_ids({random_ids(80, 8)});
  EXPECT_NE(eval::sliding_window_perplexity(lm, docs, o)[0].nll_sum, eval::sliding_window_perplexity(plain, docs, o)[0].nll_sum);

  o.contexts = {64, 32};
  EXPECT_THROW(eval::sliding_window_perplexity(lm, docs, o), Error);
  o.contexts = {32, 32};
  EXPECT_THROW(eval::sliding_window_perplexity(lm, docs, o), Error);
  o.contexts = {0, 8};
  EXPECT_THROW(eval::sliding_window_perplexity(lm, docs, o), Error);
  o.contexts = {};
  EXPECT_THROW(eval::sliding_window_perplexity(lm, docs, o), Error);
  o.contexts = {8};
  o.block = 0;
  EXPECT_THROW(eval::sliding_window_perplexity(lm, docs, o), Error);
  o.block = 8;
  EXPECT_THROW(eval::sliding_window_perplexity(lm, eval::Documents::from_ids({}), o), Error);
}
