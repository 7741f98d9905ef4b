#include "ipt/train/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/data/synth.h"
#include "ipt/model/ttt_keys.h"
#include "ipt/train/synthetic_mix.h"

namespace ipt::train {

namespace {

template <typename T>
T as(const YAML::Node& node, const std::string& key, const char* expected) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    std::ostringstream value;
    value << node;
    throw Error(key + ": expected " + expected + ", got '" + value.str() + "'");
  }
}

// A string, or a list of strings (paths).
std::vector<std::string> as_strings(const YAML::Node& node, const std::string& key) {
  if (node.IsSequence()) return as<std::vector<std::string>>(node, key, "a list of strings");
  return {as<std::string>(node, key, "a string")};
}

std::string one_of(const YAML::Node& node, const std::string& key, const std::set<std::string>& allowed) {
  std::string value = as<std::string>(node, key, "a string");
  if (!allowed.count(value)) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    throw Error(key + ": '" + value + "' is not one of " + list);
  }
  return value;
}

// Keys of the official recipes that configure machinery this engine does not have (or does its
// own way). Accepted so their configs load; reported once.
const std::map<std::string, std::string>& official_only_keys() {
  static const std::map<std::string, std::string> keys{
      {"data.train_size", "the dataset's size comes from its shards"},
      {"data.dataloader_type", "one native loader"},
      {"data.datasets_type", "one native loader"},
      {"data.data_type", "token shards from `ipt data prepare`"},
      {"data.text_keys", "text is tokenized by `ipt data prepare`"},
      {"data.drop_last", "the loader streams; no partial batches"},
      {"train.data_parallel_mode", "data parallelism is DDP over c10d"},
      {"train.rmpad", "packed rows always carry document boundaries"},
      {"train.rmpad_with_pos_ids", "packed rows always carry document boundaries"},
      {"train.dyn_bsz", "fixed batch sizes"},
      {"train.dyn_bsz_margin", "fixed batch sizes"},
      {"train.use_wandb", "metrics go to OUTPUT_DIR/metrics.jsonl"},
      {"train.enable_full_shard", "no FSDP; every rank holds the model"},
      {"train.init_device", "models initialise on their device"},
      {"train.ckpt_manager", "checkpoints are Hugging Face safetensors + trainer state"},
      {"train.save_hf_weights", "checkpoints are always Hugging Face format"},
  };
  return keys;
}

std::string ttt_key_list() {
  std::string list;
  for (const auto& key : model::ttt_keys()) list += (list.empty() ? "" : ", ") + std::string(key.name);
  return list;
}

// A model.foundation value as the config.json value of its key, checked (type, choices, range) by
// setting it on a default config: the error names the YAML key.
nlohmann::json foundation_value(const model::TttKey& key, const YAML::Node& node, const std::string& name) {
  const nlohmann::json value = std::visit(
      [&](auto member) -> nlohmann::json {
        using T = std::remove_reference_t<decltype(model::ModelConfig{}.*member)>;
        return as<T>(node, name, model::ttt_type_name(key).c_str());
      },
      key.field);
  model::ModelConfig scratch;
  model::set_ttt_key(scratch, key, value, name);
  return value;
}

void parse_model(const YAML::Node& node, ModelSection& m) {
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>(), name = "model." + key;
    const YAML::Node& v = kv.second;
    if (key == "model_path") m.model_path = as<std::string>(v, name, "a string");
    else if (key == "init_preset") m.init_preset = as<std::string>(v, name, "a string");
    else if (key == "init_config") m.init_config = as<std::string>(v, name, "a string");
    else if (key == "tokenizer_path") m.tokenizer_path = as<std::string>(v, name, "a string");
    else if (key == "foundation") {
      IPT_CHECK(v.IsMap(), name, ": expected a mapping of ttt_* keys");
      for (const auto& f : v) {
        const std::string fk = f.first.as<std::string>(), fname = name + "." + fk;
        const model::TttKey* key = model::find_ttt_key(fk);
        if (!key) throw Error(fname + ": unknown key (known: " + ttt_key_list() + ")");
        m.foundation[fk] = foundation_value(*key, f.second, fname);
      }
    } else {
      throw Error(name + ": unknown key (known: model_path, init_preset, init_config, tokenizer_path, foundation)");
    }
  }
}

