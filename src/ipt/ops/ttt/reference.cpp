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
    const int64_t chunks = p.num_chunks(s), full = s.length() / C;

    // deltas[j] for every full chunk, clipped.
    std::vector<torch::Tensor> deltas;
    for (int64_t j = 0; j < full; ++j) {
      torch::Tensor update = p.lr * torch::mm(Vs.narrow(0, j * C, C).t(), Zs.narrow(0, j * C, C));
      if (p.clip > 0.0) update = update * torch::clamp_max(p.clip / update.norm(), 1.0);
      deltas.push_back(update);
    }
    // weights[i] = W0 + sum_{j < i} deltas[j], for every chunk i (materialised).
    std::vector<torch::Tensor> prefix{torch::zeros_like(W0)};
    for (int64_t j = 0; j + 1 < chunks; ++j) prefix.push_back(deltas[j]);
    torch::Tensor weights = torch::stack(prefix).cumsum(0) + W0;  // [chunks, d, h]

    for (int64_t i = 0; i < chunks; ++i) {
      const int64_t n = std::min(C, s.length() - i * C);
      row_pieces[s.row].push_back(torch::mm(Zs.narrow(0, i * C, n), weights[i].t()));
    }
    if (return_state) {
      DocumentState state;
      state.weight = (full == 0 ? W0 : W0 + torch::stack(deltas).sum(0)).detach().clone();
      state.pending_z = Zs.narrow(0, full * C, s.length() - full * C).detach().clone();
      state.pending_v = Vs.narrow(0, full * C, s.length() - full * C).detach().clone();
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
