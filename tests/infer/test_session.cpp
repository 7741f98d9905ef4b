// Inference sessions: streaming equals one forward (TTT updates crossing chunk boundaries), the
// official no-decode-update mode, sliding-window trimming, save -> load -> continue, isolation.
#include <gtest/gtest.h>

#include <filesystem>

#include "ipt/common/error.h"
#include "ipt/infer/session.h"
#include "ipt/io/safetensors.h"
#include "ipt/ops/attention/attention.h"
#include "ipt/model/presets.h"
#include "support/temp_dir.h"

using namespace ipt;
using infer::Session;
using infer::SessionOptions;

namespace {

// The `test` preset with TTT in both layers, a small chunk and random (not drop-in) TTT tensors,
// so every chunk update changes the outputs.
model::CausalLM make_model(uint64_t seed, int64_t window = 0, int64_t chunk = 5, bool decode_update = true,
                           double decay = 1.0) {
  model::ModelConfig c = model::preset_config("test");
  c.ttt_mode = true;
  c.ttt_decay = decay;
  c.ttt_layers = {0, 1};
  c.ttt_chunk = chunk;
  c.ttt_lr = 0.5;
  c.ttt_decode_update = decode_update;
  if (window > 0) c.layer_window.assign(c.num_hidden_layers, window);
  model::CausalLM lm(c);
  lm->init_weights(seed);
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed + 7);
  for (auto& p : lm->named_parameters())
    if (p.key().find("ttt_") != std::string::npos) p.value().normal_(0.0, 0.3);
  lm->to(torch::kFloat64);
  return lm;
}

std::vector<int64_t> random_tokens(int64_t n, uint64_t seed, int64_t vocab = 256) {
  torch::manual_seed(seed);
  torch::Tensor t = torch::randint(0, vocab, {n}, torch::kInt64);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n};
}

torch::Tensor whole_forward(model::CausalLM& lm, const std::vector<int64_t>& tokens) {
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::tensor(tokens, torch::kInt64).view({1, -1});
  return lm->logits(lm->hidden_states(ids))[0];
}

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

// Prompt of `prompt` tokens, then every further token fed with decode() (teacher forcing).
torch::Tensor teacher_forced(Session& s, const std::vector<int64_t>& tokens, int64_t prompt) {
  std::vector<torch::Tensor> rows{s.append({tokens.begin(), tokens.begin() + prompt}, true)};
  for (size_t t = prompt; t < tokens.size(); ++t) rows.push_back(s.decode(tokens[t]).unsqueeze(0));
  return torch::cat(rows);
}

infer::Sampler greedy() {
  infer::SamplerOptions o;
  o.temperature = 0.0;
  return infer::Sampler(o);
}

SessionOptions small_blocks() {
  SessionOptions o;
  o.prefill_chunk = 3;
  o.kv_block = 4;
  return o;
}

}  // namespace

TEST(Session, TeacherForcedDecodeEqualsOneForward) {
  model::CausalLM lm = make_model(1);
  const auto tokens = random_tokens(23, 2);
  const torch::Tensor reference = whole_forward(lm, tokens);

  Session tokenwise(lm, small_blocks());
  EXPECT_LE(rel(teacher_forced(tokenwise, tokens, 7), reference), 1e-10);
  EXPECT_EQ(tokenwise.ttt_updates(), 2 * 4);  // 23 tokens, chunk 5: four full chunks per TTT layer
  EXPECT_EQ(tokenwise.position(), 23);

  Session prefill(lm, small_blocks());  // prefill pieces of 3 across chunk boundaries of 5
  EXPECT_LE(rel(prefill.append(tokens, true), reference), 1e-10);
  EXPECT_LE(rel(prefill.last_logits(), reference[22]), 1e-10);

  // The updates matter: frozen fast weights give other logits from the first full chunk on.
  SessionOptions frozen = small_blocks();
  frozen.ttt = false;
  Session no_ttt(lm, frozen);
  torch::Tensor plain = no_ttt.append(tokens, true);
  EXPECT_LE(rel(plain.narrow(0, 0, 5), reference.narrow(0, 0, 5)), 1e-10);
  EXPECT_GT(rel(plain.narrow(0, 5, 18), reference.narrow(0, 5, 18)), 1e-4);
  EXPECT_EQ(no_ttt.ttt_updates(), 0);
}

