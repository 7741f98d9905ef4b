#pragma once
// The training loop: a model (from a checkpoint, converted on load when TTT is turned on, or
// initialised from scratch), per-rank data loaders, gradient accumulation that sums to exactly
// the global batch's update, AdamW with the configured schedule and clipping, data-parallel
// gradient all-reduce, validation, metrics, loss plot and atomic, bit-exact resumable checkpoints.
#include <memory>
#include <optional>
#include <string>

#include "ipt/data/loader.h"
#include "ipt/dist/communicator.h"
#include "ipt/model/decoder.h"
#include "ipt/train/config.h"
#include "ipt/train/optimizer.h"
#include "ipt/train/synthetic_mix.h"

namespace ipt::train {

struct TrainerOptions {
  std::string resume;     // "" = start fresh; a checkpoint directory, or "latest" (in output_dir)
  bool progress = true;   // progress bar on a terminal, plain lines otherwise (rank 0 only)
  bool plot = true;       // loss-curve PNG next to metrics.jsonl (needs gnuplot)
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
  // Validates the config and builds everything before any step; throws ipt::Error on bad input.
  explicit Trainer(TrainConfig config, dist::Communicator* comm = nullptr, TrainerOptions options = {});
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
  void all_reduce_gradients();
  void log(const StepResult& result, std::optional<double> val_loss);
  void write_plot();
  bool is_main() const { return !comm_ || comm_->rank() == 0; }
  int world() const { return comm_ ? comm_->size() : 1; }
  int rank() const { return comm_ ? comm_->rank() : 0; }

  TrainConfig config_;
  dist::Communicator* comm_;
  TrainerOptions options_;
  model::CausalLM model_{nullptr};
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
