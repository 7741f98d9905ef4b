// The TTT MLP: drop-in property, streaming decode equals the whole-sequence forward (the
// convolution target of a chunk built only once the chunk is complete), the official no-update
// decode, packed documents, and gradients reaching every parameter.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipt/common/error.h"
#include "ipt/model/ttt_mlp.h"

using namespace ipt;
using model::GatedMlp;
using model::MlpStream;
using model::TttSettings;

namespace {

TttSettings settings(int64_t chunk) {
  TttSettings s;
  s.enabled = true;
  s.chunk_size = chunk;
  s.lr = 0.5;
  return s;
}

GatedMlp random_mlp(TttSettings s, uint64_t seed) {
  torch::manual_seed(seed);
  GatedMlp mlp(6, 10, s);
  mlp->to(torch::kFloat64);
  torch::NoGradGuard no_grad;
  for (auto& p : mlp->parameters()) p.normal_(0.0, 0.4);
  return mlp;
}

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

}  // namespace

TEST(TttMlp, DropInEqualsPlainMlp) {
  torch::manual_seed(1);
  GatedMlp plain(16, 40, TttSettings{});
  GatedMlp with_ttt(16, 40, settings(8));
  {
    torch::NoGradGuard no_grad;
    for (const char* name : {"gate_proj", "up_proj", "down_proj"}) {
      auto src = plain->named_modules()[name]->named_parameters()["weight"];
      with_ttt->named_modules()[name]->named_parameters()["weight"].copy_(src);
    }
  }
  with_ttt->drop_in_init(0.02);
  torch::Tensor H = torch::randn({2, 37, 16});
  torch::Tensor base = plain(H, H), converted = with_ttt(H, H);
  EXPECT_LE(rel(converted, base), 1e-6);
  EXPECT_GT(with_ttt->ttt_proj->weight.abs().sum().item<double>(), 0.0);  // P is not all zero...
  EXPECT_EQ((with_ttt->ttt_proj->weight - torch::diag(torch::diag(with_ttt->ttt_proj->weight))).abs().sum().item<double>(),
            0.0);  // ...but diagonal
}

TEST(TttMlp, StreamingEqualsWholeSequence) {
  for (auto padding : {ttt::ConvPadding::kSame, ttt::ConvPadding::kCausal}) {
    TttSettings s = settings(4);
    s.conv_padding = padding;
    GatedMlp mlp = random_mlp(s, 2);
    torch::Tensor H = torch::randn({1, 23, 6}, torch::kFloat64), X = torch::randn({1, 23, 6}, torch::kFloat64);
    torch::Tensor whole = mlp(H, X);

    MlpStream tokens(mlp);
    std::vector<torch::Tensor> rows;
    for (int64_t t = 0; t < 23; ++t) rows.push_back(tokens.step(H.narrow(1, t, 1), X.narrow(1, t, 1)));
    EXPECT_LE(rel(torch::cat(rows, 1), whole), 1e-12);
    EXPECT_EQ(tokens.updates(), 5);
    EXPECT_EQ(tokens.pending(), 3);

    MlpStream chunks(mlp);
    torch::Tensor a = chunks.prefill(H.narrow(1, 0, 10), X.narrow(1, 0, 10));
    torch::Tensor b = chunks.step(H.narrow(1, 10, 13), X.narrow(1, 10, 13));
    EXPECT_LE(rel(torch::cat({a, b}, 1), whole), 1e-12);
  }
}

TEST(TttMlp, NoDecodeUpdateIsTheOfficialBehaviour) {
  TttSettings s = settings(4);
  s.decode_update = false;
  GatedMlp mlp = random_mlp(s, 3);
  torch::Tensor H = torch::randn({1, 20, 6}, torch::kFloat64), X = torch::randn({1, 20, 6}, torch::kFloat64);
  MlpStream stream(mlp);
  torch::Tensor prompt = stream.prefill(H.narrow(1, 0, 10), X.narrow(1, 0, 10));
  std::vector<torch::Tensor> rows;
  for (int64_t t = 10; t < 20; ++t) rows.push_back(stream.step(H.narrow(1, t, 1), X.narrow(1, t, 1)));
  EXPECT_EQ(stream.updates(), 2);  // the prompt's two full chunks, nothing while decoding

  // Independently: the weight after the prompt's full chunks, from the operator's own state.
  ttt::Options opt;
  opt.chunk_size = 4;
  opt.lr = 0.5;
  opt.return_state = true;
  torch::Tensor Z = mlp->activations(H);
  auto prefix = ttt::apply(Z.narrow(1, 0, 8), mlp->target(X.narrow(1, 0, 8), {}), mlp->down_proj->weight, opt);
  torch::Tensor expected = torch::mm(Z[0].narrow(0, 8, 12), prefix.states[0].weight.t());
  EXPECT_LE(rel(torch::cat({prompt.narrow(1, 8, 2), torch::cat(rows, 1)}, 1)[0], expected), 1e-12);
  EXPECT_LE(rel(prompt, mlp(H.narrow(1, 0, 10), X.narrow(1, 0, 10))), 1e-12);
}

TEST(TttMlp, PackedDocumentsEqualSeparate) {
  GatedMlp mlp = random_mlp(settings(3), 4);
  torch::Tensor H = torch::randn({1, 17, 6}, torch::kFloat64), X = torch::randn({1, 17, 6}, torch::kFloat64);
  std::vector<int64_t> cu{0, 5, 6, 17};
  torch::Tensor packed = mlp(H, X, cu);
  for (size_t k = 1; k < cu.size(); ++k) {
    int64_t b = cu[k - 1], n = cu[k] - b;
    EXPECT_LE(rel(packed.narrow(1, b, n), mlp(H.narrow(1, b, n), X.narrow(1, b, n))), 1e-12) << k;
  }
}

TEST(TttMlp, GradientsReachEveryParameter) {
  GatedMlp mlp = random_mlp(settings(4), 5);
  torch::Tensor H = torch::randn({2, 13, 6}, torch::kFloat64);
  mlp(H, H).pow(2).sum().backward();
  for (const auto& p : mlp->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  std::vector<std::string> names;
  for (const auto& p : mlp->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"gate_proj.weight", "up_proj.weight", "down_proj.weight",
                                             "ttt_conv.weight", "ttt_proj.weight"}));
}

TEST(TttMlp, BadInput) {
  GatedMlp mlp = random_mlp(settings(4), 6);
  MlpStream stream(mlp);
  torch::Tensor H = torch::randn({2, 3, 6}, torch::kFloat64);
  EXPECT_THROW(stream.step(H, H), Error);
  TttSettings other = mlp->ttt();
  other.use_proj = false;
  EXPECT_THROW(mlp->set_ttt(other), Error);
  other = mlp->ttt();
  other.chunk_size = 0;
  EXPECT_THROW(mlp->set_ttt(other), Error);
  EXPECT_THROW(MlpStream(GatedMlp(6, 10, TttSettings{})), Error);
}
