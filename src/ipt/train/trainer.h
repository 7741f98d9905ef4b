#pragma once
// The training loop: a model (from a checkpoint, converted on load when TTT is turned on, or
// initialised from scratch), per-rank data loaders, gradient accumulation that sums to exactly
// the global batch's update, AdamW with the configured schedule and clipping, data-parallel
// gradient all-reduce, validation, metrics, loss plot and atomic, bit-exact resumable checkpoints.
#include <memory>
#include <optional>
#include <string>

#include "ipt/data/loader.h"
#include "ipt/parallel/communicator.h"
#include "ipt/parallel/context_parallel.h"
#include "ipt/model/decoder.h"
#include "ipt/train/config.h"
#include "ipt/train/optimizer.h"
#include "ipt/train/synthetic_mix.h"

namespace ipt::train {

struct TrainerOptions {
  std::string resume;     // "" = start fresh; a checkpoint directory, or "latest" (in output_dir)
  bool progress = true;   // progress bar on a terminal, plain lines otherwise (rank 0 only)
  bool plot = true;       // loss-curve PNG next to metrics.jsonl (needs gnuplot)
  // train.cp_size > 1: the subgroup of the cp_size ranks that share this rank's sequences
  // (world ranks dp_rank * cp_size + 0 .. cp_size - 1, in that order); required then.
  parallel::Communicator* context_parallel = nullptr;
  torch::Device device = torch::kCPU;  // where the model, its gradients and the optimizer state live
};

struct StepResult {
  int64_t step = 0;        // optimizer steps done after this one
  double loss = 0;         // mean loss over the global batch's counted tokens
  double lr = 0;
  double grad_norm = 0;    // before clipping
  double tokens_per_s = 0; // all ranks' tokens (counted or not) per second of this step
  int64_t tokens = 0;      // label tokens counted in the global batch
  double synthetic_fraction = 0;  // rows of the global batch replaced by synthetic tasks (data.synthetic_mix)
};

class Trainer {
 public:
  // `comm` null: one process. Otherwise every rank constructs a Trainer with the same config.
  // Ranks form a data-parallel x context-parallel grid: rank = dp_rank * cp_size + cp_rank; the
  // cp_size ranks of a data-parallel group read the same rows and each computes its slice of every
  // row (parallel/context_parallel.h); gradients are summed over the whole world.
  // Validates the config and builds everything before any step; throws ipt::Error on bad input.
  explicit Trainer(TrainConfig config, parallel::Communicator* comm = nullptr, TrainerOptions options = {});
  ~Trainer();

  // Steps until train.max_steps, evaluating, logging and checkpointing as configured; the last
  // step always gets a checkpoint.
  void train();
  StepResult step();
  double evaluate();  // mean validation loss over eval_batches (all ranks)
  // OUTPUT_DIR/checkpoint-STEP (rank 0 writes; a no-op on other ranks). Returns its path.
  std::string save_checkpoint();

  int64_t step_count() const { return step_; }
  model::CausalLM& model() { return model_; }
  const TrainConfig& config() const { return config_; }
  const data::LoaderPosition& data_position() const { return loader_->position(); }
  int64_t parameter_count() const;
  int64_t trainable_count() const;

 private:
  void build_model();
  void build_synthetic_mix();
  void load_checkpoint(const std::string& dir);
  double accumulate(const data::Batch& batch, double scale);  // forward + backward, returns NLL sum
  // The rows [begin, end) of a sequence of `length` (packed documents `cu`, empty = one per batch
  // row) this rank computes: all of them, or under context parallelism its slice, with the scope
  // (nullptr without CP) that makes the model compute that slice; keep it alive through the backward.
  std::unique_ptr<parallel::ContextParallelScope> enter_slice(int64_t length, const std::vector<int64_t>& cu,
                                                          int64_t& begin, int64_t& end);
  data::LoaderOptions loader_options() const;
  void all_reduce_gradients();
  void log(const StepResult& result, std::optional<double> val_loss);
  void write_plot();
  bool is_main() const { return !comm_ || comm_->rank() == 0; }
  int world() const { return comm_ ? comm_->size() : 1; }
  int rank() const { return comm_ ? comm_->rank() : 0; }
  int cp_size() const { return static_cast<int>(config_.train.cp_size); }
  int dp_size() const { return world() / cp_size(); }
  int dp_rank() const { return rank() / cp_size(); }
  int cp_rank() const { return rank() % cp_size(); }

  TrainConfig config_;
  parallel::Communicator* comm_;
  TrainerOptions options_;
  model::CausalLM model_{nullptr};  // the float32 master: the optimizer's, the checkpoints'
  // train.enable_mixed_precision: a bfloat16 copy that runs forward and backward; its gradients are
  // added into the master's in float32 after each micro-batch, the master steps, the copy follows.
  model::CausalLM compute_model_{nullptr};
  NamedParameters compute_trainable_;  // compute_model_'s parameters, in trainable_'s order
  model::CausalLM& compute() { return compute_model_ ? compute_model_ : model_; }
  void sync_compute_weights();
  bool compute_synced_ = false;  // compute_model_ holds the masters' values; the optimizer keeps them so
  void add_compute_gradients();
  bool master_grads_fresh_ = false;  // mixed precision: no micro-batch of this step has added its gradients yet
  NamedParameters trainable_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<data::Dataset> train_data_, val_data_;
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<MixDraw> mix_draw_;               // always set; inactive without a mix
  std::unique_ptr<SyntheticRows> synthetic_rows_;   // null unless the mix is active
  int64_t accumulation_ = 1;
  int64_t step_ = 0;
  std::string tokenizer_dir_;  // copied into checkpoints ("" = none)
};

// The newest complete checkpoint-STEP directory under output_dir, or "" when there is none.
std::string latest_checkpoint(const std::string& output_dir);

}  // namespace ipt::train
