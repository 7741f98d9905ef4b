// Streaming continuation of one document (docs/operator.md, "Streaming").
#include <cmath>

#include "ipt/common/error.h"
#include "ipt/ops/gemm/bf16_gemm.h"
#include "ipt/ops/matvec/matvec.h"
#include "ipt/ops/ttt/ttt.h"

namespace ipt::ttt {

Stream::Stream(torch::Tensor W0, int64_t chunk_size, double lr, double clip, double decay)
    : Stream(DocumentState{W0, torch::Tensor(), torch::Tensor(), 0}, chunk_size, lr, clip, std::nullopt, decay, W0) {}

Stream::Stream(DocumentState state, int64_t chunk_size, double lr, double clip, std::optional<torch::Dtype> compute,
               double decay, torch::Tensor origin)
    : state_(std::move(state)), chunk_size_(chunk_size), lr_(lr), clip_(clip), decay_(decay) {
  check_decay(decay, "ttt decay");
  if (decay < 1.0) {
    IPT_CHECK(origin.defined() && origin.sizes() == state_.weight.sizes(),
              "a decaying TTT stream needs the W0 it decays towards, shaped like its fast weight");
    origin_ = origin.detach();
  }
  IPT_CHECK(state_.weight.defined() && state_.weight.dim() == 2, "a TTT stream needs a [d, h] fast weight");
  const torch::Dtype compute_type = compute.value_or(state_.weight.scalar_type());
  const bool reduced = compute_type == torch::kHalf || compute_type == torch::kBFloat16;
  if (reduced || state_.weight.scalar_type() == torch::kHalf || state_.weight.scalar_type() == torch::kBFloat16)
    state_.weight = state_.weight.to(torch::kFloat32);
  else if (compute_type != state_.weight.scalar_type())
    state_.weight = state_.weight.to(compute_type);
  IPT_CHECK(chunk_size > 0, "ttt chunk_size must be > 0, got ", chunk_size);
  IPT_CHECK(std::isfinite(lr) && std::isfinite(clip) && clip >= 0.0, "ttt lr must be finite and clip finite and >= 0");
  torch::NoGradGuard no_grad;
  const int64_t d = state_.weight.size(0), h = state_.weight.size(1);
  state_.weight = state_.weight.detach().clone();
  compute_weight_ = reduced ? state_.weight.to(compute_type) : state_.weight;
  if (!state_.pending_z.defined()) state_.pending_z = torch::empty({0, h}, state_.weight.options());
  if (!state_.pending_v.defined()) state_.pending_v = torch::empty({0, d}, state_.weight.options());
  state_.pending_z = state_.pending_z.to(state_.weight.scalar_type());
  state_.pending_v = state_.pending_v.to(state_.weight.scalar_type());
  IPT_CHECK(state_.pending_z.dim() == 2 && state_.pending_z.size(1) == h && state_.pending_v.dim() == 2 &&
                state_.pending_v.size(1) == d && state_.pending_z.size(0) == state_.pending_v.size(0),
            "a TTT stream's pending rows must be Z [r, ", h, "] and V [r, ", d, "]");
  IPT_CHECK(state_.pending_z.size(0) < chunk_size, "a TTT stream holds ", state_.pending_z.size(0),
            " pending rows, but a chunk has only ", chunk_size);
}

torch::Tensor Stream::output(const torch::Tensor& z_rows) const {
  IPT_CHECK(z_rows.dim() == 2 && z_rows.size(1) == state_.weight.size(1), "stream rows must be [n, ",
            state_.weight.size(1), "]");
  torch::NoGradGuard no_grad;
  const torch::Tensor z = z_rows.to(compute_weight_.scalar_type());
  if (z.size(0) == 1) return ops::matvec(compute_weight_, z[0]).unsqueeze(0);  // decoding: no packing
  return torch::mm(z, compute_weight_.t());
}

void Stream::append(const torch::Tensor& z_rows, const torch::Tensor& v_rows) {
  const int64_t d = state_.weight.size(0), h = state_.weight.size(1);
  IPT_CHECK(z_rows.dim() == 2 && z_rows.size(1) == h && v_rows.dim() == 2 && v_rows.size(1) == d &&
                z_rows.size(0) == v_rows.size(0),
            "stream rows must be Z [n, ", h, "] and V [n, ", d, "]");
  IPT_CHECK(pending() + z_rows.size(0) <= chunk_size_, "stream append of ", z_rows.size(0), " rows onto ",
            pending(), " pending would cross the chunk end at ", chunk_size_);
  torch::NoGradGuard no_grad;
  const auto type = state_.weight.scalar_type();
  state_.pending_z = torch::cat({state_.pending_z, z_rows.to(type)});
  state_.pending_v = torch::cat({state_.pending_v, v_rows.to(type)});
  if (pending() == chunk_size_) {
    if (decay_ < 1.0) state_.weight.sub_(origin_).mul_(decay_).add_(origin_);  // as ttt::apply decays
    // In bf16 compute the rows came in as bf16: where the bf16 GEMM runs, their product is bf16 with
    // float32 sums (the float32 numbers up to summation order, at the bf16 rate, on libtorch's
    // threads instead of OpenBLAS's, which then spin against them).
    const bool bf16 = compute_weight_.scalar_type() == torch::kBFloat16 && ops::bf16_gemm_available();
    state_.weight.add_(bf16 ? chunk_delta(state_.pending_z.to(torch::kBFloat16), state_.pending_v.to(torch::kBFloat16),
                                          lr_, clip_)
                            : chunk_delta(state_.pending_z, state_.pending_v, lr_, clip_));
    if (!compute_weight_.is_same(state_.weight)) compute_weight_.copy_(state_.weight);
    state_.updates += 1;
    state_.pending_z = state_.pending_z.narrow(0, 0, 0);
    state_.pending_v = state_.pending_v.narrow(0, 0, 0);
  }
}

torch::Tensor Stream::feed(const torch::Tensor& z_rows, const torch::Tensor& v_rows) {
  IPT_CHECK(z_rows.dim() == 2 && v_rows.dim() == 2 && z_rows.size(0) == v_rows.size(0),
            "stream feed needs Z [n, h] and V [n, d] with the same n");
  std::vector<torch::Tensor> outputs;
  for (int64_t begin = 0; begin < z_rows.size(0);) {
    const int64_t n = std::min(z_rows.size(0) - begin, chunk_size_ - pending());
    torch::Tensor z = z_rows.narrow(0, begin, n);
    outputs.push_back(output(z));
    append(z, v_rows.narrow(0, begin, n));
    begin += n;
  }
  if (outputs.empty()) return torch::empty({0, state_.weight.size(0)}, compute_weight_.options());
  return torch::cat(outputs);
}

}  // namespace ipt::ttt
