// The single-token decode step (model/decode_step.h) against the sequence forward: every token fed
// one at a time through it must give the logits of one forward over the whole sequence, with TTT
// chunk updates crossing, sliding windows trimming, GQA, q/k norms, biases, both dtypes, quantized
// weights and any thread count.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <atomic>
#include <cstring>

#include "ipt/common/error.h"
#include "ipt/common/spin_pool.h"
#include "ipt/infer/session.h"
#include "ipt/model/decode_step.h"
#include "ipt/model/presets.h"

using namespace ipt;
using infer::Session;
using infer::SessionOptions;

namespace {

struct Shape {
  std::string arch = "qwen3";  // qwen3: q/k norms; llama (+ attention_bias): biases on q, k, v, o
  bool bias = false;
  int64_t window = 0;
  bool ttt = true;
  double decay = 1.0;  // ttt_decay
  int64_t intermediate = 0;  // 0: the preset's
};

// The `test` preset (4 query heads over 2 key/value heads) with random TTT tensors and a small
// chunk, so chunk updates happen and change the outputs.
model::CausalLM make_model(uint64_t seed, const Shape& shape, torch::Dtype dtype = torch::kFloat32) {
  model::ModelConfig c = model::preset_config("test", shape.arch);
  c.attention_bias = shape.bias;
  if (shape.ttt) {
    c.ttt_mode = true;
    c.ttt_layers = {0, 1};
    c.ttt_chunk = 5;
    c.ttt_lr = 0.5;
    c.ttt_decay = shape.decay;
  }
  if (shape.window > 0) c.layer_window.assign(c.num_hidden_layers, shape.window);
  if (shape.intermediate > 0) c.intermediate_size = shape.intermediate;
  c.validate();
  model::CausalLM lm(c);
  lm->init_weights(seed);
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed + 7);
  for (auto& p : lm->named_parameters()) {
    if (p.key().find("ttt_") != std::string::npos) p.value().normal_(0.0, 0.3);
    if (p.key().find("norm") != std::string::npos || p.key().find("bias") != std::string::npos)
      p.value().uniform_(0.5, 1.5);  // norms and biases that are not all ones / zeros
  }
  lm->to(dtype);
  return lm;
}

std::vector<int64_t> random_tokens(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor t = torch::randint(0, 256, {n}, torch::kInt64);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n};
}

torch::Tensor whole_forward(model::CausalLM& lm, const std::vector<int64_t>& tokens) {
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::tensor(tokens, torch::kInt64).view({1, -1});
  return lm->logits(lm->hidden_states(ids))[0].to(torch::kFloat64);
}

// A prompt, then every further token through decode(): the logits after each token [n, vocab].
torch::Tensor stepped(model::CausalLM& lm, const std::vector<int64_t>& tokens, int64_t prompt,
                      SessionOptions options = {}) {
  options.kv_block = 4;  // caches grow (and slide) many times
  Session s(lm, options);
  std::vector<torch::Tensor> rows{s.append({tokens.begin(), tokens.begin() + prompt}, true).to(torch::kFloat64)};
  for (size_t t = prompt; t < tokens.size(); ++t) rows.push_back(s.decode(tokens[t]).to(torch::kFloat64).unsqueeze(0));
  return torch::cat(rows);
}

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

}  // namespace

TEST(DecodeStep, Float32EqualsTheSequenceForward) {
  for (const Shape& shape : {Shape{}, Shape{"llama", true}, Shape{"qwen3", false, 6}, Shape{"llama", false, 0, false}}) {
    SCOPED_TRACE(shape.arch + (shape.bias ? " bias" : "") + " window " + std::to_string(shape.window));
    model::CausalLM lm = make_model(1, shape);
    ASSERT_TRUE(model::decode_step_supported(*lm));
    const auto tokens = random_tokens(31, 2);
    const torch::Tensor reference = whole_forward(lm, tokens);
    // Prompt of 1 (the step from the first token on) and of 7 (decoding after a prefill).
    EXPECT_LE(rel(stepped(lm, tokens, 1), reference), 2e-5);
    EXPECT_LE(rel(stepped(lm, tokens, 7), reference), 2e-5);
    // A cache longer than one attention piece (256 keys): pieces merged; the AVX-512 attention
    // (where the CPU has it) and the portable loops.
    const auto longer = random_tokens(600, 3);
    const torch::Tensor longer_reference = whole_forward(lm, longer);
    EXPECT_LE(rel(stepped(lm, longer, 520), longer_reference), 2e-5);
    model::detail::set_attention_simd(false);
    EXPECT_LE(rel(stepped(lm, longer, 520), longer_reference), 2e-5);
    EXPECT_LE(rel(stepped(lm, tokens, 1), reference), 2e-5);
    model::detail::set_attention_simd(true);
    // The sequence path of the session (decode_step off) agrees too: the two forms are one model.
    SessionOptions off;
    off.decode_step = false;
    EXPECT_LE(rel(stepped(lm, tokens, 7, off), reference), 2e-5);
  }
}

