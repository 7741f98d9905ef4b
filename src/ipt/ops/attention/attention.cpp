// ipt::ops::attention: checks its arguments, describes the problem as independent segments (one
// per batch row or packed document) and wires the CPU kernels (kernel_cpu.cpp) into autograd. On a
// GPU the same problem goes to PyTorch's fused attention kernels (fused_attention below).
#include "ipt/ops/attention/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ipt/common/error.h"
#include "ipt/common/torch_compat.h"
#include "ipt/ops/attention/kernels.h"

namespace ipt::ops {

namespace {

using attention_detail::Problem;
using attention_detail::Segment;

// Block sizes measured on the 2-core CPU (docs/benchmarks.md). The kernel stacks the query heads
// of one key/value group, so a query block has G * block_q rows; about 128 stacked rows and 256
// keys per block (a 128 KiB float score block, in L2) ran fastest.
constexpr int64_t kDefaultStackedRows = 128;
constexpr int64_t kMinBlockQ = 16;
constexpr int64_t kDefaultBlockK = 256;

void check_tensors(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  IPT_CHECK(q.defined() && k.defined() && v.defined(), "attention: needs q, k and v (one is undefined)");
  IPT_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: q, k, v must be [B, H, L, D], got ", q.sizes(),
            ", ", k.sizes(), ", ", v.sizes());
  IPT_CHECK(k.sizes() == v.sizes(), "attention: k and v must have one shape, got ", k.sizes(), " and ", v.sizes());
  IPT_CHECK(q.size(0) == k.size(0) && q.size(3) == k.size(3), "attention: q ", q.sizes(), " and k ", k.sizes(),
            " disagree in batch or head size");
  IPT_CHECK(q.size(3) > 0, "attention: head size must be > 0, got q ", q.sizes());
  IPT_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, "attention: query heads (", q.size(1),
            ") must be a multiple of key/value heads (", k.size(1), ")");
  IPT_CHECK(q.size(2) <= k.size(2), "attention: more queries (", q.size(2), ") than keys (", k.size(2), ")");
  IPT_CHECK(q.size(2) > 0, "attention: no queries");
  IPT_CHECK(q.is_floating_point() && k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
            "attention: q, k, v must share one floating dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ",
            v.scalar_type());
  IPT_CHECK(k.device() == q.device() && v.device() == q.device(), "attention: q, k, v must be on one device");
}

Problem make_problem(const torch::Tensor& q, const torch::Tensor& k, const AttentionOptions& o) {
  IPT_CHECK(o.window >= 0, "attention: window must be >= 0 (0 = full causal), got ", o.window);
  IPT_CHECK(std::isfinite(o.scale) && o.scale >= 0.0, "attention: scale must be finite and >= 0 (0 = 1/sqrt(D)), got ",
            o.scale);
  IPT_CHECK(o.block_q >= 0 && o.block_k >= 0, "attention: block sizes must be >= 0 (0 = default), got block_q ",
            o.block_q, ", block_k ", o.block_k);
  Problem p;
  p.window = o.window;
  p.scale = o.scale > 0.0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  const int64_t group = q.size(1) / k.size(1);
  p.block_q = o.block_q > 0 ? o.block_q : std::max(kMinBlockQ, kDefaultStackedRows / group);
  p.block_k = o.block_k > 0 ? o.block_k : kDefaultBlockK;
  const int64_t B = q.size(0), Lq = q.size(2), Lk = k.size(2);
  if (o.cu_seqlens.empty()) {
    for (int64_t b = 0; b < B; ++b) p.segments.push_back({b, 0, Lq, 0, Lk});
    return p;
  }
  // Packed documents over the keys; the queries are the last Lq keys, so each document's queries
  // (if it has any) are the tail of its keys.
  const auto& cu = o.cu_seqlens;
  IPT_CHECK(B == 1, "attention: cu_seqlens needs a batch of one packed row, got batch ", B);
  IPT_CHECK(cu.size() >= 2 && cu.front() == 0 && cu.back() == Lk,
            "attention: cu_seqlens must run from 0 to the key length ", Lk);
  const int64_t first_query = Lk - Lq;
  for (size_t i = 1; i < cu.size(); ++i) {
    IPT_CHECK(cu[i] > cu[i - 1], "attention: cu_seqlens must be strictly increasing, but cu_seqlens[", i, "] = ", cu[i],
              " <= cu_seqlens[", i - 1, "] = ", cu[i - 1]);
    if (cu[i] <= first_query) continue;  // a document wholly before the queries
    p.segments.push_back({0, std::max(cu[i - 1], first_query) - first_query, cu[i] - first_query, cu[i - 1], cu[i]});
  }
  return p;
}

