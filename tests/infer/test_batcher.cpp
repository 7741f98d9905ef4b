// Continuous batching (infer/batcher.h): generations decoding through one batcher from several
// threads give exactly the tokens each gives alone, in shared steps; errors stay with their session.
#include <gtest/gtest.h>

#include <thread>

#include "ipt/common/error.h"
#include "ipt/infer/batcher.h"
#include "ipt/infer/session.h"
#include "ipt/model/presets.h"

using namespace ipt;
using infer::DecodeBatcher;
using infer::Session;

namespace {

model::CausalLM make_model() {
  model::ModelConfig c = model::preset_config("test");
  c.ttt_mode = true;
  c.ttt_layers = {1};
  c.ttt_chunk = 4;
  model::CausalLM lm(c);
  lm->init_weights(21);
  torch::NoGradGuard no_grad;
  for (auto& p : lm->named_parameters())
    if (p.key().find("ttt_") != std::string::npos) p.value().normal_(0.0, 0.3);
  return lm;  // float32: the decode step runs
}

std::vector<int64_t> generate(Session& s, int64_t prompt_seed, int64_t n, DecodeBatcher* batcher) {
  s.append({prompt_seed % 256, (prompt_seed * 7) % 256, 3});
  infer::SamplerOptions o;
  o.temperature = 0.8;
  o.seed = static_cast<uint64_t>(prompt_seed);
  infer::Sampler sampler(o);
  return s.generate(n, sampler, {}, {}, batcher);
}

}  // namespace

TEST(DecodeBatcher, ConcurrentGenerationsEqualGenerationsAlone) {
  model::CausalLM lm = make_model();
  const int streams = 4;
  // Different lengths: streams leave at different steps; the tokens are each stream's own.
  std::vector<std::vector<int64_t>> alone(streams), together(streams);
  for (int i = 0; i < streams; ++i) {
    Session s(lm, {});
    alone[i] = generate(s, 10 + i, 12 + 3 * i, nullptr);
  }
  DecodeBatcher batcher(streams, std::chrono::milliseconds(5));
  std::vector<std::thread> threads;
  for (int i = 0; i < streams; ++i)
    threads.emplace_back([&, i] {
      Session s(lm, {});
      together[i] = generate(s, 10 + i, 12 + 3 * i, &batcher);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < streams; ++i) EXPECT_EQ(together[i], alone[i]) << "stream " << i;
  int64_t tokens = 0;
  for (const auto& t : alone) tokens += static_cast<int64_t>(t.size());
  EXPECT_EQ(batcher.stats().tokens, tokens);  // every decoded token went through a step
}

TEST(DecodeBatcher, FullBatchesWhenEveryStreamIsDecoding) {
  model::CausalLM lm = make_model();
  const int streams = 4;
  std::vector<std::vector<int64_t>> alone(streams), together(streams);
  for (int i = 0; i < streams; ++i) {
    Session s(lm, {});
    alone[i] = generate(s, 20 + i, 10, nullptr);
  }
  // Memberships held from here keep a step from starting before all four tokens wait (a step
  // starts when the batch is full, or after a minute): whatever the scheduling, every step is full.
  DecodeBatcher batcher(streams, std::chrono::seconds(60));
  for (int i = 0; i < streams; ++i) batcher.join();
  std::vector<std::thread> threads;
  for (int i = 0; i < streams; ++i)
    threads.emplace_back([&, i] {
      Session s(lm, {});
      together[i] = generate(s, 20 + i, 10, &batcher);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < streams; ++i) batcher.leave();
  for (int i = 0; i < streams; ++i) EXPECT_EQ(together[i], alone[i]) << "stream " << i;
  EXPECT_EQ(batcher.stats().tokens, 40);
  EXPECT_EQ(batcher.stats().steps, 10);
}

TEST(DecodeBatcher, AnErrorStaysWithItsSession) {
  model::CausalLM lm = make_model();
  DecodeBatcher batcher(2, std::chrono::milliseconds(50));
  Session good(lm, {}), bad(lm, {});
  good.append({1, 2});
  bad.append({1, 2});
  batcher.join();
  batcher.join();
  torch::Tensor expected;
  {
    Session reference(lm, {});
    reference.append({1, 2});
    expected = reference.decode(5);
  }
  torch::Tensor got;
  std::thread t([&] { got = batcher.decode(good, 5); });
  EXPECT_THROW(batcher.decode(bad, 1 << 20), Error);  // not a token of the vocabulary
  t.join();
  EXPECT_TRUE(torch::equal(got, expected));
  EXPECT_EQ(bad.position(), 2);  // nothing was fed to the failing session
  batcher.leave();
  batcher.leave();
  EXPECT_THROW(DecodeBatcher(0), Error);
}
