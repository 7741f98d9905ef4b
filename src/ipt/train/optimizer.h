#pragma once
// AdamW with decoupled weight decay (Loshchilov & Hutter; the update PyTorch's torch.optim.AdamW
// makes), global-norm gradient clipping, and the optimizer state as named tensors so a checkpoint
// can store it in safetensors and a resumed run continues bit for bit.
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "ipt/io/safetensors.h"

namespace ipt::train {

using NamedParameters = std::vector<std::pair<std::string, torch::Tensor>>;

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

// Parameters exempt from weight decay: norms (every name containing "norm"), biases and the token
// embedding (model.embed_tokens.weight, which is also the head when embeddings are tied). Decay
// would pull norm gains towards 0 and shrink rarely seen embedding rows for no benefit.
bool decays(const std::string& parameter_name);

class AdamW {
 public:
  AdamW(NamedParameters parameters, AdamWOptions options);

  // One update with learning rate `lr` from each parameter's .grad() times `grad_scale` (the
  // clipping factor; the gradients themselves are not changed). A parameter without a gradient is
  // skipped, its moments unchanged.
  void step(double lr, double grad_scale = 1.0);
  // Mixed precision: after each update, parameter i is also written to copies[i] (the bfloat16
  // copy the model computes with), in the same pass for float32 CPU parameters. Empty: none.
  void set_compute_copies(std::vector<torch::Tensor> copies);
  int64_t steps() const { return steps_; }
  const NamedParameters& parameters() const { return parameters_; }

  // "exp_avg/NAME", "exp_avg_sq/NAME" and "step" (int64 scalar).
  io::TensorMap state() const;
  // Throws ipt::Error naming the tensor when one is missing or has the wrong shape.
  void load_state(const io::TensorMap& state);

 private:
  NamedParameters parameters_;
  AdamWOptions options_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<torch::Tensor> compute_copies_;
  int64_t steps_ = 0;
};

// L2 norm of all gradients together (accumulated in float64); throws when it is not finite.
double grad_norm(const NamedParameters& parameters);
// The factor torch.nn.utils.clip_grad_norm_ scales gradients by: max_norm / (norm + 1e-6) when
// max_norm > 0 and the norm exceeds it, else 1. Pass it to AdamW::step instead of scaling.
double clip_scale(double norm, double max_norm);
// grad_norm, then every gradient scaled by clip_scale in place. Returns the norm before clipping.
double clip_grad_norm(const NamedParameters& parameters, double max_norm);

}  // namespace ipt::train
