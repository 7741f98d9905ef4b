// Recurrent algorithm: one [d, h] fast weight per document, chunk after chunk.
// Every matrix product writes into a preallocated buffer or straight into the output rows, so
// the loop allocates nothing per chunk (fresh memory is expensive on these machines).
#include <cmath>

#include "ipt/ops/ttt/kernels.h"

namespace ipt::ttt::detail {

double clip_scale(const torch::Tensor& update, double clip) {
  if (clip <= 0.0) return 1.0;
  double norm = update.norm().item<double>();
  return norm > clip ? clip / norm : 1.0;
}

torch::Tensor unclip_gradient(const torch::Tensor& R, const torch::Tensor& update, double scale,
                              torch::Tensor& buffer) {
  if (scale >= 1.0) return R;
  // Clipped: dW = tau * U / |U|.  d/dU <R, dW> = s * (R - <R, U> / |U|^2 * U).
  double dot = (R.reshape(-1).dot(update.reshape(-1))).item<double>();
  double norm_sq = update.reshape(-1).dot(update.reshape(-1)).item<double>();
  at::mul_out(buffer, update, -dot / norm_sq);
  buffer.add_(R);
  buffer.mul_(scale);
  return buffer;
}

namespace {

torch::Tensor rows(const torch::Tensor& t, const Segment& s, int64_t begin, int64_t count) {
  return t[s.row].narrow(0, s.begin + begin, count);
}

}  // namespace

torch::Tensor last_chunk_weight(const Problem& p, const Segment& s, const torch::Tensor& Z, const torch::Tensor& V,
                                const torch::Tensor& W0, const torch::Tensor& segment_scales) {
  const int64_t used = (p.num_chunks(s) - 1) * p.chunk_size;  // rows whose deltas reach later outputs
  // The result is float32 at least: half / bfloat16 deltas are summed by one product in their own
  // type and added to a float32 copy of W0 (the mixed backward's master).
  const bool reduced = W0.scalar_type() == torch::kHalf || W0.scalar_type() == torch::kBFloat16;
  torch::Tensor W = reduced ? W0.to(torch::kFloat32) : W0.clone();
  if (used == 0) return W;
  torch::Tensor Vu = rows(V, s, 0, used);
  if (p.clip > 0.0) {
    // Scale each chunk's target rows by its clip factor: sum_j s_j V_j^T Z_j = (S V)^T Z.
    torch::Tensor row_scales = segment_scales.narrow(0, 0, used / p.chunk_size)
                                   .to(Vu.scalar_type())
                                   .repeat_interleave(p.chunk_size)
                                   .unsqueeze(1);
    Vu = Vu * row_scales;
  }
  if (reduced) W.add_(torch::mm(Vu.t(), rows(Z, s, 0, used)), p.lr);
  else W.addmm_(Vu.t(), rows(Z, s, 0, used), 1.0, p.lr);
  return W;
}

ForwardResult recurrent_forward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                                const torch::Tensor& W0, torch::Tensor& O, bool keep_weights) {
  const int64_t C = p.chunk_size;
  ForwardResult result;
  std::vector<double> scales;
  torch::Tensor W = torch::empty_like(W0);
  torch::Tensor update = p.clip > 0.0 ? torch::empty_like(W0) : torch::Tensor();

  for (const Segment& s : p.segments) {
    W.copy_(W0);
    for (int64_t begin = 0; begin < s.length(); begin += C) {
      const int64_t n = std::min(C, s.length() - begin);
      torch::Tensor Zc = rows(Z, s, begin, n);
      torch::Tensor Oc = rows(O, s, begin, n);
      mm_into(Oc, Zc, W.t());
      if (n < C) break;  // a partial chunk's update waits until the chunk is full
      torch::Tensor Vc = rows(V, s, begin, n);
      decay_towards(W, W0, p.decay);
      if (p.clip > 0.0) {
        update.addmm_(Vc.t(), Zc, 0.0, p.lr);
        double scale = clip_scale(update, p.clip);
        W.add_(update, scale);
        scales.push_back(scale);
      } else {
        W.addmm_(Vc.t(), Zc, 1.0, p.lr);
        scales.push_back(1.0);
      }
      record_drift(p, W, W0);
    }
    if (keep_weights) result.weights.push_back(W.clone());
  }
  result.scales = torch::tensor(scales, torch::kFloat64);
  return result;
}