// The decayed update (ttt_decay) streams exactly too: prefill pieces, token by token (the fused
// decode step), and after save -> load (the stream decays towards the model's W0 again).
TEST(Session, DecayedUpdatesStreamEqualOneForward) {
  model::CausalLM lm = make_model(11, 0, 5, true, 0.6);
  const auto tokens = random_tokens(27, 12);
  const torch::Tensor reference = whole_forward(lm, tokens);
  Session tokenwise(lm, small_blocks());
  EXPECT_LE(rel(teacher_forced(tokenwise, tokens, 4), reference), 1e-10);
  Session prefill(lm, small_blocks());
  EXPECT_LE(rel(prefill.append(tokens, true), reference), 1e-10);

  const std::string path = (std::filesystem::temp_directory_path() / ("ipt-decay-" + ipt::test::process_tag())).string();
  Session first(lm, small_blocks());
  torch::Tensor head = first.append({tokens.begin(), tokens.begin() + 13}, true);
  first.save(path);
  Session second = Session::load(lm, path);
  torch::Tensor tail = second.append({tokens.begin() + 13, tokens.end()}, true);
  EXPECT_LE(rel(torch::cat({head, tail}), reference), 1e-10);
  std::filesystem::remove(path);

  // The decay matters: the same weights without it give other logits after the second update.
  model::CausalLM undecayed = make_model(11, 0, 5, true, 1.0);
  EXPECT_GT(rel(whole_forward(undecayed, tokens).narrow(0, 10, 17), reference.narrow(0, 10, 17)), 1e-4);
  EXPECT_LE(rel(whole_forward(undecayed, tokens).narrow(0, 0, 10), reference.narrow(0, 0, 10)), 1e-12);
}

TEST(Session, DecodeUpdateOffIsTheOfficialBehaviour) {
  model::CausalLM lm = make_model(3);
  const auto tokens = random_tokens(23, 4);
  const torch::Tensor reference = whole_forward(lm, tokens);
  SessionOptions off = small_blocks();
  off.decode_update = false;
  Session official(lm, off);
  torch::Tensor logits = teacher_forced(official, tokens, 12);
  // The prompt's two full chunks update; nothing after: the logits agree with the always-updating
  // forward until the third chunk would have completed (position 14), then differ.
  EXPECT_EQ(official.ttt_updates(), 2 * 2);
  EXPECT_LE(rel(logits.narrow(0, 0, 15), reference.narrow(0, 0, 15)), 1e-10);
  EXPECT_GT(rel(logits.narrow(0, 15, 8), reference.narrow(0, 15, 8)), 1e-4);

  // The model's own ttt_decode_update: false is the default a session takes.
  model::CausalLM configured = make_model(3, 0, 5, false);
  Session by_config(configured, small_blocks());
  EXPECT_LE(rel(teacher_forced(by_config, tokens, 12), logits), 1e-12);
  EXPECT_EQ(by_config.ttt_updates(), 4);
}

TEST(Session, SlidingWindowTrimmingEqualsFullForward) {
  model::CausalLM lm = make_model(5, /*window=*/6);
  const auto tokens = random_tokens(40, 6);
  const torch::Tensor reference = whole_forward(lm, tokens);
  Session s(lm, small_blocks());
  EXPECT_LE(rel(teacher_forced(s, tokens, 9), reference), 1e-10);
  // Each layer keeps at most window + prefill piece + block rows of keys and values.
  const int64_t kv_row_bytes = 2 * 2 * 16 * 8;  // k and v, 2 kv heads, head_dim 16, float64
  // Two TTT layers: the fast weight and room for one chunk (5 rows) of pending Z and X rows.
  const int64_t ttt_bytes = 2 * (64 * 128) * 8 + 2 * 5 * (128 + 64) * 8;
  EXPECT_LE(s.memory_bytes(), 2 * (6 + 3 + 4) * kv_row_bytes + ttt_bytes);
}

