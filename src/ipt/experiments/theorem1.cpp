#include "ipt/experiments/theorem1.h"

#include <torch/torch.h>

#include <cmath>

#include "ipt/common/error.h"
#include "ipt/ops/ttt/ttt.h"

namespace ipt::experiments {
namespace {

// Δlogits at the query for one target kind: the query's output with the chunk's update applied
// minus its output with W0 (lr 0), read through the tied head.
torch::Tensor logit_change(const torch::Tensor& E, const torch::Tensor& Z, const torch::Tensor& X,
                           const torch::Tensor& W0, ttt::TargetKind kind, const Theorem1Options& o) {
  const int64_t d = E.size(1);
  // One tap looking one row ahead: same padding has taps t-2 .. t+2, so index 3 is t+1.
  torch::Tensor conv = torch::zeros({d, 1, ttt::kConvKernel}, E.options());
  conv.select(2, 3).fill_(1.0);
  ttt::TargetOptions target;
  target.chunk_size = o.context;
  target.kind = kind;
  torch::Tensor V = ttt::build_target(X, conv, /*proj=*/torch::Tensor(), target);

  ttt::Options run;
  run.chunk_size = o.context;  // the context is chunk 0, the query row opens chunk 1
  run.algorithm = ttt::Algorithm::kRecurrent;
  run.lr = o.lr;
  torch::Tensor with_update = ttt::apply(Z, V, W0, run).out[0][-1];
  run.lr = 0.0;
  torch::Tensor without = ttt::apply(Z, V, W0, run).out[0][-1];
  return torch::mv(E, with_update - without);
}

}  // namespace

Theorem1Result measure_theorem1(const Theorem1Options& o) {
  if (o.vocab < 4 || o.dim < 1 || o.hidden < 1 || o.trials < 1 || o.lr <= 0 || o.embed_norm <= 0)
    throw Error("theorem1: vocab >= 4, dim, hidden, trials >= 1 and lr, embed_norm > 0 are required");
  if (o.context < 3 || o.context > o.vocab)
    throw Error("theorem1: context must be in [3, vocab] (" + std::to_string(o.context) +
                " given) so that A and B occur once");
  torch::NoGradGuard no_grad;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Generator gen = at::detail::createCPUGenerator(o.seed);

  Theorem1Result result;
  result.predicted_correct = o.lr * o.embed_norm * o.embed_norm;
  std::vector<double> ntp_correct, rec_correct;
  double ntp_others = 0, rec_others = 0, ntp_max = 0, rec_max = 0;
  for (int64_t trial = 0; trial < o.trials; ++trial) {
    // Embeddings of norm ‖e‖ and token-dependent unit activations, both random directions.
    torch::Tensor E = at::normal(0.0, 1.0, {o.vocab, o.dim}, gen, f64);
    E = E / E.norm(2, 1, true) * o.embed_norm;
    torch::Tensor features = at::normal(0.0, 1.0, {o.vocab, o.hidden}, gen, f64);
    features = features / features.norm(2, 1, true);
    torch::Tensor W0 = at::normal(0.0, 1.0 / std::sqrt(double(o.hidden)), {o.dim, o.hidden}, gen, f64);

    // Distinct context tokens; A at a random position k < context-1, B right after it, and the
    // query A at the end.
    torch::Tensor tokens = at::randperm(o.vocab, gen, torch::TensorOptions().dtype(torch::kLong)).narrow(0, 0, o.context);
    const int64_t k = at::randint(0, o.context - 1, {1}, gen, torch::TensorOptions().dtype(torch::kLong)).item<int64_t>();
    const int64_t A = tokens[k].item<int64_t>(), B = tokens[k + 1].item<int64_t>();
    tokens = torch::cat({tokens, torch::tensor({A}, tokens.options())});

    torch::Tensor X = E.index_select(0, tokens).unsqueeze(0);         // [1, L, d]
    torch::Tensor Z = features.index_select(0, tokens).unsqueeze(0);  // [1, L, h]
    torch::Tensor others = torch::ones({o.vocab}, torch::kBool);
    others[B] = false;
    for (auto kind : {ttt::TargetKind::kConv, ttt::TargetKind::kReconstruction}) {
      torch::Tensor delta = logit_change(E, Z, X, W0, kind, o);
      const double correct = delta[B].item<double>();
      torch::Tensor rest = delta.masked_select(others).abs();
      const bool ntp = kind == ttt::TargetKind::kConv;
      (ntp ? ntp_correct : rec_correct).push_back(correct);
      (ntp ? ntp_others : rec_others) += rest.mean().item<double>();
      (ntp ? ntp_max : rec_max) += rest.max().item<double>();
    }
  }
  auto summarise = [&](const std::vector<double>& correct, double others, double max_others) {
    TargetEffect effect;
    for (double c : correct) effect.correct_mean += c / correct.size();
    for (double c : correct) effect.correct_std += (c - effect.correct_mean) * (c - effect.correct_mean) / correct.size();
    effect.correct_std = std::sqrt(effect.correct_std);
    effect.others_mean_abs = others / o.trials;
    effect.others_max_abs = max_others / o.trials;
    return effect;
  };
  result.next_token = summarise(ntp_correct, ntp_others, ntp_max);
  result.reconstruction = summarise(rec_correct, rec_others, rec_max);
  return result;
}

}  // namespace ipt::experiments
