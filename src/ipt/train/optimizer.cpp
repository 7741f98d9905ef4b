#include "ipt/train/optimizer.h"

#include <cmath>

#include "ipt/common/error.h"

namespace ipt::train {

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

void AdamW::step(double lr) {
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
    if (options_.weight_decay != 0 && decays(name)) p.mul_(1.0 - lr * options_.weight_decay);
    exp_avg_[i].mul_(options_.beta1).add_(grad, 1.0 - options_.beta1);
    exp_avg_sq_[i].mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
    torch::Tensor denom = (exp_avg_sq_[i].sqrt() / sqrt_correction2).add_(options_.eps);
    p.addcdiv_(exp_avg_[i], denom, -step_size);
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

double clip_grad_norm(const NamedParameters& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  double squares = 0;
  for (const auto& [name, p] : parameters)
    if (p.grad().defined()) squares += p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
  const double norm = std::sqrt(squares);
  IPT_CHECK(std::isfinite(norm), "gradient norm is not finite (", norm, "): the loss diverged");
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& [name, p] : parameters)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  return norm;
}

}  // namespace ipt::train
