// ipt convert: add In-Place TTT to a checkpoint with SPEC.md's drop-in initialisation.
#include <filesystem>
#include <iostream>

#include <unistd.h>

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
  IPT_CHECK(!fs::exists(o.out) || fs::exists(fs::path(o.out) / "config.json") || fs::is_empty(o.out), o.out,
            " exists and is not a model directory; choose a new or empty one");
  IPT_CHECK(!o.ttt.layers.empty(), "name the TTT layers with --ttt-layers (e.g. 0,6,12)");
  model::ModelConfig config = model::ModelConfig::load((fs::path(o.in) / "config.json").string());
  o.ttt.apply(config);
  model::LoadOptions load;
  load.drop_in_missing_ttt = true;
  load.config_override = &config;
  model::CausalLM lm = model::load_model(o.in, load);
  // Written next to --out and renamed into place only when complete: a full disk or a kill
  // leaves the model that was there (with --force) untouched.
  const fs::path out = fs::absolute(o.out).lexically_normal(), parent = out.parent_path();
  const fs::path tmp = parent / ("." + out.filename().string() + ".tmp." + std::to_string(::getpid()));
  const fs::path old = parent / ("." + out.filename().string() + ".old." + std::to_string(::getpid()));
  try {
    fs::create_directories(parent);
    fs::remove_all(tmp);
    model::save_model(lm, tmp.string(), model::parse_dtype(o.dtype));
    model::copy_tokenizer_files(o.in, tmp.string());
    if (fs::exists(out)) fs::rename(out, old);
    fs::rename(tmp, out);
    fs::remove_all(old);
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    if (!fs::exists(out) && fs::exists(old)) fs::rename(old, out, ignored);
    throw Error("cannot write " + out.string() + ": " + e.what() + " (is the disk full?); nothing there was changed");
  }
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
