#include "ipt/model/presets.h"

#include "ipt/common/error.h"

namespace ipt::model {

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names{"test", "tiny", "small", "paper-500m"};
  return names;
}

ModelConfig preset_config(const std::string& name, const std::string& arch, int64_t vocab_size) {
  IPT_CHECK(arch == "qwen3" || arch == "llama", "unknown architecture '", arch, "' (expected qwen3 or llama)");
  IPT_CHECK(vocab_size >= 0, "vocabulary size must be > 0");
  struct Shape {
    int64_t vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, window, max_positions;
    double theta;
  };
  Shape s;
  if (name == "test") s = {256, 64, 128, 2, 4, 2, 16, 0, 4096, 10000.0};
  else if (name == "tiny") s = {8192, 256, 512, 6, 4, 2, 64, 0, 32768, 1e6};
  else if (name == "small") s = {16384, 512, 1536, 8, 8, 4, 64, 0, 32768, 1e6};
  else if (name == "paper-500m") s = {32000, 1024, 3072, 24, 8, 8, 128, 2048, 32768, 1e6};
  else {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown preset '" + name + "' (expected one of: " + known + ")");
  }
  nlohmann::json j = {{"architectures", {arch == "qwen3" ? "Qwen3ForCausalLM" : "LlamaForCausalLM"}},
                      {"vocab_size", vocab_size > 0 ? vocab_size : s.vocab},
                      {"hidden_size", s.hidden},
                      {"intermediate_size", s.intermediate},
                      {"num_hidden_layers", s.layers},
                      {"num_attention_heads", s.heads},
                      {"num_key_value_heads", s.kv_heads},
                      {"head_dim", s.head_dim},
                      {"hidden_act", "silu"},
                      {"rms_norm_eps", 1e-6},
                      {"rope_theta", s.theta},
                      {"max_position_embeddings", s.max_positions},
                      {"initializer_range", 0.02},
                      {"tie_word_embeddings", true},
                      {"attention_bias", false},
                      {"torch_dtype", "float32"}};
  if (s.window > 0) {
    j["sliding_window"] = s.window;
    j["layer_types"] = std::vector<std::string>(s.layers, "sliding_attention");
  }
  return ModelConfig::from_json(j);
}

}  // namespace ipt::model
