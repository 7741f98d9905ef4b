// The TTT operator: every algorithm against the reference and against independent formulations
// written out here (the official materialise-and-cumsum form, the attention form), gradients
// against autograd through the reference and finite differences, streaming, and bad input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipt/common/error.h"
#include "ipt/ops/ttt/ttt.h"
#include "support/expect_error.h"

using namespace ipt;
using ttt::Algorithm;

using ipt::test::expect_error;

namespace {

struct Case {
  std::string name;
  int64_t B, L, d, h, C;
  double clip;
  std::vector<int64_t> cu_seqlens;
  double decay = 1.0;
};

std::vector<Case> cases() {
  return {
      {"L_multiple_of_C", 1, 32, 6, 10, 8, 0.0, {}},
      {"L_not_multiple_of_C", 1, 29, 6, 10, 8, 0.0, {}},
      {"L_less_than_C", 1, 5, 6, 10, 8, 0.0, {}},
      {"C_is_1", 1, 7, 4, 6, 1, 0.0, {}},
      {"batched", 3, 21, 5, 7, 4, 0.0, {}},
      {"packed_with_length_1_docs", 1, 30, 5, 7, 4, 0.0, {0, 1, 10, 11, 23, 30}},
      {"clip", 2, 27, 6, 10, 4, 0.05, {}},
      {"clip_packed", 1, 30, 5, 7, 4, 0.05, {0, 9, 10, 30}},
      {"decay", 2, 27, 6, 10, 4, 0.0, {}, 0.7},
      {"decay_clip_packed", 1, 30, 5, 7, 4, 0.05, {0, 1, 10, 11, 30}, 0.5},
      // 60 chunks: the decayed backward's checkpoints (every 8 chunks) and a partial last block.
      {"decay_many_chunks", 1, 121, 4, 6, 2, 0.0, {}, 0.9},
  };
}

struct Inputs {
  torch::Tensor Z, V, W0;
};

Inputs random_inputs(const Case& c, torch::Dtype dtype, uint64_t seed) {
  torch::manual_seed(seed);
  auto o = torch::TensorOptions().dtype(dtype);
  return {torch::randn({c.B, c.L, c.h}, o), torch::randn({c.B, c.L, c.d}, o), torch::randn({c.d, c.h}, o)};
}

ttt::Options options_for(const Case& c, Algorithm algorithm, int64_t group = 0) {
  ttt::Options o;
  o.chunk_size = c.C;
  o.lr = 0.3;
  o.clip = c.clip;
  o.decay = c.decay;
  o.algorithm = algorithm;
  o.scan_group = group;
  o.cu_seqlens = c.cu_seqlens;
  return o;
}

double max_rel_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

struct Variant {
  Algorithm algorithm;
  int64_t group;
};
const std::vector<Variant> kFastVariants = {
    {Algorithm::kRecurrent, 0}, {Algorithm::kScan, 0}, {Algorithm::kScan, 1}, {Algorithm::kScan, 2},
    {Algorithm::kScan, 3},      {Algorithm::kAuto, 0}};

}  // namespace

TEST(TttOperator, AlgorithmsAgreeFloat64) {
  for (const Case& c : cases()) {
    Inputs in = random_inputs(c, torch::kFloat64, 1);
    torch::Tensor ref = ttt::apply(in.Z, in.V, in.W0, options_for(c, Algorithm::kReference)).out;
    for (const Variant& v : kFastVariants) {
      torch::Tensor out = ttt::apply(in.Z, in.V, in.W0, options_for(c, v.algorithm, v.group)).out;
      EXPECT_LE(max_rel_error(out, ref), 1e-10) << c.name << " " << ttt::to_string(v.algorithm) << " g" << v.group;
    }
  }
}

TEST(TttOperator, AlgorithmsAgreeFloat32) {
  for (const Case& c : cases()) {
    Inputs in = random_inputs(c, torch::kFloat32, 2);
    torch::Tensor ref = ttt::apply(in.Z, in.V, in.W0, options_for(c, Algorithm::kReference)).out;
    for (const Variant& v : kFastVariants) {
      torch::Tensor out = ttt::apply(in.Z, in.V, in.W0, options_for(c, v.algorithm, v.group)).out;
      EXPECT_LE(max_rel_error(out, ref), 1e-5) << c.name << " " << ttt::to_string(v.algorithm) << " g" << v.group;
    }
  }
}

