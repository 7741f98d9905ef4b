// bfloat16 compute against float32 / float64 references: the model's NLL, the loss statistics
// (float32 over bf16 logits), the TTT fast weight's float32 master (a bf16 sum drops small
// updates), and sessions refusing to continue in another dtype than they were computed in.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "ipt/common/error.h"
#include "ipt/infer/session.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/presets.h"
#include "ipt/model/score.h"
#include "ipt/ops/loss/lm_loss.h"
#include "ipt/ops/ttt/ttt.h"
#include "support/temp_dir.h"

using namespace ipt;
namespace fs = std::filesystem;

namespace {

// A `test`-preset Qwen3 with TTT in layer 1 and weights at a larger scale than the initialiser's
// (outputs far from uniform, as a trained model's are), saved once per binary.
const std::string& model_dir() {
  static const std::string dir = [] {
    const fs::path d = fs::temp_directory_path() / ("ipt-dtype-model-" + ipt::test::process_tag());
    model::ModelConfig c = model::preset_config("test", "qwen3", 256);
    c.ttt_mode = true;
    c.ttt_layers = {1};
    c.ttt_chunk = 16;
    c.initializer_range = 0.08;
    model::CausalLM lm(c);
    lm->init_weights(5);
    {
      torch::NoGradGuard no_grad;
      torch::manual_seed(6);
      for (auto& p : lm->named_parameters())
        if (p.key().find("ttt_") != std::string::npos) p.value().normal_(0.0, 0.3);
    }
    model::save_model(lm, d.string());
    return d.string();
  }();
  return dir;
}

model::CausalLM load(torch::Dtype dtype) {
  model::LoadOptions o;
  o.dtype = dtype;
  return model::load_model(model_dir(), o);
}

std::vector<int64_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor t = torch::randint(0, vocab, {n}, torch::kInt64);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n};
}

}  // namespace

// The bf16 model's mean NLL is within 1% of the float32 model's (the tolerance), with and
// without TTT, over enough tokens for several chunk updates.
TEST(Dtype, Bf16ModelNllWithinOnePercentOfFloat32) {
  const std::vector<int64_t> ids = random_ids(160, 256, 1);
  for (bool ttt : {true, false}) {
    model::LoadOptions o;
    o.without_ttt = !ttt;
    model::CausalLM f32 = model::load_model(model_dir(), o);
    o.dtype = torch::kBFloat16;
    model::CausalLM bf16 = model::load_model(model_dir(), o);
    EXPECT_EQ(bf16->head_weight().scalar_type(), torch::kBFloat16);
    torch::NoGradGuard no_grad;
    const double a = model::score_tokens(f32, ids, {}).mean_nll(), b = model::score_tokens(bf16, ids, {}).mean_nll();
    EXPECT_GT(std::abs(a - std::log(256.0)), 0.1) << "outputs too close to uniform to test anything";
    EXPECT_NEAR(b, a, 0.01 * a) << (ttt ? "TTT" : "no TTT");
    EXPECT_NE(a, b) << "bf16 changed nothing: did the model run in float32?";
  }
}

// Over bf16 logits the log-sum-exp and the NLL are taken in float32: equal to float64 statistics of
// the same bf16 logits; the head's gradient is accumulated in float32 as well.
TEST(Dtype, LossStatisticsOverBf16LogitsAreFloat32) {
  torch::manual_seed(2);
  const torch::Tensor hidden = (torch::randn({40, 32}) * 2).to(torch::kBFloat16).requires_grad_(true);
  const torch::Tensor head = torch::randn({300, 32}).to(torch::kBFloat16).requires_grad_(true);
  const torch::Tensor labels = torch::randint(0, 300, {40}, torch::kInt64);
  ops::LmLossOptions options;
  options.block_rows = 16;
  ops::LmLoss loss = ops::lm_loss(hidden, head, labels, options);
  EXPECT_EQ(loss.token_nll.scalar_type(), torch::kFloat32);
  // The reference: the same bf16 logits, statistics in float64.
  const torch::Tensor logits = torch::mm(hidden.detach(), head.detach().t()).to(torch::kFloat64);
  const torch::Tensor ref = torch::logsumexp(logits, 1) - logits.gather(1, labels.unsqueeze(1)).squeeze(1);
  EXPECT_LT((loss.token_nll.to(torch::kFloat64) - ref).abs().max().item<double>(), 2e-5);
  EXPECT_NEAR(loss.loss.item<double>(), ref.mean().item<double>(), 2e-5);
  // Gradients: against float64 autograd through the same bf16 values (bf16 products: 2% of scale).
  loss.loss.backward();
  const torch::Tensor h64 = hidden.detach().to(torch::kFloat64).requires_grad_(true);
  const torch::Tensor w64 = head.detach().to(torch::kFloat64).requires_grad_(true);
  torch::nn::functional::cross_entropy(torch::mm(h64, w64.t()), labels).backward();
  for (auto [got, want] : {std::pair{hidden.grad(), h64.grad()}, std::pair{head.grad(), w64.grad()}}) {
    EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
    const double scale = want.abs().max().item<double>();
    EXPECT_LT((got.to(torch::kFloat64) - want).abs().max().item<double>(), 0.02 * scale);
  }
}

