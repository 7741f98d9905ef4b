#pragma once
// Models on disk in Hugging Face's layout: config.json + model.safetensors (or shards + index),
// tokenizer files alongside. Loading checks every tensor's name and shape against the config.
#include <string>

#include "ipt/io/safetensors.h"
#include "ipt/model/decoder.h"

namespace ipt::model {

struct LoadOptions {
  torch::Dtype dtype = torch::kFloat32;  // compute type the weights are converted to
  torch::Device device = torch::kCPU;    // where the weights live (a GPU: --device cuda)
  // A checkpoint without TTT tensors whose config (or the caller) turns TTT on gets the
  // drop-in initialisation (docs/operator.md) for them instead of an error.
  bool drop_in_missing_ttt = false;
  const ModelConfig* config_override = nullptr;  // use this config instead of DIR/config.json
  bool without_ttt = false;  // load as the same model without TTT (ttt_mode off, TTT tensors skipped)
  // Block format the single-token decode step keeps the linear maps in (model/decode_step.h);
  // unset: the compute dtype.
  std::optional<ops::quant::Type> decode_quantization;
};

CausalLM load_model(const std::string& dir, const LoadOptions& options = {});
// The same checks and options for tensors already in memory (config_override is ignored);
// `dir` names their source in error messages.
CausalLM model_from_tensors(ModelConfig config, const io::TensorMap& tensors, const LoadOptions& options,
                            const std::string& dir);

// Writes config.json and the weights (in `dtype`), atomically per file.
void save_model(CausalLM& model, const std::string& dir, torch::Dtype dtype = torch::kFloat32,
                uint64_t max_shard_bytes = 5ull << 30);

// Copies tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json
// when present.
void copy_tokenizer_files(const std::string& from_dir, const std::string& to_dir);

torch::Dtype parse_dtype(const std::string& name);  // float32 | float16 | bfloat16 | float64

}  // namespace ipt::model
