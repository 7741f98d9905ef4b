// Context parallelism simulated with threads (ThreadGroup): for 1, 2 and 3 ranks, with lengths
// not divisible by the rank count, packed documents spanning ranks, clip on and off and sliding
// windows, every rank's outputs and gradients equal the matching rows of one call over the whole
// sequence (float64).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <mutex>

#include "ipt/common/error.h"
#include "ipt/parallel/context_parallel.h"
#include "ipt/model/score.h"
#include "ipt/model/config.h"
#include "ipt/model/decoder.h"

using namespace ipt;

namespace {

auto f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

// Each rank's slice of `full` along `dim`, as a fresh leaf that requires grad.
torch::Tensor slice_leaf(const torch::Tensor& full, int64_t dim, const parallel::SlicePlan& plan, int rank) {
  return full.narrow(dim, plan.begin(rank), plan.length(rank)).detach().clone().requires_grad_();
}

}  // namespace

TEST(ContextParallel, PlanCutsOnChunkBoundaries) {
  // Documents [0, 10) [10, 37): chunk 4 -> cut points 4, 8, 10, 14, 18, ..., 34.
  parallel::SlicePlan p = parallel::plan_slices(37, {0, 10, 37}, 4, 3);
  ASSERT_EQ(p.bounds.size(), 4u);
  EXPECT_EQ(p.bounds.front(), 0);
  EXPECT_EQ(p.bounds.back(), 37);
  for (int r = 0; r < 3; ++r) EXPECT_GT(p.length(r), 0);
  for (int r = 1; r < 3; ++r) {
    const int64_t b = p.bounds[r];
    EXPECT_TRUE(b == 10 || (b < 10 ? b % 4 == 0 : (b - 10) % 4 == 0)) << b;
  }
  EXPECT_EQ(parallel::plan_slices(10, {}, 0, 3).bounds, (std::vector<int64_t>{0, 3, 7, 10}));
  EXPECT_THROW(parallel::plan_slices(5, {}, 4, 3), Error);  // only one chunk boundary for two cuts
  EXPECT_THROW(parallel::plan_slices(2, {}, 0, 3), Error);
  parallel::LocalView v = parallel::local_view(p, {0, 10, 37}, 1);
  EXPECT_EQ(v.continues, p.bounds[1] != 10);
}

struct TttCase {
  std::string name;
  int64_t B, L;
  std::vector<int64_t> cu;
  int64_t chunk;
  double clip;
  double decay = 1.0;
};

TEST(ContextParallel, TttOperatorEqualsOneProcessWithGradients) {
  const std::vector<TttCase> cases = {{"one_doc", 2, 29, {}, 4, 0.0},
                                      {"one_doc_clip", 1, 31, {}, 3, 0.05},
                                      {"packed", 1, 41, {0, 1, 13, 30, 41}, 4, 0.0},
                                      {"packed_clip", 1, 41, {0, 17, 41}, 5, 0.05},
                                      // The carry crosses ranks decayed by decay^chunks per rank.
                                      {"one_doc_decay", 2, 29, {}, 4, 0.0, 0.7},
                                      {"one_doc_decay_clip", 1, 40, {}, 2, 0.05, 0.8},
                                      {"packed_decay", 1, 41, {0, 1, 13, 30, 41}, 4, 0.0, 0.5}};
  const int64_t d = 6, h = 10;
  for (const TttCase& c : cases)
    for (int ranks : {1, 2, 3, 4}) {
      torch::manual_seed(ranks);
      torch::Tensor Z = torch::randn({c.B, c.L, h}, f64()), V = torch::randn({c.B, c.L, d}, f64()),
                    W0 = torch::randn({d, h}, f64()), up = torch::randn({c.B, c.L, d}, f64());
      ttt::Options o;
      o.chunk_size = c.chunk;
      o.lr = 0.1;
      o.clip = c.clip;
      o.decay = c.decay;
      o.cu_seqlens = c.cu;
      o.algorithm = ttt::Algorithm::kReference;
      torch::Tensor Zr = Z.clone().requires_grad_(), Vr = V.clone().requires_grad_(), Wr = W0.clone().requires_grad_();
      torch::Tensor ref = ttt::apply(Zr, Vr, Wr, o).out;
      (ref * up).sum().backward();

      const parallel::SlicePlan plan = parallel::plan_slices(c.L, c.cu, c.chunk, ranks);
      o.algorithm = ttt::Algorithm::kAuto;
      std::mutex m;
      torch::Tensor dW = torch::zeros_like(W0);
      parallel::ThreadGroup::run(ranks, [&](parallel::Communicator& comm) {
        const int r = comm.rank();
        torch::Tensor z = slice_leaf(Z, 1, plan, r), v = slice_leaf(V, 1, plan, r), w = W0.clone().requires_grad_();
        torch::Tensor out = parallel::ttt_apply(z, v, w, o, plan, comm);
        (out * up.narrow(1, plan.begin(r), plan.length(r))).sum().backward();
        std::lock_guard<std::mutex> lock(m);
        EXPECT_LE(rel(out, ref.narrow(1, plan.begin(r), plan.length(r))), 1e-10) << c.name << " ranks " << ranks;
        EXPECT_LE(rel(z.grad(), Zr.grad().narrow(1, plan.begin(r), plan.length(r))), 1e-10) << c.name << " dZ";
        EXPECT_LE(rel(v.grad(), Vr.grad().narrow(1, plan.begin(r), plan.length(r))), 1e-10) << c.name << " dV";
        dW += w.grad();
      });
      EXPECT_LE(rel(dW, Wr.grad()), 1e-10) << c.name << " dW0 ranks " << ranks;  // data-parallel style sum
    }
}

