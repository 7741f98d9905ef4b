#include "ipt/model/gguf_import.h"

#include <cstdio>
#include <cstdlib>
#include <set>

#include "ipt/common/error.h"
#include "ipt/tokenizer/patterns.h"

namespace ipt::model {

namespace {

using json = nlohmann::json;
using tok::kLlama3Pattern;
using tok::kQwen2Pattern;

// Pre-tokenizers: the Hugging Face originals' split patterns (patterns.h) for the kinds that have
// one, llama.cpp's (llama-vocab.cpp) for "default", so each file splits text as its source did.
json split(const std::string& regex) {
  return {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
}
json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

struct PreTokenizer {
  json pre_tokenizer;
  json normalizer;  // null or NFC
  bool ignore_merges = false;
  bool add_bos = false;  // llama.cpp's default for this kind when the file does not say
};

PreTokenizer pre_tokenizer_for(const std::string& pre, const std::string& origin) {
  PreTokenizer p;
  p.normalizer = nullptr;
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    p.pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", {split(kLlama3Pattern), byte_level(false)}}};
    p.ignore_merges = true;
    p.add_bos = true;
  } else if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
    p.pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", {split(kQwen2Pattern), byte_level(false)}}};
    p.normalizer = {{"type", "NFC"}};
  } else if (pre == "smollm") {
    p.pre_tokenizer = {{"type", "Sequence"},
                       {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
  } else if (pre == "gpt2" || pre == "gpt-2") {
    p.pre_tokenizer = byte_level(true);
  } else if (pre == "default" || pre.empty()) {
    p.pre_tokenizer = {{"type", "Sequence"},
                       {"pretokenizers",
                        {split("[\\p{P}\\$\\+<=>\\^~\\|]+"),
                         split("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"),
                         split("\\p{N}+"), split("[0-9][0-9][0-9]"), byte_level(false)}}};
  } else {
    throw Error(origin + ": metadata 'tokenizer.ggml.pre' = '" + pre +
                "' is not supported (llama-bpe, llama3, qwen2, smollm, gpt2, default)");
  }
  return p;
}

// A float32 metadata value as the shortest decimal that rounds back to it (1e-05, not
// 9.999999747378752e-06), so config.json reads as the original did.
double shortest(const io::GgufFile& f, const std::string& key) {
  const double v = f.get_float(key);
  if (f.find(key)->type != io::GgufValueType::kFloat32) return v;
  for (int digits = 1; digits < 10; ++digits) {
    char text[32];
    std::snprintf(text, sizeof text, "%.*g", digits, v);
    const double d = std::strtod(text, nullptr);
    if (static_cast<float>(d) == static_cast<float>(v)) return d;
  }
  return v;
}

// llama.cpp token types.
constexpr int64_t kTokenControl = 3, kTokenUserDefined = 4;

struct Names {
  std::string gguf, hf;
  bool required;
};

}  // namespace

torch::Tensor gguf_permute_rows(const torch::Tensor& w, int64_t heads) {
  std::vector<int64_t> shape{heads, 2, w.size(0) / heads / 2};
  for (int64_t d = 1; d < w.dim(); ++d) shape.push_back(w.size(d));
  return w.reshape(shape).transpose(1, 2).reshape(w.sizes()).contiguous();
}

torch::Tensor gguf_unpermute_rows(const torch::Tensor& w, int64_t heads) {
  std::vector<int64_t> shape{heads, w.size(0) / heads / 2, 2};
  for (int64_t d = 1; d < w.dim(); ++d) shape.push_back(w.size(d));
  return w.reshape(shape).transpose(1, 2).reshape(w.sizes()).contiguous();
}

void import_gguf_tokenizer(const io::GgufFile& f, json& tokenizer, json& tokenizer_config) {
  const std::string model = f.get_string("tokenizer.ggml.model");
  IPT_CHECK(model == "gpt2", f.origin, ": metadata 'tokenizer.ggml.model' = '", model,
            "' is not supported (only gpt2, byte-level BPE)");
  const std::string pre = f.find("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "";
  const PreTokenizer p = pre_tokenizer_for(pre, f.origin);
  const std::vector<std::string> tokens = f.get_strings("tokenizer.ggml.tokens");
  const std::vector<std::string> merges = f.get_strings("tokenizer.ggml.merges");
  std::vector<int64_t> types;
  if (f.find("tokenizer.ggml.token_type")) {
    types = f.get_ints("tokenizer.ggml.token_type");
    IPT_CHECK(types.size() == tokens.size(), f.origin, ": metadata 'tokenizer.ggml.token_type' has ", types.size(),
              " entries for ", tokens.size(), " tokens");
  }
  json vocab = json::object(), added = json::array();
  for (size_t id = 0; id < tokens.size(); ++id) {
    // A spelling that repeats keeps its first id (JSON object keys are unique).
    if (!vocab.contains(tokens[id])) vocab[tokens[id]] = id;
    const int64_t type = types.empty() ? 1 : types[id];
    if (type == kTokenControl || type == kTokenUserDefined)
      added.push_back({{"id", id}, {"content", tokens[id]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", type == kTokenControl}});
  }
  tokenizer = {{"version", "1.0"},
               {"truncation", nullptr},
               {"padding", nullptr},
               {"added_tokens", added},
               {"normalizer", p.normalizer},
               {"pre_tokenizer", p.pre_tokenizer},
               {"post_processor", byte_level(false)},
               {"decoder", byte_level(true)},
               {"model",
                {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                 {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false},
                 {"ignore_merges", p.ignore_merges}, {"vocab", vocab}, {"merges", merges}}}};

  tokenizer_config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"clean_up_tokenization_spaces", false}};
  auto token_of = [&](const char* key, const char* name) {
    const std::string full = std::string("tokenizer.ggml.") + key;
    if (!f.find(full)) return;
    const int64_t id = f.get_int(full);
    IPT_CHECK(id >= 0 && id < static_cast<int64_t>(tokens.size()), f.origin, ": metadata '", full, "' = ", id,
              " is not a token id (", tokens.size(), " tokens)");
    tokenizer_config[name] = tokens[id];
  };
  token_of("bos_token_id", "bos_token");
  token_of("eos_token_id", "eos_token");
  token_of("padding_token_id", "pad_token");
  token_of("unknown_token_id", "unk_token");
  tokenizer_config["add_bos_token"] =
      f.find("tokenizer.ggml.add_bos_token") ? f.get_bool("tokenizer.ggml.add_bos_token") : p.add_bos;
  tokenizer_config["add_eos_token"] =
      f.find("tokenizer.ggml.add_eos_token") ? f.get_bool("tokenizer.ggml.add_eos_token") : false;
  if (f.find("tokenizer.chat_template")) tokenizer_config["chat_template"] = f.get_string("tokenizer.chat_template");
  const std::string arch = f.get_string("general.architecture");
  if (f.find(arch + ".context_length")) tokenizer_config["model_max_length"] = f.get_int(arch + ".context_length");
}

GgufImport import_gguf(const io::GgufFile& f) {
  const std::string arch = f.get_string("general.architecture");
  IPT_CHECK(arch == "llama" || arch == "qwen2" || arch == "qwen3", f.origin, ": metadata 'general.architecture' = '",
            arch, "' is not supported (llama, qwen2, qwen3)");
  auto key = [&](const std::string& k) { return arch + "." + k; };
  auto positive = [&](const std::string& k) {
    const int64_t v = f.get_int(key(k));
    IPT_CHECK(v > 0, f.origin, ": metadata '", key(k), "' = ", v, " must be > 0");
    return v;
  };

  GgufImport out;
  json& c = out.config;
  c["architectures"] = {arch == "qwen3" ? "Qwen3ForCausalLM" : arch == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  const int64_t layers = positive("block_count"), hidden = positive("embedding_length");
  const int64_t heads = positive("attention.head_count");
  const int64_t kv_heads = f.find(key("attention.head_count_kv")) ? positive("attention.head_count_kv") : heads;
  IPT_CHECK(hidden % heads == 0 || f.find(key("attention.key_length")), f.origin, ": metadata '",
            key("embedding_length"), "' = ", hidden, " is not divisible by '", key("attention.head_count"), "' = ",
            heads, " and '", key("attention.key_length"), "' is missing");
  const int64_t head_dim = f.find(key("attention.key_length")) ? positive("attention.key_length") : hidden / heads;
  if (f.find(key("attention.value_length")))
    IPT_CHECK(f.get_int(key("attention.value_length")) == head_dim, f.origin, ": metadata '",
              key("attention.value_length"), "' differs from the key length ", head_dim, " (not supported)");
  if (f.find(key("rope.dimension_count")))
    IPT_CHECK(f.get_int(key("rope.dimension_count")) == head_dim, f.origin, ": metadata '", key("rope.dimension_count"),
              "' = ", f.get_int(key("rope.dimension_count")), ": partial rotary embeddings are not supported (head_dim ",
              head_dim, ")");
  c["num_hidden_layers"] = layers;
  c["hidden_size"] = hidden;
  c["intermediate_size"] = positive("feed_forward_length");
  c["num_attention_heads"] = heads;
  c["num_key_value_heads"] = kv_heads;
  c["head_dim"] = head_dim;
  c["hidden_act"] = "silu";
  c["rms_norm_eps"] = shortest(f, key("attention.layer_norm_rms_epsilon"));
  c["rope_theta"] = f.find(key("rope.freq_base")) ? shortest(f, key("rope.freq_base")) : 10000.0;
  c["max_position_embeddings"] = f.find(key("context_length")) ? positive("context_length") : 4096;
  if (f.find(key("rope.scaling.type"))) {
    const std::string type = f.get_string(key("rope.scaling.type"));
    if (type == "linear" || type == "yarn") {
      json s = {{"rope_type", type}, {"factor", shortest(f, key("rope.scaling.factor"))}};
      if (f.find(key("rope.scaling.original_context_length")))
        s["original_max_position_embeddings"] = f.get_int(key("rope.scaling.original_context_length"));
      c["rope_scaling"] = s;
    } else {
      IPT_CHECK(type == "none", f.origin, ": metadata '", key("rope.scaling.type"), "' = '", type,
                "' is not supported (none, linear, yarn)");
    }
  }
  IPT_CHECK(!f.find_tensor("rope_freqs.weight"), f.origin,
            ": tensor 'rope_freqs.weight' (LLaMA-3 frequency factors) is not supported");
  for (const auto& [id_key, name] : {std::pair{"bos_token_id", "bos_token_id"}, {"eos_token_id", "eos_token_id"},
                                     {"padding_token_id", "pad_token_id"}})
    if (f.find(std::string("tokenizer.ggml.") + id_key)) c[name] = f.get_int(std::string("tokenizer.ggml.") + id_key);

  // Tensors.
  std::vector<Names> names{{"token_embd.weight", "model.embed_tokens.weight", true},
                           {"output_norm.weight", "model.norm.weight", true},
                           {"output.weight", "lm_head.weight", false}};
  const std::vector<std::pair<const char*, const char*>> per_layer{
      {"attn_q", "self_attn.q_proj"},    {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},    {"attn_output", "self_attn.o_proj"},
      {"attn_norm", "input_layernorm"},  {"ffn_norm", "post_attention_layernorm"},
      {"ffn_gate", "mlp.gate_proj"},     {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},     {"attn_q_norm", "self_attn.q_norm"},
      {"attn_k_norm", "self_attn.k_norm"}};
  for (int64_t l = 0; l < layers; ++l)
    for (const auto& [g, h] : per_layer) {
      const std::string gp = "blk." + std::to_string(l) + "." + g, hp = "model.layers." + std::to_string(l) + "." + h;
      const bool norm = std::string(g).find("norm") != std::string::npos;
      const bool qk_norm = std::string(g) == "attn_q_norm" || std::string(g) == "attn_k_norm";
      names.push_back({gp + ".weight", hp + ".weight", !qk_norm || arch == "qwen3"});
      if (!norm && arch == "qwen2" && (std::string(g) == "attn_q" || std::string(g) == "attn_k" || std::string(g) == "attn_v"))
        names.push_back({gp + ".bias", hp + ".bias", true});
    }
  std::set<std::string> used;
  for (const Names& n : names) {
    const io::GgufTensorInfo* t = f.find_tensor(n.gguf);
    IPT_CHECK(t || !n.required, f.origin, ": tensor '", n.gguf, "' is missing");
    if (!t) continue;
    used.insert(n.gguf);
    torch::Tensor w = f.dequantize(*t);
    if (arch == "llama") {
      // Undo convert_hf_to_gguf.py's permute(): q with the query heads, k with the key/value heads.
      if (n.gguf.find(".attn_q.") != std::string::npos) w = gguf_unpermute_rows(w, heads);
      if (n.gguf.find(".attn_k.") != std::string::npos) w = gguf_unpermute_rows(w, kv_heads);
    }
    out.tensors[n.hf] = w;
  }
  std::vector<std::string> unused;
  for (const auto& t : f.tensors)
    if (!used.count(t.name)) unused.push_back(t.name);
  IPT_CHECK(unused.empty(), f.origin, ": tensor '", unused.empty() ? "" : unused[0], "' has no Hugging Face counterpart (",
            unused.size(), " such tensors)");
  const torch::Tensor& embed = out.tensors.at("model.embed_tokens.weight");
  IPT_CHECK(embed.dim() == 2 && embed.size(1) == hidden, f.origin, ": tensor 'token_embd.weight' has shape ",
            embed.sizes(), ", expected [vocab, ", hidden, "]");
  c["vocab_size"] = embed.size(0);
  c["tie_word_embeddings"] = !out.tensors.count("lm_head.weight");
  c["torch_dtype"] = "float32";
  import_gguf_tokenizer(f, out.tokenizer, out.tokenizer_config);
  return out;
}

}  // namespace ipt::model
