// ipt init: a randomly initialised model in Hugging Face format.
#include <filesystem>
#include <iostream>

#include "command.h"
#include "model_flags.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/presets.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::cli {
namespace {

struct InitOptions {
  std::string preset = "tiny", arch = "qwen3", config_file, out, tokenizer;
  int64_t vocab_size = 0;
  uint64_t seed = 0;
  bool force = false;
  TttFlags ttt;
};

int run(const InitOptions& o) {
  namespace fs = std::filesystem;
  IPT_CHECK(o.force || !fs::exists(fs::path(o.out) / "config.json"), o.out,
            " already holds a model; pass --force to overwrite it");
  model::ModelConfig config = o.config_file.empty() ? model::preset_config(o.preset, o.arch, o.vocab_size)
                                                    : model::ModelConfig::load(o.config_file);
  if (!o.config_file.empty() && o.vocab_size > 0) config.vocab_size = o.vocab_size;
  o.ttt.apply(config);
  if (!o.tokenizer.empty()) {
    // The model must have an embedding row for every token the tokenizer can produce.
    const size_t tokens = tok::Tokenizer::load(o.tokenizer).vocab_size();
    IPT_CHECK(static_cast<int64_t>(tokens) <= config.vocab_size, "init --tokenizer: ", o.tokenizer, " has ", tokens,
              " tokens but the model's vocabulary is ", config.vocab_size, "; pass --vocab-size ", tokens);
  }
  model::CausalLM lm(config);
  lm->init_weights(o.seed);
  model::save_model(lm, o.out);
  if (!o.tokenizer.empty()) model::copy_tokenizer_files(o.tokenizer, o.out);
  int64_t params = 0;
  for (const auto& p : lm->parameters()) params += p.numel();
  std::cout << "wrote " << o.out << ": " << config.architecture << ", " << config.num_hidden_layers << " layers, "
            << params << " parameters, TTT " << (config.ttt_mode ? "on" : "off") << "\n";
  return 0;
}

Register init_command("", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<InitOptions>();
  CLI::App* cmd = parent.add_subcommand("init", "create a randomly initialised model (Hugging Face format)");
  cmd->add_option("--preset", o->preset, "test | tiny | small | paper-500m");
  cmd->add_option("--arch", o->arch, "qwen3 | llama")->check(CLI::IsMember({"qwen3", "llama"}));
  cmd->add_option("--config", o->config_file, "initialise from this config.json instead of a preset");
  cmd->add_option("--vocab-size", o->vocab_size, "override the vocabulary size")->check(CLI::PositiveNumber);
  cmd->add_option("-o,--out", o->out, "output directory")->required();
  cmd->add_option("--seed", o->seed, "initialisation seed");
  cmd->add_flag("--force", o->force, "overwrite an existing model");
  cmd->add_option("--tokenizer", o->tokenizer, "copy this directory's tokenizer files into the model (e.g. corpus/tokenizer)");
  o->ttt.add_to(cmd);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
