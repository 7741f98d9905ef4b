// ipt convert: add In-Place TTT to a checkpoint with the drop-in initialisation (docs/operator.md),
// or import a llama.cpp GGUF file as a model directory (optionally with TTT layers the same way).
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

#include <unistd.h>

#include "command.h"
#include "model_flags.h"
#include "ipt/common/durable_write.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/gguf_import.h"

namespace ipt::cli {
namespace {

struct ConvertOptions {
  std::string in, from_gguf, out, dtype = "float32";
  bool force = false;
  TttFlags ttt;
};

namespace fs = std::filesystem;

void write_json(const fs::path& path, const nlohmann::json& j) { write_file_durably(path.string(), j.dump(2) + "\n"); }

// Runs `write(dir)` on a directory next to `out_dir` and puts it in place only when it is complete:
// a full disk or a kill leaves the model that was there (with --force) untouched.
void write_model_dir(const std::string& out_dir, const std::function<void(const std::string&)>& write) {
  const fs::path out = fs::absolute(out_dir).lexically_normal(), parent = out.parent_path();
  const fs::path tmp = temp_path_for((parent / ("." + out.filename().string())).string());
  try {
    fs::create_directories(parent);
    fs::remove_all(tmp);
    write(tmp.string());
    install_directory_durably(tmp.string(), out.string());
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw Error("cannot write " + out.string() + ": " + e.what() + " (is the disk full?); nothing there was changed");
  }
}

// The GGUF file's model (dequantized) and tokenizer; TTT layers only when --ttt-layers is given.
int run_gguf(const ConvertOptions& o) {
  IPT_CHECK(o.in.empty(), "give either --in or --from-gguf, not both");
  const io::GgufFile file = io::read_gguf(o.from_gguf);
  model::GgufImport imported = model::import_gguf(file);
  model::ModelConfig config = model::ModelConfig::from_json(imported.config);
  if (o.ttt.has_layers()) o.ttt.apply(config);
  model::LoadOptions load;
  load.drop_in_missing_ttt = true;
  model::CausalLM lm = model::model_from_tensors(config, imported.tensors, load, o.from_gguf);
  imported.tensors.clear();
  write_model_dir(o.out, [&](const std::string& dir) {
    model::save_model(lm, dir, model::parse_dtype(o.dtype));
    write_json(fs::path(dir) / "tokenizer.json", imported.tokenizer);
    write_json(fs::path(dir) / "tokenizer_config.json", imported.tokenizer_config);
  });
  std::cout << "wrote " << o.out << ": " << config.architecture << ", " << config.num_hidden_layers << " layers, hidden "
            << config.hidden_size << ", vocab " << config.vocab_size << ", " << file.tensors.size()
            << " GGUF tensors dequantized";
  if (config.ttt_mode) {
    std::cout << ", TTT in layers";
    for (int64_t l : config.ttt_layers) std::cout << " " << l;
  }
  std::cout << "\n";
  return 0;
}

int run(const ConvertOptions& o) {
  IPT_CHECK(o.force || !fs::exists(fs::path(o.out) / "config.json"), o.out,
            " already holds a model; pass --force to overwrite it");
  IPT_CHECK(!fs::exists(o.out) || fs::exists(fs::path(o.out) / "config.json") || fs::is_empty(o.out), o.out,
            " exists and is not a model directory; choose a new or empty one");
  if (!o.from_gguf.empty()) return run_gguf(o);
  IPT_CHECK(!o.in.empty(), "give the input model with --in DIR or --from-gguf FILE");
  IPT_CHECK(fs::absolute(o.in) != fs::absolute(o.out), "--out must differ from --in");
  IPT_CHECK(o.ttt.has_layers(), "name the TTT layers with --ttt-layers (e.g. 0,6,12)");
  model::ModelConfig config = model::ModelConfig::load((fs::path(o.in) / "config.json").string());
  o.ttt.apply(config);
  model::LoadOptions load;
  load.drop_in_missing_ttt = true;
  load.config_override = &config;
  model::CausalLM lm = model::load_model(o.in, load);
  write_model_dir(o.out, [&](const std::string& dir) {
    model::save_model(lm, dir, model::parse_dtype(o.dtype));
    model::copy_tokenizer_files(o.in, dir);
  });
  std::cout << "wrote " << o.out << ": TTT in layers";
  for (int64_t l : config.ttt_layers) std::cout << " " << l;
  std::cout << " (chunk " << config.ttt_chunk << ", lr " << config.ttt_lr << ", target " << config.ttt_target << ")\n";
  return 0;
}

Register convert_command("", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* cmd = parent.add_subcommand("convert", "add In-Place TTT to a checkpoint (drop-in initialisation), or import a GGUF file");
  cmd->add_option("--in", o->in, "input model directory");
  cmd->add_option("--from-gguf", o->from_gguf, "input llama.cpp GGUF file (llama, qwen2, qwen3)");
  cmd->add_option("--out", o->out, "output model directory")->required();
  cmd->add_option("--dtype", o->dtype, "storage dtype: float32 | bfloat16 | float16");
  cmd->add_flag("--force", o->force, "overwrite an existing output model");
  o->ttt.add_to(cmd);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
