// ipt info: what a model directory holds.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>

#include "command.h"
#include "model_flags.h"
#include "ipt/io/safetensors.h"
#include "ipt/model/config.h"
#include "ipt/model/param_count.h"

namespace ipt::cli {
namespace {

int run(const std::string& dir) {
  namespace fs = std::filesystem;
  model::ModelConfig c = model::ModelConfig::load((fs::path(dir) / "config.json").string());
  io::TensorMap tensors = io::load_checkpoint(dir);
  int64_t total = 0, embedding = 0, ttt = 0;
  uint64_t bytes = 0;
  std::map<std::string, int64_t> dtypes;
  for (const auto& [name, t] : tensors) {
    total += t.numel();
    bytes += t.numel() * t.element_size();
    dtypes[std::string(c10::toString(t.scalar_type()))] += t.numel();
    if (name.find("embed_tokens") != std::string::npos || name == "lm_head.weight") embedding += t.numel();
    if (name.find(".ttt_") != std::string::npos) ttt += t.numel();
  }
  std::cout << std::fixed << std::setprecision(2);
  std::cout << "model        " << dir << "\n"
            << "architecture " << c.architecture << "\n"
            << "layers       " << c.num_hidden_layers << "  hidden " << c.hidden_size << "  mlp " << c.intermediate_size
            << "  heads " << c.num_attention_heads << " (kv " << c.num_key_value_heads << ", dim " << c.head_dim << ")\n"
            << "vocab        " << c.vocab_size << (c.tie_word_embeddings ? " (tied head)" : "") << "\n"
            << "rope         " << c.rope.type << ", theta " << c.rope.theta << "\n";
  std::cout << "attention    ";
  bool any_window = false;
  for (int64_t w : c.layer_window) any_window |= w > 0;
  if (!any_window) std::cout << "full in every layer\n";
  else {
    for (size_t i = 0; i < c.layer_window.size(); ++i) std::cout << (i ? " " : "") << c.layer_window[i];
    std::cout << " (window per layer, 0 = full)\n";
  }
  std::cout << "parameters   " << total << " (" << total / 1e6 << " M; embeddings " << embedding / 1e6 << " M, TTT "
            << ttt / 1e6 << " M)\n";
  std::cout << "from config  " << model::parameter_count(c) << " (counted from the sizes, a tied head once)\n";
  std::cout << "TTT          ";
  if (!c.ttt_mode) std::cout << "off\n";
  else {
    std::cout << "layers";
    for (int64_t l : c.ttt_layers) std::cout << " " << l;
    std::cout << "; chunk " << c.ttt_chunk << ", lr " << c.ttt_lr << ", target " << c.ttt_target << ", proj "
              << (c.ttt_proj ? "on" : "off") << ", conv padding " << c.ttt_conv_padding << ", clip " << c.ttt_clip
              << (c.ttt_decay != 1.0 ? ", decay " + std::to_string(c.ttt_decay) : std::string())
              << ", decode update " << (c.ttt_decode_update ? "on" : "off") << "\n";
  }
  std::cout << "stored       " << bytes / 1048576.0 << " MiB in";
  for (const auto& [dtype, n] : dtypes) std::cout << " " << dtype << " (" << n << ")";
  std::cout << "\nfloat32 load " << total * 4 / 1048576.0 << " MiB of weights\n";
  return 0;
}

Register info_command("", [](CLI::App& parent) -> Action {
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd = parent.add_subcommand("info", "architecture, sizes, TTT settings and storage of a model");
  add_model_option(cmd, *dir);
  return [dir] { return run(*dir); };
});

}  // namespace
}  // namespace ipt::cli
