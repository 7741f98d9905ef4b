// The LM-aligned target V = Conv(X) · P (docs/operator.md): a depthwise 5-tap convolution that never reads
// across a chunk or document edge, then the projection P applied as Conv(X) · P (not P^T).
#include "ipt/common/error.h"
#include "ipt/ops/ttt/ttt.h"

namespace ipt::ttt {

TargetKind parse_target_kind(const std::string& name) {
  if (name == "conv") return TargetKind::kConv;
  if (name == "reconstruction") return TargetKind::kReconstruction;
  throw Error("unknown TTT target kind '" + name + "' (expected conv or reconstruction)");
}

ConvPadding parse_conv_padding(const std::string& name) {
  if (name == "same") return ConvPadding::kSame;
  if (name == "causal") return ConvPadding::kCausal;
  throw Error("unknown ttt_conv_padding '" + name + "' (expected same or causal)");
}

namespace {

// For every token: its offset inside its chunk and the length of that chunk. The chunks of a
// document start at its first token.
void chunk_positions(int64_t length, const std::vector<int64_t>& cu_seqlens, int64_t C, std::vector<int64_t>& offset,
                     std::vector<int64_t>& chunk_length) {
  std::vector<int64_t> bounds = cu_seqlens.empty() ? std::vector<int64_t>{0, length} : cu_seqlens;
  IPT_CHECK(bounds.front() == 0 && bounds.back() == length, "cu_seqlens must run from 0 to the sequence length ",
            length);
  offset.assign(length, 0);
  chunk_length.assign(length, 0);
  for (size_t k = 1; k < bounds.size(); ++k) {
    IPT_CHECK(bounds[k] > bounds[k - 1], "cu_seqlens must be strictly increasing");
    for (int64_t t = bounds[k - 1]; t < bounds[k]; ++t) {
      const int64_t pos = t - bounds[k - 1], chunk_begin = pos - pos % C;
      offset[t] = pos % C;
      chunk_length[t] = std::min(C, bounds[k] - bounds[k - 1] - chunk_begin);
    }
  }
}

// X shifted along the sequence: out[:, t] = X[:, t + shift], zero where t + shift is outside [0, L).
torch::Tensor shifted(const torch::Tensor& X, int64_t shift) {
  const int64_t L = X.size(1);
  if (shift == 0) return X;
  if (std::abs(shift) >= L) return torch::zeros_like(X);
  if (shift > 0) return torch::constant_pad_nd(X.narrow(1, shift, L - shift), {0, 0, 0, shift});
  return torch::constant_pad_nd(X.narrow(1, 0, L + shift), {0, 0, -shift, 0});
}

}  // namespace

torch::Tensor build_target(const torch::Tensor& X, const torch::Tensor& conv_weight, const torch::Tensor& proj,
                           const TargetOptions& options) {
  IPT_CHECK(X.defined() && X.dim() == 3, "target source X must be [B, L, d]");
  IPT_CHECK(options.chunk_size > 0, "ttt chunk_size must be > 0, got ", options.chunk_size);
  IPT_CHECK(options.cu_seqlens.empty() || X.size(0) == 1, "cu_seqlens needs a batch of one packed row, got batch ",
            X.size(0));
  const int64_t d = X.size(2), L = X.size(1);
  if (proj.defined())
    IPT_CHECK(proj.dim() == 2 && proj.size(0) == d && proj.size(1) == d, "ttt_proj.weight must be [", d, ", ", d,
              "], got ", proj.sizes());

  torch::Tensor Y = X;
  if (options.kind == TargetKind::kConv) {
    IPT_CHECK(conv_weight.defined() && conv_weight.dim() == 3 && conv_weight.size(0) == d &&
                  conv_weight.size(1) == 1 && conv_weight.size(2) == kConvKernel,
              "ttt_conv.weight must be [", d, ", 1, ", kConvKernel, "], got ",
              conv_weight.defined() ? conv_weight.sizes() : c10::IntArrayRef{});
    std::vector<int64_t> offset, chunk_length;
    chunk_positions(L, options.cu_seqlens, options.chunk_size, offset, chunk_length);
    const int64_t first_tap = options.padding == ConvPadding::kSame ? -2 : -(kConvKernel - 1);
    auto cpu_long = torch::TensorOptions().dtype(torch::kInt64);
    torch::Tensor off = torch::from_blob(offset.data(), {L}, cpu_long).to(X.device());
    torch::Tensor len = torch::from_blob(chunk_length.data(), {L}, cpu_long).to(X.device());
    Y = torch::zeros_like(X);
    for (int64_t k = 0; k < kConvKernel; ++k) {
      const int64_t shift = first_tap + k;
      // Taps that land outside the token's own chunk read zeros.
      torch::Tensor inside = ((off + shift >= 0) & (off + shift < len)).to(X.scalar_type()).view({1, L, 1});
      Y = Y + shifted(X, shift) * inside * conv_weight.select(2, k).view({1, 1, d});
    }
  }
  return proj.defined() ? torch::matmul(Y, proj) : Y;
}

}  // namespace ipt::ttt
