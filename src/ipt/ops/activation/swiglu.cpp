#include "ipt/ops/activation/swiglu.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "ipt/common/error.h"
#include "ipt/ops/vec8.h"

namespace ipt::ops {

torch::Tensor swiglu_reference(const torch::Tensor& gate, const torch::Tensor& up) { return torch::silu(gate) * up; }

namespace {

using namespace vec8;

// sigmoid from exp(-|g|), which never overflows.
IPT_ALWAYS_INLINE F8 sigmoid8(F8 g) {
  const F8 e = exp_poly<F8, I8>(g < 0 ? g : -g);
  return (g >= 0 ? splat8(1.0f) : e) / (1.0f + e);
}
IPT_ALWAYS_INLINE float sigmoid1(float g) {
  const float e = exp_poly<float, int32_t>(-std::fabs(g));
  return (g >= 0 ? 1.0f : e) / (1.0f + e);
}

// y = round_T(silu(g)) * u, rounded to T.
template <typename T>
IPT_ALWAYS_INLINE void forward_range(const T* g, const T* u, T* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const F8 x = load8(g + i);
    store8(y + i, round_to<T>(x * sigmoid8(x)) * load8(u + i));
  }
  for (; i < n; ++i) {
    const float x = static_cast<float>(g[i]);
    y[i] = static_cast<T>(round_to<T>(x * sigmoid1(x)) * static_cast<float>(u[i]));
  }
}

// As autograd differentiates the expression: ds = round_T(dy u), du = round_T(dy round_T(silu g)),
// dg = round_T(ds sigmoid(g) (1 + g (1 - sigmoid(g)))).
template <typename T>
IPT_ALWAYS_INLINE void backward_range(const T* dy, const T* g, const T* u, T* dg, T* du, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const F8 x = load8(g + i), d = load8(dy + i), sig = sigmoid8(x);
    const F8 ds = round_to<T>(d * load8(u + i));
    store8(du + i, d * round_to<T>(x * sig));
    store8(dg + i, ds * (sig * (1.0f + x * (1.0f - sig))));
  }
  for (; i < n; ++i) {
    const float x = static_cast<float>(g[i]), d = static_cast<float>(dy[i]), sig = sigmoid1(x);
    const float ds = round_to<T>(d * static_cast<float>(u[i]));
    du[i] = static_cast<T>(d * round_to<T>(x * sig));
    dg[i] = static_cast<T>(ds * (sig * (1.0f + x * (1.0f - sig))));
  }
}

template <typename T>
IPT_TARGET_AVX2 void forward_avx2(const T* g, const T* u, T* y, int64_t n) {
  forward_range(g, u, y, n);
}
template <typename T>
void forward_base(const T* g, const T* u, T* y, int64_t n) {
  forward_range(g, u, y, n);
}
template <typename T>
IPT_TARGET_AVX2 void backward_avx2(const T* dy, const T* g, const T* u, T* dg, T* du, int64_t n) {
  backward_range(dy, g, u, dg, du, n);
}
template <typename T>
void backward_base(const T* dy, const T* g, const T* u, T* dg, T* du, int64_t n) {
  backward_range(dy, g, u, dg, du, n);
}

constexpr int64_t kGrain = 16384;

template <typename T>
void forward(const torch::Tensor& g, const torch::Tensor& u, torch::Tensor& y) {
  const T* gp = g.data_ptr<T>();
  const T* up = u.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  at::parallel_for(0, g.numel(), kGrain, [&](int64_t begin, int64_t end) {
    (use_avx2() ? forward_avx2<T> : forward_base<T>)(gp + begin, up + begin, yp + begin, end - begin);
  });
}

template <typename T>
void backward(const torch::Tensor& dy, const torch::Tensor& g, const torch::Tensor& u, torch::Tensor& dg,
              torch::Tensor& du) {
  const T* dyp = dy.data_ptr<T>();
  const T* gp = g.data_ptr<T>();
  const T* up = u.data_ptr<T>();
  T* dgp = dg.data_ptr<T>();
  T* dup = du.data_ptr<T>();
  at::parallel_for(0, g.numel(), kGrain, [&](int64_t begin, int64_t end) {
    (use_avx2() ? backward_avx2<T> : backward_base<T>)(dyp + begin, gp + begin, up + begin, dgp + begin, dup + begin,
                                                       end - begin);
  });
}

class SwigluFunction : public torch::autograd::Function<SwigluFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& gate_in,
                               const torch::Tensor& up_in) {
    const torch::Tensor gate = gate_in.contiguous(), up = up_in.contiguous();
    torch::Tensor y = torch::empty_like(gate);
    if (gate.scalar_type() == torch::kBFloat16)
      ops::forward<c10::BFloat16>(gate, up, y);
    else
      ops::forward<float>(gate, up, y);
    ctx->save_for_backward({gate, up});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &gate = saved[0], &up = saved[1];
    const torch::Tensor dy = grad_outputs[0].to(gate.scalar_type()).contiguous();
    torch::Tensor d_gate = torch::empty_like(gate), d_up = torch::empty_like(up);
    if (gate.scalar_type() == torch::kBFloat16)
      ops::backward<c10::BFloat16>(dy, gate, up, d_gate, d_up);
    else
      ops::backward<float>(dy, gate, up, d_gate, d_up);
    return {d_gate, d_up};
  }
};

}  // namespace

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  IPT_CHECK(gate.sizes() == up.sizes(), "swiglu: gate ", gate.sizes(), " and up ", up.sizes(), " differ in shape");
  const bool fused = gate.device().is_cpu() && up.device().is_cpu() && gate.scalar_type() == up.scalar_type() &&
                     (gate.scalar_type() == torch::kFloat32 || gate.scalar_type() == torch::kBFloat16) &&
                     gate.numel() > 0;
  if (!fused) return swiglu_reference(gate, up);
  return SwigluFunction::apply(gate, up);
}

}  // namespace ipt::ops
