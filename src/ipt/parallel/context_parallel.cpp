#include "ipt/parallel/context_parallel.h"

#include <algorithm>
#include <cmath>

#include "ipt/common/error.h"

namespace ipt::parallel {

namespace {

std::vector<int64_t> document_starts(int64_t length, const std::vector<int64_t>& cu_seqlens) {
  if (cu_seqlens.empty()) return {0, length};
  IPT_CHECK(cu_seqlens.size() >= 2 && cu_seqlens.front() == 0 && cu_seqlens.back() == length,
            "context parallel: cu_seqlens must run from 0 to the sequence length ", length);
  for (size_t i = 1; i < cu_seqlens.size(); ++i)
    IPT_CHECK(cu_seqlens[i] > cu_seqlens[i - 1], "context parallel: cu_seqlens must be strictly increasing");
  return cu_seqlens;
}

}  // namespace

SlicePlan plan_slices(int64_t length, const std::vector<int64_t>& cu_seqlens, int64_t chunk, int ranks) {
  IPT_CHECK(ranks >= 1, "context parallel: need at least one rank, got ", ranks);
  IPT_CHECK(chunk >= 0, "context parallel: chunk must be >= 0 (0 = cut anywhere), got ", chunk);
  IPT_CHECK(length >= ranks, "context parallel: a sequence of ", length, " rows cannot give ", ranks,
            " ranks a row each");
  const std::vector<int64_t> docs = document_starts(length, cu_seqlens);
  // Allowed cut points (inside (0, length)): anywhere, or the chunk grid of each document.
  std::vector<int64_t> candidates;
  if (chunk == 0) {
    for (int64_t p = 1; p < length; ++p) candidates.push_back(p);
  } else {
    for (size_t d = 0; d + 1 < docs.size(); ++d)
      for (int64_t p = docs[d]; p < docs[d + 1]; p += chunk)
        if (p > 0) candidates.push_back(p);
  }
  SlicePlan plan;
  plan.bounds = {0};
  for (int r = 1; r < ranks; ++r) {
    const double target = static_cast<double>(length) * r / ranks;
    // The candidate nearest the even split that still leaves one cut for each later rank.
    auto lo = std::upper_bound(candidates.begin(), candidates.end(), plan.bounds.back());
    auto hi = candidates.end() - std::min<std::ptrdiff_t>(ranks - 1 - r, candidates.end() - candidates.begin());
    IPT_CHECK(lo < hi, "context parallel: cannot cut a sequence of ", length, " rows into ", ranks,
              " non-empty slices on TTT chunk boundaries (chunk ", chunk, "); use fewer ranks or a longer sequence");
    auto best = std::lower_bound(lo, hi, static_cast<int64_t>(std::llround(target)));
    if (best == hi || (best != lo && target - static_cast<double>(*(best - 1)) <= static_cast<double>(*best) - target))
      best = best == lo ? lo : best - 1;
    plan.bounds.push_back(*best);
  }
  plan.bounds.push_back(length);
  return plan;
}

LocalView local_view(const SlicePlan& plan, const std::vector<int64_t>& cu_seqlens, int rank) {
  IPT_CHECK(rank >= 0 && rank < plan.size(), "context parallel: rank ", rank, " outside [0, ", plan.size(), ")");
  const std::vector<int64_t> docs = document_starts(plan.bounds.back(), cu_seqlens);
  LocalView v;
  v.begin = plan.begin(rank);
  v.end = plan.end(rank);
  v.continues = !std::binary_search(docs.begin(), docs.end(), v.begin);
  v.fresh = !v.continues;
  v.first_document_end = v.end - v.begin;
  std::vector<int64_t> local{0};
  for (int64_t s : docs)
    if (s > v.begin && s < v.end) {
      local.push_back(s - v.begin);
      v.fresh = true;
      v.first_document_end = std::min(v.first_document_end, s - v.begin);
    }
  local.push_back(v.end - v.begin);
  if (!cu_seqlens.empty()) v.cu_seqlens = local;
  return v;
}

namespace {

// carry(r) = fold over q < r of (fresh(q) ? T_q : decay^n(q) carry + T_q): the fast-weight offset
// (W - W0) that rank r's first document starts with, where n(q) is the number of full chunks rank q
// adds to the document open at its end. Backward: T_q's gradient sums the carries it reaches, each
// scaled by the decay of the ranks in between.
struct ScanAcrossRanks : public torch::autograd::Function<ScanAcrossRanks> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor T, Communicator* comm,
                               std::vector<int64_t> fresh, std::vector<double> carry_decay) {
    ctx->saved_data["fresh"] = fresh;
    ctx->saved_data["carry_decay"] = carry_decay;
    ctx->saved_data["comm"] = reinterpret_cast<int64_t>(comm);
    std::vector<torch::Tensor> all = comm->all_gather(T.detach());
    torch::Tensor carry = torch::zeros_like(T);
    for (int q = 0; q < comm->rank(); ++q)
      carry = fresh[q] ? all[q].clone() : carry.mul_(carry_decay[q]).add_(all[q]);
    return carry;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto* comm = reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
    const std::vector<int64_t> fresh = ctx->saved_data["fresh"].toIntVector();
    const std::vector<double> carry_decay = ctx->saved_data["carry_decay"].toDoubleVector();
    std::vector<torch::Tensor> all = comm->all_gather(grads[0].contiguous());
    torch::Tensor g = torch::zeros_like(grads[0]);
    double reach = 1.0;  // d carry(r) / d T_rank
    for (int r = comm->rank() + 1; r < comm->size(); ++r) {
      g.add_(all[r], reach);
      if (fresh[r]) break;  // later carries restarted inside rank r
      reach *= carry_decay[r];
    }
    return {g, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// The decayed sum of the clipped updates of the complete chunks in rows [from, L) of Z, V (one
// document, chunk grid starting at `from`): sum_c decay^(chunks-1-c) s_c lr V_c^T Z_c, as [B, d, h];
// connected to the graph even when empty, so that every rank's backward reaches the same collectives.
torch::Tensor chunk_update_sum(const torch::Tensor& Z, const torch::Tensor& V, int64_t from, const ttt::Options& o) {
  const int64_t L = Z.size(1), chunks = (L - from) / o.chunk_size;
  torch::Tensor total = torch::bmm(V.narrow(1, from, 0).transpose(1, 2), Z.narrow(1, from, 0));  // zeros [B, d, h]
  if (o.clip <= 0 && o.decay == 1.0) {
    if (chunks > 0) {
      const int64_t rows = chunks * o.chunk_size;
      total = total + o.lr * torch::bmm(V.narrow(1, from, rows).transpose(1, 2), Z.narrow(1, from, rows));
    }
    return total;
  }
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t s = from + c * o.chunk_size;
    torch::Tensor delta = o.lr * torch::bmm(V.narrow(1, s, o.chunk_size).transpose(1, 2), Z.narrow(1, s, o.chunk_size));
    if (o.clip > 0) {
      // s = min(1, clip / ||delta||) per batch row, as the operator clips each chunk's update.
      torch::Tensor norm = delta.flatten(1).norm(2, 1).view({-1, 1, 1});
      delta = delta * torch::clamp_max(o.clip / norm.clamp_min(1e-30), 1.0);
    }
    total = o.decay * total + delta;
  }
  return total;
}

// Rows [0, n) of a slice whose chunk grid starts at row 0: decay^(row / chunk), as [n, 1]. A fast
// weight that starts at W0 + c outputs, in chunk i, what it would from W0 plus decay^i Z_i c^T.
torch::Tensor offset_row_scales(int64_t n, const ttt::Options& o, const torch::TensorOptions& options) {
  torch::Tensor chunk_index = torch::arange(n, torch::kInt64).div(o.chunk_size, "floor").to(torch::kFloat64);
  return torch::pow(o.decay, chunk_index).to(options.dtype()).unsqueeze(1);
}

}  // namespace

torch::Tensor ttt_apply(const torch::Tensor& Z, const torch::Tensor& V, const torch::Tensor& W0,
                        const ttt::Options& options, const SlicePlan& plan, Communicator& comm) {
  IPT_CHECK(plan.size() == comm.size(), "context parallel: the plan has ", plan.size(), " slices for ", comm.size(),
            " ranks");
  IPT_CHECK(Z.dim() == 3 && V.dim() == 3, "context parallel ttt: Z and V must be [B, Lr, *]");
  const int rank = comm.rank();
  IPT_CHECK(Z.size(1) == plan.length(rank), "context parallel ttt: rank ", rank, " holds ", Z.size(1),
            " rows but its slice has ", plan.length(rank));
  IPT_CHECK(options.chunk_size > 0, "ttt chunk_size must be > 0, got ", options.chunk_size);
  const LocalView view = local_view(plan, options.cu_seqlens, rank);
  // The cut rule guarantees chunk-aligned slices; check it, since a wrong plan would be silently wrong.
  const std::vector<int64_t> docs = document_starts(plan.bounds.back(), options.cu_seqlens);
  if (view.continues) {
    const int64_t doc_start = *(std::upper_bound(docs.begin(), docs.end(), view.begin) - 1);
    IPT_CHECK((view.begin - doc_start) % options.chunk_size == 0, "context parallel ttt: slice of rank ", rank,
              " starts inside a chunk (plan the slices with the TTT chunk size)");
  }
  std::vector<int64_t> fresh(static_cast<size_t>(plan.size()));
  std::vector<double> carry_decay(static_cast<size_t>(plan.size()));  // decay^n(r), ScanAcrossRanks
  for (int r = 0; r < plan.size(); ++r) {
    const LocalView v = local_view(plan, options.cu_seqlens, r);
    fresh[r] = v.fresh;
    const int64_t open_rows = plan.length(r) - (v.cu_seqlens.empty() ? 0 : v.cu_seqlens[v.cu_seqlens.size() - 2]);
    carry_decay[r] = std::pow(options.decay, static_cast<double>(open_rows / options.chunk_size));
  }

  // Phase 1: this rank's contribution, the updates of the document open at its end.
  const int64_t open_from = view.cu_seqlens.empty() ? 0 : view.cu_seqlens[view.cu_seqlens.size() - 2];
  torch::Tensor T = chunk_update_sum(Z, V, view.fresh ? open_from : 0, options);
  // Phase 2: the exclusive scan across ranks.
  torch::Tensor carry = ScanAcrossRanks::apply(T, &comm, fresh, carry_decay);
  // Phase 3: the ordinary operator on this rank's rows; the first document starts from W0 + carry
  // when it continues one begun earlier (carry * 0 otherwise keeps the graphs of all ranks alike).
  // With a decay its outputs are those from W0 plus decay^i Z_i carry^T in chunk i (the operator
  // decays towards the W0 it is given, so the carry is added outside it).
  ttt::Options local = options;
  local.return_state = false;
  const int64_t B = Z.size(0), first = view.first_document_end, Lr = Z.size(1);
  std::vector<torch::Tensor> rows;
  for (int64_t b = 0; b < B; ++b) {
    torch::Tensor offset = view.continues ? carry[b] : carry[b] * 0;
    local.cu_seqlens.clear();
    torch::Tensor Z_head = Z.narrow(0, b, 1).narrow(1, 0, first);
    torch::Tensor V_head = V.narrow(0, b, 1).narrow(1, 0, first);
    torch::Tensor head;
    if (options.decay == 1.0) {
      // Undecayed, the carry never shrinks: starting the operator from W0 + carry is the same sum
      // and saves the extra product.
      head = ttt::apply(Z_head, V_head, W0 + offset, local).out;
    } else {
      head = ttt::apply(Z_head, V_head, W0, local).out +
             torch::mm(Z_head[0] * offset_row_scales(first, options, Z.options()), offset.t()).unsqueeze(0);
    }
    if (first == Lr) {
      rows.push_back(head);
      continue;
    }
    for (size_t i = 1; i < view.cu_seqlens.size(); ++i)
      if (view.cu_seqlens[i] > first) local.cu_seqlens.push_back(view.cu_seqlens[i] - first);
    local.cu_seqlens.insert(local.cu_seqlens.begin(), 0);
    torch::Tensor rest = ttt::apply(Z.narrow(0, b, 1).narrow(1, first, Lr - first),
                                    V.narrow(0, b, 1).narrow(1, first, Lr - first), W0, local).out;
    rows.push_back(torch::cat({head, rest}, 1));
  }
  return B == 1 ? rows[0] : torch::cat(rows, 0);
}

namespace {

// Keys/values of earlier ranks that this rank's queries can see: rows [key_begin, begin) of the
// sequence, gathered from the ranks that own them. Backward: every rank scatters its gradient
// into a sequence-long buffer, the buffers are summed over ranks, and each keeps its own rows.
struct GatherEarlier : public torch::autograd::Function<GatherEarlier> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, Communicator* comm,
                               std::vector<int64_t> bounds, int64_t window) {
    const int rank = comm->rank();
    // Each rank offers what a later rank could need: everything, or its last window - 1 rows.
    const int64_t Lr = x.size(2), offer = window > 0 ? std::min(Lr, window - 1) : Lr;
    std::vector<torch::Tensor> tails = comm->all_gather_uneven(x.detach().narrow(2, Lr - offer, offer).contiguous(), 2);
    std::vector<torch::Tensor> earlier;
    int64_t have = 0;
    for (int q = rank - 1; q >= 0; --q) {
      earlier.insert(earlier.begin(), tails[q]);
      have += tails[q].size(2);
      const bool whole_slice = tails[q].size(2) == bounds[q + 1] - bounds[q];
      if ((window > 0 && have >= window - 1) || !whole_slice) break;
    }
    torch::Tensor out = earlier.empty() ? x.narrow(2, 0, 0).detach().clone() : torch::cat(earlier, 2);
    if (window > 0 && out.size(2) > window - 1) out = out.narrow(2, out.size(2) - (window - 1), window - 1).contiguous();
    ctx->saved_data["comm"] = reinterpret_cast<int64_t>(comm);
    ctx->saved_data["bounds"] = bounds;
    ctx->saved_data["earlier"] = out.size(2);
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto* comm = reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
    const std::vector<int64_t> bounds = ctx->saved_data["bounds"].toIntVector();
    const int64_t earlier = ctx->saved_data["earlier"].toInt(), rank = comm->rank();
    torch::Tensor g = grads[0];
    std::vector<int64_t> shape = g.sizes().vec();
    shape[2] = bounds.back();
    torch::Tensor buffer = torch::zeros(shape, g.options());
    if (earlier > 0) buffer.narrow(2, bounds[rank] - earlier, earlier).copy_(g);
    comm->all_reduce_sum(buffer);
    return {buffer.narrow(2, bounds[rank], bounds[rank + 1] - bounds[rank]).contiguous(), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const ops::AttentionOptions& options, const SlicePlan& plan, Communicator& comm) {
  IPT_CHECK(plan.size() == comm.size(), "context parallel: the plan has ", plan.size(), " slices for ", comm.size(),
            " ranks");
  const int rank = comm.rank();
  IPT_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && q.size(2) == plan.length(rank) &&
                k.size(2) == plan.length(rank),
            "context parallel attention: rank ", rank, " must hold its ", plan.length(rank),
            " rows of q, k, v as [B, H, Lr, D]");
  torch::Tensor k_earlier = GatherEarlier::apply(k, &comm, plan.bounds, options.window);
  torch::Tensor v_earlier = GatherEarlier::apply(v, &comm, plan.bounds, options.window);
  torch::Tensor keys = torch::cat({k_earlier, k}, 2), values = torch::cat({v_earlier, v}, 2);
  ops::AttentionOptions local = options;
  if (!options.cu_seqlens.empty()) {
    // Document offsets over the keys [key_begin, end).
    const int64_t key_begin = plan.begin(rank) - k_earlier.size(2), key_end = plan.end(rank);
    local.cu_seqlens = {0};
    for (int64_t s : options.cu_seqlens)
      if (s > key_begin && s < key_end) local.cu_seqlens.push_back(s - key_begin);
    local.cu_seqlens.push_back(key_end - key_begin);
  }
  return ops::attention(q, keys, values, local);
}

namespace {
thread_local const ContextParallelState* g_active = nullptr;
}

ContextParallelScope::ContextParallelScope(Communicator& comm, SlicePlan plan, std::vector<int64_t> cu_seqlens)
    : previous_(g_active) {
  IPT_CHECK(plan.size() == comm.size(), "context parallel: the plan has ", plan.size(), " slices for ", comm.size(),
            " ranks");
  state_.comm = &comm;
  state_.view = local_view(plan, cu_seqlens, comm.rank());
  state_.plan = std::move(plan);
  state_.cu_seqlens = std::move(cu_seqlens);
  g_active = &state_;
}

ContextParallelScope::~ContextParallelScope() { g_active = previous_; }

const ContextParallelState* active_context_parallel() { return g_active; }

}  // namespace ipt::parallel