TEST(Session, SaveLoadContinueEqualsNeverStopping) {
  model::CausalLM lm = make_model(7);
  const auto prompt = random_tokens(9, 8);
  auto sampler = greedy();
  Session straight(lm, small_blocks());
  straight.append(prompt);
  const auto expected = straight.generate(12, sampler);
  ASSERT_EQ(expected.size(), 12u);

  const std::string path = (std::filesystem::temp_directory_path() / ("ipt-session-" + ipt::test::process_tag())).string();
  {
    Session first(lm, small_blocks());
    first.append(prompt);
    auto part = first.generate(4, sampler);
    first.save(path);
    Session second = Session::load(lm, path);
    EXPECT_EQ(second.position(), first.position());
    EXPECT_EQ(second.ttt_updates(), first.ttt_updates());
    auto rest = second.generate(8, sampler);
    part.insert(part.end(), rest.begin(), rest.end());
    EXPECT_EQ(part, expected);
    EXPECT_LE(rel(second.last_logits(), straight.last_logits()), 1e-12);
  }
  model::CausalLM other = make_model(8);
  try {
    Session::load(other, path);
    ADD_FAILURE() << "loading into another model must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(Session, IsolationFromInterleavedSessions) {
  model::CausalLM lm = make_model(9);
  const torch::Tensor down_before = lm->model->layers[0]->as<model::DecoderLayer>()->mlp->down_proj->weight.clone();
  auto sampler = greedy();
  const auto prompt_a = random_tokens(8, 10), prompt_b = random_tokens(13, 11);
  Session alone(lm, small_blocks());
  alone.append(prompt_a);
  const auto expected = alone.generate(15, sampler);

  Session a(lm, small_blocks()), b(lm, small_blocks()), c(lm, small_blocks());
  b.append(prompt_b);
  a.append(prompt_a);
  c.append(prompt_a);  // the same prompt in another session must not matter either
  std::vector<int64_t> got;
  for (int i = 0; i < 15; ++i) {
    auto t = a.generate(1, sampler);
    got.insert(got.end(), t.begin(), t.end());
    b.generate(2, sampler);
    c.append(random_tokens(1, 100 + i));
  }
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(torch::equal(lm->model->layers[0]->as<model::DecoderLayer>()->mlp->down_proj->weight, down_before));
}

TEST(Session, SingleQueryAttentionEqualsBlockedKernel) {
  torch::manual_seed(12);
  for (int64_t window : {0, 1, 5, 40}) {
    for (int64_t n : {1, 7, 33}) {
      torch::Tensor q = torch::randn({1, 6, 1, 8}, torch::kFloat64);
      // The keys as a cache's prefix: rows of a larger buffer.
      torch::Tensor kbuf = torch::randn({1, 2, 50, 8}, torch::kFloat64), vbuf = torch::randn({1, 2, 50, 8}, torch::kFloat64);
      torch::Tensor k = kbuf.narrow(2, 0, n), v = vbuf.narrow(2, 0, n);
      ops::AttentionOptions o;
      o.window = window;
      torch::Tensor expected = ops::attention_reference(q, k.contiguous(), v.contiguous(), o);
      EXPECT_LE(rel(infer::single_query_attention(q, k, v, window), expected), 1e-12) << window << " " << n;
    }
  }
}

TEST(Session, BadInput) {
  model::CausalLM lm = make_model(13);
  SessionOptions small = small_blocks();
  small.context = 10;
  Session s(lm, small);
  auto sampler = greedy();
  EXPECT_THROW(s.generate(3, sampler), Error);  // nothing appended yet
  EXPECT_THROW(s.append({1, 2, 256}), Error);   // outside the vocabulary
  EXPECT_THROW(s.append({}), Error);
  EXPECT_EQ(s.position(), 0);
  s.append(random_tokens(8, 14));
  EXPECT_THROW(s.append({1, 2, 3}), Error);  // past the context of 10
  EXPECT_EQ(s.generate(5, sampler).size(), 2u);  // generation stops when the context is full
  SessionOptions bad;
  bad.ttt_clip = -1.0;
  EXPECT_THROW(Session(lm, bad), Error);
  const std::string path = (std::filesystem::temp_directory_path() / ("ipt-notsession-" + ipt::test::process_tag())).string();
  io::write_safetensors(path, {{"x", torch::zeros({2})}});
  EXPECT_THROW(Session::load(lm, path), Error);
  std::filesystem::remove(path);
}

TEST(Session, SampleVocabKeepsGeneratedIdsBelowIt) {
  model::CausalLM lm = make_model(15);
  SessionOptions o = small_blocks();
  o.sample_vocab = 10;
  infer::SamplerOptions hot;
  hot.temperature = 1.5;
  hot.top_k = 0;
  hot.top_p = 1.0;
  hot.min_p = 0.0;
  infer::Sampler sampler(hot);
  Session s(lm, o);
  s.append(random_tokens(5, 16));
  for (int64_t t : s.generate(40, sampler)) EXPECT_LT(t, 10);
  o.sample_vocab = 257;
  EXPECT_THROW(Session(lm, o), Error);
}