TEST(DecodeStep, TttUpdatesWhileDecodingMatter) {
  model::CausalLM lm = make_model(3, Shape{});
  const auto tokens = random_tokens(31, 4);
  SessionOptions frozen;
  frozen.decode_update = false;
  // After the prompt's one chunk, nothing updates: equal to the sequence forward until the second
  // chunk would have completed (position 9), different after.
  const torch::Tensor reference = whole_forward(lm, tokens);
  const torch::Tensor official = stepped(lm, tokens, 6, frozen);
  EXPECT_LE(rel(official.narrow(0, 0, 10), reference.narrow(0, 0, 10)), 2e-5);
  EXPECT_GT(rel(official.narrow(0, 10, 21), reference.narrow(0, 10, 21)), 1e-3);
  SessionOptions sequence_path = frozen;
  sequence_path.decode_step = false;
  EXPECT_LE(rel(official, stepped(lm, tokens, 6, sequence_path)), 2e-5);
}

// The decayed update (ttt_decay) through the fused step: each completed chunk's update pulls the
// fast weight back towards W0 exactly as the sequence forward does.
TEST(DecodeStep, DecayedUpdatesEqualTheSequenceForward) {
  Shape decayed;
  decayed.decay = 0.6;
  model::CausalLM lm = make_model(5, decayed);
  const auto tokens = random_tokens(31, 6);
  const torch::Tensor reference = whole_forward(lm, tokens);
  EXPECT_LE(rel(stepped(lm, tokens, 1), reference), 2e-5);
  EXPECT_LE(rel(stepped(lm, tokens, 7), reference), 2e-5);
  model::CausalLM undecayed = make_model(5, Shape{});  // same weights: the decay must show
  EXPECT_GT(rel(stepped(undecayed, tokens, 7).narrow(0, 10, 21), reference.narrow(0, 10, 21)), 1e-3);
}

TEST(DecodeStep, ThreadCountDoesNotChangeTheNumbers) {
  // Without TTT every number comes from the step: threads split rows and heads, never a sum, so
  // 1 and 2 threads agree bit for bit. With TTT, chunk updates run libtorch GEMMs, whose blocking
  // may follow the thread count (libtorch 2.x): equal to rounding.
  model::CausalLM plain = make_model(5, Shape{"qwen3", false, 6, false});
  model::CausalLM ttt = make_model(5, Shape{"qwen3", false, 6});
  const auto tokens = random_tokens(20, 6);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const torch::Tensor plain_one = stepped(plain, tokens, 1), ttt_one = stepped(ttt, tokens, 1);
  at::set_num_threads(std::max(2, threads));
  const torch::Tensor plain_two = stepped(plain, tokens, 1), ttt_two = stepped(ttt, tokens, 1);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(plain_one, plain_two));
  EXPECT_LE(rel(ttt_one, ttt_two), 1e-5);
}

TEST(DecodeStep, BFloat16FollowsTheSequenceForward) {
  model::CausalLM lm = make_model(7, Shape{});
  model::CausalLM reference_model = make_model(7, Shape{});  // the float32 twin
  lm->to(torch::kBFloat16);
  const auto tokens = random_tokens(31, 8);
  const torch::Tensor exact = whole_forward(reference_model, tokens);
  const torch::Tensor step = stepped(lm, tokens, 1);
  const torch::Tensor sequence = whole_forward(lm, tokens);
  // bf16 weights and caches: both forms are a few bf16 roundings away from float32, the step
  // (float32 activations) no further than the sequence forward (bf16 activations).
  EXPECT_LE(rel(step, exact), 0.03);
  EXPECT_LE(rel(step, exact), 1.5 * rel(sequence, exact) + 1e-3);
}

