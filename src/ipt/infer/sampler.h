#pragma once
// Next-token sampling with the knobs llama.cpp users know. The chain, in llama.cpp's default order:
// repeat penalty -> top-k -> top-p -> min-p -> temperature -> draw. Temperature 0 is greedy (argmax).
#include <torch/torch.h>

#include <cstdint>
#include <random>
#include <vector>

namespace ipt::infer {

struct SamplerOptions {
  double temperature = 0.8;    // 0 = greedy
  int64_t top_k = 40;          // 0 = off
  double top_p = 0.95;         // 1 = off; keep the smallest set whose probability reaches top_p
  double min_p = 0.05;         // 0 = off; drop tokens below min_p * (probability of the best token)
  double repeat_penalty = 1.0; // 1 = off; CTRL-style on the last repeat_last_n tokens
  int64_t repeat_last_n = 64;
  uint64_t seed = 0;
};

void validate(const SamplerOptions& options);  // throws ipt::Error naming the bad option

class Sampler {
 public:
  explicit Sampler(SamplerOptions options);

  // logits [vocab] (any floating type, any device); history = tokens so far (for the penalty).
  int64_t sample(const torch::Tensor& logits, const std::vector<int64_t>& history);

  // The distribution `sample` draws from, after every filter (zeros outside the kept set); for
  // tests and for users who want probabilities. Greedy gives a one-hot vector.
  torch::Tensor probabilities(const torch::Tensor& logits, const std::vector<int64_t>& history) const;

  const SamplerOptions& options() const { return options_; }

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace ipt::infer
