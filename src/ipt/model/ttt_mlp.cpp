#include "ipt/model/ttt_mlp.h"

#include <algorithm>
#include <cmath>

#include "ipt/common/error.h"
#include "ipt/parallel/context_parallel.h"
#include "ipt/ops/activation/swiglu.h"
#include "ipt/ops/matvec/matvec.h"

namespace ipt::model {

GatedMlpImpl::GatedMlpImpl(int64_t hidden, int64_t intermediate, TttSettings ttt) : ttt_(ttt), hidden_(hidden) {
  IPT_CHECK(hidden > 0 && intermediate > 0, "MLP sizes must be > 0, got hidden ", hidden, ", intermediate ",
            intermediate);
  auto linear = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  gate_proj = register_module("gate_proj", linear(hidden, intermediate));
  up_proj = register_module("up_proj", linear(hidden, intermediate));
  down_proj = register_module("down_proj", linear(intermediate, hidden));
  if (ttt_.enabled) {
    if (ttt_.target_kind == ttt::TargetKind::kConv)
      ttt_conv = register_module(
          "ttt_conv",
          torch::nn::Conv1d(torch::nn::Conv1dOptions(hidden, hidden, ttt::kConvKernel).groups(hidden).bias(false)));
    if (ttt_.use_proj) ttt_proj = register_module("ttt_proj", linear(hidden, hidden));
  }
  set_ttt(ttt);
}

void GatedMlpImpl::set_ttt(const TttSettings& settings) {
  IPT_CHECK(settings.enabled == ttt_.enabled && settings.use_proj == ttt_.use_proj &&
                settings.target_kind == ttt_.target_kind,
            "TTT on/off, ttt_proj and the target kind decide which tensors a layer has; they cannot change at run time");
  IPT_CHECK(settings.chunk_size > 0, "ttt_chunk must be > 0, got ", settings.chunk_size);
  IPT_CHECK(std::isfinite(settings.lr), "ttt_lr must be finite");
  IPT_CHECK(std::isfinite(settings.clip) && settings.clip >= 0.0, "ttt_clip must be finite and >= 0");
  ttt::check_decay(settings.decay, "ttt_decay");
  ttt_ = settings;
}

void GatedMlpImpl::drop_in_init(double initializer_range) {
  IPT_CHECK(ttt_.enabled, "drop-in initialisation needs a TTT layer");
  torch::NoGradGuard no_grad;
  if (ttt_conv) ttt_conv->weight.zero_();
  if (ttt_proj) ttt_proj->weight.copy_(torch::diag(torch::randn({hidden_}) * initializer_range));
}

torch::Tensor GatedMlpImpl::activations(const torch::Tensor& H) {
  return ops::swiglu(gate_proj(H), up_proj(H));
}

torch::Tensor GatedMlpImpl::target(const torch::Tensor& X, const std::vector<int64_t>& cu_seqlens) {
  ttt::TargetOptions options;
  options.chunk_size = ttt_.chunk_size;
  options.kind = ttt_.target_kind;
  options.padding = ttt_.conv_padding;
  options.cu_seqlens = cu_seqlens;
  return ttt::build_target(X, ttt_conv ? ttt_conv->weight : torch::Tensor(),
                           ttt_proj ? ttt_proj->weight : torch::Tensor(), options);
}

torch::Tensor GatedMlpImpl::forward(const torch::Tensor& H, const torch::Tensor& X,
                                    const std::vector<int64_t>& cu_seqlens) {
  torch::Tensor Z = activations(H);
  if (!ttt_.enabled) return down_proj(Z);
  ttt::Options options;
  options.chunk_size = ttt_.chunk_size;
  options.lr = ttt_.lr;
  options.clip = ttt_.clip;
  options.decay = ttt_.decay;
  options.algorithm = ttt_.algorithm;
  options.scan_group = ttt_.scan_group;
  options.cu_seqlens = cu_seqlens;
  options.drift = drift_sink_;
  // The target is built from this rank's rows (slices are cut on chunk boundaries, and the
  // convolution never leaves a chunk); the fast weight crosses ranks.
  torch::Tensor V = target(X, cu_seqlens);
  if (const parallel::ContextParallelState* cp = parallel::active_context_parallel()) {
    options.cu_seqlens = cp->cu_seqlens;
    return parallel::ttt_apply(Z, V, down_proj->weight, options, cp->plan, *cp->comm);
  }
  return ttt::apply(Z, V, down_proj->weight, options).out;
}

MlpStream::MlpStream(const GatedMlp& mlp) : MlpStream(mlp, mlp->ttt().clip, mlp->ttt().decode_update) {}

MlpStream::MlpStream(const GatedMlp& mlp, double clip, bool decode_update)
    : mlp_(mlp.get()),
      clip_(clip),
      decode_update_(decode_update),
      stream_(mlp->down_proj->weight.detach(), mlp->ttt().chunk_size, mlp->ttt().lr, clip, mlp->ttt().decay) {
  IPT_CHECK(mlp->ttt().enabled, "an MLP stream needs a TTT layer");
  IPT_CHECK(std::isfinite(clip) && clip >= 0.0, "ttt_clip must be finite and >= 0, got ", clip);
  const auto options = mlp->down_proj->weight.options();
  z_rows_ = torch::empty({0, mlp->gate_proj->weight.size(0)}, options);
  x_rows_ = torch::empty({0, mlp->down_proj->weight.size(0)}, options);
}

void MlpStream::reserve_rows(int64_t rows) {
  if (pending_ + rows <= z_rows_.size(0)) return;
  const int64_t capacity = std::min(mlp_->ttt().chunk_size, std::max({2 * z_rows_.size(0), pending_ + rows, int64_t{16}}));
  torch::Tensor z = torch::empty({capacity, z_rows_.size(1)}, z_rows_.options());
  torch::Tensor x = torch::empty({capacity, x_rows_.size(1)}, x_rows_.options());
  z.narrow(0, 0, pending_).copy_(z_rows_.narrow(0, 0, pending_));
  x.narrow(0, 0, pending_).copy_(x_rows_.narrow(0, 0, pending_));
  z_rows_ = z;
  x_rows_ = x;
}

int64_t MlpStream::memory_bytes(int64_t row_capacity) const {
  const torch::Tensor& w = stream_.state().weight;
  const int64_t element = static_cast<int64_t>(z_rows_.element_size());
  const int64_t master = w.numel() * static_cast<int64_t>(w.element_size());
  const int64_t compute = w.scalar_type() == z_rows_.scalar_type() ? 0 : w.numel() * element;
  const int64_t rows = row_capacity >= 0 ? row_capacity : z_rows_.size(0);
  return master + compute + rows * (z_rows_.size(1) + x_rows_.size(1)) * element;
}

namespace {

// Rows [n, d] of a [1, n, d] input.
torch::Tensor single_row(const torch::Tensor& t, const char* name) {
  IPT_CHECK(t.dim() == 3 && t.size(0) == 1, "streaming takes one sequence: ", name, " must be [1, n, d]");
  return t[0];
}

}  // namespace

torch::Tensor MlpStream::prefill(const torch::Tensor& H, const torch::Tensor& X) { return run(H, X, true); }

torch::Tensor MlpStream::step(const torch::Tensor& H, const torch::Tensor& X) {
  return run(H, X, decode_update_);
}

torch::Tensor MlpStream::run(const torch::Tensor& H, const torch::Tensor& X, bool update) {
  torch::NoGradGuard no_grad;
  GatedMlpImpl& mlp = const_cast<GatedMlpImpl&>(*mlp_);
  torch::Tensor Z;
  if (H.dim() == 3 && H.size(0) == 1 && H.size(1) == 1) {  // decoding: matrix-vector products, no packing
    const torch::Tensor h = H.reshape({-1});
    Z = (torch::silu(ops::matvec(mlp.gate_proj->weight, h)) * ops::matvec(mlp.up_proj->weight, h)).unsqueeze(0);
  } else {
    Z = single_row(mlp.activations(H), "H");
  }
  torch::Tensor Xr = single_row(X, "X");
  IPT_CHECK(Xr.size(0) == Z.size(0), "H and X must have the same number of rows");
  const int64_t C = stream_.chunk_size();
  std::vector<torch::Tensor> outputs;
  for (int64_t begin = 0; begin < Z.size(0);) {
    const int64_t n = update ? std::min(Z.size(0) - begin, C - pending()) : Z.size(0) - begin;
    torch::Tensor z = Z.narrow(0, begin, n);
    outputs.push_back(stream_.output(z));
    if (update) append_rows(z, Xr.narrow(0, begin, n));
    begin += n;
  }
  return torch::cat(outputs).unsqueeze(0).to(H.scalar_type());
}

void MlpStream::append_rows(const torch::Tensor& Z, const torch::Tensor& X) {
  torch::NoGradGuard no_grad;
  const int64_t n = Z.size(0), C = stream_.chunk_size();
  IPT_CHECK(Z.dim() == 2 && X.dim() == 2 && X.size(0) == n && Z.size(1) == z_rows_.size(1) &&
                X.size(1) == x_rows_.size(1) && pending_ + n <= C,
            "MLP stream rows must be Z [n, ", z_rows_.size(1), "] and X [n, ", x_rows_.size(1),
            "] that fit in the pending chunk (", C - pending_, " rows left)");
  reserve_rows(n);
  z_rows_.narrow(0, pending_, n).copy_(Z);
  x_rows_.narrow(0, pending_, n).copy_(X);
  pending_ += n;
  if (pending_ == C) {
    // The chunk is complete: its target can be built now (the convolution stays inside it).
    GatedMlpImpl& mlp = const_cast<GatedMlpImpl&>(*mlp_);
    torch::Tensor V = mlp.target(x_rows_.narrow(0, 0, C).unsqueeze(0), {})[0];
    stream_.append(z_rows_.narrow(0, 0, C), V);
    pending_ = 0;
  }
}

void MlpStream::restore(torch::Tensor weight, int64_t updates, torch::Tensor pending_z, torch::Tensor pending_x) {
  const auto& ttt = mlp_->ttt();
  IPT_CHECK(pending_z.dim() == 2 && pending_x.dim() == 2 && pending_z.size(0) == pending_x.size(0) &&
                pending_z.size(0) < ttt.chunk_size && pending_z.size(1) == z_rows_.size(1) &&
                pending_x.size(1) == x_rows_.size(1),
            "a saved MLP stream's pending rows must be Z [r, ", z_rows_.size(1), "] and X [r, ", x_rows_.size(1),
            "] with r < ttt_chunk");
  ttt::DocumentState state{weight, torch::Tensor(), torch::Tensor(), updates};
  const torch::Dtype compute = mlp_->down_proj->weight.scalar_type();
  stream_ = ttt::Stream(state, ttt.chunk_size, ttt.lr, clip_, compute, ttt.decay, mlp_->down_proj->weight.detach());
  pending_ = 0;
  reserve_rows(pending_z.size(0));
  pending_ = pending_z.size(0);
  z_rows_.narrow(0, 0, pending_).copy_(pending_z);
  x_rows_.narrow(0, 0, pending_).copy_(pending_x);
}

}  // namespace ipt::model