void parse_data(const YAML::Node& node, DataSection& d, std::vector<std::string>& notes) {
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>(), name = "data." + key;
    const YAML::Node& v = kv.second;
    if (key == "train_path") d.train_path = as_strings(v, name);
    else if (key == "val_path") d.val_path = as_strings(v, name);
    else if (key == "max_seq_len") d.max_seq_len = as<int64_t>(v, name, "an integer");
    else if (key == "layout") d.layout = one_of(v, name, {"packed", "padded"});
    else if (key == "shuffle") d.shuffle = as<bool>(v, name, "true or false");
    else if (key == "synthetic_mix") {
      IPT_CHECK(v.IsMap(), name, ": expected a mapping task: fraction");
      for (const auto& t : v) {
        const std::string task = t.first.as<std::string>();
        d.synthetic_mix[task] = as<double>(t.second, name + "." + task, "a number");
      }
      validate_mix(d.synthetic_mix);  // unknown task names fail while parsing, listing the valid ones
    } else if (key == "synthetic_haystack") d.synthetic_haystack = as_strings(v, name);
    else if (key == "synthetic_loss") d.synthetic_loss = one_of(v, name, {"all", "answer"});
    else if (official_only_keys().count(name)) {
      notes.push_back(name + " ignored: " + official_only_keys().at(name));
    } else {
      throw Error(name + ": unknown key");
    }
  }
}

void parse_train(const YAML::Node& node, TrainSection& t, std::vector<std::string>& notes) {
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>(), name = "train." + key;
    const YAML::Node& v = kv.second;
    auto number = [&] { return as<double>(v, name, "a number"); };
    auto integer = [&] { return as<int64_t>(v, name, "an integer"); };
    auto flag = [&] { return as<bool>(v, name, "true or false"); };
    if (key == "output_dir") t.output_dir = as<std::string>(v, name, "a string");
    else if (key == "global_batch_size") t.global_batch_size = integer();
    else if (key == "micro_batch_size") t.micro_batch_size = integer();
    else if (key == "cp_size") t.cp_size = integer();
    else if (key == "optimizer") t.optimizer = one_of(v, name, {"adamw"});
    else if (key == "lr") t.lr = number();
    else if (key == "lr_min") t.lr_min = number();
    else if (key == "lr_warmup_ratio") t.lr_warmup_ratio = number();
    else if (key == "lr_decay_ratio") t.lr_decay_ratio = number();
    else if (key == "lr_decay_style") t.lr_decay_style = one_of(v, name, {"cosine", "linear", "constant"});
    else if (key == "weight_decay") t.weight_decay = number();
    else if (key == "adam_beta1") t.adam_beta1 = number();
    else if (key == "adam_beta2") t.adam_beta2 = number();
    else if (key == "adam_eps") t.adam_eps = number();
    else if (key == "max_grad_norm") t.max_grad_norm = number();
    else if (key == "max_steps") t.max_steps = integer();
    else if (key == "save_steps") t.save_steps = integer();
    else if (key == "eval_batches") t.eval_batches = integer();
    else if (key == "eval_steps") t.eval_steps = integer();
    else if (key == "log_steps") t.log_steps = integer();
    else if (key == "enable_gradient_checkpointing") t.enable_gradient_checkpointing = flag();
    else if (key == "enable_mixed_precision") t.enable_mixed_precision = flag();
    else if (key == "seed") t.seed = as<uint64_t>(v, name, "a non-negative integer");
    else if (key == "trainable") t.trainable = one_of(v, name, {"all", "ttt"});
    else if (key == "ulysses_parallel_size") {
      IPT_CHECK(integer() == 1, name, ": sequence parallelism is context parallelism here (--cp-size); must be 1");
    } else if (official_only_keys().count(name)) {
      notes.push_back(name + " ignored: " + official_only_keys().at(name));
    } else {
      throw Error(name + ": unknown key");
    }
  }
}

