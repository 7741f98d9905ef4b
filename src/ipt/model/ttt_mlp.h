#pragma once
// The gated MLP of Qwen3 / LLaMA, and its In-Place TTT form (docs/operator.md): in TTT layers the down
// projection is the starting point of a fast weight that is updated chunk by chunk towards
// V = Conv(X) · P. One module serves training (autograd over whole sequences), prefill and
// streaming decode (MlpStream).
#include <torch/torch.h>

#include "ipt/ops/ttt/ttt.h"

namespace ipt::model {

struct TttSettings {
  bool enabled = false;
  int64_t chunk_size = 8192;  // ttt_chunk
  double lr = 0.3;            // ttt_lr
  double clip = 0.0;          // ttt_clip
  double decay = 1.0;         // ttt_decay
  bool use_proj = true;       // ttt_proj
  ttt::TargetKind target_kind = ttt::TargetKind::kConv;
  ttt::ConvPadding conv_padding = ttt::ConvPadding::kSame;
  bool decode_update = true;  // ttt_decode_update: true = the official inference (fast weights keep
                              // updating while decoding); false = frozen after the prompt
  ttt::Algorithm algorithm = ttt::Algorithm::kAuto;
  int64_t scan_group = 0;
};

class MlpStream;

class GatedMlpImpl : public torch::nn::Module {
 public:
  GatedMlpImpl(int64_t hidden, int64_t intermediate, TttSettings ttt);

  // H [B, L, d] (post-attention-norm hidden states); X [B, L, d] the target source (H itself for
  // ttt_target = hidden_states, the token embeddings for input_embed; ignored without TTT).
  torch::Tensor forward(const torch::Tensor& H, const torch::Tensor& X, const std::vector<int64_t>& cu_seqlens = {});

  // The drop-in initialisation (docs/operator.md): conv = 0, P = diag(N(0, std^2)). Every update is then zero.
  void drop_in_init(double initializer_range);

  torch::Tensor activations(const torch::Tensor& H);  // Z = SiLU(H Wg^T) * (H Wu^T)
  torch::Tensor target(const torch::Tensor& X, const std::vector<int64_t>& cu_seqlens);  // V

  const TttSettings& ttt() const { return ttt_; }
  void set_ttt(const TttSettings& settings);  // chunk/lr/clip/... at run time (weights stay)
  // Drift monitor (ttt::Options::drift): forwards append ||W - W0|| / ||W0|| per update here; null = off.
  void set_drift_sink(std::vector<double>* sink) { drift_sink_ = sink; }

  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  torch::nn::Conv1d ttt_conv{nullptr};  // weight [d, 1, 5], depthwise, no bias
  torch::nn::Linear ttt_proj{nullptr};  // weight [d, d], used as Conv(X) · P (not P^T)

 private:
  TttSettings ttt_;
  int64_t hidden_;
  std::vector<double>* drift_sink_ = nullptr;
};
TORCH_MODULE(GatedMlp);

// One sequence's fast-weight state in one TTT layer: the stream (fast weight + update count) plus
// the rows of the pending chunk, kept as Z and as target source X because the convolution target
// of a chunk can only be built once the chunk is complete (it looks two rows ahead).
class MlpStream {
 public:
  explicit MlpStream(const GatedMlp& mlp);
  // Per-sequence overrides of the layer's ttt_clip and ttt_decode_update (inference sessions choose
  // them per request; the shared module is never changed).
  MlpStream(const GatedMlp& mlp, double clip, bool decode_update);

  // Prefill: the whole prompt at once (chunked), leaving the state to continue from.
  torch::Tensor prefill(const torch::Tensor& H, const torch::Tensor& X);  // [1, n, d] each
  // Decode / any continuation: rows in order; each row's output uses the current fast weight.
  torch::Tensor step(const torch::Tensor& H, const torch::Tensor& X);  // [1, n, d] each

  // Appends rows that were already computed (their outputs taken) to the pending chunk, updating
  // the fast weight when the chunk completes: Z [n, intermediate], X [n, hidden] (the decode step).
  void append_rows(const torch::Tensor& Z, const torch::Tensor& X);
  bool decode_update() const { return decode_update_; }
  const torch::Tensor& compute_weight() const { return stream_.compute_weight(); }  // what outputs use

  int64_t updates() const { return stream_.state().updates; }
  int64_t pending() const { return pending_; }
  const torch::Tensor& fast_weight() const { return stream_.state().weight; }  // the (float32) master
  torch::Tensor pending_z() const { return z_rows_.narrow(0, 0, pending_); }
  torch::Tensor pending_x() const { return x_rows_.narrow(0, 0, pending_); }
  // What this state holds in memory: the master, its compute-type copy, the row buffers (as
  // allocated, or with room for `row_capacity` rows: a whole chunk bounds it).
  int64_t memory_bytes(int64_t row_capacity = -1) const;
  // Restore a saved state (session files).
  void restore(torch::Tensor weight, int64_t updates, torch::Tensor pending_z, torch::Tensor pending_x);

 private:
  torch::Tensor run(const torch::Tensor& H, const torch::Tensor& X, bool update);

  const GatedMlpImpl* mlp_;
  double clip_;
  bool decode_update_;
  ttt::Stream stream_;
  // Room for `rows` more pending rows: the buffers grow by doubling up to a whole chunk, so decoding
  // appends a row per token without an allocation or a copy of what is there (a chunk of 8192 rows
  // of a large MLP would be hundreds of MB if allocated whole for a short session).
  void reserve_rows(int64_t rows);
  torch::Tensor z_rows_, x_rows_;  // the pending chunk's rows are the first `pending_`
  int64_t pending_ = 0;
};

}  // namespace ipt::model