TEST(TttOperator, ClipActuallyClips) {
  Case c{"clip", 1, 24, 6, 10, 4, 0.05, {}};
  Inputs in = random_inputs(c, torch::kFloat64, 3);
  auto clipped = ttt::apply(in.Z, in.V, in.W0, options_for(c, Algorithm::kRecurrent));
  c.clip = 0.0;
  auto plain = ttt::apply(in.Z, in.V, in.W0, options_for(c, Algorithm::kRecurrent));
  // The first chunk uses W0 either way; later chunks differ.
  EXPECT_LE(max_rel_error(clipped.out.narrow(1, 0, 4), plain.out.narrow(1, 0, 4)), 1e-14);
  EXPECT_GT(max_rel_error(clipped.out, plain.out), 1e-3);
}

// The prefix-sum form (docs/operator.md) written out literally: pad to whole chunks, materialise every
// chunk's delta, cumulative sum, drop the last chunk's delta (shift by one), add W0.
TEST(TttOperator, EqualsOfficialFormulation) {
  for (int64_t L : {32, 29, 3}) {
    const int64_t d = 6, h = 10, C = 8;
    torch::manual_seed(L);
    auto o = torch::TensorOptions().dtype(torch::kFloat64);
    torch::Tensor Z = torch::randn({1, L, h}, o), V = torch::randn({1, L, d}, o), W0 = torch::randn({d, h}, o);
    const int64_t T = (L + C - 1) / C, pad = T * C - L;
    torch::Tensor Zp = torch::constant_pad_nd(Z[0], {0, 0, 0, pad}).view({T, C, h});
    torch::Tensor Vp = torch::constant_pad_nd(V[0], {0, 0, 0, pad}).view({T, C, d});
    torch::Tensor deltas = 0.3 * torch::einsum("tcd,tch->tdh", {Vp, Zp});
    torch::Tensor before = torch::cat({torch::zeros({1, d, h}, o), deltas.cumsum(0).narrow(0, 0, T - 1)});
    torch::Tensor official = torch::einsum("tch,tdh->tcd", {Zp, before + W0}).reshape({T * C, d}).narrow(0, 0, L);
    ttt::Options opt;
    opt.chunk_size = C;
    opt.lr = 0.3;
    for (Algorithm a : {Algorithm::kReference, Algorithm::kRecurrent, Algorithm::kScan}) {
      opt.algorithm = a;
      EXPECT_LE(max_rel_error(ttt::apply(Z, V, W0, opt).out[0], official), 1e-12) << "L=" << L;
    }
  }
}

// The attention form (docs/operator.md): O_i = Z_i W0^T + lr * sum_{j<i} s_j (Z_i Z_j^T) V_j, i.e. block-causal
// linear attention with q = k = Z and v = V, never forming a [d, h] matrix per chunk.
TEST(TttOperator, EqualsAttentionForm) {
  Case c{"packed", 1, 30, 5, 7, 4, 0.0, {0, 1, 10, 11, 23, 30}};
  Inputs in = random_inputs(c, torch::kFloat64, 4);
  torch::Tensor chunk_id = torch::empty({c.L}, torch::kInt64);
  for (size_t k = 1; k < c.cu_seqlens.size(); ++k)
    for (int64_t t = c.cu_seqlens[k - 1]; t < c.cu_seqlens[k]; ++t)
      chunk_id[t] = static_cast<int64_t>(k) * 1000 + (t - c.cu_seqlens[k - 1]) / c.C;
  torch::Tensor doc = chunk_id.div(1000, "floor");
  torch::Tensor mask = (doc.unsqueeze(1) == doc.unsqueeze(0)) & (chunk_id.unsqueeze(0) < chunk_id.unsqueeze(1));
  torch::Tensor Z = in.Z[0], V = in.V[0];
  torch::Tensor attention = torch::mm(Z, Z.t()) * mask.to(torch::kFloat64);
  torch::Tensor expected = torch::mm(Z, in.W0.t()) + 0.3 * torch::mm(attention, V);
  torch::Tensor out = ttt::apply(in.Z, in.V, in.W0, options_for(c, Algorithm::kRecurrent)).out[0];
  EXPECT_LE(max_rel_error(out, expected), 1e-12);
}

