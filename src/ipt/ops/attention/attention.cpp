#include "ipt/ops/attention/attention.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "ipt/common/error.h"

namespace ipt::ops {

namespace {

// Which keys each query may see. Key j sits at position j; query i at position offset + i.
struct Masking {
  int64_t Lq = 0, Lk = 0, offset = 0, window = 0;
  std::vector<int64_t> doc;        // document of each position
  std::vector<int64_t> doc_start;  // first position of that document
  torch::Tensor doc_tensor;        // doc as a tensor (for block masks)

  // Keys [first, last] that any query in [q0, q0 + n) can see.
  std::pair<int64_t, int64_t> key_range(int64_t q0, int64_t n) const {
    const int64_t p0 = offset + q0, p1 = offset + q0 + n - 1;
    int64_t first = doc_start[p0];
    if (window > 0) first = std::max(first, p0 - window + 1);
    return {first, p1};
  }

  // Mask for queries [q0, q0+n) x keys [k0, k0+m), or undefined when every pair is visible.
  torch::Tensor block_mask(int64_t q0, int64_t n, int64_t k0, int64_t m) const {
    const int64_t p0 = offset + q0, p1 = offset + q0 + n - 1, k1 = k0 + m - 1;
    const bool causal_ok = k1 <= p0;
    const bool window_ok = window == 0 || k0 > p1 - window;
    const bool docs_ok = doc[k0] == doc[p1];
    if (causal_ok && window_ok && docs_ok) return {};
    torch::Tensor qp = torch::arange(p0, p1 + 1, torch::kInt64).unsqueeze(1);
    torch::Tensor kp = torch::arange(k0, k1 + 1, torch::kInt64).unsqueeze(0);
    torch::Tensor visible = kp <= qp;
    if (window > 0) visible = visible & (kp > qp - window);
    if (!docs_ok) visible = visible & (doc_tensor.narrow(0, k0, m).unsqueeze(0) == doc_tensor.narrow(0, p0, n).unsqueeze(1));
    return visible;
  }
};

Masking make_masking(int64_t Lq, int64_t Lk, const AttentionOptions& o) {
  Masking mk;
  mk.Lq = Lq;
  mk.Lk = Lk;
  mk.offset = Lk - Lq;
  mk.window = o.window;
  mk.doc.assign(Lk, 0);
  mk.doc_start.assign(Lk, 0);
  if (!o.cu_seqlens.empty()) {
    for (size_t d = 1; d < o.cu_seqlens.size(); ++d)
      for (int64_t p = o.cu_seqlens[d - 1]; p < o.cu_seqlens[d]; ++p) {
        mk.doc[p] = static_cast<int64_t>(d - 1);
        mk.doc_start[p] = o.cu_seqlens[d - 1];
      }
  }
  mk.doc_tensor = torch::tensor(mk.doc, torch::kInt64);
  return mk;
}

void check(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const AttentionOptions& o) {
  IPT_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: q, k, v must be [B, H, L, D], got ", q.sizes(),
            ", ", k.sizes(), ", ", v.sizes());
  IPT_CHECK(k.sizes() == v.sizes(), "attention: k and v must have one shape, got ", k.sizes(), " and ", v.sizes());
  IPT_CHECK(q.size(0) == k.size(0) && q.size(3) == k.size(3), "attention: q ", q.sizes(), " and k ", k.sizes(),
            " disagree in batch or head size");
  IPT_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, "attention: query heads (", q.size(1),
            ") must be a multiple of key/value heads (", k.size(1), ")");
  IPT_CHECK(q.size(2) <= k.size(2), "attention: more queries (", q.size(2), ") than keys (", k.size(2), ")");
  IPT_CHECK(q.size(2) > 0, "attention: no queries");
  IPT_CHECK(q.is_floating_point() && k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
            "attention: q, k, v must share one floating dtype");
  IPT_CHECK(k.device() == q.device() && v.device() == q.device(), "attention: q, k, v must be on one device");
  IPT_CHECK(o.window >= 0, "attention: window must be >= 0 (0 = full), got ", o.window);
  IPT_CHECK(o.block_q > 0 && o.block_k > 0, "attention: block sizes must be > 0");
  IPT_CHECK(std::isfinite(o.scale) && o.scale >= 0, "attention: scale must be finite and >= 0 (0 = 1/sqrt(D))");
  if (!o.cu_seqlens.empty()) {
    IPT_CHECK(q.size(0) == 1, "attention: cu_seqlens needs a batch of one packed row, got batch ", q.size(0));
    const auto& cu = o.cu_seqlens;
    IPT_CHECK(cu.size() >= 2 && cu.front() == 0 && cu.back() == k.size(2),
              "attention: cu_seqlens must run from 0 to the key length ", k.size(2));
    for (size_t i = 1; i < cu.size(); ++i) IPT_CHECK(cu[i] > cu[i - 1], "attention: cu_seqlens must be strictly increasing");
  }
}