ForwardResult recurrent_forward_mixed(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                                      const torch::Tensor& W0, torch::Tensor& O, bool keep_weights) {
  const int64_t C = p.chunk_size;
  ForwardResult result;
  std::vector<double> scales;
  torch::Tensor W = torch::empty(W0.sizes(), W0.options().dtype(torch::kFloat32));  // the master
  torch::Tensor W_compute = torch::empty_like(W0);  // W in the compute type, for the products
  torch::Tensor delta = torch::empty_like(W0);      // V_c^T Z_c of one chunk, in the compute type
  torch::Tensor update = p.clip > 0.0 ? torch::empty_like(W) : torch::Tensor();

  for (const Segment& s : p.segments) {
    W.copy_(W0);
    W_compute.copy_(W0);
    for (int64_t begin = 0; begin < s.length(); begin += C) {
      const int64_t n = std::min(C, s.length() - begin);
      torch::Tensor Zc = rows(Z, s, begin, n);
      mm_into(rows(O, s, begin, n), Zc, W_compute.t());
      if (n < C) break;  // a partial chunk's update waits until the chunk is full
      mm_into(delta, rows(V, s, begin, n).t(), Zc);
      decay_towards(W, W0, p.decay);
      double scale = 1.0;
      if (p.clip > 0.0) {
        update.copy_(delta).mul_(p.lr);  // float32 from here on
        scale = clip_scale(update, p.clip);
        W.add_(update, scale);
      } else {
        W.add_(delta, p.lr);
      }
      scales.push_back(scale);
      W_compute.copy_(W);
      record_drift(p, W, W0);
    }
    if (keep_weights) result.weights.push_back(W.clone());
  }
  result.scales = torch::tensor(scales, torch::kFloat64);
  return result;
}

Gradients recurrent_backward_mixed(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                                   const torch::Tensor& W0, const torch::Tensor& scales, const torch::Tensor& dO) {
  const int64_t C = p.chunk_size;
  const auto f32 = W0.options().dtype(torch::kFloat32);
  Gradients g{torch::empty_like(Z), torch::zeros_like(V), torch::empty_like(W0)};
  torch::Tensor R = torch::empty(W0.sizes(), f32);  // sum of dO_k^T Z_k over the later chunks (master)
  torch::Tensor W_compute = torch::empty_like(W0), R_compute = torch::empty_like(W0);
  torch::Tensor product = torch::empty_like(W0);  // one chunk's V^T Z or dO^T Z, in the compute type
  torch::Tensor update = p.clip > 0.0 ? torch::empty(W0.sizes(), f32) : torch::Tensor();
  torch::Tensor clip_buffer = p.clip > 0.0 ? torch::empty(W0.sizes(), f32) : torch::Tensor();
  torch::Tensor dW0 = torch::zeros(W0.sizes(), f32);
  auto scale_of = scales.accessor<double, 1>();

  int64_t scale_offset = 0;
  for (const Segment& s : p.segments) {
    const int64_t chunks = p.num_chunks(s);
    torch::Tensor segment_scales = scales.narrow(0, scale_offset, s.length() / C);
    torch::Tensor W = last_chunk_weight(p, s, Z, V, W0, segment_scales);  // W_{chunks-1}, float32
    R.zero_();
    for (int64_t i = chunks - 1; i >= 0; --i) {
      const int64_t begin = i * C;
      const int64_t n = std::min(C, s.length() - begin);
      torch::Tensor Zc = rows(Z, s, begin, n), Vc = rows(V, s, begin, n), dOc = rows(dO, s, begin, n);
      torch::Tensor dZc = rows(g.dZ, s, begin, n), dVc = rows(g.dV, s, begin, n);
      if (i < chunks - 1) {  // the last chunk's delta reaches no output
        const double scale = scale_of[scale_offset + i];
        mm_into(product, Vc.t(), Zc);
        torch::Tensor Rt = R;
        if (p.clip > 0.0) {
          update.copy_(product).mul_(p.lr);  // float32
          W.sub_(update, scale);
          Rt = unclip_gradient(R, update, scale, clip_buffer);
        } else {
          W.sub_(product, p.lr);
        }
        W_compute.copy_(W);
        R_compute.copy_(Rt);
        mm_into(dZc, dOc, W_compute);
        dZc.addmm_(Vc, R_compute, 1.0, p.lr);
        dVc.addmm_(Zc, R_compute.t(), 0.0, p.lr);
      } else {
        W_compute.copy_(W);
        mm_into(dZc, dOc, W_compute);
      }
      mm_into(product, dOc.t(), Zc);
      R.add_(product);
    }
    dW0.add_(R);
    scale_offset += s.length() / C;
  }
  g.dW0.copy_(dW0);
  return g;
}

