#include "ipt/model/config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "ipt/common/durable_write.h"
#include "ipt/common/error.h"
#include "ipt/model/ttt_keys.h"

namespace ipt::model {

namespace {

using json = nlohmann::json;

// Per-layer lists are sized by the layer count while parsing: an absurd count (found by fuzzing:
// 299999999999) must be an error, not an allocation. The deepest released LLMs have ~130 layers.
constexpr int64_t kMaxLayers = 16384;

template <typename T>
T get(const json& j, const char* key, const T& fallback, const char* expected) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw Error(std::string("config.json: '") + key + "' must be " + expected + ", got " + j.at(key).dump());
  }
}

int64_t get_int(const json& j, const char* key, int64_t fallback) {
  if (j.contains(key) && !j.at(key).is_null())
    IPT_CHECK(j.at(key).is_number_integer(), "config.json: '", key, "' must be an integer, got ", j.at(key).dump());
  return get<int64_t>(j, key, fallback, "an integer");
}

// A list of integers. nlohmann converts a float element with a cast, undefined for 1e65 (found by
// fuzzing), so every element is checked first.
std::vector<int64_t> get_int_list(const json& j, const char* key, const std::vector<int64_t>& fallback,
                                  const char* expected) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  const json& v = j.at(key);
  const bool integers = v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_number_integer(); });
  IPT_CHECK(integers, "config.json: '", key, "' must be ", expected, ", got ", v.dump());
  return v.get<std::vector<int64_t>>();
}

void parse_rope(const json& j, ModelConfig& c) {
  c.rope.theta = get<double>(j, "rope_theta", 10000.0, "a number");
  c.rope.head_dim = c.head_dim;
  c.rope.max_position_embeddings = c.max_position_embeddings;
  if (!j.contains("rope_scaling") || j.at("rope_scaling").is_null()) return;
  const json& s = j.at("rope_scaling");
  IPT_CHECK(s.is_object(), "config.json: 'rope_scaling' must be an object or null");
  std::string type = s.contains("rope_type") ? get<std::string>(s, "rope_type", "", "a string")
                                             : get<std::string>(s, "type", "default", "a string");
  const std::set<std::string> known{"default", "linear", "dynamic", "yarn", "llama3"};
  IPT_CHECK(known.count(type), "config.json: rope_scaling type '", type,
            "' is not supported (default, linear, dynamic, yarn, llama3)");
  c.rope.type = type;
  c.rope.factor = get<double>(s, "factor", 1.0, "a number");
  c.rope.original_max_position_embeddings = get_int(s, "original_max_position_embeddings", 0);
  c.rope.low_freq_factor = get<double>(s, "low_freq_factor", 1.0, "a number");
  c.rope.high_freq_factor = get<double>(s, "high_freq_factor", 4.0, "a number");
  c.rope.beta_fast = get<double>(s, "beta_fast", 32.0, "a number");
  c.rope.beta_slow = get<double>(s, "beta_slow", 1.0, "a number");
  c.rope.attention_factor = get<double>(s, "attention_factor", 0.0, "a number");
}