// "train.lr=1e-4" -> node["train"]["lr"] = 1e-4 (the value parsed as YAML).
void apply_override(YAML::Node& root, const std::string& override_text) {
  const size_t eq = override_text.find('=');
  IPT_CHECK(eq != std::string::npos && eq > 0, "override '", override_text, "' must look like section.key=value");
  std::vector<std::string> path;
  std::stringstream keys(override_text.substr(0, eq));
  for (std::string part; std::getline(keys, part, '.');) {
    IPT_CHECK(!part.empty(), "override '", override_text, "' has an empty key");
    path.push_back(part);
  }
  IPT_CHECK(path.size() >= 2, "override '", override_text, "' must name a section and a key (e.g. train.lr=1e-4)");
  YAML::Node value;
  try {
    value = YAML::Load(override_text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw Error("override '" + override_text + "': the value is not valid YAML");
  }
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < path.size(); ++i) chain.push_back(chain.back()[path[i]]);
  chain.back()[path.back()] = value;
}

}  // namespace

TrainConfig parse_train_config(const std::string& yaml_text, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw Error(std::string("training config is not valid YAML: ") + e.what());
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  IPT_CHECK(root.IsMap(), "training config must be a mapping with sections model, data, train");
  for (const auto& o : overrides) apply_override(root, o);
  TrainConfig config;
  try {
    for (const auto& kv : root) {
      const std::string section = kv.first.as<std::string>();
      IPT_CHECK(kv.second.IsMap() || kv.second.IsNull(), section, ": expected a mapping");
      if (section == "model") parse_model(kv.second, config.model);
      else if (section == "data") parse_data(kv.second, config.data, config.notes);
      else if (section == "train") parse_train(kv.second, config.train, config.notes);
      else throw Error(section + ": unknown section (expected model, data, train)");
    }
  } catch (const YAML::Exception& e) {
    // A node of the wrong kind where a scalar goes (a complex key `? [a]`, a list for a name):
    // found by fuzzing, yaml-cpp's conversion error escaped as a crash.
    throw Error(std::string("training config: ") + e.what());
  }
  return config;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  IPT_CHECK(in, "cannot read training config ", path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_train_config(text.str(), overrides);
}

int TrainConfig::data_parallel_size(int world_size) const {
  IPT_CHECK(train.cp_size >= 1, "train.cp_size must be >= 1, got ", train.cp_size);
  IPT_CHECK(world_size % train.cp_size == 0, "train.cp_size (", train.cp_size, ") must divide the number of ranks (",
            world_size, ")");
  return world_size / static_cast<int>(train.cp_size);
}

int64_t TrainConfig::accumulation_steps(int world_size) const {
  const int dp = data_parallel_size(world_size);
  const int64_t per_step = train.micro_batch_size * dp;
  IPT_CHECK(train.micro_batch_size > 0, "train.micro_batch_size must be > 0, got ", train.micro_batch_size);
  IPT_CHECK(train.global_batch_size > 0 && train.global_batch_size % per_step == 0, "train.global_batch_size (",
            train.global_batch_size, ") must be a positive multiple of micro_batch_size (", train.micro_batch_size,
            ") x data-parallel ranks (", dp, " = ", world_size, " ranks / cp_size ", train.cp_size, ")");
  return train.global_batch_size / per_step;
}

void validate(const TrainConfig& c, int world_size) {
  namespace fs = std::filesystem;
  const int sources = !c.model.model_path.empty() + !c.model.init_preset.empty() + !c.model.init_config.empty();
  IPT_CHECK(sources == 1, "give exactly one of model.model_path, model.init_preset, model.init_config");
  if (!c.model.model_path.empty())
    IPT_CHECK(fs::exists(fs::path(c.model.model_path) / "config.json"), "model.model_path: no config.json in ",
              c.model.model_path);
  if (!c.model.init_config.empty())
    IPT_CHECK(fs::exists(c.model.init_config), "model.init_config: ", c.model.init_config, " does not exist");
  IPT_CHECK(!c.data.train_path.empty(), "data.train_path is required");
  for (const auto& p : c.data.train_path)
    IPT_CHECK(fs::exists(fs::path(p) / "meta.json"), "data.train_path: ", p,
              " is not a token dataset (no meta.json); make one with `ipt data prepare`");
  for (const auto& p : c.data.val_path)
    IPT_CHECK(fs::exists(fs::path(p) / "meta.json"), "data.val_path: ", p, " is not a token dataset (no meta.json)");
  IPT_CHECK(c.data.max_seq_len > 0, "data.max_seq_len must be > 0");
  validate_mix(c.data.synthetic_mix);
  for (const auto& p : c.data.synthetic_haystack)
    IPT_CHECK(fs::exists(p), "data.synthetic_haystack: ", p, " does not exist");
  IPT_CHECK(!c.train.output_dir.empty(), "train.output_dir is required");
  c.accumulation_steps(world_size);
  const auto& t = c.train;
  IPT_CHECK(t.max_steps > 0, "train.max_steps must be > 0");
  IPT_CHECK(t.lr >= 0 && std::isfinite(t.lr), "train.lr must be >= 0");
  IPT_CHECK(t.lr_min >= 0 && t.lr_min <= t.lr, "train.lr_min must be in [0, lr]");
  IPT_CHECK(t.lr_warmup_ratio >= 0 && t.lr_warmup_ratio <= 1, "train.lr_warmup_ratio must be in [0, 1]");
  IPT_CHECK(t.lr_decay_ratio >= 0 && t.lr_decay_ratio <= 1, "train.lr_decay_ratio must be in [0, 1]");
  IPT_CHECK(t.weight_decay >= 0, "train.weight_decay must be >= 0");
  IPT_CHECK(t.adam_beta1 >= 0 && t.adam_beta1 < 1 && t.adam_beta2 >= 0 && t.adam_beta2 < 1,
            "train.adam_beta1/adam_beta2 must be in [0, 1)");
  IPT_CHECK(t.max_grad_norm >= 0, "train.max_grad_norm must be >= 0 (0 = off)");
  IPT_CHECK(t.save_steps >= 0 && t.eval_steps >= 0 && t.log_steps > 0,
            "train.save_steps and eval_steps must be >= 0, log_steps > 0");
  if (t.eval_steps > 0) IPT_CHECK(!c.data.val_path.empty(), "train.eval_steps needs data.val_path");
  IPT_CHECK(t.eval_batches > 0, "train.eval_batches must be > 0");
  IPT_CHECK(c.data.train_path.size() == 1 && c.data.val_path.size() <= 1,
            "data.train_path / data.val_path: give one dataset each (merge several with `ipt data prepare --append`)");
  if (!c.model.tokenizer_path.empty())
    IPT_CHECK(fs::exists(fs::path(c.model.tokenizer_path) / "tokenizer.json"), "model.tokenizer_path: no tokenizer.json in ",
              c.model.tokenizer_path);
}

double learning_rate(const TrainSection& t, int64_t step) {
  const double total = static_cast<double>(t.max_steps);
  const double warmup = std::floor(t.lr_warmup_ratio * total);
  if (step < warmup) return t.lr * (step + 1) / warmup;
  if (t.lr_decay_style == "constant") return t.lr;
  const double decay = std::min(std::floor(t.lr_decay_ratio * total), total - warmup);
  const double decay_start = total - decay;
  if (step < decay_start || decay <= 0) return t.lr;
  const double progress = std::min(1.0, (step - decay_start + 1) / decay);
  const double shape = t.lr_decay_style == "cosine" ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;
  return t.lr_min + (t.lr - t.lr_min) * shape;
}

}  // namespace ipt::train
