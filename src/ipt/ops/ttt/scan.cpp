// Scan algorithm (the paper's Algorithm 1) over groups of chunks: every delta of a group in one
// batched product, an exclusive prefix sum carried across groups, every output of the group in
// one batched product. Memory: a few [group, d, h] buffers; group = all chunks is Algorithm 1
// exactly, group = 1 is the recurrent form.
#include "ipt/ops/ttt/kernels.h"

namespace ipt::ttt::detail {

namespace {

// Full chunks [first, first + count) of segment s as a [count, C, width] view.
torch::Tensor chunk_view(const torch::Tensor& t, const Segment& s, int64_t C, int64_t first, int64_t count) {
  return t[s.row].narrow(0, s.begin + first * C, count * C).view({count, C, t.size(2)});
}

int64_t group_size(const Problem& p, int64_t full_chunks) {
  return p.scan_group > 0 ? std::min(p.scan_group, full_chunks) : full_chunks;
}

// deltas[j] = s_j * lr * V_j^T Z_j for the group's chunks; records or reads clip factors.
void group_deltas(const Problem& p, const torch::Tensor& Zg, const torch::Tensor& Vg, torch::Tensor& deltas,
                  double* scales, bool compute_scales) {
  bmm_into(deltas, Vg.transpose(1, 2), Zg);
  deltas.mul_(p.lr);
  if (p.clip <= 0.0) {
    if (compute_scales) std::fill(scales, scales + deltas.size(0), 1.0);
    return;
  }
  for (int64_t j = 0; j < deltas.size(0); ++j) {
    if (compute_scales) scales[j] = clip_scale(deltas[j], p.clip);
    if (scales[j] < 1.0) deltas[j].mul_(scales[j]);
  }
}

}  // namespace

ForwardResult scan_forward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                           const torch::Tensor& W0, torch::Tensor& O, bool keep_weights) {
  const int64_t C = p.chunk_size, d = W0.size(0), h = W0.size(1);
  int64_t total_full = 0, max_group = 1;
  for (const Segment& s : p.segments) {
    total_full += s.length() / C;
    max_group = std::max(max_group, group_size(p, s.length() / C));
  }
  ForwardResult result;
  result.scales = torch::ones({total_full}, torch::kFloat64);
  double* scales = result.scales.data_ptr<double>();
  torch::Tensor deltas_buf = torch::empty({max_group, d, h}, W0.options());
  torch::Tensor weights_buf = torch::empty({max_group, d, h}, W0.options());
  torch::Tensor carry = torch::empty_like(W0);

  for (const Segment& s : p.segments) {
    const int64_t full = s.length() / C, group = group_size(p, full);
    carry.copy_(W0);
    for (int64_t first = 0; first < full; first += group) {
      const int64_t count = std::min(group, full - first);
      torch::Tensor Zg = chunk_view(Z, s, C, first, count), Vg = chunk_view(V, s, C, first, count);
      torch::Tensor deltas = deltas_buf.narrow(0, 0, count), weights = weights_buf.narrow(0, 0, count);
      group_deltas(p, Zg, Vg, deltas, scales, true);
      scales += count;
      // Exclusive prefix sum on top of the carried weight (decayed towards W0 when asked).
      weights[0].copy_(carry);
      for (int64_t j = 1; j < count; ++j) {
        if (p.decays()) {
          weights[j].copy_(weights[j - 1]);
          decay_towards(weights[j], W0, p.decay);
          weights[j].add_(deltas[j - 1]);
        } else {
          add_into(weights[j], weights[j - 1], deltas[j - 1]);
        }
      }
      torch::Tensor Og = chunk_view(O, s, C, first, count);
      bmm_into(Og, Zg, weights.transpose(1, 2));
      if (p.decays()) {
        carry.copy_(weights[count - 1]);
        decay_towards(carry, W0, p.decay);
        carry.add_(deltas[count - 1]);
      } else {
        add_into(carry, weights[count - 1], deltas[count - 1]);
      }
    }
    if (const int64_t tail = s.length() - full * C; tail > 0) {
      torch::Tensor Zt = Z[s.row].narrow(0, s.begin + full * C, tail);
      torch::Tensor Ot = O[s.row].narrow(0, s.begin + full * C, tail);
      mm_into(Ot, Zt, carry.t());
    }
    if (keep_weights) result.weights.push_back(carry.clone());
  }
  return result;
}

