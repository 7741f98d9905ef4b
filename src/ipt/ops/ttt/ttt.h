#pragma once
// The In-Place TTT operator (semantics: shared SPEC.md, docs/operator.md).
//
// Given per-token MLP activations Z [B, L, h], targets V [B, L, d] and the slow down-projection
// W0 [d, h], every document is cut into chunks of C rows. Chunk i is computed with the current
// fast weight, then the fast weight takes one step:
//     O_i = Z_i W_i^T,     W_{i+1} = W_i + s_i * lr * V_i^T Z_i,     W_0 = W0,
// where s_i = min(1, clip / ||lr V_i^T Z_i||_F) when clip > 0, else 1.
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
  Algorithm algorithm = Algorithm::kAuto;
  int64_t scan_group = 0;     // scan only: chunks in flight at once; 0 = all of a document
  // Packed documents, as in varlen attention: offsets [0, n1, ..., L] into the sequence of a
  // batch of one row (B == 1). Empty: every batch row is one document.
  std::vector<int64_t> cu_seqlens;
  bool return_state = false;  // fill Output::states (the stream's continuation, no gradient)
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

// Z [B, L, h], V [B, L, d], W0 [d, h]; floating types, one device. Half and bfloat16 inputs are
// computed in float32 and returned in their own type. Differentiable in Z, V and W0.
Output apply(const torch::Tensor& Z, const torch::Tensor& V, const torch::Tensor& W0, const Options& options);

// One chunk's update s * lr * V_c^T Z_c (clipped as in Options), no gradient.
torch::Tensor chunk_delta(const torch::Tensor& Z_chunk, const torch::Tensor& V_chunk, double lr, double clip);

// Token-by-token (or any-size-piece) continuation of one document: outputs use the current fast
// weight; when C pending rows have arrived, their update is applied and the buffer cleared.
// Feeding a document in pieces gives the same outputs as one `apply` over it.
// In half or bfloat16 compute the fast weight accumulates its updates in a float32 master (a sum of
// many bf16 deltas drops the small ones); outputs use a copy in the compute type, refreshed per update.
class Stream {
 public:
  Stream(torch::Tensor W0, int64_t chunk_size, double lr, double clip);
  // `compute`: the type outputs are computed and returned in; unset = the state weight's type.
  Stream(DocumentState state, int64_t chunk_size, double lr, double clip,
         std::optional<torch::Dtype> compute = std::nullopt);

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
  int64_t chunk_size_;
  double lr_;
  double clip_;
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
