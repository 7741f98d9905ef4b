#include "ipt/train/optimizer.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cmath>
#include <functional>

#include "ipt/common/error.h"
#include "ipt/ops/vec8.h"

namespace ipt::train {

namespace {

struct AdamWCoefficients {
  float decay;            // 1 - lr * weight_decay, or 1 for a parameter exempt from decay
  float beta1, beta2, one_minus_beta1, one_minus_beta2;
  float step_size;        // lr / (1 - beta1^t)
  float inv_sqrt_correction2;  // 1 / sqrt(1 - beta2^t)
  float eps;
  float grad_scale;       // the clipping factor, applied to each gradient as it is read
};

bool fusable(const torch::Tensor& p, const torch::Tensor& grad, const torch::Tensor& m, const torch::Tensor& v) {
  for (const torch::Tensor* t : {&p, &grad, &m, &v})
    if (!t->device().is_cpu() || t->scalar_type() != torch::kFloat32 || !t->is_contiguous()) return false;
  return true;
}

// The whole update of one float32 parameter in one read and one write of the parameter and its
// moments: the tensor expression in AdamW::step makes six passes and two temporaries, which was a
// fifth of a SmolLM2-135M training step. The clipping factor is applied as the gradient is read,
// and a bfloat16 compute copy (mixed precision), when given, is written from each block of new
// values while it is in cache. Plain multiplies and adds in both versions (no fused multiply-add), so the AVX-512 one
// gives the scalar one's results bit for bit.
void adamw_scalar(float* p, const float* g, float* m, float* v, int64_t begin, int64_t end,
                  const AdamWCoefficients& c) {
  for (int64_t k = begin; k < end; ++k) {
    const float gk = g[k] * c.grad_scale;
    const float mk = c.beta1 * m[k] + c.one_minus_beta1 * gk;
    const float vk = c.beta2 * v[k] + c.one_minus_beta2 * (gk * gk);
    m[k] = mk;
    v[k] = vk;
    p[k] = p[k] * c.decay - c.step_size * mk / (std::sqrt(vk) * c.inv_sqrt_correction2 + c.eps);
  }
}

__attribute__((target("avx512f"))) void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t begin,
                                                     int64_t end, const AdamWCoefficients& c) {
  const __m512 beta1 = _mm512_set1_ps(c.beta1), beta2 = _mm512_set1_ps(c.beta2);
  const __m512 one_minus_beta1 = _mm512_set1_ps(c.one_minus_beta1), one_minus_beta2 = _mm512_set1_ps(c.one_minus_beta2);
  const __m512 decay = _mm512_set1_ps(c.decay), step_size = _mm512_set1_ps(c.step_size);
  const __m512 inv_sqrt_correction2 = _mm512_set1_ps(c.inv_sqrt_correction2), eps = _mm512_set1_ps(c.eps);
  const __m512 grad_scale = _mm512_set1_ps(c.grad_scale);
  int64_t k = begin;
  for (; k + 16 <= end; k += 16) {
    const __m512 gk = _mm512_mul_ps(_mm512_loadu_ps(g + k), grad_scale);
    const __m512 mk = _mm512_add_ps(_mm512_mul_ps(beta1, _mm512_loadu_ps(m + k)), _mm512_mul_ps(one_minus_beta1, gk));
    const __m512 vk = _mm512_add_ps(_mm512_mul_ps(beta2, _mm512_loadu_ps(v + k)),
                                    _mm512_mul_ps(one_minus_beta2, _mm512_mul_ps(gk, gk)));
    _mm512_storeu_ps(m + k, mk);
    _mm512_storeu_ps(v + k, vk);
    // maskz with all lanes set is _mm512_sqrt_ps without GCC 12's false uninitialised-value warning
    const __m512 root = _mm512_maskz_sqrt_ps(0xFFFF, vk);
    const __m512 denom = _mm512_add_ps(_mm512_mul_ps(root, inv_sqrt_correction2), eps);
    const __m512 update = _mm512_div_ps(_mm512_mul_ps(step_size, mk), denom);
    const __m512 pk = _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(p + k), decay), update);
    _mm512_storeu_ps(p + k, pk);
  }
  adamw_scalar(p, g, m, v, k, end, c);
}

void adamw_fused(float* p, const float* g, float* m, float* v, c10::BFloat16* copy, int64_t n,
                 const AdamWCoefficients& c) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  at::parallel_for(0, n, int64_t{1} << 15, [&](int64_t begin, int64_t end) {
    if (avx512)
      adamw_avx512(p, g, m, v, begin, end, c);
    else
      adamw_scalar(p, g, m, v, begin, end, c);
    // The block just updated (128 KiB, still in cache) into the bf16 copy.
    if (copy) ops::vec8::to_bf16(p + begin, end - begin, copy + begin);
  });
}

// Sum of squares of a contiguous float32 CPU tensor, accumulated in double, without a temporary.
double sum_of_squares(const float* x, int64_t n) {
  return at::parallel_reduce(
      0, n, int64_t{1} << 15, 0.0,
      [&](int64_t begin, int64_t end, double partial) {
        double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t k = begin;
        for (; k + 8 <= end; k += 8)
          for (int lane = 0; lane < 8; ++lane) lanes[lane] += static_cast<double>(x[k + lane]) * x[k + lane];
        for (; k < end; ++k) lanes[0] += static_cast<double>(x[k]) * x[k];
        for (double lane : lanes) partial += lane;
        return partial;
      },
      std::plus<double>());
}

}  // namespace

