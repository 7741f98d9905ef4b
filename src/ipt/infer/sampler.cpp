#include "ipt/infer/sampler.h"

#include <cmath>
#include <unordered_set>

#include "ipt/common/error.h"

namespace ipt::infer {

void validate(const SamplerOptions& o) {
  IPT_CHECK(std::isfinite(o.temperature) && o.temperature >= 0.0, "--temp must be >= 0, got ", o.temperature);
  IPT_CHECK(o.top_k >= 0, "--top-k must be >= 0 (0 = off), got ", o.top_k);
  IPT_CHECK(std::isfinite(o.top_p) && o.top_p > 0.0 && o.top_p <= 1.0, "--top-p must be in (0, 1], got ", o.top_p);
  IPT_CHECK(std::isfinite(o.min_p) && o.min_p >= 0.0 && o.min_p <= 1.0, "--min-p must be in [0, 1], got ", o.min_p);
  IPT_CHECK(std::isfinite(o.repeat_penalty) && o.repeat_penalty > 0.0, "--repeat-penalty must be > 0, got ",
            o.repeat_penalty);
  IPT_CHECK(o.repeat_last_n >= 0, "--repeat-last-n must be >= 0, got ", o.repeat_last_n);
}

Sampler::Sampler(SamplerOptions options) : options_(options), rng_(options.seed) { validate(options_); }

torch::Tensor Sampler::probabilities(const torch::Tensor& logits_in, const std::vector<int64_t>& history) const {
  IPT_CHECK(logits_in.dim() == 1 && logits_in.size(0) > 0, "sampler logits must be [vocab]");
  torch::Tensor logits = logits_in.detach().to(torch::kCPU, torch::kFloat64).clone();
  IPT_CHECK(torch::isfinite(logits).all().item<bool>(), "sampler logits contain NaN or infinity");
  const int64_t vocab = logits.size(0);
  auto l = logits.accessor<double, 1>();

  if (options_.repeat_penalty != 1.0 && options_.repeat_last_n > 0) {
    std::unordered_set<int64_t> recent;
    const size_t first = history.size() > size_t(options_.repeat_last_n) ? history.size() - options_.repeat_last_n : 0;
    for (size_t i = first; i < history.size(); ++i)
      if (history[i] >= 0 && history[i] < vocab) recent.insert(history[i]);
    for (int64_t t : recent) l[t] = l[t] > 0 ? l[t] / options_.repeat_penalty : l[t] * options_.repeat_penalty;
  }

  torch::Tensor probs = torch::zeros({vocab}, torch::kFloat64);
  if (options_.temperature == 0.0) {
    probs[logits.argmax().item<int64_t>()] = 1.0;
    return probs;
  }
  // Candidates sorted by logit (stable: ties keep the lower id first).
  auto sorted = torch::sort(logits, /*stable=*/true, /*dim=*/0, /*descending=*/true);
  torch::Tensor values = std::get<0>(sorted), ids = std::get<1>(sorted);
  int64_t keep = vocab;
  if (options_.top_k > 0) keep = std::min(keep, options_.top_k);
  torch::Tensor p = torch::softmax(values.narrow(0, 0, keep), 0);
  if (options_.top_p < 1.0) {
    torch::Tensor cumulative = p.cumsum(0);
    // The smallest prefix whose mass reaches top_p (at least one token).
    int64_t n = (cumulative < options_.top_p).sum().item<int64_t>() + 1;
    keep = std::min(keep, n);
  }
  if (options_.min_p > 0.0) {
    double best = p[0].item<double>();
    keep = std::min(keep, std::max<int64_t>(1, (p.narrow(0, 0, keep) >= options_.min_p * best).sum().item<int64_t>()));
  }
  torch::Tensor kept = torch::softmax(values.narrow(0, 0, keep) / options_.temperature, 0);
  probs.index_put_({ids.narrow(0, 0, keep)}, kept);
  return probs;
}

int64_t Sampler::sample(const torch::Tensor& logits, const std::vector<int64_t>& history) {
  if (options_.temperature == 0.0 && (options_.repeat_penalty == 1.0 || options_.repeat_last_n == 0)) {
    // Greedy without a penalty: the first largest logit, in one pass (a decoded token's budget is
    // a few milliseconds; a [vocab] float64 probability tensor per token is not free).
    IPT_CHECK(logits.dim() == 1 && logits.size(0) > 0, "sampler logits must be [vocab]");
    // bfloat16 and float32 read in place (a conversion would wake libtorch's OpenMP workers).
    const bool bf16 = logits.scalar_type() == torch::kBFloat16;
    const torch::Tensor l = logits.detach().to(torch::kCPU, bf16 ? torch::kBFloat16 : torch::kFloat32).contiguous();
    const at::BFloat16* half = bf16 ? l.data_ptr<at::BFloat16>() : nullptr;
    const float* full = bf16 ? nullptr : l.data_ptr<float>();
    auto value = [&](int64_t i) { return half ? static_cast<float>(half[i]) : full[i]; };
    int64_t best = 0;
    float best_value = value(0);
    for (int64_t i = 0; i < l.size(0); ++i) {
      const float v = value(i);
      IPT_CHECK(std::isfinite(v), "sampler logits contain NaN or infinity");
      if (v > best_value) {
        best = i;
        best_value = v;
      }
    }
    return best;
  }
  torch::Tensor probs = probabilities(logits, history);
  if (options_.temperature == 0.0) return probs.argmax().item<int64_t>();
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  auto p = probs.accessor<double, 1>();
  double cumulative = 0.0;
  int64_t last_kept = 0;
  for (int64_t i = 0; i < probs.size(0); ++i) {
    if (p[i] <= 0.0) continue;
    last_kept = i;
    cumulative += p[i];
    if (u < cumulative) return i;
  }
  return last_kept;  // u fell in the rounding gap at the top
}

}  // namespace ipt::infer
