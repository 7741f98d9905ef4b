#pragma once
// Training configuration: YAML in the layout of the official In-Place TTT recipes
// (model.foundation.ttt_*, data.*, train.*), with `--section.key=value` overrides.
// Every key is documented in docs/training.md. Unknown keys and wrong types are errors that name
// the key; keys of the official recipes that have no meaning here are accepted and reported.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ipt::train {

struct ModelSection {
  std::string model_path;   // a Hugging Face checkpoint directory...
  std::string init_preset;  // ...or a random initialisation: a preset name (ipt init --preset)
  std::string init_config;  // ...or a config.json to initialise from
  std::string tokenizer_path;  // tokenizer files copied into checkpoints (default: model_path's)
  // model.foundation: the TTT keys given (model/ttt_keys.h), as config.json values; a key not given
  // keeps what the checkpoint's config.json says.
  nlohmann::json foundation = nlohmann::json::object();
};

struct DataSection {
  std::vector<std::string> train_path;  // token dataset directories (ipt data prepare)
  std::vector<std::string> val_path;
  int64_t max_seq_len = 2048;
  std::string layout = "packed";  // packed | padded
  std::map<std::string, double> synthetic_mix;  // task -> fraction of rows replaced by that task
  std::vector<std::string> synthetic_haystack;  // text files/directories for haystacks (empty: decoded train_path)
  std::string synthetic_loss = "all";           // all | answer: which tokens of a synthetic row count in the loss
  bool shuffle = true;
};

struct TrainSection {
  std::string output_dir;
  int64_t global_batch_size = 8;  // sequences per optimizer step, all ranks together
  int64_t micro_batch_size = 1;   // sequences per forward/backward on one rank
  int64_t cp_size = 1;  // context parallelism: ranks sharing each sequence (data-parallel size = world / cp_size)
  std::string optimizer = "adamw";
  double lr = 3e-4, lr_min = 0.0;
  double lr_warmup_ratio = 0.0, lr_decay_ratio = 1.0;
  std::string lr_decay_style = "cosine";  // cosine | linear | constant
  double weight_decay = 0.1, adam_beta1 = 0.9, adam_beta2 = 0.95, adam_eps = 1e-8;
  double max_grad_norm = 1.0;  // 0 = no clipping
  int64_t max_steps = 100;
  int64_t save_steps = 0;  // 0 = only at the end
  int64_t eval_steps = 0;  // 0 = never
  int64_t eval_batches = 4;  // validation batches (of micro_batch_size rows per rank) per evaluation
  int64_t log_steps = 1;
  bool enable_gradient_checkpointing = false;
  bool enable_mixed_precision = false;  // bf16 compute copy, float32 master weights and optimizer state
  uint64_t seed = 0;
  std::string trainable = "all";  // all | ttt
};

struct TrainConfig {
  ModelSection model;
  DataSection data;
  TrainSection train;
  std::vector<std::string> notes;  // official keys accepted without effect, one line each

  // Gradient-accumulation steps for `world_size` ranks (world_size / cp_size data-parallel
  // groups); throws when cp_size does not divide the world or the batch arithmetic does not divide.
  int64_t accumulation_steps(int world_size) const;
  // world_size / cp_size, or an error naming both when cp_size does not divide the world.
  int data_parallel_size(int world_size) const;
};

// Parses YAML text; `overrides` are "section.key=value" (value in YAML syntax). Throws ipt::Error.
TrainConfig parse_train_config(const std::string& yaml_text, const std::vector<std::string>& overrides = {});
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Checks that can fail before any work: paths exist, batch arithmetic for `world_size`.
void validate(const TrainConfig& config, int world_size);

// Learning rate at optimizer step `step` (0-based): linear warmup from 0 over
// lr_warmup_ratio * max_steps steps, constant, then decay (cosine or linear) to lr_min over the
// last lr_decay_ratio * max_steps steps (never overlapping the warmup).
double learning_rate(const TrainSection& train, int64_t step);

}  // namespace ipt::train
