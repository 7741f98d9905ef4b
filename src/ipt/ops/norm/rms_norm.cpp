#include "ipt/ops/norm/rms_norm.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "ipt/common/error.h"
#include "ipt/ops/vec8.h"

namespace ipt::ops {

torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  torch::Tensor xf = x.scalar_type() == torch::kFloat64 ? x : x.to(torch::kFloat32);
  torch::Tensor normed = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return weight * normed.to(x.scalar_type());
}

namespace {

using namespace vec8;

// Rows of `n` values. The forward keeps 1 / rms per row (`rstd`) for the backward. Every product
// that the expression rounds to T is rounded to T here too (round_to / the stores).
template <typename T>
IPT_ALWAYS_INLINE void forward_rows(const T* x, const T* w, T* y, float* rstd, int64_t rows, int64_t n, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    F8 acc = splat8(0.0f);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const F8 v = load8(xr + j);
      acc += v * v;
    }
    float squares = sum8(acc);
    for (; j < n; ++j) squares += static_cast<float>(xr[j]) * static_cast<float>(xr[j]);
    const float s = 1.0f / std::sqrt(squares / static_cast<float>(n) + eps);
    rstd[r] = s;
    for (j = 0; j + 8 <= n; j += 8) store8(yr + j, round_to<T>(load8(xr + j) * s) * load8(w + j));
    for (; j < n; ++j) yr[j] = static_cast<T>(round_to<T>(static_cast<float>(xr[j]) * s) * static_cast<float>(w[j]));
  }
}

// dx = s (g - n mean(g n)) with g = dy w (rounded to T) and n = x s; dw += dy round_T(n) (each
// product rounded to T, summed in float32).
template <typename T>
IPT_ALWAYS_INLINE void backward_rows(const T* dy, const T* x, const T* w, const float* rstd, T* dx, float* dw,
                                     int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* dyr = dy + r * n;
    const T* xr = x + r * n;
    T* dxr = dx + r * n;
    const float s = rstd[r];
    F8 acc = splat8(0.0f);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) acc += round_to<T>(load8(dyr + j) * load8(w + j)) * load8(xr + j);
    float dot = sum8(acc);
    for (; j < n; ++j)
      dot += round_to<T>(static_cast<float>(dyr[j]) * static_cast<float>(w[j])) * static_cast<float>(xr[j]);
    const float coeff = -s * s * s * dot / static_cast<float>(n);
    for (j = 0; j + 8 <= n; j += 8) {
      const F8 d = load8(dyr + j), v = load8(xr + j);
      store8(dxr + j, round_to<T>(d * load8(w + j)) * s + v * coeff);
      if (dw) store8(dw + j, load8(dw + j) + round_to<T>(d * round_to<T>(v * s)));
    }
    for (; j < n; ++j) {
      const float d = static_cast<float>(dyr[j]), v = static_cast<float>(xr[j]);
      dxr[j] = static_cast<T>(round_to<T>(d * static_cast<float>(w[j])) * s + v * coeff);
      if (dw) dw[j] += round_to<T>(d * round_to<T>(v * s));
    }
  }
}

template <typename T>
IPT_TARGET_AVX2 void forward_avx2(const T* x, const T* w, T* y, float* rstd, int64_t rows, int64_t n, float eps) {
  forward_rows(x, w, y, rstd, rows, n, eps);
}
template <typename T>
void forward_base(const T* x, const T* w, T* y, float* rstd, int64_t rows, int64_t n, float eps) {
  forward_rows(x, w, y, rstd, rows, n, eps);
}
template <typename T>
IPT_TARGET_AVX2 void backward_avx2(const T* dy, const T* x, const T* w, const float* rstd, T* dx, float* dw,
                                   int64_t rows, int64_t n) {
  backward_rows(dy, x, w, rstd, dx, dw, rows, n);
}
template <typename T>
void backward_base(const T* dy, const T* x, const T* w, const float* rstd, T* dx, float* dw, int64_t rows, int64_t n) {
  backward_rows(dy, x, w, rstd, dx, dw, rows, n);
}

