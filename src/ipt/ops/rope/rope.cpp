#include "ipt/ops/rope/rope.h"

#include <cmath>

#include "ipt/common/error.h"

namespace ipt::ops {

namespace {

torch::Tensor base_inv_freq(double base, int64_t dim) {
  return 1.0 / torch::pow(base, torch::arange(0, dim, 2, torch::kFloat64) / static_cast<double>(dim));
}

int64_t original_length(const RopeParams& p) {
  return p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings : p.max_position_embeddings;
}

}  // namespace

RopeTable rope_table(const RopeParams& p, int64_t seq_len) {
  IPT_CHECK(p.head_dim > 0 && p.head_dim % 2 == 0, "rope: head_dim must be positive and even, got ", p.head_dim);
  IPT_CHECK(p.theta > 0, "rope: rope_theta must be > 0, got ", p.theta);
  const int64_t dim = p.head_dim;
  RopeTable t;
  if (p.type == "default") {
    t.inv_freq = base_inv_freq(p.theta, dim);
  } else if (p.type == "linear") {
    IPT_CHECK(p.factor > 0, "rope_scaling.factor must be > 0");
    t.inv_freq = base_inv_freq(p.theta, dim) / p.factor;
  } else if (p.type == "dynamic") {
    // Hugging Face (4.57) scales from max_position_embeddings even when rope_scaling also names an
    // original_max_position_embeddings (tests/fixtures/goldens/hf_llama_dynamic_original).
    const int64_t length = p.max_position_embeddings > 0 ? p.max_position_embeddings : original_length(p);
    IPT_CHECK(p.factor > 0 && length > 0, "dynamic rope needs factor and max_position_embeddings");
    double base = p.theta;
    const double L = static_cast<double>(length);
    if (seq_len > L) base = p.theta * std::pow(p.factor * seq_len / L - (p.factor - 1), double(dim) / (dim - 2));
    t.inv_freq = base_inv_freq(base, dim);
  } else if (p.type == "yarn") {
    IPT_CHECK(p.factor > 0 && original_length(p) > 0, "yarn rope needs factor and original_max_position_embeddings");
    const double L = static_cast<double>(original_length(p));
    // The dimension whose wavelength makes `rotations` turns over the original context.
    auto correction_dim = [&](double rotations) {
      return dim * std::log(L / (rotations * 2 * M_PI)) / (2 * std::log(p.theta));
    };
    double low = std::max(0.0, std::floor(correction_dim(p.beta_fast)));
    double high = std::min(double(dim - 1), std::ceil(correction_dim(p.beta_slow)));
    if (low == high) high += 0.001;
    torch::Tensor ramp = ((torch::arange(dim / 2, torch::kFloat64) - low) / (high - low)).clamp(0.0, 1.0);
    torch::Tensor extrapolation = base_inv_freq(p.theta, dim), interpolation = extrapolation / p.factor;
    torch::Tensor keep = 1.0 - ramp;  // 1: keep the original frequency (high-frequency dims)
    t.inv_freq = interpolation * (1.0 - keep) + extrapolation * keep;
    t.attention_scaling = p.attention_factor > 0 ? p.attention_factor
                                                 : (p.factor > 1 ? 0.1 * std::log(p.factor) + 1.0 : 1.0);
  } else if (p.type == "llama3") {
    IPT_CHECK(p.factor > 0 && original_length(p) > 0 && p.high_freq_factor > p.low_freq_factor,
              "llama3 rope needs factor, original_max_position_embeddings and high_freq_factor > low_freq_factor");
    const double L = static_cast<double>(original_length(p));
    torch::Tensor inv = base_inv_freq(p.theta, dim);
    torch::Tensor wavelen = 2 * M_PI / inv;
    const double low_wavelen = L / p.low_freq_factor, high_wavelen = L / p.high_freq_factor;
    torch::Tensor scaled = torch::where(wavelen > low_wavelen, inv / p.factor, inv);
    torch::Tensor smooth = (L / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
    torch::Tensor smoothed = (1 - smooth) * scaled / p.factor + smooth * scaled;
    torch::Tensor medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen);
    t.inv_freq = torch::where(medium, smoothed, scaled);
  } else {
    throw Error("unknown rope type '" + p.type + "' (expected default, linear, dynamic, yarn or llama3)");
  }
  return t;
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& positions, const RopeTable& table) {
  IPT_CHECK(x.dim() == 4 && x.size(3) == 2 * table.inv_freq.size(0), "rope: x must be [B, H, L, ",
            2 * table.inv_freq.size(0), "], got ", x.sizes());
  IPT_CHECK(positions.scalar_type() == torch::kInt64 &&
                ((positions.dim() == 1 && positions.size(0) == x.size(2)) ||
                 (positions.dim() == 2 && positions.size(0) == x.size(0) && positions.size(1) == x.size(2))),
            "rope: positions must be int64 [L] or [B, L] matching x ", x.sizes());
  return apply_rope(x, rope_angles(positions, table, x.scalar_type()));
}

RopeAngles rope_angles(const torch::Tensor& positions, const RopeTable& table, torch::Dtype dtype) {
  // Angles in float64, then cos/sin in the compute type: positions up to millions keep their precision.
  torch::Tensor angles = positions.to(torch::kFloat64).unsqueeze(-1) * table.inv_freq.to(positions.device());
  torch::Tensor emb = torch::cat({angles, angles}, -1);  // [L, D] or [B, L, D]
  if (emb.dim() == 3) emb = emb.unsqueeze(1);            // [B, 1, L, D]
  return {(emb.cos() * table.attention_scaling).to(dtype), (emb.sin() * table.attention_scaling).to(dtype)};
}

torch::Tensor apply_rope(const torch::Tensor& x, const RopeAngles& angles) {
  const int64_t half = x.size(3) / 2;
  torch::Tensor rotated = torch::cat({-x.narrow(3, half, half), x.narrow(3, 0, half)}, 3);
  return x * angles.cos + rotated * angles.sin;
}

}  // namespace ipt::ops