bool decays(const std::string& name) {
  return name.find("norm") == std::string::npos && name.find(".bias") == std::string::npos &&
         name.find("embed_tokens") == std::string::npos;
}

AdamW::AdamW(NamedParameters parameters, AdamWOptions options)
    : parameters_(std::move(parameters)), options_(options) {
  for (const auto& [name, p] : parameters_) {
    exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
  }
}

void AdamW::set_compute_copies(std::vector<torch::Tensor> copies) {
  IPT_CHECK(copies.empty() || copies.size() == parameters_.size(), "AdamW: ", copies.size(),
            " compute copies for ", parameters_.size(), " parameters");
  for (size_t i = 0; i < copies.size(); ++i)
    IPT_CHECK(copies[i].sizes() == parameters_[i].second.sizes(), "AdamW: the compute copy of ",
              parameters_[i].first, " has shape ", copies[i].sizes(), ", the parameter ", parameters_[i].second.sizes());
  compute_copies_ = std::move(copies);
}

void AdamW::step(double lr, double grad_scale) {
  torch::NoGradGuard no_grad;
  ++steps_;
  const double correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  const double step_size = lr / correction1;
  const double sqrt_correction2 = std::sqrt(correction2);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& [name, p] = parameters_[i];
    const torch::Tensor& grad = p.grad();
    if (!grad.defined()) continue;
    const bool decay = options_.weight_decay != 0 && decays(name);
    torch::Tensor copy = compute_copies_.empty() ? torch::Tensor() : compute_copies_[i];
    const bool copy_fusable = !copy.defined() || (copy.device().is_cpu() && copy.scalar_type() == torch::kBFloat16 &&
                                                  copy.is_contiguous());
    if (fusable(p, grad, exp_avg_[i], exp_avg_sq_[i]) && copy_fusable) {
      const AdamWCoefficients c{static_cast<float>(decay ? 1.0 - lr * options_.weight_decay : 1.0),
                                static_cast<float>(options_.beta1),
                                static_cast<float>(options_.beta2),
                                static_cast<float>(1.0 - options_.beta1),
                                static_cast<float>(1.0 - options_.beta2),
                                static_cast<float>(step_size),
                                static_cast<float>(1.0 / sqrt_correction2),
                                static_cast<float>(options_.eps),
                                static_cast<float>(grad_scale)};
      adamw_fused(p.data_ptr<float>(), grad.data_ptr<float>(), exp_avg_[i].data_ptr<float>(),
                  exp_avg_sq_[i].data_ptr<float>(), copy.defined() ? copy.data_ptr<c10::BFloat16>() : nullptr,
                  p.numel(), c);
      continue;
    }
    const torch::Tensor g = grad_scale == 1.0 ? grad : grad * grad_scale;
    if (decay) p.mul_(1.0 - lr * options_.weight_decay);
    exp_avg_[i].mul_(options_.beta1).add_(g, 1.0 - options_.beta1);
    exp_avg_sq_[i].mul_(options_.beta2).addcmul_(g, g, 1.0 - options_.beta2);
    torch::Tensor denom = (exp_avg_sq_[i].sqrt() / sqrt_correction2).add_(options_.eps);
    p.addcdiv_(exp_avg_[i], denom, -step_size);
    if (copy.defined()) copy.copy_(p);
  }
}

io::TensorMap AdamW::state() const {
  io::TensorMap state;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    state["exp_avg/" + parameters_[i].first] = exp_avg_[i];
    state["exp_avg_sq/" + parameters_[i].first] = exp_avg_sq_[i];
  }
  state["step"] = torch::tensor({steps_}, torch::kInt64);
  return state;
}

void AdamW::load_state(const io::TensorMap& state) {
  auto get = [&](const std::string& key, const torch::Tensor& like) -> torch::Tensor {
    auto it = state.find(key);
    IPT_CHECK(it != state.end(), "optimizer state: missing tensor '", key, "'");
    IPT_CHECK(it->second.sizes() == like.sizes(), "optimizer state: '", key, "' has shape ", it->second.sizes(),
              ", the parameter has ", like.sizes());
    return it->second;
  };
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    exp_avg_[i].copy_(get("exp_avg/" + parameters_[i].first, exp_avg_[i]));
    exp_avg_sq_[i].copy_(get("exp_avg_sq/" + parameters_[i].first, exp_avg_sq_[i]));
  }
  auto it = state.find("step");
  IPT_CHECK(it != state.end() && it->second.numel() == 1, "optimizer state: missing 'step'");
  steps_ = it->second.to(torch::kInt64).item<int64_t>();
}

double grad_norm(const NamedParameters& parameters) {
  torch::NoGradGuard no_grad;
  double squares = 0;
  for (const auto& [name, p] : parameters) {
    const torch::Tensor& grad = p.grad();
    if (!grad.defined()) continue;
    if (grad.device().is_cpu() && grad.scalar_type() == torch::kFloat32 && grad.is_contiguous())
      squares += sum_of_squares(grad.data_ptr<float>(), grad.numel());
    else
      squares += grad.to(torch::kFloat64).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(squares);
  IPT_CHECK(std::isfinite(norm), "gradient norm is not finite (", norm, "): the loss diverged");
  return norm;
}

double clip_scale(double norm, double max_norm) {
  return max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
}

double clip_grad_norm(const NamedParameters& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  const double norm = grad_norm(parameters);
  const double scale = clip_scale(norm, max_norm);
  if (scale != 1.0)
    for (const auto& [name, p] : parameters)
      if (p.grad().defined()) p.grad().mul_(scale);
  return norm;
}

}  // namespace ipt::train