// Per-layer windows from layer_types, or from Qwen's use_sliding_window / max_window_layers.
void parse_windows(const json& j, ModelConfig& c) {
  c.layer_window.assign(c.num_hidden_layers, 0);
  const int64_t window = get_int(j, "sliding_window", 0);
  if (j.contains("layer_types") && !j.at("layer_types").is_null()) {
    auto types = get<std::vector<std::string>>(j, "layer_types", {}, "a list of strings");
    IPT_CHECK(static_cast<int64_t>(types.size()) == c.num_hidden_layers, "config.json: 'layer_types' has ",
              types.size(), " entries for ", c.num_hidden_layers, " layers");
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      IPT_CHECK(types[i] == "full_attention" || types[i] == "sliding_attention", "config.json: layer_types[", i,
                "] = '", types[i], "' (expected full_attention or sliding_attention)");
      if (types[i] == "sliding_attention") {
        IPT_CHECK(window > 0, "config.json: layer_types asks for sliding_attention but 'sliding_window' is not set");
        c.layer_window[i] = window;
      }
    }
    return;
  }
  if (get<bool>(j, "use_sliding_window", false, "true or false") && window > 0) {
    const int64_t first = get_int(j, "max_window_layers", 0);
    for (int64_t i = first; i < c.num_hidden_layers; ++i) c.layer_window[i] = window;
  }
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j) {
  IPT_CHECK(j.is_object(), "config.json must be a JSON object");
  ModelConfig c;
  c.extra = j;
  auto architectures = get<std::vector<std::string>>(j, "architectures", {}, "a list of strings");
  IPT_CHECK(!architectures.empty(), "config.json: 'architectures' is missing");
  c.architecture = architectures[0];
  IPT_CHECK(c.is_qwen3() || c.is_qwen2() || c.architecture == "LlamaForCausalLM", "config.json: architecture '",
            c.architecture, "' is not supported (Qwen3ForCausalLM, Qwen2ForCausalLM, LlamaForCausalLM)");
  c.qk_norm = c.is_qwen3();
  c.vocab_size = get_int(j, "vocab_size", 0);
  c.hidden_size = get_int(j, "hidden_size", 0);
  c.intermediate_size = get_int(j, "intermediate_size", 0);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", 0);
  c.num_attention_heads = get_int(j, "num_attention_heads", 0);
  c.num_key_value_heads = get_int(j, "num_key_value_heads", c.num_attention_heads);
  // Checked before anything is sized by it (found by fuzzing: a negative count reached
  // std::vector::assign in parse_windows).
  IPT_CHECK(c.num_hidden_layers > 0 && c.num_hidden_layers <= kMaxLayers, "config.json: num_hidden_layers must be in [1, ",
            kMaxLayers, "], got ", c.num_hidden_layers);
  IPT_CHECK(c.hidden_size > 0 && c.num_attention_heads > 0, "config.json: hidden_size and num_attention_heads must be > 0");
  if (!j.contains("head_dim") || j.at("head_dim").is_null())
    IPT_CHECK(c.hidden_size % c.num_attention_heads == 0, "config.json: hidden_size ", c.hidden_size,
              " is not divisible by num_attention_heads ", c.num_attention_heads, " and head_dim is not given");
  c.head_dim = get_int(j, "head_dim", c.hidden_size / c.num_attention_heads);
  const std::string act = get<std::string>(j, "hidden_act", "silu", "a string");
  IPT_CHECK(act == "silu", "config.json: hidden_act '", act, "' is not supported (silu)");
  c.rms_norm_eps = get<double>(j, "rms_norm_eps", 1e-6, "a number");
  c.initializer_range = get<double>(j, "initializer_range", 0.02, "a number");
  c.max_position_embeddings = get_int(j, "max_position_embeddings", 4096);
  c.tie_word_embeddings = get<bool>(j, "tie_word_embeddings", false, "true or false");
  c.attention_bias = get<bool>(j, "attention_bias", false, "true or false");
  c.torch_dtype = get<std::string>(j, "torch_dtype", "float32", "a string");
  c.bos_token_id = get_int(j, "bos_token_id", -1);
  c.pad_token_id = get_int(j, "pad_token_id", -1);
  if (j.contains("eos_token_id") && !j.at("eos_token_id").is_null())
    c.eos_token_ids = j.at("eos_token_id").is_array() ? get_int_list(j, "eos_token_id", {}, "an id or a list of ids")
                                                      : std::vector<int64_t>{get_int(j, "eos_token_id", -1)};
  parse_rope(j, c);
  parse_windows(j, c);
  for (const TttKey& key : ttt_keys())
    if (j.contains(key.name) && !j.at(key.name).is_null())
      set_ttt_key(c, key, j.at(key.name), std::string("config.json: '") + key.name + "'");
  if (!j.contains("ttt_layers")) {
    // The official default (every sixth layer up to 30) is applied by membership, so entries past this
    // model's depth never apply. Drop them, so the config we write back stays valid with ttt_mode on.
    auto past_depth = [&](int64_t l) { return l >= c.num_hidden_layers; };
    c.ttt_layers.erase(std::remove_if(c.ttt_layers.begin(), c.ttt_layers.end(), past_depth), c.ttt_layers.end());
  }
  c.validate();
  return c;
}