// With a decay the attention form weighs chunk j's contribution to chunk i by decay^(i - 1 - j).
TEST(TttOperator, DecayEqualsDecayedAttentionForm) {
  Case c{"decay", 1, 26, 5, 7, 4, 0.0, {}, 0.6};
  Inputs in = random_inputs(c, torch::kFloat64, 15);
  torch::Tensor chunk = torch::arange(c.L, torch::kInt64).div(c.C, "floor").to(torch::kFloat64);
  torch::Tensor gap = chunk.unsqueeze(1) - chunk.unsqueeze(0) - 1;  // i - 1 - j
  torch::Tensor weight = torch::where(gap >= 0, torch::pow(c.decay, gap.clamp_min(0)), torch::zeros_like(gap));
  torch::Tensor Z = in.Z[0], V = in.V[0];
  torch::Tensor expected = torch::mm(Z, in.W0.t()) + 0.3 * torch::mm(torch::mm(Z, Z.t()) * weight, V);
  for (Algorithm a : {Algorithm::kReference, Algorithm::kRecurrent, Algorithm::kScan}) {
    torch::Tensor out = ttt::apply(in.Z, in.V, in.W0, options_for(c, a, 2)).out[0];
    EXPECT_LE(max_rel_error(out, expected), 1e-12) << ttt::to_string(a);
  }
}

// The point of the decay: with clipped updates, ||W - W0|| <= clip / (1 - decay) at any length,
// where the undecayed sum keeps growing.
TEST(TttOperator, DecayBoundsTheFastWeight) {
  Case c{"long", 1, 800, 6, 10, 4, 0.5, {}, 0.8};
  Inputs in = random_inputs(c, torch::kFloat64, 16);
  auto drift = [&](double decay) {
    Case k = c;
    k.decay = decay;
    auto opt = options_for(k, Algorithm::kRecurrent);
    opt.return_state = true;
    return (ttt::apply(in.Z, in.V, in.W0, opt).states[0].weight - in.W0).norm().item<double>();
  };
  const double bound = c.clip / (1.0 - c.decay);
  EXPECT_LE(drift(c.decay), bound);
  EXPECT_GT(drift(c.decay), 0.5 * c.clip);  // the updates still happen
  EXPECT_GT(drift(1.0), 2.0 * bound);       // without the decay, 200 clipped steps drift far
}

// The drift monitor records ||W - W0|| / ||W0|| after every update, whichever algorithm is asked for.
TEST(TttOperator, DriftTraceRecordsEveryUpdate) {
  Case c{"trace", 1, 30, 5, 7, 4, 0.05, {0, 11, 30}, 0.7};
  Inputs in = random_inputs(c, torch::kFloat64, 19);
  for (Algorithm a : {Algorithm::kAuto, Algorithm::kScan, Algorithm::kRecurrent}) {
    std::vector<double> drift;
    auto opt = options_for(c, a, 2);
    opt.drift = &drift;
    opt.return_state = true;
    auto out = ttt::apply(in.Z, in.V, in.W0, opt);
    ASSERT_EQ(drift.size(), 2u + 4u) << ttt::to_string(a);  // 11 rows: 2 updates; 19 rows: 4
    const double norm0 = in.W0.norm().item<double>();
    EXPECT_NEAR(drift[1], (out.states[0].weight - in.W0).norm().item<double>() / norm0, 1e-12);
    EXPECT_NEAR(drift[5], (out.states[1].weight - in.W0).norm().item<double>() / norm0, 1e-12);
    EXPECT_GT(drift[0], 0.0);
  }
  std::vector<double> drift;
  auto opt = options_for(c, Algorithm::kReference);
  opt.drift = &drift;
  expect_error([&] { ttt::apply(in.Z, in.V, in.W0, opt); }, "drift trace needs the recurrent or scan");
}

TEST(TttOperator, PackedEqualsSeparateAndBatchedEqualsPerSample) {
  Case packed{"packed", 1, 30, 5, 7, 4, 0.05, {0, 1, 10, 11, 23, 30}};
  Inputs in = random_inputs(packed, torch::kFloat64, 5);
  torch::Tensor joint = ttt::apply(in.Z, in.V, in.W0, options_for(packed, Algorithm::kScan, 2)).out;
  for (size_t k = 1; k < packed.cu_seqlens.size(); ++k) {
    int64_t b = packed.cu_seqlens[k - 1], n = packed.cu_seqlens[k] - b;
    Case one{"one", 1, n, 5, 7, 4, 0.05, {}};
    torch::Tensor alone = ttt::apply(in.Z.narrow(1, b, n), in.V.narrow(1, b, n), in.W0,
                                     options_for(one, Algorithm::kReference)).out;
    EXPECT_LE(max_rel_error(joint.narrow(1, b, n), alone), 1e-12) << "document " << k;
  }
  Case batched{"batched", 3, 21, 5, 7, 4, 0.0, {}};
  Inputs bi = random_inputs(batched, torch::kFloat64, 6);
  torch::Tensor all = ttt::apply(bi.Z, bi.V, bi.W0, options_for(batched, Algorithm::kRecurrent)).out;
  for (int64_t b = 0; b < 3; ++b) {
    Case one = batched;
    one.B = 1;
    torch::Tensor alone = ttt::apply(bi.Z.narrow(0, b, 1), bi.V.narrow(0, b, 1), bi.W0,
                                     options_for(one, Algorithm::kReference)).out;
    EXPECT_LE(max_rel_error(all.narrow(0, b, 1), alone), 1e-12) << "row " << b;
  }
}