Gradients scan_backward(const Problem& p, const torch::Tensor& Z, const torch::Tensor& V,
                        const torch::Tensor& W0, const torch::Tensor& scales_all, const torch::Tensor& dO) {
  const int64_t C = p.chunk_size, d = W0.size(0), h = W0.size(1);
  int64_t max_group = 1;
  for (const Segment& s : p.segments) max_group = std::max(max_group, group_size(p, s.length() / C));
  Gradients g{torch::empty_like(Z), torch::zeros_like(V), torch::zeros_like(W0)};
  torch::Tensor deltas_buf = torch::empty({max_group, d, h}, W0.options());
  torch::Tensor weights_buf = torch::empty({max_group, d, h}, W0.options());
  torch::Tensor grads_buf = torch::empty({max_group, d, h}, W0.options());  // dO_j^T Z_j, then dL/dU_j
  torch::Tensor suffix_buf = torch::empty({max_group, d, h}, W0.options());  // R_j = sum_{k>j} G_k
  torch::Tensor carry_R = torch::empty_like(W0), clip_buffer = torch::empty_like(W0);
  double* scales_base = scales_all.data_ptr<double>();
  int64_t scale_offset = 0;  // first full chunk of the current segment in scales_all

  for (const Segment& s : p.segments) {
    const int64_t full = s.length() / C, chunks = p.num_chunks(s), group = group_size(p, full);
    // `next_weight` is the weight of the chunk right after the group being processed; it starts
    // as the weight of the segment's last chunk and steps back a group at a time.
    torch::Tensor next_weight = last_chunk_weight(p, s, Z, V, W0, scales_all.narrow(0, scale_offset, full));
    carry_R.zero_();
    if (const int64_t tail = s.length() - full * C; tail > 0) {
      torch::Tensor Zt = Z[s.row].narrow(0, s.begin + full * C, tail);
      torch::Tensor dOt = dO[s.row].narrow(0, s.begin + full * C, tail);
      mm_into(g.dZ[s.row].narrow(0, s.begin + full * C, tail), dOt, next_weight);
      carry_R.addmm_(dOt.t(), Zt);
    }
    // Chunks whose delta reaches an output: 0 .. chunks-2. Walk groups of full chunks backwards.
    const int64_t last_group_first = full == 0 ? 0 : ((full - 1) / group) * group;
    for (int64_t first = last_group_first; first >= 0 && full > 0; first -= group) {
      const int64_t count = std::min(group, full - first);
      torch::Tensor Zg = chunk_view(Z, s, C, first, count), Vg = chunk_view(V, s, C, first, count);
      torch::Tensor dOg = chunk_view(dO, s, C, first, count);
      torch::Tensor deltas = deltas_buf.narrow(0, 0, count), weights = weights_buf.narrow(0, 0, count);
      torch::Tensor grads = grads_buf.narrow(0, 0, count), suffix = suffix_buf.narrow(0, 0, count);
      double* group_scales = scales_base + scale_offset + first;
      group_deltas(p, Zg, Vg, deltas, group_scales, false);
      // W_j = W_{j+1} - delta_j, from the chunk after the group down to `first`. When the group
      // holds the segment's last chunk, next_weight already is that chunk's weight.
      const bool holds_last_chunk = first + count == chunks;
      if (holds_last_chunk) {
        weights[count - 1].copy_(next_weight);
      } else {
        sub_into(weights[count - 1], next_weight, deltas[count - 1]);
      }
      for (int64_t j = count - 2; j >= 0; --j) sub_into(weights[j], weights[j + 1], deltas[j]);
      next_weight.copy_(weights[0]);
      // G_j = dO_j^T Z_j; R_j = carry + sum_{k>j in group} G_k.
      bmm_into(grads, dOg.transpose(1, 2), Zg);
      suffix[count - 1].copy_(carry_R);
      for (int64_t j = count - 2; j >= 0; --j) add_into(suffix[j], suffix[j + 1], grads[j + 1]);
      add_into(carry_R, suffix[0], grads[0]);
      // dL/d(update_j) from R_j (with the clip factor's derivative), into grads (no longer needed).
      for (int64_t j = 0; j < count; ++j) {
        if (first + j >= chunks - 1) {
          grads[j].zero_();
          continue;
        }
        const double scale = group_scales[j];
        if (scale < 1.0) {
          torch::Tensor raw = deltas[j] / scale;  // the unclipped update lr V^T Z
          grads[j].copy_(unclip_gradient(suffix[j], raw, scale, clip_buffer));
        } else {
          grads[j].copy_(suffix[j]);
        }
      }
      torch::Tensor dZg = chunk_view(g.dZ, s, C, first, count), dVg = chunk_view(g.dV, s, C, first, count);
      bmm_into(dZg, dOg, weights);
      dZg.baddbmm_(Vg, grads, 1.0, p.lr);
      dVg.baddbmm_(Zg, grads.transpose(1, 2), 0.0, p.lr);
    }
    g.dW0.add_(carry_R);
    scale_offset += full;
  }
  return g;
}

}  // namespace ipt::ttt::detail