// Rows per task: the gain's gradient is summed per task in a fixed order, so the result does not
// depend on the number of threads (a resumed run repeats bit for bit).
constexpr int64_t kRowsPerTask = 64;

template <typename T>
void forward(const torch::Tensor& x, const torch::Tensor& w, torch::Tensor& y, torch::Tensor& rstd, double eps) {
  const int64_t n = x.size(-1), rows = x.numel() / n;
  const T* xp = x.data_ptr<T>();
  const T* wp = w.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  float* sp = rstd.data_ptr<float>();
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / n), [&](int64_t begin, int64_t end) {
    auto run = use_avx2() ? forward_avx2<T> : forward_base<T>;
    run(xp + begin * n, wp, yp + begin * n, sp + begin, end - begin, n, static_cast<float>(eps));
  });
}

template <typename T>
void backward(const torch::Tensor& dy, const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& rstd,
              torch::Tensor& dx, torch::Tensor* dw) {
  const int64_t n = x.size(-1), rows = x.numel() / n;
  const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  std::vector<float> partial(dw ? static_cast<size_t>(tasks * n) : 0, 0.0f);
  const T* dyp = dy.data_ptr<T>();
  const T* xp = x.data_ptr<T>();
  const T* wp = w.data_ptr<T>();
  const float* sp = rstd.data_ptr<float>();
  T* dxp = dx.data_ptr<T>();
  at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    auto run = use_avx2() ? backward_avx2<T> : backward_base<T>;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t begin = t * kRowsPerTask, count = std::min(kRowsPerTask, rows - begin);
      run(dyp + begin * n, xp + begin * n, wp, sp + begin, dxp + begin * n, dw ? partial.data() + t * n : nullptr,
          count, n);
    }
  });
  if (!dw) return;
  torch::Tensor sum = torch::zeros({n}, torch::kFloat32);
  float* out = sum.data_ptr<float>();
  for (int64_t t = 0; t < tasks; ++t)
    for (int64_t j = 0; j < n; ++j) out[j] += partial[static_cast<size_t>(t * n + j)];
  *dw = sum.to(w.scalar_type());
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& weight, double eps) {
    const torch::Tensor x = x_in.contiguous(), w = weight.contiguous();
    torch::Tensor y = torch::empty_like(x);
    torch::Tensor rstd = torch::empty({x.numel() / x.size(-1)}, x.options().dtype(torch::kFloat32));
    if (x.scalar_type() == torch::kBFloat16)
      ops::forward<c10::BFloat16>(x, w, y, rstd, eps);
    else
      ops::forward<float>(x, w, y, rstd, eps);
    ctx->save_for_backward({x, w, rstd});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w = saved[1], &rstd = saved[2];
    const torch::Tensor dy = grad_outputs[0].to(x.scalar_type()).contiguous();
    torch::Tensor dx = torch::empty_like(x), dw;
    torch::Tensor* dw_out = ctx->needs_input_grad(1) ? &dw : nullptr;
    if (x.scalar_type() == torch::kBFloat16)
      ops::backward<c10::BFloat16>(dy, x, w, rstd, dx, dw_out);
    else
      ops::backward<float>(dy, x, w, rstd, dx, dw_out);
    return {dx, dw, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  IPT_CHECK(x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1), "rms_norm: gain of shape ",
            weight.sizes(), " for rows of ", x.dim() >= 1 ? x.size(-1) : 0, " values");
  const bool fused = x.device().is_cpu() && weight.device().is_cpu() && x.scalar_type() == weight.scalar_type() &&
                     (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16) && x.numel() > 0;
  if (!fused) return rms_norm_reference(x, weight, eps);
  return RmsNormFunction::apply(x, weight, eps);
}

}  // namespace ipt::ops