double scale_of(const AttentionOptions& o, int64_t D) { return o.scale > 0 ? o.scale : 1.0 / std::sqrt(double(D)); }

// Query rows of one KV group for a block: [G * n, D] (heads stacked).
torch::Tensor group_rows(const torch::Tensor& t5, int64_t b, int64_t h, int64_t q0, int64_t n) {
  return t5[b][h].narrow(1, q0, n).reshape({-1, t5.size(4)});
}

struct FlashAttention : public torch::autograd::Function<FlashAttention> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor q, torch::Tensor k,
                               torch::Tensor v, const AttentionOptions* options) {
    const AttentionOptions& o = *options;
    const int64_t B = q.size(0), Hq = q.size(1), Hkv = k.size(1), G = Hq / Hkv, Lq = q.size(2), Lk = k.size(2),
                  D = q.size(3);
    const double scale = scale_of(o, D);
    Masking mk = make_masking(Lq, Lk, o);
    torch::Tensor q5 = q.view({B, Hkv, G, Lq, D});
    torch::Tensor out = torch::empty_like(q), lse = torch::empty({B, Hq, Lq}, q.options());
    torch::Tensor out5 = out.view({B, Hkv, G, Lq, D}), lse4 = lse.view({B, Hkv, G, Lq});
    const int64_t q_blocks = (Lq + o.block_q - 1) / o.block_q;
    at::parallel_for(0, B * Hkv * q_blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / (Hkv * q_blocks), h = (task / q_blocks) % Hkv, qb = task % q_blocks;
        const int64_t q0 = qb * o.block_q, n = std::min(o.block_q, Lq - q0);
        torch::Tensor Q = group_rows(q5, b, h, q0, n);  // [G*n, D]
        torch::Tensor K = k[b][h], V = v[b][h];
        torch::Tensor row_max = torch::full({G * n}, -std::numeric_limits<double>::infinity(), q.options());
        torch::Tensor row_sum = torch::zeros({G * n}, q.options()), acc = torch::zeros({G * n, D}, q.options());
        auto [first, last] = mk.key_range(q0, n);
        for (int64_t k0 = first; k0 <= last; k0 += o.block_k) {
          const int64_t m = std::min(o.block_k, last + 1 - k0);
          torch::Tensor s = torch::mm(Q, K.narrow(0, k0, m).t()).mul_(scale);  // [G*n, m]
          if (torch::Tensor visible = mk.block_mask(q0, n, k0, m); visible.defined())
            s.masked_fill_(~visible.repeat({G, 1}), -std::numeric_limits<double>::infinity());
          torch::Tensor new_max = torch::maximum(row_max, std::get<0>(s.max(1)));
          // Rows with nothing visible yet keep -inf; exp(-inf - -inf) would be NaN.
          torch::Tensor safe_max = torch::where(torch::isinf(new_max), torch::zeros_like(new_max), new_max);
          torch::Tensor p = (s - safe_max.unsqueeze(1)).exp_();
          torch::Tensor correction = (row_max - safe_max).exp_();
          row_sum.mul_(correction).add_(p.sum(1));
          acc.mul_(correction.unsqueeze(1)).addmm_(p, V.narrow(0, k0, m));
          row_max = new_max;
        }
        out5[b][h].narrow(1, q0, n).copy_((acc / row_sum.unsqueeze(1)).view({G, n, D}));
        lse4[b][h].narrow(1, q0, n).copy_((row_max + row_sum.log()).view({G, n}));
      }
    });
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["window"] = o.window;
    ctx->saved_data["cu_seqlens"] = o.cu_seqlens;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["block_q"] = o.block_q;
    ctx->saved_data["block_k"] = o.block_k;
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    torch::Tensor q = saved[0], k = saved[1], v = saved[2], out = saved[3], lse = saved[4];
    torch::Tensor dout = grad_outputs[0].contiguous();
    AttentionOptions o;
    o.window = ctx->saved_data["window"].toInt();
    o.cu_seqlens = ctx->saved_data["cu_seqlens"].toIntVector();
    o.block_q = ctx->saved_data["block_q"].toInt();
    o.block_k = ctx->saved_data["block_k"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t B = q.size(0), Hq = q.size(1), Hkv = k.size(1), G = Hq / Hkv, Lq = q.size(2), Lk = k.size(2),
                  D = q.size(3);
    Masking mk = make_masking(Lq, Lk, o);
    torch::Tensor q5 = q.view({B, Hkv, G, Lq, D}), do5 = dout.view({B, Hkv, G, Lq, D});
    torch::Tensor lse4 = lse.view({B, Hkv, G, Lq});
    torch::Tensor delta4 = (dout * out).sum(-1).view({B, Hkv, G, Lq});  // rowsum(dO * O)
    torch::Tensor dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    torch::Tensor dq5 = dq.view({B, Hkv, G, Lq, D});
    const int64_t q_blocks = (Lq + o.block_q - 1) / o.block_q;
    // One task per (batch, KV head): its dK and dV are accumulated by that task alone.
    at::parallel_for(0, B * Hkv, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / Hkv, h = task % Hkv;
        torch::Tensor K = k[b][h], V = v[b][h], dK = dk[b][h], dV = dv[b][h];
        for (int64_t qb = 0; qb < q_blocks; ++qb) {
          const int64_t q0 = qb * o.block_q, n = std::min(o.block_q, Lq - q0);
          torch::Tensor Q = group_rows(q5, b, h, q0, n), dO = group_rows(do5, b, h, q0, n);
          torch::Tensor L = lse4[b][h].narrow(1, q0, n).reshape({-1, 1});
          torch::Tensor Dl = delta4[b][h].narrow(1, q0, n).reshape({-1, 1});
          torch::Tensor dQ = torch::zeros_like(Q);
          auto [first, last] = mk.key_range(q0, n);
          for (int64_t k0 = first; k0 <= last; k0 += o.block_k) {
            const int64_t m = std::min(o.block_k, last + 1 - k0);
            torch::Tensor Kb = K.narrow(0, k0, m), Vb = V.narrow(0, k0, m);
            torch::Tensor s = torch::mm(Q, Kb.t()).mul_(scale);
            if (torch::Tensor visible = mk.block_mask(q0, n, k0, m); visible.defined())
              s.masked_fill_(~visible.repeat({G, 1}), -std::numeric_limits<double>::infinity());
            torch::Tensor p = (s - L).exp_();                            // [G*n, m]
            dV.narrow(0, k0, m).addmm_(p.t(), dO);
            torch::Tensor ds = p * (torch::mm(dO, Vb.t()) - Dl);        // dS = P (dP - D)
            dQ.addmm_(ds, Kb, 1.0, scale);
            dK.narrow(0, k0, m).addmm_(ds.t(), Q, 1.0, scale);
          }
          dq5[b][h].narrow(1, q0, n).copy_(dQ.view({G, n, D}));
        }
      }
    });
    return {dq, dk, dv, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const AttentionOptions& options) {
  check(q, k, v, options);
  return FlashAttention::apply(q.contiguous(), k.contiguous(), v.contiguous(), &options);
}

torch::Tensor attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const AttentionOptions& options) {
  check(q, k, v, options);
  const int64_t Hq = q.size(1), Hkv = k.size(1), Lq = q.size(2), Lk = k.size(2);
  Masking mk = make_masking(Lq, Lk, options);
  torch::Tensor visible = mk.block_mask(0, Lq, 0, Lk);
  if (!visible.defined()) visible = torch::ones({Lq, Lk}, torch::kBool);
  torch::Tensor kr = k.repeat_interleave(Hq / Hkv, 1), vr = v.repeat_interleave(Hq / Hkv, 1);
  torch::Tensor s = torch::matmul(q, kr.transpose(-1, -2)) * scale_of(options, q.size(3));
  s = s.masked_fill(~visible, -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(s, -1), vr);
}

}  // namespace ipt::ops
