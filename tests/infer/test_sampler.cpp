// Sampler semantics: greedy, top-k, top-p, min-p, temperature, repeat penalty, seeds.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "ipt/common/error.h"
#include "ipt/infer/sampler.h"

using namespace ipt;
using infer::Sampler;
using infer::SamplerOptions;

namespace {

// Logits whose softmax is exactly {0.5, 0.3, 0.15, 0.05}, placed at shuffled ids.
torch::Tensor known_logits() {
  torch::Tensor l = torch::empty({4}, torch::kFloat64);
  l[2] = std::log(0.5);
  l[0] = std::log(0.3);
  l[3] = std::log(0.15);
  l[1] = std::log(0.05);
  return l;
}

SamplerOptions plain() {
  SamplerOptions o;
  o.temperature = 1.0;
  o.top_k = 0;
  o.top_p = 1.0;
  o.min_p = 0.0;
  return o;
}

std::vector<double> probs(const SamplerOptions& o, std::vector<int64_t> history = {}) {
  torch::Tensor p = Sampler(o).probabilities(known_logits(), history);
  return std::vector<double>(p.data_ptr<double>(), p.data_ptr<double>() + 4);
}

void expect_probs(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "token " << i;
}

}  // namespace

TEST(Sampler, NoFiltersIsTheSoftmax) { expect_probs(probs(plain()), {0.3, 0.05, 0.5, 0.15}); }

TEST(Sampler, TemperatureZeroIsArgmax) {
  SamplerOptions o = plain();
  o.temperature = 0.0;
  Sampler s(o);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.sample(known_logits(), {}), 2);
  torch::Tensor tie = torch::tensor({1.0, 3.0, 3.0});
  EXPECT_EQ(s.sample(tie, {}), 1);  // ties: the lowest id, as argmax
}

TEST(Sampler, TopK) {
  SamplerOptions o = plain();
  o.top_k = 2;
  expect_probs(probs(o), {0.3 / 0.8, 0.0, 0.5 / 0.8, 0.0});
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  SamplerOptions o = plain();
  o.top_p = 0.7;  // 0.5 < 0.7 <= 0.8: the two best
  expect_probs(probs(o), {0.3 / 0.8, 0.0, 0.5 / 0.8, 0.0});
  o.top_p = 0.85;  // needs the third
  expect_probs(probs(o), {0.3 / 0.95, 0.0, 0.5 / 0.95, 0.15 / 0.95});
  o.top_p = 0.1;  // at least one token
  expect_probs(probs(o), {0.0, 0.0, 1.0, 0.0});
}

TEST(Sampler, MinPIsRelativeToTheBest) {
  SamplerOptions o = plain();
  o.min_p = 0.25;  // threshold 0.125: drops 0.05 only
  expect_probs(probs(o), {0.3 / 0.95, 0.0, 0.5 / 0.95, 0.15 / 0.95});
}

TEST(Sampler, TemperatureSharpens) {
  SamplerOptions o = plain();
  o.temperature = 0.5;  // p^2 renormalised
  const double z = 0.25 + 0.09 + 0.0225 + 0.0025;
  expect_probs(probs(o), {0.09 / z, 0.0025 / z, 0.25 / z, 0.0225 / z});
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplerOptions o = plain();
  o.repeat_penalty = 2.0;
  torch::Tensor logits = torch::tensor({2.0, -1.0, 0.5}, torch::kFloat64);
  torch::Tensor got = Sampler(o).probabilities(logits, {0, 1, 1});
  torch::Tensor want = torch::softmax(torch::tensor({1.0, -2.0, 0.5}, torch::kFloat64), 0);
  EXPECT_TRUE(torch::allclose(got, want, 0, 1e-12));
  o.repeat_last_n = 1;  // only the last token (1) is penalised
  got = Sampler(o).probabilities(logits, {0, 1, 1});
  want = torch::softmax(torch::tensor({2.0, -2.0, 0.5}, torch::kFloat64), 0);
  EXPECT_TRUE(torch::allclose(got, want, 0, 1e-12));
}

TEST(Sampler, SeedsReproduceAndFrequenciesMatch) {
  SamplerOptions o = plain();
  o.seed = 42;
  Sampler a(o), b(o);
  std::vector<int> counts(4, 0);
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    int64_t x = a.sample(known_logits(), {});
    ASSERT_EQ(x, b.sample(known_logits(), {}));
    counts[x]++;
  }
  const double want[] = {0.3, 0.05, 0.5, 0.15};
  for (int i = 0; i < 4; ++i) {
    const double sigma = std::sqrt(want[i] * (1 - want[i]) / draws);
    EXPECT_NEAR(counts[i] / double(draws), want[i], 5 * sigma) << "token " << i;
  }
  o.seed = 43;
  Sampler c(o);
  int same = 0;
  Sampler a2(SamplerOptions{a.options()});
  for (int i = 0; i < 200; ++i) same += a2.sample(known_logits(), {}) == c.sample(known_logits(), {});
  EXPECT_LT(same, 200);
}

TEST(Sampler, BadOptionsAndLogits) {
  SamplerOptions o = plain();
  o.temperature = -1;
  EXPECT_THROW(Sampler{o}, Error);
  o = plain();
  o.top_p = 0.0;
  EXPECT_THROW(Sampler{o}, Error);
  o = plain();
  o.min_p = 1.5;
  EXPECT_THROW(Sampler{o}, Error);
  o = plain();
  o.repeat_penalty = 0.0;
  EXPECT_THROW(Sampler{o}, Error);
  Sampler s(plain());
  EXPECT_THROW(s.sample(torch::tensor({1.0, std::nan("")}), {}), Error);
  EXPECT_THROW(s.sample(torch::zeros({2, 2}), {}), Error);
}
