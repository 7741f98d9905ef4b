#pragma once
// The In-Place TTT operator (definition: docs/operator.md).
//
// Given per-token MLP activations Z [B, L, h], targets V [B, L, d] and the slow down-projection
// W0 [d, h], every document is cut into chunks of C rows. Chunk i is computed with the current
// fast weight, then the fast weight takes one step:
//     O_i = Z_i W_i^T,     W_{i+1} = W_i + s_i * lr * V_i^T Z_i,     W_0 = W0,
// where s_i = min(1, clip / ||lr V_i^T Z_i||_F) when clip > 0, else 1.
// Our extension, off by default: a decay lambda in (0, 1] pulls the accumulated update back
// towards W0 before each step, W_{i+1} = W0 + lambda (W_i - W0) + s_i lr V_i^T Z_i, so that
// ||W_i - W0|| <= max_j ||update_j|| / (1 - lambda) however long the document (a decayed prefix sum).
//
// One entry point, `apply`, with three algorithms behind it that must agree (tests prove it):
//   reference  materialises every chunk's weight (T x d x h numbers); obviously correct, for tests.
//   recurrent  one [d, h] state per document, chunk after chunk; the streaming path.
//   scan       the paper's Algorithm 1 on groups of `scan_group` chunks: deltas of a group at once,
//              exclusive prefix sum, outputs at once; memory grows with the group, not with L.
// recurrent and scan are differentiable through a custom backward (a reverse scan with one [d, h]
// accumulator) that never holds per-chunk [d, h] matrices for the whole sequence.
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ipt::ttt {

enum class Algorithm { kAuto, kReference, kRecurrent, kScan };

Algorithm parse_algorithm(const std::string& name);  // "auto" | "reference" | "recurrent" | "scan"
std::string to_string(Algorithm algorithm);

struct Options {
  int64_t chunk_size = 4096;  // C (config key ttt_chunk)
  double lr = 0.3;            // eta (ttt_lr)
  double clip = 0.0;          // tau > 0 clips each update's Frobenius norm (ttt_clip); 0 = off
  double decay = 1.0;         // lambda in (0, 1] (ttt_decay); 1 = the official, undecayed sum
  Algorithm algorithm = Algorithm::kAuto;
  int64_t scan_group = 0;     // scan only: chunks in flight at once; 0 = all of a document
  // Packed documents, as in varlen attention: offsets [0, n1, ..., L] into the sequence of a
  // batch of one row (B == 1). Empty: every batch row is one document.
  std::vector<int64_t> cu_seqlens;
  bool return_state = false;  // fill Output::states (the stream's continuation, no gradient)
  // Drift monitor: when set, receives ||W - W0||_F / ||W0||_F after every chunk update, document
  // after document (no gradient). Recorded by the recurrent algorithm, which auto and scan become.
  std::vector<double>* drift = nullptr;
};

// What a stream needs to continue one document: the fast weight after its last full chunk and
// the rows of its pending, incomplete chunk.
struct DocumentState {
  torch::Tensor weight;     // [d, h]
  torch::Tensor pending_z;  // [r, h], r < C
  torch::Tensor pending_v;  // [r, d]
  int64_t updates = 0;      // chunk updates applied since W0
};

struct Output {
  torch::Tensor out;                  // [B, L, d]
  std::vector<DocumentState> states;  // one per document (row-major: rows, then packed documents)
};

// Z [B, L, h], V [B, L, d], W0 [d, h]; floating types, one device. Half and bfloat16 inputs run
// their products in that type with the fast weight (and the backward's gradient sum) in float32
// masters; the reference algorithm computes them in float32. Outputs in the inputs' type.
// Differentiable in Z, V and W0.
Output apply(const torch::Tensor& Z, const torch::Tensor& V, const torch::Tensor& W0, const Options& options);

// Checks a decay lambda: finite and in (0, 1]; `what` names the setting in the error.
void check_decay(double decay, const std::string& what);

// One chunk's update s * lr * V_c^T Z_c (clipped as in Options), no gradient. bfloat16 rows on the
// CPU give a float32 update where the bf16 GEMM runs (ops/gemm/bf16_gemm.h: exact products, float32
// sums), the rows' type otherwise.
torch::Tensor chunk_delta(const torch::Tensor& Z_chunk, const torch::Tensor& V_chunk, double lr, double clip);

// Token-by-token (or any-size-piece) continuation of one document: outputs use the current fast
// weight; when C pending rows have arrived, their update is applied and the buffer cleared.
// Feeding a document in pieces gives the same outputs as one `apply` over it.
// In half or bfloat16 compute the fast weight accumulates its updates in a float32 master (a sum of
// many bf16 deltas drops the small ones); outputs use a copy in the compute type, refreshed per update.
class Stream {
 public:
  Stream(torch::Tensor W0, int64_t chunk_size, double lr, double clip, double decay = 1.0);
  // `compute`: the type outputs are computed and returned in; unset = the state weight's type.
  // `origin`: the W0 a decay pulls towards (needed when decay < 1; the state holds only W_i).
  Stream(DocumentState state, int64_t chunk_size, double lr, double clip,
         std::optional<torch::Dtype> compute = std::nullopt, double decay = 1.0, torch::Tensor origin = {});

  // z_rows [n, h], v_rows [n, d] -> [n, d]. No gradient.
  torch::Tensor feed(const torch::Tensor& z_rows, const torch::Tensor& v_rows);

  // The two halves of `feed`, for callers whose targets arrive later than their rows (a
  // convolution target looks two rows ahead): `output` uses the current weight and queues
  // nothing; `append` queues rows (at most up to the chunk's end) and applies the update when
  // the chunk is full.
  torch::Tensor output(const torch::Tensor& z_rows) const;
  void append(const torch::Tensor& z_rows, const torch::Tensor& v_rows);

  const DocumentState& state() const { return state_; }  // weight: the (float32 at least) master
  const torch::Tensor& compute_weight() const { return compute_weight_; }  // the master in the compute type
  int64_t pending() const { return state_.pending_z.size(0); }
  int64_t chunk_size() const { return chunk_size_; }

 private:
  DocumentState state_;
  torch::Tensor compute_weight_;  // the master in the compute type (the master itself when equal)
  torch::Tensor origin_;  // W0, kept when decay < 1
  int64_t chunk_size_;
  double lr_;
  double clip_;
  double decay_;
};

// ---------------------------------------------------------------------------------------------
// The LM-aligned target V = Conv(X) · P.

enum class TargetKind {
  kConv,            // V = Conv(X) · P (or Conv(X) without P): the paper's LM-aligned target
  kReconstruction,  // V = X · P (or X): the prior-work baseline, for the ablation
};
enum class ConvPadding {
  kSame,    // taps t-2 .. t+2 (official)
  kCausal,  // taps t-4 .. t (ablation)
};

TargetKind parse_target_kind(const std::string& name);    // "conv" | "reconstruction"
ConvPadding parse_conv_padding(const std::string& name);  // "same" | "causal"

struct TargetOptions {
  int64_t chunk_size = 4096;
  TargetKind kind = TargetKind::kConv;
  ConvPadding padding = ConvPadding::kSame;
  std::vector<int64_t> cu_seqlens;  // as in Options
};

constexpr int64_t kConvKernel = 5;

// X [B, L, d]; conv_weight [d, 1, 5] (ignored for reconstruction); proj [d, d] or undefined for
// ttt_proj = false. The depthwise convolution runs inside each chunk of each document, with zeros
// outside it. Differentiable in X, conv_weight and proj.
torch::Tensor build_target(const torch::Tensor& X, const torch::Tensor& conv_weight, const torch::Tensor& proj,
                           const TargetOptions& options);

}  // namespace ipt::ttt