// Gradients of recurrent and scan equal autograd through the reference, for Z, V and W0.
TEST(TttOperator, GradientsMatchReferenceAutograd) {
  for (const Case& c : cases()) {
    Inputs in = random_inputs(c, torch::kFloat64, 7);
    torch::manual_seed(8);
    torch::Tensor upstream = torch::randn({c.B, c.L, c.d}, torch::kFloat64);
    auto grads = [&](Algorithm a, int64_t group) {
      torch::Tensor Z = in.Z.clone().requires_grad_(), V = in.V.clone().requires_grad_(),
                    W0 = in.W0.clone().requires_grad_();
      torch::Tensor out = ttt::apply(Z, V, W0, options_for(c, a, group)).out;
      (out * upstream).sum().backward();
      // An input that reaches no output (V when there is one chunk) has no gradient: zero.
      auto grad = [](const torch::Tensor& t) { return t.grad().defined() ? t.grad() : torch::zeros_like(t); };
      return std::vector<torch::Tensor>{grad(Z), grad(V), grad(W0)};
    };
    auto ref = grads(Algorithm::kReference, 0);
    for (const Variant& v : kFastVariants) {
      auto got = grads(v.algorithm, v.group);
      const char* names[] = {"dZ", "dV", "dW0"};
      for (int i = 0; i < 3; ++i)
        EXPECT_LE(max_rel_error(got[i], ref[i]), 1e-10)
            << c.name << " " << ttt::to_string(v.algorithm) << " g" << v.group << " " << names[i];
    }
  }
}