TEST(ContextParallel, AttentionEqualsOneProcessWithGradients) {
  struct Case {
    std::string name;
    int64_t L, window;
    std::vector<int64_t> cu;
  };
  const std::vector<Case> cases = {{"full", 37, 0, {}}, {"window", 37, 5, {}}, {"packed", 37, 0, {0, 3, 20, 37}},
                                   {"packed_window", 37, 6, {0, 11, 12, 37}}};
  for (const Case& c : cases)
    for (int ranks : {1, 2, 3}) {
      torch::manual_seed(10 + ranks);
      const int64_t B = 1, Hq = 4, Hkv = 2, D = 8;
      torch::Tensor q = torch::randn({B, Hq, c.L, D}, f64()), k = torch::randn({B, Hkv, c.L, D}, f64()),
                    v = torch::randn({B, Hkv, c.L, D}, f64()), up = torch::randn({B, Hq, c.L, D}, f64());
      ops::AttentionOptions o;
      o.window = c.window;
      o.cu_seqlens = c.cu;
      o.block_q = 4;
      o.block_k = 5;
      torch::Tensor qr = q.clone().requires_grad_(), kr = k.clone().requires_grad_(), vr = v.clone().requires_grad_();
      torch::Tensor ref = ops::attention_reference(qr, kr, vr, o);
      (ref * up).sum().backward();
      // Windows smaller than a slice exercise "only the neighbour's tail".
      const parallel::SlicePlan plan = parallel::plan_slices(c.L, c.cu, 0, ranks);
      std::mutex m;
      parallel::ThreadGroup::run(ranks, [&](parallel::Communicator& comm) {
        const int r = comm.rank();
        torch::Tensor ql = slice_leaf(q, 2, plan, r), kl = slice_leaf(k, 2, plan, r), vl = slice_leaf(v, 2, plan, r);
        torch::Tensor out = parallel::attention(ql, kl, vl, o, plan, comm);
        (out * up.narrow(2, plan.begin(r), plan.length(r))).sum().backward();
        std::lock_guard<std::mutex> lock(m);
        EXPECT_LE(rel(out, ref.narrow(2, plan.begin(r), plan.length(r))), 1e-10) << c.name << " ranks " << ranks;
        EXPECT_LE(rel(ql.grad(), qr.grad().narrow(2, plan.begin(r), plan.length(r))), 1e-10) << c.name << " dq";
        EXPECT_LE(rel(kl.grad(), kr.grad().narrow(2, plan.begin(r), plan.length(r))), 1e-10) << c.name << " dk";
        EXPECT_LE(rel(vl.grad(), vr.grad().narrow(2, plan.begin(r), plan.length(r))), 1e-10) << c.name << " dv";
      });
    }
}

