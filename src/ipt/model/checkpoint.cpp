#include "ipt/model/checkpoint.h"

#include <filesystem>
#include <set>
#include <sstream>

#include "ipt/common/error.h"

namespace ipt::model {

namespace fs = std::filesystem;

namespace {
std::string shape_text(c10::IntArrayRef s) {
  std::ostringstream out;
  out << s;
  return out.str();
}
bool is_ttt_tensor(const std::string& name) {
  return name.find(".mlp.ttt_conv.") != std::string::npos || name.find(".mlp.ttt_proj.") != std::string::npos;
}
}  // namespace

torch::Dtype parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "fp16") return torch::kFloat16;
  if (name == "float64") return torch::kFloat64;
  throw Error("unknown dtype '" + name + "' (expected float32, bfloat16, float16 or float64)");
}

CausalLM load_model(const std::string& dir, const LoadOptions& options) {
  ModelConfig config =
      options.config_override ? *options.config_override : ModelConfig::load((fs::path(dir) / "config.json").string());
  return model_from_tensors(config, io::load_checkpoint(dir), options, dir);
}

CausalLM model_from_tensors(ModelConfig config, const io::TensorMap& stored, const LoadOptions& options,
                            const std::string& dir) {
  if (options.without_ttt) config.ttt_mode = false;
  CausalLM model(config);
  model->set_decode_quantization(options.decode_quantization);
  auto params = model->named_parameters();
  std::vector<std::string> missing, extra, mismatched;
  bool ttt_missing = false;
  torch::NoGradGuard no_grad;
  for (auto& p : params) {
    auto it = stored.find(p.key());
    if (it == stored.end()) {
      if (options.drop_in_missing_ttt && is_ttt_tensor(p.key())) ttt_missing = true;
      else missing.push_back(p.key());
      continue;
    }
    if (it->second.sizes() != p.value().sizes()) {
      mismatched.push_back(p.key() + " (checkpoint " + shape_text(it->second.sizes()) + ", config expects " +
                           shape_text(p.value().sizes()) + ")");
      continue;
    }
    IPT_CHECK(it->second.is_floating_point(), dir, ": tensor ", p.key(), " has non-floating dtype ",
              it->second.scalar_type());
    p.value().copy_(it->second.to(torch::kFloat32));
  }
  for (const auto& [name, t] : stored)
    if (!params.contains(name) && !(config.tie_word_embeddings && name == "lm_head.weight") &&
        !(options.without_ttt && is_ttt_tensor(name)))
      extra.push_back(name);
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > 8) s += ", … (" + std::to_string(v.size()) + " in all)";
    return s;
  };
  IPT_CHECK(mismatched.empty(), dir, ": shape mismatch: ", list(mismatched));
  IPT_CHECK(missing.empty(), dir, ": tensors missing from the checkpoint: ", list(missing));
  IPT_CHECK(extra.empty(), dir, ": tensors the config does not expect: ", list(extra));
  if (ttt_missing) model->init_ttt_drop_in(0);
  model->to(options.device, options.dtype);
  return model;
}

void save_model(CausalLM& model, const std::string& dir, torch::Dtype dtype, uint64_t max_shard_bytes) {
  fs::create_directories(dir);
  io::TensorMap tensors;
  for (const auto& p : model->named_parameters()) tensors[p.key()] = p.value().detach().to(torch::kCPU, dtype);
  io::save_checkpoint(dir, tensors, max_shard_bytes);
  ModelConfig config = model->config();
  config.torch_dtype = dtype == torch::kBFloat16 ? "bfloat16" : dtype == torch::kFloat16 ? "float16"
                       : dtype == torch::kFloat64 ? "float64" : "float32";
  config.save((fs::path(dir) / "config.json").string());
}

void copy_tokenizer_files(const std::string& from_dir, const std::string& to_dir) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}) {
    const fs::path src = fs::path(from_dir) / name;
    if (fs::exists(src)) fs::copy_file(src, fs::path(to_dir) / name, fs::copy_options::overwrite_existing);
  }
}

}  // namespace ipt::model
