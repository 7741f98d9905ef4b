// ipt convert: add In-Place TTT to a checkpoint with SPEC.md's drop-in initialisation.
#include <filesystem>
#include <iostream>

#include "command.h"
#include "model_flags.h"
#include "ipt/model/checkpoint.h"

namespace ipt::cli {
namespace {

struct ConvertOptions {
  std::string in, out, dtype = "float32";
  bool force = false;
  TttFlags ttt;
};

int run(const ConvertOptions& o) {
  namespace fs = std::filesystem;
  IPT_CHECK(fs::absolute(o.in) != fs::absolute(o.out), "--out must differ from --in");
  IPT_CHECK(o.force || !fs::exists(fs::path(o.out) / "config.json"), o.out,
            " already holds a model; pass --force to overwrite it");
  IPT_CHECK(!o.ttt.layers.empty(), "name the TTT layers with --ttt-layers (e.g. 0,6,12)");
  model::ModelConfig config = model::ModelConfig::load((fs::path(o.in) / "config.json").string());
  o.ttt.apply(config);
  model::LoadOptions load;
  load.drop_in_missing_ttt = true;
  load.config_override = &config;
  model::CausalLM lm = model::load_model(o.in, load);
  model::save_model(lm, o.out, model::parse_dtype(o.dtype));
  model::copy_tokenizer_files(o.in, o.out);
  std::cout << "wrote " << o.out << ": TTT in layers";
  for (int64_t l : config.ttt_layers) std::cout << " " << l;
  std::cout << " (chunk " << config.ttt_chunk << ", lr " << config.ttt_lr << ", target " << config.ttt_target << ")\n";
  return 0;
}

Register convert_command("", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* cmd = parent.add_subcommand("convert", "add In-Place TTT to a checkpoint (drop-in initialisation)");
  cmd->add_option("--in", o->in, "input model directory")->required();
  cmd->add_option("--out", o->out, "output model directory")->required();
  cmd->add_option("--dtype", o->dtype, "storage dtype: float32 | bfloat16 | float16");
  cmd->add_flag("--force", o->force, "overwrite an existing output model");
  o->ttt.add_to(cmd);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