// The whole decoder under a ContextParallelScope: TTT layers with a convolution target, sliding
// and full attention, packed documents spanning ranks; hidden states and every parameter's
// gradient (summed over ranks) equal one process.
TEST(ContextParallel, DecoderEqualsOneProcess) {
  nlohmann::json j = {{"architectures", {"Qwen3ForCausalLM"}}, {"vocab_size", 97}, {"hidden_size", 32},
                      {"intermediate_size", 64}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
                      {"num_key_value_heads", 2}, {"head_dim", 8}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0},
                      {"max_position_embeddings", 512}, {"tie_word_embeddings", true}, {"initializer_range", 0.1},
                      {"ttt_mode", true}, {"ttt_layers", {1, 3}}, {"ttt_chunk", 4}, {"ttt_lr", 0.5},
                      {"layer_types", {"full_attention", "sliding_attention", "full_attention", "sliding_attention"}},
                      {"sliding_window", 6}};
  const model::ModelConfig config = model::ModelConfig::from_json(j);
  auto make = [&] {
    model::CausalLM lm(config);
    lm->init_weights(5);
    torch::NoGradGuard no_grad;
    for (auto& p : lm->named_parameters())
      if (p.key().find("ttt_conv") != std::string::npos) p.value().normal_(0, 0.3);  // non-zero updates
    lm->to(torch::kFloat64);
    return lm;
  };
  model::CausalLM single = make();
  torch::manual_seed(9);
  const int64_t L = 43;
  torch::Tensor ids = torch::randint(0, 97, {1, L}, torch::kInt64), up = torch::randn({1, L, 32}, f64());
  const std::vector<int64_t> cu{0, 9, 30, 43};
  torch::Tensor ref = single->hidden_states(ids, cu);
  (ref * up).sum().backward();
  for (int ranks : {2, 3}) {
    const parallel::SlicePlan plan = parallel::plan_slices(L, cu, config.ttt_chunk, ranks);
    std::vector<model::CausalLM> replicas;
    for (int r = 0; r < ranks; ++r) replicas.push_back(make());
    std::mutex m;
    parallel::ThreadGroup::run(ranks, [&](parallel::Communicator& comm) {
      const int r = comm.rank();
      parallel::ContextParallelScope scope(comm, plan, cu);
      torch::Tensor out = replicas[r]->hidden_states(ids.narrow(1, plan.begin(r), plan.length(r)));
      (out * up.narrow(1, plan.begin(r), plan.length(r))).sum().backward();
      std::lock_guard<std::mutex> lock(m);
      EXPECT_LE(rel(out, ref.narrow(1, plan.begin(r), plan.length(r))), 1e-10) << "ranks " << ranks << " rank " << r;
    });
    for (const auto& p : single->named_parameters()) {
      torch::Tensor sum = torch::zeros_like(p.value());
      for (auto& replica : replicas) {
        const torch::Tensor& g = replica->named_parameters()[p.key()].grad();
        if (g.defined()) sum += g;
      }
      EXPECT_LE(rel(sum, p.value().grad()), 1e-9) << p.key() << " ranks " << ranks;
    }
  }
}

// Scoring a sequence split over ranks gives every rank the single-process result, per-token
// values included, for lengths that do not divide by the rank count; the timing wrapper counts
// the collectives it forwards.
TEST(ContextParallel, ScoreEqualsOneProcess) {
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", 61}, {"hidden_size", 24},
                      {"intermediate_size", 48}, {"num_hidden_layers", 3}, {"num_attention_heads", 4},
                      {"num_key_value_heads", 2}, {"head_dim", 6}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0},
                      {"max_position_embeddings", 256}, {"tie_word_embeddings", false}, {"initializer_range", 0.1},
                      {"ttt_mode", true}, {"ttt_layers", {0, 2}}, {"ttt_chunk", 5}, {"ttt_lr", 0.5}};
  const model::ModelConfig config = model::ModelConfig::from_json(j);
  model::CausalLM lm(config);
  lm->init_weights(3);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : lm->named_parameters())
      if (p.key().find("ttt_conv") != std::string::npos) p.value().normal_(0, 0.3);
  }
  lm->to(torch::kFloat64);
  torch::manual_seed(4);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 53; ++i) ids.push_back(torch::randint(0, 61, {1}).item<int64_t>());
  model::ScoreOptions one;
  one.per_token = true;
  const model::ScoreResult ref = model::score_tokens(lm, ids, one);
  ASSERT_EQ(ref.tokens, 52);
  EXPECT_NEAR(ref.total_nll, ref.token_nll.sum().item<double>(), 1e-3);
  for (int ranks : {1, 2, 3}) {
    std::mutex m;
    parallel::ThreadGroup::run(ranks, [&](parallel::Communicator& comm) {
      parallel::TimedCommunicator timed(comm);
      model::ScoreOptions cp;
      cp.per_token = true;
      cp.context_parallel = &timed;
      const model::ScoreResult got = model::score_tokens(lm, ids, cp);
      std::lock_guard<std::mutex> lock(m);
      EXPECT_NEAR(got.total_nll, ref.total_nll, 1e-9 * ref.total_nll) << "ranks " << ranks;
      EXPECT_EQ(got.tokens, ref.tokens);
      EXPECT_LE(rel(got.token_nll.to(torch::kFloat64), ref.token_nll.to(torch::kFloat64)), 1e-6);
      EXPECT_GT(timed.calls(), 0);
    });
  }
}