// Many small chunk updates: the stream's float32 master matches a float64 sum, where adding the
// same deltas to a bf16 weight loses most of them (each is below half a bf16 ulp of W).
TEST(Dtype, FastWeightAccumulatesInFloat32) {
  torch::manual_seed(3);
  const int64_t d = 16, h = 24, C = 4, chunks = 64;
  const torch::Tensor W0 = torch::randn({d, h}).to(torch::kBFloat16);
  const torch::Tensor Z = torch::randn({chunks * C, h}).to(torch::kBFloat16);
  const torch::Tensor V = torch::randn({chunks * C, d}).to(torch::kBFloat16);
  const double lr = 1e-4;
  ttt::Stream stream(W0, C, lr, 0.0);
  const torch::Tensor out = stream.feed(Z, V);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(stream.state().weight.scalar_type(), torch::kFloat32);
  EXPECT_EQ(stream.state().updates, chunks);
  torch::Tensor exact = W0.to(torch::kFloat64), in_bf16 = W0.clone();
  for (int64_t k = 0; k < chunks; ++k) {
    const torch::Tensor z = Z.narrow(0, k * C, C), v = V.narrow(0, k * C, C);
    const torch::Tensor delta = lr * torch::mm(v.t().to(torch::kFloat64), z.to(torch::kFloat64));
    exact += delta;
    in_bf16 += delta.to(torch::kBFloat16);
  }
  const double change = (exact - W0.to(torch::kFloat64)).abs().mean().item<double>();
  const double master_error = (stream.state().weight.to(torch::kFloat64) - exact).abs().mean().item<double>();
  const double bf16_error = (in_bf16.to(torch::kFloat64) - exact).abs().mean().item<double>();
  EXPECT_LT(master_error, 0.01 * change);
  EXPECT_GT(bf16_error, 0.3 * change) << "the deltas were not small enough to show the loss";
}

// A bf16 session decodes as its own bf16 forward does (teacher forcing), and a session file is
// only continued in the dtype it was computed in.
TEST(Dtype, Bf16SessionMatchesItsForwardAndRefusesAnotherDtype) {
  model::CausalLM bf16 = load(torch::kBFloat16), f32 = load(torch::kFloat32);
  const std::vector<int64_t> ids = random_ids(40, 256, 4);
  torch::NoGradGuard no_grad;
  infer::Session session(bf16);
  session.append({ids.begin(), ids.begin() + 20});
  for (size_t i = 20; i < ids.size(); ++i) session.decode(ids[i]);
  const torch::Tensor whole = bf16->logits(bf16->hidden_states(torch::tensor(ids).view({1, -1})))[0][-1];
  const torch::Tensor last = session.last_logits();
  EXPECT_EQ(last.scalar_type(), torch::kBFloat16);
  const double scale = whole.to(torch::kFloat32).abs().max().item<double>();
  EXPECT_LT((last.to(torch::kFloat32) - whole.to(torch::kFloat32)).abs().max().item<double>(), 0.05 * scale);

  const std::string path = (fs::temp_directory_path() / ("ipt-dtype-" + ipt::test::process_tag() + ".session")).string();
  session.save(path);
  try {
    infer::Session::load(f32, path);
    ADD_FAILURE() << "a bf16 session loaded into a float32 model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("computed in bfloat16 but the model runs in float32"), std::string::npos)
        << e.what();
  }
  infer::Session again = infer::Session::load(bf16, path);
  EXPECT_EQ(again.position(), session.position());
  EXPECT_TRUE(torch::equal(again.last_logits(), last));
  fs::remove(path);
}

