#pragma once
// Theorem 1 of the paper, measured with the engine's own operator and target builder.
//
// The induction setting: a context holds the pair (A, B) once and ends with A again; the model
// should answer B. Token x has an embedding e(x) (the LM head is tied, so logit_j = e_j · o) and an
// MLP activation z(x) that depends on the token only, unit-norm and nearly orthogonal across
// tokens (the theorem's assumption 2: only the earlier A "matches" the query). The whole context
// is one chunk, so the query is answered with W0 + ΔW, ΔW = η Σ_t v_t z_tᵀ, and the logit change is
//     Δlogit_j = e_j · ΔW z_q = η Σ_t (e_j · v_t)(z_t · z_q).
// With the next-token target v_t = e(x_{t+1}) (a one-tap convolution looking one row ahead) the
// theorem predicts Δlogit_B ≈ η‖e_B‖² and |Δlogit_j| ≪ that for j ≠ B; with the reconstruction
// target v_t = e(x_t), Δlogit_B ≈ 0.
#include <cstdint>
#include <string>

namespace ipt::experiments {

struct Theorem1Options {
  int64_t vocab = 2048;    // distinct tokens
  int64_t dim = 256;       // d: embedding width
  int64_t hidden = 1024;   // h: MLP activation width
  int64_t context = 512;   // tokens before the query (one chunk)
  double lr = 0.3;         // η
  double embed_norm = 1.0; // ‖e‖ of every embedding
  int64_t trials = 200;
  uint64_t seed = 0;
};

// One target's effect, averaged over trials.
struct TargetEffect {
  double correct_mean = 0, correct_std = 0;  // Δlogit of the answer B
  double others_mean_abs = 0;                // mean |Δlogit_j| over j ≠ B
  double others_max_abs = 0;                 // mean over trials of max_j≠B |Δlogit_j|
};

struct Theorem1Result {
  double predicted_correct = 0;  // η‖e_B‖²
  TargetEffect next_token;       // v_t = e(x_{t+1})
  TargetEffect reconstruction;   // v_t = e(x_t)
};

Theorem1Result measure_theorem1(const Theorem1Options& options);

}  // namespace ipt::experiments