// The autograd context stores integers; a Problem round-trips through one vector.
std::vector<int64_t> flatten(const Problem& p) {
  std::vector<int64_t> flat{p.window, p.block_q, p.block_k};
  for (const Segment& s : p.segments) flat.insert(flat.end(), {s.row, s.q_begin, s.q_end, s.k_begin, s.k_end});
  return flat;
}

Problem unflatten(const std::vector<int64_t>& flat, double scale) {
  Problem p;
  p.window = flat[0];
  p.block_q = flat[1];
  p.block_k = flat[2];
  p.scale = scale;
  for (size_t i = 3; i + 4 < flat.size(); i += 5)
    p.segments.push_back({flat[i], flat[i + 1], flat[i + 2], flat[i + 3], flat[i + 4]});
  return p;
}

AttentionForward run_forward(const Problem& p, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  IPT_CHECK(q.device().is_cpu(), "attention_forward: the log-sum-exp comes from the CPU kernel; on ", q.device(),
            " use attention()");
  AttentionForward r;
  r.out = torch::empty_like(q);
  const bool bf16 = q.scalar_type() == torch::kBFloat16;
  r.lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(bf16 ? torch::kFloat32 : q.scalar_type()));
  attention_detail::forward_cpu(p, q, k, v, r.out, r.lse);
  return r;
}

// One autograd node; saves q, k, v, the output and the per-row log-sum-exp.
struct AttentionFunction : public torch::autograd::Function<AttentionFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               const Problem* problem) {
    AttentionForward r = run_forward(*problem, q, k, v);
    ctx->save_for_backward({q, k, v, r.out, r.lse});
    ctx->saved_data["problem"] = flatten(*problem);
    ctx->saved_data["scale"] = problem->scale;
    return r.out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const Problem problem = unflatten(ctx->saved_data["problem"].toIntVector(), ctx->saved_data["scale"].toDouble());
    torch::Tensor dout = grad_outputs[0].contiguous();
    attention_detail::Gradients g =
        attention_detail::backward_cpu(problem, saved[0], saved[1], saved[2], saved[3], saved[4], dout);
    return {g.dq, g.dk, g.dv, torch::Tensor()};
  }
};

// What the CPU kernel computes in: float16 in float32; bfloat16 as it is where the bf16 kernel is
// available (bf16 products, float32 softmax and accumulators), else in float32 too.
torch::Tensor compute_type(const torch::Tensor& t) {
  const auto type = t.scalar_type();
  const bool widen =
      type == torch::kHalf || (type == torch::kBFloat16 && !attention_detail::bf16_kernel_available());
  return (widen ? t.to(torch::kFloat32) : t).contiguous();
}

// Query rows per fused call when a mask is needed (unless AttentionOptions::block_q says): the
// mask and the kernel's working set are [block, keys], never [L, L].
constexpr int64_t kFusedBlockQ = 1024;

// Queries q [B, H, Lq, D] at positions offset .. offset+Lq-1 of the keys k, v [B, H, Lk, D]
// (offset = Lk - Lq), causal, within `window` when > 0.
torch::Tensor fused_segment(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t window,
                            double scale, int64_t block_q) {
  const int64_t Lq = q.size(2), Lk = k.size(2), offset = Lk - Lq;
  if (offset == 0 && (window == 0 || window >= Lk))  // plain causal: one call, no mask (flash)
    return compat::scaled_dot_product_attention(q, k, v, torch::Tensor(), true, scale);
  std::vector<torch::Tensor> blocks;
  for (int64_t i0 = 0; i0 < Lq; i0 += block_q) {
    const int64_t i1 = std::min(Lq, i0 + block_q);
    const int64_t first = offset + i0, last = offset + i1 - 1;  // positions of the block's queries
    const int64_t lo = window > 0 ? std::max<int64_t>(0, first - window + 1) : 0, hi = last + 1;
    torch::Tensor keys = k.narrow(2, lo, hi - lo), values = v.narrow(2, lo, hi - lo);
    // Every key visible to every query of the block (a decode step, say): no mask at all.
    const bool all_visible = hi - 1 <= first && (window == 0 || lo > last - window);
    torch::Tensor visible;
    if (!all_visible) {
      const auto on = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
      torch::Tensor query_pos = torch::arange(first, last + 1, on).unsqueeze(1);
      torch::Tensor key_pos = torch::arange(lo, hi, on).unsqueeze(0);
      visible = key_pos <= query_pos;
      if (window > 0) visible = visible.logical_and(key_pos > query_pos - window);
    }
    blocks.push_back(
        compat::scaled_dot_product_attention(q.narrow(2, i0, i1 - i0), keys, values, visible, false, scale));
  }
  return blocks.size() == 1 ? blocks[0] : torch::cat(blocks, 2);
}