TEST(DecodeStep, QuantizedWeightsStayCloseAndRepackOnChange) {
  model::CausalLM lm = make_model(9, Shape{"llama", true});
  const auto tokens = random_tokens(25, 10);
  const torch::Tensor exact = whole_forward(lm, tokens);
  for (auto type : {ops::quant::Type::kQ8_0, ops::quant::Type::kQ4_1, ops::quant::Type::kQ4_0}) {
    SCOPED_TRACE(ops::quant::type_name(type));
    lm->set_decode_quantization(type);
    EXPECT_EQ(lm->decode_weights()->type, type);
    const double error = rel(stepped(lm, tokens, 1), exact);
    // 8-bit weights are within a percent; 4-bit ones within a few (the test model's weights are
    // Gaussian, the hardest case for 16 levels).
    EXPECT_LE(error, type == ops::quant::Type::kQ8_0 ? 0.01 : 0.15);
    EXPECT_GT(error, 1e-6);  // it did run quantized
  }
  lm->set_decode_quantization(std::nullopt);
  auto packed = lm->decode_weights();
  EXPECT_EQ(packed->type, ops::quant::Type::kF32);
  EXPECT_EQ(lm->decode_weights().get(), packed.get());  // cached while nothing changes
  {
    torch::NoGradGuard no_grad;
    lm->named_parameters()["model.layers.1.mlp.up_proj.weight"].mul_(1.5);
  }
  EXPECT_NE(lm->decode_weights().get(), packed.get());  // an in-place change repacks
  EXPECT_LE(rel(stepped(lm, tokens, 1), whole_forward(lm, tokens)), 2e-5);
  EXPECT_THROW(lm->set_decode_quantization(ops::quant::Type::kBF16), Error);
}

// A width that is not whole blocks keeps that matrix in the dtype's type, and says so: the down
// projections of an MLP 40 wide stay f32 (listed), everything else is q8_0, and decoding still
// follows the sequence forward.
TEST(DecodeStep, MatricesWithoutWholeBlocksStayUnquantizedAndAreListed) {
  Shape shape;
  shape.intermediate = 40;
  model::CausalLM lm = make_model(21, shape);
  const auto tokens = random_tokens(12, 22);
  lm->set_decode_quantization(ops::quant::Type::kQ8_0);
  const auto packed = lm->decode_weights();
  ASSERT_EQ(packed->unquantized.size(), packed->layers.size());
  EXPECT_EQ(packed->unquantized[0], "model.layers.0.mlp.down_proj.weight [" + std::to_string(lm->config().hidden_size) +
                                        " x 40]");
  for (const auto& layer : packed->layers) {
    EXPECT_EQ(layer.down.type(), ops::quant::Type::kF32);
    EXPECT_EQ(layer.up.type(), ops::quant::Type::kQ8_0);
  }
  EXPECT_LE(rel(stepped(lm, tokens, 1), whole_forward(lm, tokens)), 0.01);
  lm->set_decode_quantization(std::nullopt);
  EXPECT_TRUE(lm->decode_weights()->unquantized.empty());  // nothing falls back in the dtype's own type
}

// A GGUF imported at float32 holds its blocks' exact values: packing them again for decode gives
// back the file's own blocks, so `--dtype float32 --decode-quant <the file's type>` decodes with the
// weights llama.cpp multiplies.
TEST(DecodeStep, RequantizingDequantizedBlocksGivesTheSameBlocks) {
  torch::manual_seed(11);
  const int64_t rows = 7, cols = 96;
  torch::Tensor W = torch::randn({rows, cols}, torch::kFloat32);
  W.narrow(1, 32, 32).mul_(1e-3);  // blocks of very different scales
  W.narrow(1, 64, 32).abs_();      // a block without negative values
  for (auto type : {ops::quant::Type::kQ8_0, ops::quant::Type::kQ4_0, ops::quant::Type::kQ4_1}) {
    SCOPED_TRACE(ops::quant::type_name(type));
    const ops::quant::Matrix first = ops::quant::Matrix::quantize(W.data_ptr<float>(), rows, cols, type);
    std::vector<float> values(rows * cols);
    for (int64_t r = 0; r < rows; ++r) first.dequantize_row_to(r, &values[r * cols]);
    const ops::quant::Matrix again = ops::quant::Matrix::quantize(values.data(), rows, cols, type);
    ASSERT_EQ(first.bytes(), again.bytes());
    EXPECT_EQ(std::memcmp(first.data(), again.data(), first.bytes()), 0);
  }
}

