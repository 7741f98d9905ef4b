// Backward of the decayed update W_{i+1} = W0 + decay (W_i - W0) + s_i lr V_i^T Z_i (recurrent and
// scan forwards both end here when decay < 1).
//
// With T_i the gradient of the loss with respect to W_i through every chunk from i on,
//     T_i = dO_i^T Z_i + decay T_{i+1},            dL/d(update_i) = T_{i+1},
//     dL/dW0 = T_0 + (1 - decay) sum_{i >= 1} T_i   (W0 is also the point each step decays towards).
// The undecayed backward steps each weight back from the last one; here that would divide by the
// decay per chunk and amplify rounding by decay^-n. Instead the weights are rebuilt forwards: a first
// pass keeps a checkpoint every ~sqrt(n) chunks, then each block of chunks, last block first, is
// recomputed from its checkpoint and walked backwards. Memory: about 2 sqrt(n) [d, h] matrices.
#include <cmath>

#include "ipt/ops/ttt/kernels.h"

namespace ipt::ttt::detail {

namespace {

torch::Tensor rows(const torch::Tensor& t, const Segment& s, int64_t begin, int64_t count) {
  return t[s.row].narrow(0, s.begin + begin, count);
}

bool is_reduced(const torch::Tensor& t) {
  return t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16;
}

// A master-type matrix as the products want it: itself, or converted into `buffer` (defined only
// when the master type differs).
torch::Tensor in_compute_type(const torch::Tensor& master, torch::Tensor& buffer) {
  return buffer.defined() ? buffer.copy_(master) : master;
}

}  // namespace

Gradients decayed_backward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V, const torch::Tensor& W0,
                           const torch::Tensor& scales, const torch::Tensor& dO) {
  const int64_t C = p.chunk_size;
  const double decay = p.decay;
  // Weights and gradient sums live in a master type (float32 for half / bfloat16); products are
  // taken in the inputs' own type, as the forward took them.
  const bool reduced = is_reduced(W0);
  const torch::TensorOptions master = W0.options().dtype(reduced ? torch::kFloat32 : W0.scalar_type());
  const torch::Tensor W0_master = W0.to(master.dtype());
  Gradients g{torch::empty_like(Z), torch::zeros_like(V), torch::empty_like(W0)};
  torch::Tensor dW0 = torch::zeros(W0.sizes(), master);
  torch::Tensor T = torch::empty(W0.sizes(), master);        // T_{i+1} while chunk i is processed
  torch::Tensor product = torch::empty_like(W0);              // one chunk's V^T Z or dO^T Z
  torch::Tensor raw_update = torch::empty(W0.sizes(), master);  // lr V^T Z before its clip (clip only)
  torch::Tensor clip_buffer = torch::empty(W0.sizes(), master);
  torch::Tensor W_compute = reduced ? torch::empty_like(W0) : torch::Tensor();
  torch::Tensor U_compute = reduced ? torch::empty_like(W0) : torch::Tensor();
  auto scale_of = scales.accessor<double, 1>();

  int64_t scale_offset = 0;  // first full chunk of the current segment in `scales`
  for (const Segment& s : p.segments) {
    const int64_t chunks = p.num_chunks(s);
    const int64_t every = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(chunks)))));
    // W_i -> W_{i+1} (only for chunks whose update reaches a later output, i < chunks - 1).
    auto step = [&](torch::Tensor W, int64_t i) {
      decay_towards(W, W0_master, decay);
      mm_into(product, rows(V, s, i * C, C).t(), rows(Z, s, i * C, C));
      W.add_(product, p.lr * scale_of[scale_offset + i]);
    };

    std::vector<torch::Tensor> checkpoints;  // W_0, W_every, W_2every, ...
    torch::Tensor W = W0_master.clone();
    for (int64_t i = 0; i < chunks; i += every) {
      checkpoints.push_back(W.clone());
      for (int64_t j = i; j < std::min(i + every, chunks - 1); ++j) step(W, j);
    }

    torch::Tensor block = torch::empty({every, W0.size(0), W0.size(1)}, master);
    T.zero_();
    for (int64_t b = static_cast<int64_t>(checkpoints.size()) - 1; b >= 0; --b) {
      const int64_t first = b * every, last = std::min(first + every, chunks);
      block[0].copy_(checkpoints[b]);
      for (int64_t i = first + 1; i < last; ++i) {
        block[i - first].copy_(block[i - first - 1]);
        step(block[i - first], i - 1);
      }
      for (int64_t i = last - 1; i >= first; --i) {
        const int64_t n = std::min(C, s.length() - i * C);
        torch::Tensor Zc = rows(Z, s, i * C, n), Vc = rows(V, s, i * C, n), dOc = rows(dO, s, i * C, n);
        torch::Tensor dZc = rows(g.dZ, s, i * C, n), dVc = rows(g.dV, s, i * C, n);
        mm_into(dZc, dOc, in_compute_type(block[i - first], W_compute));
        if (i < chunks - 1) {  // this chunk's update reaches the outputs after it, through T_{i+1}
          const double scale = scale_of[scale_offset + i];
          torch::Tensor U = T;
          if (scale < 1.0) {
            mm_into(product, Vc.t(), Zc);
            raw_update.copy_(product).mul_(p.lr);
            U = unclip_gradient(T, raw_update, scale, clip_buffer);
          }
          const torch::Tensor Uc = in_compute_type(U, U_compute);
          dZc.addmm_(Vc, Uc, 1.0, p.lr);
          dVc.addmm_(Zc, Uc.t(), 0.0, p.lr);
        }
        // T_i = dO_i^T Z_i + decay T_{i+1}.
        mm_into(product, dOc.t(), Zc);
        T.mul_(decay).add_(product);
        dW0.add_(T, i == 0 ? 1.0 : 1.0 - decay);
      }
    }
    scale_offset += s.length() / C;
  }
  g.dW0.copy_(dW0);
  return g;
}

}  // namespace ipt::ttt::detail
