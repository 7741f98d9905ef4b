#include "ipt/ops/rope/rope.h"

#include <cmath>

#include <ATen/Parallel.h>

#include "ipt/common/error.h"
#include "ipt/ops/vec8.h"

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

torch::Tensor apply_rope_reference(const torch::Tensor& x, const RopeAngles& angles) {
  const int64_t half = x.size(3) / 2;
  torch::Tensor rotated = torch::cat({-x.narrow(3, half, half), x.narrow(3, 0, half)}, 3);
  return x * angles.cos + rotated * angles.sin;
}

namespace {

using namespace vec8;

// One row of D = 2 * half values: y = x cos + rotate_half(x) sin, each product and the sum
// rounded to T as the expression rounds them; the backward is the transposed rotation,
// dx = dy cos + rotate_half^T(dy sin), the same loop with the sign moved.
template <typename T, bool kBackward>
IPT_ALWAYS_INLINE void rope_row(const T* x, const T* c, const T* s, T* y, int64_t half) {
  int64_t i = 0;
  for (; i + 8 <= half; i += 8) {
    const F8 lo = load8(x + i), hi = load8(x + half + i);
    const F8 c_lo = load8(c + i), c_hi = load8(c + half + i), s_lo = load8(s + i), s_hi = load8(s + half + i);
    if constexpr (!kBackward) {
      store8(y + i, round_to<T>(lo * c_lo) + round_to<T>(-hi * s_lo));
      store8(y + half + i, round_to<T>(hi * c_hi) + round_to<T>(lo * s_hi));
    } else {
      store8(y + i, round_to<T>(lo * c_lo) + round_to<T>(hi * s_hi));
      store8(y + half + i, round_to<T>(hi * c_hi) - round_to<T>(lo * s_lo));
    }
  }
  for (; i < half; ++i) {
    const float lo = static_cast<float>(x[i]), hi = static_cast<float>(x[half + i]);
    const float c_lo = static_cast<float>(c[i]), c_hi = static_cast<float>(c[half + i]);
    const float s_lo = static_cast<float>(s[i]), s_hi = static_cast<float>(s[half + i]);
    if constexpr (!kBackward) {
      y[i] = static_cast<T>(round_to<T>(lo * c_lo) + round_to<T>(-hi * s_lo));
      y[half + i] = static_cast<T>(round_to<T>(hi * c_hi) + round_to<T>(lo * s_hi));
    } else {
      y[i] = static_cast<T>(round_to<T>(lo * c_lo) + round_to<T>(hi * s_hi));
      y[half + i] = static_cast<T>(round_to<T>(hi * c_hi) - round_to<T>(lo * s_lo));
    }
  }
}

struct RowLayout {
  int64_t B, H, L, D;
  int64_t sb, sh, sl;   // x's strides (its last one is 1)
  int64_t angle_batch;  // cos/sin stride between batch rows (0: one [L, D] table for all)
};

template <typename T, bool kBackward>
IPT_ALWAYS_INLINE void rope_rows(const T* x, const T* c, const T* s, T* y, const RowLayout& t, int64_t begin,
                                 int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const int64_t l = r % t.L, h = (r / t.L) % t.H, b = r / (t.L * t.H);
    const int64_t angle = b * t.angle_batch + l * t.D;
    rope_row<T, kBackward>(x + b * t.sb + h * t.sh + l * t.sl, c + angle, s + angle, y + r * t.D, t.D / 2);
  }
}
template <typename T, bool kBackward>
IPT_TARGET_AVX2 void rope_rows_avx2(const T* x, const T* c, const T* s, T* y, const RowLayout& t, int64_t begin,
                                    int64_t end) {
  rope_rows<T, kBackward>(x, c, s, y, t, begin, end);
}
template <typename T, bool kBackward>
void rope_rows_base(const T* x, const T* c, const T* s, T* y, const RowLayout& t, int64_t begin, int64_t end) {
  rope_rows<T, kBackward>(x, c, s, y, t, begin, end);
}

// y (contiguous [B, H, L, D]) from x (any strides with a unit last one).
template <bool kBackward>
torch::Tensor rotate(const torch::Tensor& x_in, const torch::Tensor& cos, const torch::Tensor& sin) {
  const torch::Tensor x = x_in.stride(3) == 1 ? x_in : x_in.contiguous();
  const RowLayout t{x.size(0), x.size(1), x.size(2), x.size(3), x.stride(0), x.stride(1), x.stride(2),
                    cos.dim() == 4 ? x.size(2) * x.size(3) : 0};
  torch::Tensor y = torch::empty(x.sizes(), x.options());
  const int64_t rows = t.B * t.H * t.L;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data_ptr<T>();
    const T* cp = cos.data_ptr<T>();
    const T* sp = sin.data_ptr<T>();
    T* yp = y.data_ptr<T>();
    at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / t.D), [&](int64_t begin, int64_t end) {
      (use_avx2() ? rope_rows_avx2<T, kBackward> : rope_rows_base<T, kBackward>)(xp, cp, sp, yp, t, begin, end);
    });
  };
  if (x.scalar_type() == torch::kBFloat16)
    run(c10::BFloat16());
  else
    run(float());
  return y;
}

class RopeFunction : public torch::autograd::Function<RopeFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return rotate<false>(x, cos, sin);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    return {rotate<true>(grad_outputs[0].to(saved[0].scalar_type()), saved[0], saved[1]), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor apply_rope(const torch::Tensor& x, const RopeAngles& angles) {
  IPT_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "rope: x must be [B, H, L, D] with D even, got ", x.sizes());
  const torch::Tensor &cos = angles.cos, &sin = angles.sin;
  const bool table_2d = cos.dim() == 2 && cos.size(0) == x.size(2) && cos.size(1) == x.size(3);
  const bool table_4d = cos.dim() == 4 && cos.size(0) == x.size(0) && cos.size(1) == 1 && cos.size(2) == x.size(2) &&
                        cos.size(3) == x.size(3);
  const bool fused = x.device().is_cpu() && (table_2d || table_4d) && sin.sizes() == cos.sizes() &&
                     cos.scalar_type() == x.scalar_type() && sin.scalar_type() == x.scalar_type() &&
                     cos.is_contiguous() && sin.is_contiguous() &&
                     (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16) && x.numel() > 0 &&
                     !cos.requires_grad() && !sin.requires_grad();
  if (!fused) return apply_rope_reference(x, angles);
  return RopeFunction::apply(x, cos, sin);
}

}  // namespace ipt::ops