// Central finite differences on a tiny case, clip included (the clip factor's derivative).
TEST(TttOperator, GradientsMatchFiniteDifferences) {
  for (auto [clip, decay] : {std::pair{0.0, 1.0}, std::pair{0.5, 1.0}, std::pair{0.0, 0.6}, std::pair{0.5, 0.6}}) {
    Case c{"tiny", 1, 7, 3, 4, 2, clip, {}, decay};
    Inputs in = random_inputs(c, torch::kFloat64, 9);
    for (Algorithm a : {Algorithm::kRecurrent, Algorithm::kScan}) {
      torch::Tensor Z = in.Z.clone().requires_grad_(), V = in.V.clone().requires_grad_(),
                    W0 = in.W0.clone().requires_grad_();
      auto loss_of = [&](const torch::Tensor& z, const torch::Tensor& v, const torch::Tensor& w) {
        return ttt::apply(z, v, w, options_for(c, a)).out.pow(2).sum();
      };
      loss_of(Z, V, W0).backward();
      std::vector<torch::Tensor> params{in.Z, in.V, in.W0};
      std::vector<torch::Tensor> analytic{Z.grad(), V.grad(), W0.grad()};
      for (int p = 0; p < 3; ++p) {
        torch::Tensor flat = params[p].view(-1);
        for (int64_t i = 0; i < flat.numel(); i += 3) {
          const double eps = 1e-6, saved = flat[i].item<double>();
          flat[i] = saved + eps;
          double up = loss_of(in.Z, in.V, in.W0).item<double>();
          flat[i] = saved - eps;
          double down = loss_of(in.Z, in.V, in.W0).item<double>();
          flat[i] = saved;
          double numeric = (up - down) / (2 * eps);
          double exact = analytic[p].view(-1)[i].item<double>();
          EXPECT_NEAR(exact, numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
              << "clip " << clip << " decay " << decay << " " << ttt::to_string(a) << " param " << p << " index " << i;
        }
      }
    }
  }
}

// bfloat16 with a decay: the float32-master forward and the checkpointed backward against float32.
TEST(TttOperator, HalfPrecisionWithDecay) {
  Case c{"bf16_decay", 1, 40, 6, 10, 4, 0.0, {}, 0.8};
  Inputs in = random_inputs(c, torch::kFloat32, 17);
  torch::manual_seed(18);
  torch::Tensor upstream = torch::randn({c.B, c.L, c.d});
  auto run = [&](torch::Dtype dtype, Algorithm a) {
    torch::Tensor Z = in.Z.to(dtype).detach().requires_grad_(), V = in.V.to(dtype).detach().requires_grad_(),
                  W0 = in.W0.to(dtype).detach().requires_grad_();
    torch::Tensor out = ttt::apply(Z, V, W0, options_for(c, a)).out;
    (out.to(torch::kFloat32) * upstream).sum().backward();
    return std::vector<torch::Tensor>{out.to(torch::kFloat32), Z.grad().to(torch::kFloat32),
                                      V.grad().to(torch::kFloat32), W0.grad().to(torch::kFloat32)};
  };
  auto ref = run(torch::kFloat32, Algorithm::kReference);
  auto got = run(torch::kBFloat16, Algorithm::kRecurrent);
  const char* names[] = {"out", "dZ", "dV", "dW0"};
  for (int i = 0; i < 4; ++i) EXPECT_LE(max_rel_error(got[i], ref[i]), 0.05) << names[i];
}

TEST(TttOperator, HalfPrecisionIsComputedInFloat32) {
  Case c{"bf16", 1, 20, 6, 10, 4, 0.0, {}};
  Inputs in = random_inputs(c, torch::kFloat32, 10);
  torch::Tensor ref = ttt::apply(in.Z, in.V, in.W0, options_for(c, Algorithm::kReference)).out;
  auto out = ttt::apply(in.Z.to(torch::kBFloat16), in.V.to(torch::kBFloat16), in.W0.to(torch::kBFloat16),
                        options_for(c, Algorithm::kRecurrent));
  EXPECT_EQ(out.out.scalar_type(), torch::kBFloat16);
  EXPECT_LE(max_rel_error(out.out.to(torch::kFloat32), ref), 0.05);
}

// Feeding rows one at a time (and in uneven pieces) into a stream equals the whole-sequence forward,
// and the state `apply` returns continues a stream exactly.
TEST(TttStream, RowByRowEqualsWholeSequence) {
  for (auto [clip, decay] : {std::pair{0.0, 1.0}, std::pair{0.05, 1.0}, std::pair{0.05, 0.7}}) {
    Case c{"stream", 1, 23, 5, 7, 4, clip, {}, decay};
    Inputs in = random_inputs(c, torch::kFloat64, 11);
    torch::Tensor whole = ttt::apply(in.Z, in.V, in.W0, options_for(c, Algorithm::kRecurrent)).out[0];
    ttt::Stream stream(in.W0, c.C, 0.3, clip, decay);
    std::vector<torch::Tensor> rows;
    for (int64_t t = 0; t < c.L; ++t) rows.push_back(stream.feed(in.Z[0].narrow(0, t, 1), in.V[0].narrow(0, t, 1)));
    EXPECT_LE(max_rel_error(torch::cat(rows), whole), 1e-12);
    EXPECT_EQ(stream.state().updates, 5);
    EXPECT_EQ(stream.pending(), 3);

    ttt::Stream pieces(in.W0, c.C, 0.3, clip, decay);
    torch::Tensor a = pieces.feed(in.Z[0].narrow(0, 0, 6), in.V[0].narrow(0, 0, 6));
    torch::Tensor b = pieces.feed(in.Z[0].narrow(0, 6, 17), in.V[0].narrow(0, 6, 17));
    EXPECT_LE(max_rel_error(torch::cat({a, b}), whole), 1e-12);

    // apply() over a prefix returns the state; continuing from it equals the whole run.
    auto opt = options_for(c, Algorithm::kScan, 2);
    opt.return_state = true;
    auto prefix = ttt::apply(in.Z.narrow(1, 0, 14), in.V.narrow(1, 0, 14), in.W0, opt);
    ASSERT_EQ(prefix.states.size(), 1u);
    EXPECT_EQ(prefix.states[0].pending_z.size(0), 2);
    ttt::Stream resumed(prefix.states[0], c.C, 0.3, clip, std::nullopt, decay, in.W0);
    torch::Tensor rest = resumed.feed(in.Z[0].narrow(0, 14, 9), in.V[0].narrow(0, 14, 9));
    EXPECT_LE(max_rel_error(torch::cat({prefix.out[0], rest}), whole), 1e-12);
  }
}

TEST(TttStream, StatesAgreeAcrossAlgorithms) {
  Case c{"states", 1, 30, 5, 7, 4, 0.05, {0, 1, 10, 11, 23, 30}};
  Inputs in = random_inputs(c, torch::kFloat64, 12);
  std::vector<std::vector<ttt::DocumentState>> all;
  for (Algorithm a : {Algorithm::kReference, Algorithm::kRecurrent, Algorithm::kScan}) {
    auto opt = options_for(c, a, 2);
    opt.return_state = true;
    all.push_back(ttt::apply(in.Z, in.V, in.W0, opt).states);
  }
  for (size_t k = 0; k < 5; ++k)
    for (size_t a = 1; a < all.size(); ++a) {
      EXPECT_LE(max_rel_error(all[a][k].weight, all[0][k].weight), 1e-12);
      EXPECT_TRUE(torch::equal(all[a][k].pending_z, all[0][k].pending_z));
      EXPECT_EQ(all[a][k].updates, all[0][k].updates);
    }
  EXPECT_EQ(all[0][1].updates, 2);  // document [1, 10): 9 rows = 2 full chunks + 1 pending
  EXPECT_EQ(all[0][1].pending_z.size(0), 1);
}


TEST(TttOperator, BadInputNamesTheArgument) {
  Case c{"bad", 1, 8, 4, 6, 4, 0.0, {}};
  Inputs in = random_inputs(c, torch::kFloat32, 13);
  auto opt = options_for(c, Algorithm::kRecurrent);
  expect_error([&] { ttt::apply(in.Z[0], in.V, in.W0, opt); }, "Z must be [B, L, h]");
  expect_error([&] { ttt::apply(in.Z, in.V.narrow(1, 0, 7), in.W0, opt); }, "V must match Z");
  expect_error([&] { ttt::apply(in.Z, in.V, in.W0.t(), opt); }, "W0 must be [d, h]");
  expect_error([&] { ttt::apply(in.Z, in.V.to(torch::kFloat64), in.W0, opt); }, "one dtype");
  expect_error([&] { ttt::apply(in.Z.to(torch::kInt64), in.V.to(torch::kInt64), in.W0.to(torch::kInt64), opt); },
               "floating-point");
  auto bad = opt;
  bad.chunk_size = 0;
  expect_error([&] { ttt::apply(in.Z, in.V, in.W0, bad); }, "chunk_size must be > 0");
  bad = opt;
  bad.lr = std::nan("");
  expect_error([&] { ttt::apply(in.Z, in.V, in.W0, bad); }, "lr must be finite");
  bad = opt;
  bad.clip = INFINITY;
  expect_error([&] { ttt::apply(in.Z, in.V, in.W0, bad); }, "clip must be finite");
  for (double decay : {0.0, -0.5, 1.5, std::nan("")}) {
    bad = opt;
    bad.decay = decay;
    expect_error([&] { ttt::apply(in.Z, in.V, in.W0, bad); }, "decay must be in (0, 1]");
  }
  expect_error([&] { ttt::Stream(ttt::DocumentState{in.W0, {}, {}, 0}, 4, 0.3, 0.0, std::nullopt, 0.5); },
               "needs the W0 it decays towards");
  bad = opt;
  bad.cu_seqlens = {0, 5, 5, 8};
  expect_error([&] { ttt::apply(in.Z, in.V, in.W0, bad); }, "strictly increasing");
  bad.cu_seqlens = {0, 5, 7};
  expect_error([&] { ttt::apply(in.Z, in.V, in.W0, bad); }, "must end at the sequence length 8");
  bad.cu_seqlens = {1, 8};
  expect_error([&] { ttt::apply(in.Z, in.V, in.W0, bad); }, "must start at 0");
  Inputs two = random_inputs({"b2", 2, 8, 4, 6, 4, 0.0, {}}, torch::kFloat32, 14);
  bad.cu_seqlens = {0, 8};
  expect_error([&] { ttt::apply(two.Z, two.V, two.W0, bad); }, "batch of one packed row");
  expect_error([] { ttt::parse_algorithm("fast"); }, "unknown TTT algorithm 'fast'");
  ttt::Stream stream(in.W0, 4, 0.3, 0.0);
  expect_error([&] { stream.append(in.Z[0].narrow(0, 0, 5), in.V[0].narrow(0, 0, 5)); }, "cross the chunk end");
}