// The operator on bf16 inputs without gradients: bf16 products, a float32 master. Outputs within
// bf16 rounding of the float64 recurrence over the same values; the final fast weight (float32)
// much closer than bf16 rounding of it. With gradients it runs in float32 and returns bf16.
TEST(Dtype, TttOperatorInBf16KeepsAFloat32Master) {
  torch::manual_seed(7);
  const int64_t L = 96, d = 24, h = 40;
  const torch::Tensor Z = torch::randn({1, L, h}).to(torch::kBFloat16);
  const torch::Tensor V = torch::randn({1, L, d}).to(torch::kBFloat16);
  const torch::Tensor W0 = (torch::randn({d, h}) * 0.1).to(torch::kBFloat16);
  for (double clip : {0.0, 0.5}) {
    ttt::Options options;
    options.chunk_size = 16;
    options.lr = 0.01;
    options.clip = clip;
    options.return_state = true;
    ttt::Output got;
    {
      torch::NoGradGuard no_grad;
      got = ttt::apply(Z, V, W0, options);
    }
    options.algorithm = ttt::Algorithm::kReference;
    const ttt::Output want = ttt::apply(Z.to(torch::kFloat64), V.to(torch::kFloat64), W0.to(torch::kFloat64), options);
    EXPECT_EQ(got.out.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(got.states[0].weight.scalar_type(), torch::kFloat32);
    const double out_scale = want.out.abs().max().item<double>();
    EXPECT_LT((got.out.to(torch::kFloat64) - want.out).abs().max().item<double>(), 0.02 * out_scale) << clip;
    const torch::Tensor change = want.states[0].weight - W0.to(torch::kFloat64);
    const double w_error = (got.states[0].weight.to(torch::kFloat64) - want.states[0].weight).abs().max().item<double>();
    EXPECT_LT(w_error, 0.02 * change.abs().max().item<double>()) << clip;
  }
  // Gradients (the mixed lean backward) against float64 autograd through the reference, on the same
  // bf16 values and the same upstream gradient, with and without clipping.
  const torch::Tensor dO = torch::randn({1, L, d}).to(torch::kBFloat16);
  for (double clip : {0.0, 0.5}) {
    ttt::Options options;
    options.chunk_size = 16;
    options.lr = 0.01;
    options.clip = clip;
    const torch::Tensor Zg = Z.clone().requires_grad_(true), Vg = V.clone().requires_grad_(true),
                        Wg = W0.clone().requires_grad_(true);
    ttt::Output with_grad = ttt::apply(Zg, Vg, Wg, options);
    EXPECT_EQ(with_grad.out.scalar_type(), torch::kBFloat16);
    with_grad.out.backward(dO);
    options.algorithm = ttt::Algorithm::kReference;
    const torch::Tensor Z64 = Z.to(torch::kFloat64).requires_grad_(true), V64 = V.to(torch::kFloat64).requires_grad_(true),
                        W64 = W0.to(torch::kFloat64).requires_grad_(true);
    ttt::apply(Z64, V64, W64, options).out.backward(dO.to(torch::kFloat64));
    for (auto [got, want, name] : {std::tuple{Zg.grad(), Z64.grad(), "dZ"}, std::tuple{Vg.grad(), V64.grad(), "dV"},
                                   std::tuple{Wg.grad(), W64.grad(), "dW0"}}) {
      ASSERT_TRUE(got.defined()) << name;
      EXPECT_EQ(got.scalar_type(), torch::kBFloat16) << name;
      const double scale = want.abs().max().item<double>();
      EXPECT_LT((got.to(torch::kFloat64) - want).abs().max().item<double>(), 0.03 * scale) << name << " clip " << clip;
    }
  }
}
