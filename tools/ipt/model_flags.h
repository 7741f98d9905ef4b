#pragma once
// Flags shared by the commands that take, create or change a model.
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ipt/common/error.h"
#include "ipt/model/config.h"

namespace ipt::cli {

// The model a command uses when -m is not given: $IPT_MODEL, else the bundled default model
// (models/default in the source tree this tool was built from).
inline std::string default_model_dir() {
  if (const char* env = std::getenv("IPT_MODEL"); env && *env) return env;
  return IPT_DEFAULT_MODEL_DIR;
}

// Every -m/--model declared through add_model_option. main() refuses to start if a command
// declares --model any other way, so no command can lose the shared default again.
inline std::set<const CLI::Option*>& model_options() {
  static std::set<const CLI::Option*> options;
  return options;
}

// -m/--model, defaulting to default_model_dir(). The only way a command declares -m.
inline CLI::Option* add_model_option(CLI::App* cmd, std::string& dir) {
  dir = default_model_dir();
  CLI::Option* option =
      cmd->add_option("-m,--model", dir, "model directory (default: $IPT_MODEL, else the bundled models/default)");
  model_options().insert(option);
  return option;
}

struct TttFlags {
  std::vector<int64_t> layers;
  std::optional<int64_t> chunk;
  std::optional<double> lr, clip;
  std::optional<std::string> target, proj, conv_padding, target_kind;

  void add_to(CLI::App* cmd) {
    cmd->add_option("--ttt-layers", layers, "layers whose MLP becomes a TTT MLP (turns TTT on)")->delimiter(',');
    cmd->add_option("--ttt-chunk", chunk, "TTT chunk size");
    cmd->add_option("--ttt-lr", lr, "TTT learning rate");
    cmd->add_option("--ttt-clip", clip, "clip each update's norm (0 = off)");
    cmd->add_option("--ttt-target", target, "hidden_states or input_embed")->check(CLI::IsMember({"hidden_states", "input_embed"}));
    cmd->add_option("--ttt-proj", proj, "use the projection P: on or off")->check(CLI::IsMember({"on", "off"}));
    cmd->add_option("--ttt-conv-padding", conv_padding, "same or causal")->check(CLI::IsMember({"same", "causal"}));
    cmd->add_option("--ttt-target-kind", target_kind, "conv or reconstruction")->check(CLI::IsMember({"conv", "reconstruction"}));
  }

  void apply(model::ModelConfig& c) const {
    if (!layers.empty()) {
      c.ttt_mode = true;
      c.ttt_layers = layers;
    }
    if (chunk) c.ttt_chunk = *chunk;
    if (lr) c.ttt_lr = *lr;
    if (clip) c.ttt_clip = *clip;
    if (target) c.ttt_target = *target;
    if (proj) c.ttt_proj = *proj == "on";
    if (conv_padding) c.ttt_conv_padding = *conv_padding;
    if (target_kind) c.ttt_target_kind = *target_kind;
    c.validate();
  }
};

}  // namespace ipt::cli