torch::Tensor fused_attention(const Problem& p, const torch::Tensor& q, const torch::Tensor& k_in,
                              const torch::Tensor& v_in, bool packed, int64_t block_q) {
  const int64_t group = q.size(1) / k_in.size(1);
  // The masked kernels take equal head counts: repeat each key/value head for its query heads.
  torch::Tensor k = group > 1 ? k_in.repeat_interleave(group, 1) : k_in;
  torch::Tensor v = group > 1 ? v_in.repeat_interleave(group, 1) : v_in;
  if (!packed) return fused_segment(q, k, v, p.window, p.scale, block_q);  // every row has the same offset
  std::vector<torch::Tensor> parts;  // the documents' queries, in order
  for (const Segment& s : p.segments)
    parts.push_back(fused_segment(q.narrow(2, s.q_begin, s.q_length()), k.narrow(2, s.k_begin, s.k_end - s.k_begin),
                                  v.narrow(2, s.k_begin, s.k_end - s.k_begin), p.window, p.scale, block_q));
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
}

}  // namespace

torch::Tensor attention(const torch::Tensor& q_in, const torch::Tensor& k_in, const torch::Tensor& v_in,
                        const AttentionOptions& options) {
  check_tensors(q_in, k_in, v_in);
  const Problem problem = make_problem(q_in, k_in, options);
  if (!q_in.device().is_cpu())
    return fused_attention(problem, q_in, k_in, v_in, !options.cu_seqlens.empty(),
                           options.block_q > 0 ? options.block_q : kFusedBlockQ);
  torch::Tensor q = compute_type(q_in), k = compute_type(k_in), v = compute_type(v_in);
  torch::Tensor out = AttentionFunction::apply(q, k, v, &problem);
  return out.scalar_type() == q_in.scalar_type() ? out : out.to(q_in.scalar_type());
}

torch::Tensor attention_fused(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const AttentionOptions& options) {
  check_tensors(q, k, v);
  return fused_attention(make_problem(q, k, options), q, k, v, !options.cu_seqlens.empty(),
                         options.block_q > 0 ? options.block_q : kFusedBlockQ);
}

AttentionForward attention_forward(const torch::Tensor& q_in, const torch::Tensor& k_in, const torch::Tensor& v_in,
                                   const AttentionOptions& options) {
  check_tensors(q_in, k_in, v_in);
  const Problem problem = make_problem(q_in, k_in, options);
  torch::NoGradGuard no_grad;
  return run_forward(problem, compute_type(q_in), compute_type(k_in), compute_type(v_in));
}

torch::Tensor attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const AttentionOptions& options) {
  check_tensors(q, k, v);
  const Problem problem = make_problem(q, k, options);
  const int64_t B = q.size(0), Hq = q.size(1), Lq = q.size(2), Lk = k.size(2), G = Hq / k.size(1);
  // visible[b, i, j]: query i of row b may see key j.
  torch::Tensor visible = torch::zeros({B, Lq, Lk}, torch::kBool);
  auto a = visible.accessor<bool, 3>();
  for (const Segment& s : problem.segments)
    for (int64_t i = 0; i < s.q_length(); ++i) {
      const int64_t p = s.offset() + i;
      const int64_t first = problem.window > 0 ? std::max<int64_t>(0, p - problem.window + 1) : 0;
      for (int64_t j = first; j <= p; ++j) a[s.row][s.q_begin + i][s.k_begin + j] = true;
    }
  visible = visible.to(q.device()).unsqueeze(1);
  torch::Tensor kk = G > 1 ? k.repeat_interleave(G, 1) : k, vv = G > 1 ? v.repeat_interleave(G, 1) : v;
  torch::Tensor scores = torch::matmul(q, kk.transpose(-1, -2)) * problem.scale;
  scores = scores.masked_fill(visible.logical_not(), -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(scores, -1), vv);
}

}  // namespace ipt::ops
