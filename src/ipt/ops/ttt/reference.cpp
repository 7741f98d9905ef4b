// Reference algorithm: materialise the fast weight of every chunk, then compute each chunk with
// its own weight. Plain differentiable torch ops, so autograd supplies the backward (clip
// included). Memory T x d x h per document: for tests and as the benchmark's baseline.
#include "ipt/ops/ttt/kernels.h"

namespace ipt::ttt::detail {

Output reference_forward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                         const torch::Tensor& W0, bool return_state) {
  const int64_t C = p.chunk_size;
  Output result;
  std::vector<std::vector<torch::Tensor>> row_pieces(Z.size(0));

  for (const Segment& s : p.segments) {
    torch::Tensor Zs = Z[s.row].narrow(0, s.begin, s.length());
    torch::Tensor Vs = V[s.row].narrow(0, s.begin, s.length());
    const int64_t chunks = p.num_chunks(s), full = s.length() / C, tail = s.length() - full * C;
    const int64_t d = W0.size(0), h = W0.size(1);

    // deltas[j] = s_j * lr * V_j^T Z_j for every full chunk j.
    torch::Tensor Zf = Zs.narrow(0, 0, full * C).view({full, C, h});
    torch::Tensor Vf = Vs.narrow(0, 0, full * C).view({full, C, d});
    torch::Tensor deltas = p.lr * torch::bmm(Vf.transpose(1, 2), Zf);
    if (p.clip > 0.0 && full > 0)
      deltas = deltas * torch::clamp_max(p.clip / deltas.flatten(1).norm(2, {1}), 1.0).view({full, 1, 1});
    // weights[i] = W0 + sum_{j < i} deltas[j], for every chunk i (materialised); with a decay,
    // weights[i + 1] = W0 + decay (weights[i] - W0) + deltas[i], one chunk at a time.
    torch::Tensor weights, last;  // last: the weight after every full chunk (the state)
    if (p.decays()) {
      std::vector<torch::Tensor> chain{W0};
      for (int64_t j = 0; j < full; ++j) chain.push_back(W0 + p.decay * (chain.back() - W0) + deltas[j]);
      last = chain.back();
      chain.resize(chunks);
      weights = torch::stack(chain);
    } else {
      torch::Tensor before = torch::cat({torch::zeros({1, d, h}, W0.options()), deltas.narrow(0, 0, chunks - 1)});
      weights = before.cumsum(0) + W0;  // [chunks, d, h]
      last = W0 + deltas.sum(0);
    }

    if (full > 0) row_pieces[s.row].push_back(torch::bmm(Zf, weights.narrow(0, 0, full).transpose(1, 2)).view({-1, d}));
    if (tail > 0) row_pieces[s.row].push_back(torch::mm(Zs.narrow(0, full * C, tail), weights[full].t()));
    if (return_state) {
      DocumentState state;
      state.weight = last.detach().clone();
      state.pending_z = Zs.narrow(0, full * C, tail).detach().clone();
      state.pending_v = Vs.narrow(0, full * C, tail).detach().clone();
      state.updates = full;
      result.states.push_back(std::move(state));
    }
  }
  std::vector<torch::Tensor> rows;
  for (auto& pieces : row_pieces) rows.push_back(torch::cat(pieces, 0));
  result.out = torch::stack(rows);
  return result;
}

}  // namespace ipt::ttt::detail