Gradients recurrent_backward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                             const torch::Tensor& W0, const torch::Tensor& scales, const torch::Tensor& dO) {
  const int64_t C = p.chunk_size;
  Gradients g{torch::empty_like(Z), torch::zeros_like(V), torch::zeros_like(W0)};
  torch::Tensor R = torch::empty_like(W0);  // sum of dO_k^T Z_k over the chunks after the current one
  torch::Tensor update = p.clip > 0.0 ? torch::empty_like(W0) : torch::Tensor();
  torch::Tensor clip_buffer = p.clip > 0.0 ? torch::empty_like(W0) : torch::Tensor();
  auto scale_of = scales.accessor<double, 1>();

  int64_t scale_offset = 0;
  for (const Segment& s : p.segments) {
    const int64_t chunks = p.num_chunks(s);
    torch::Tensor segment_scales = scales.narrow(0, scale_offset, s.length() / C);
    torch::Tensor W = last_chunk_weight(p, s, Z, V, W0, segment_scales);  // W_{chunks-1}
    R.zero_();
    for (int64_t i = chunks - 1; i >= 0; --i) {
      const int64_t begin = i * C;
      const int64_t n = std::min(C, s.length() - begin);
      torch::Tensor Zc = rows(Z, s, begin, n), Vc = rows(V, s, begin, n), dOc = rows(dO, s, begin, n);
      torch::Tensor dZc = rows(g.dZ, s, begin, n), dVc = rows(g.dV, s, begin, n);
      const bool has_delta = i < chunks - 1;  // the last chunk's delta reaches no output
      if (has_delta) {
        // Step W back from W_{i+1} to W_i, and push the gradient of W_{i+1..} into this delta.
        const double scale = scale_of[scale_offset + i];
        torch::Tensor Rt = R;
        if (p.clip > 0.0) {
          update.addmm_(Vc.t(), Zc, 0.0, p.lr);
          W.sub_(update, scale);
          Rt = unclip_gradient(R, update, scale, clip_buffer);
        } else {
          W.addmm_(Vc.t(), Zc, 1.0, -p.lr);
        }
        mm_into(dZc, dOc, W);
        dZc.addmm_(Vc, Rt, 1.0, p.lr);
        dVc.addmm_(Zc, Rt.t(), 0.0, p.lr);
      } else {
        mm_into(dZc, dOc, W);
      }
      R.addmm_(dOc.t(), Zc);
    }
    g.dW0.add_(R);
    scale_offset += s.length() / C;
  }
  return g;
}

}  // namespace ipt::ttt::detail