// Continuous batching: sessions at different positions, with and without TTT, frozen or updating,
// stepped together give exactly what each gives alone (every row's arithmetic is the same).
// Batched and alone are bit-identical with float32 weights and with every quantized type (the
// batched kernels unpack a row once for all the sequences and must add up exactly as matvec).
TEST(DecodeStep, BatchedSessionsEqualSessionsAlone) {
  model::CausalLM lm = make_model(13, Shape{});
  const auto tokens = random_tokens(340, 14);
  for (std::optional<ops::quant::Type> type : std::vector<std::optional<ops::quant::Type>>{
           std::nullopt, ops::quant::Type::kQ8_0, ops::quant::Type::kQ4_1, ops::quant::Type::kQ4_0}) {
    SCOPED_TRACE(type ? ops::quant::type_name(*type) : "float32");
    lm->set_decode_quantization(type);
    std::vector<SessionOptions> options(3);
    options[1].ttt = false;
    options[2].decode_update = false;
    const std::vector<int64_t> prompts{1, 300, 9};  // one longer than an attention piece (256 keys)
    std::vector<std::unique_ptr<Session>> alone, together;
    for (size_t i = 0; i < options.size(); ++i) {
      options[i].kv_block = 4;
      for (auto* list : {&alone, &together}) {
        list->push_back(std::make_unique<Session>(lm, options[i]));
        list->back()->append({tokens.begin(), tokens.begin() + prompts[i]});
      }
    }
    for (int64_t step = 0; step < 25; ++step) {
      std::vector<Session*> batch;
      std::vector<int64_t> next;
      for (size_t i = 0; i < together.size(); ++i) {
        batch.push_back(together[i].get());
        next.push_back(tokens[prompts[i] + step]);
      }
      const auto batched = Session::decode_batch(batch, next);
      for (size_t i = 0; i < alone.size(); ++i)
        ASSERT_TRUE(torch::equal(batched[i], alone[i]->decode(next[i]))) << "session " << i << " step " << step;
    }
    for (size_t i = 0; i < alone.size(); ++i) EXPECT_EQ(alone[i]->ttt_updates(), together[i]->ttt_updates());
    EXPECT_GT(together[0]->ttt_updates(), together[2]->ttt_updates());  // updating vs frozen after the prompt
  }
  lm->set_decode_quantization(std::nullopt);
  std::vector<std::unique_ptr<Session>> together;
  for (int i = 0; i < 2; ++i) {
    together.push_back(std::make_unique<Session>(lm, SessionOptions{}));
    together.back()->append({tokens.begin(), tokens.begin() + 5});
  }

  // Bad batches: another model, a session twice, a full context.
  model::CausalLM other = make_model(15, Shape{});
  Session foreign(other, {});
  foreign.append({1});
  EXPECT_THROW(Session::decode_batch({together[0].get(), &foreign}, {1, 1}), Error);
  EXPECT_THROW(Session::decode_batch({together[0].get(), together[0].get()}, {1, 1}), Error);
  SessionOptions tiny;
  tiny.context = 2;
  Session full(lm, tiny);
  full.append({1, 2});
  EXPECT_THROW(Session::decode_batch({together[0].get(), &full}, {1, 1}), Error);
  EXPECT_THROW(Session::decode_batch({together[0].get()}, {1, 2}), Error);
}

// The decode step's thread pool: every thread runs, barriers hold, the pool grows between runs.
TEST(SpinPool, RunsEveryThreadAndBarriersHold) {
  for (int threads : {1, 2, 3, 5, 2}) {
    SCOPED_TRACE(threads);
    std::vector<int> phase_seen(threads * 3, -1);
    std::atomic<int> phase{0};
    ipt::SpinBarrier barrier(threads);
    ipt::spin_pool_run(threads, [&](int thread, int n) {
      ASSERT_EQ(n, threads);
      for (int p = 0; p < 3; ++p) {
        if (thread == 0) phase.store(p);
        barrier.wait();
        phase_seen[thread * 3 + p] = phase.load();  // every thread sees thread 0's write of this phase
        barrier.wait();
      }
    });
    for (int t = 0; t < threads; ++t)
      for (int p = 0; p < 3; ++p) EXPECT_EQ(phase_seen[t * 3 + p], p);
  }
  int64_t b = 0, e = 0;
  ipt::static_range(10, 2, 3, b, e);
  EXPECT_EQ(b, 8);
  EXPECT_EQ(e, 10);
  ipt::static_range(2, 2, 3, b, e);
  EXPECT_EQ(b, e);  // no share left
}