void ModelConfig::validate() const {
  IPT_CHECK(vocab_size > 0 && intermediate_size > 0 && num_hidden_layers > 0 && head_dim > 0,
            "config.json: vocab_size, intermediate_size, num_hidden_layers and head_dim must be > 0");
  IPT_CHECK(num_key_value_heads > 0 && num_attention_heads % num_key_value_heads == 0,
            "config.json: num_attention_heads ", num_attention_heads, " is not a multiple of num_key_value_heads ",
            num_key_value_heads);
  IPT_CHECK(head_dim % 2 == 0, "config.json: head_dim must be even for rotary embeddings, got ", head_dim);
  IPT_CHECK(rms_norm_eps > 0, "config.json: rms_norm_eps must be > 0");
  for (const TttKey& key : ttt_keys()) check_ttt_key(*this, key, std::string("config.json: '") + key.name + "'");
  if (ttt_mode) {
    std::set<int64_t> seen;
    for (int64_t l : ttt_layers) {
      IPT_CHECK(l >= 0 && l < num_hidden_layers, "config.json: ttt_layers entry ", l, " is outside [0, ",
                num_hidden_layers, ")");
      IPT_CHECK(seen.insert(l).second, "config.json: ttt_layers lists layer ", l, " twice");
    }
  }
}

json ModelConfig::to_json() const {
  json j = extra.is_object() ? extra : json::object();
  j["architectures"] = {architecture};
  j["model_type"] = is_qwen3() ? "qwen3" : is_qwen2() ? "qwen2" : "llama";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = rms_norm_eps;
  j["initializer_range"] = initializer_range;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rope_theta"] = rope.theta;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["attention_bias"] = attention_bias;
  j["torch_dtype"] = torch_dtype;
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (pad_token_id >= 0) j["pad_token_id"] = pad_token_id;
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  if (eos_token_ids.size() > 1) j["eos_token_id"] = eos_token_ids;
  const bool any_window = std::any_of(layer_window.begin(), layer_window.end(), [](int64_t w) { return w > 0; });
  if (any_window) {
    json types = json::array();
    for (int64_t w : layer_window) types.push_back(w > 0 ? "sliding_attention" : "full_attention");
    j["layer_types"] = types;
    j["sliding_window"] = *std::max_element(layer_window.begin(), layer_window.end());
    j["use_sliding_window"] = true;
  }
  for (const TttKey& key : ttt_keys()) {
    if (std::string(key.name) == "ttt_decay" && ttt_decay == 1.0) continue;  // absent = the official update
    j[key.name] = get_ttt_key(*this, key);
  }
  return j;
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::ifstream in(path);
  IPT_CHECK(in, "cannot read ", path);
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    throw Error(path + " is not valid JSON: " + e.what());
  }
  return from_json(j);
}

void ModelConfig::save(const std::string& path) const { write_file_durably(path, to_json().dump(2) + "\n"); }

bool ModelConfig::is_ttt_layer(int64_t layer) const {
  return ttt_mode && std::find(ttt_layers.begin(), ttt_layers.end(), layer) != ttt_layers.end();
}

TttSettings ModelConfig::ttt_settings(int64_t layer) const {
  TttSettings s;
  s.enabled = is_ttt_layer(layer);
  s.chunk_size = ttt_chunk;
  s.lr = ttt_lr;
  s.clip = ttt_clip;
  s.decay = ttt_decay;
  s.use_proj = ttt_proj;
  s.target_kind = ttt::parse_target_kind(ttt_target_kind);
  s.conv_padding = ttt::parse_conv_padding(ttt_conv_padding);
  s.decode_update = ttt_decode_update;
  return s;
}

}  // namespace ipt::model
