// Parity with the references users compare us with (docs/models.md "Parity"): logits of small
// random models made by Hugging Face transformers 4.57.3 and by the official In-Place TTT release
// (its training forward and its inference model's greedy generation), and the parameter counts of
// real configs. The fixtures come from scripts/make-goldens.py; the metric everywhere is
// max |ours - reference| / max |reference| over the stored rows.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "ipt/infer/session.h"
#include "ipt/io/safetensors.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/config.h"
#include "ipt/model/param_count.h"

using namespace ipt;
using json = nlohmann::json;

namespace {

const std::string kGoldens = std::string(IPT_SOURCE_DIR) + "/tests/fixtures/goldens";
const std::string kConfigs = std::string(IPT_SOURCE_DIR) + "/tests/fixtures/configs";

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  return json::parse(in);
}

const json& index() {
  static const json j = read_json(kGoldens + "/cases.json");
  return j;
}

double rel(const torch::Tensor& ours, const torch::Tensor& reference) {
  return ((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item<double>();
}

torch::Tensor forward_logits(model::CausalLM& lm, const torch::Tensor& ids, const torch::Tensor& rows) {
  torch::NoGradGuard no_grad;
  torch::Tensor hidden = lm->hidden_states(ids.unsqueeze(0));
  return lm->logits(hidden)[0].index_select(0, rows);
}

struct Greedy {
  double max_rel = 0;     // logits of every step against the reference's scores
  int64_t same = 0;       // steps where our argmax is the reference's token
  int64_t steps = 0;
};

// Prefill the prompt, then at every step compare the logits with the reference's and feed the
// reference's token (teacher forcing: one near-tie cannot derail the rest of the comparison).
Greedy greedy(const model::CausalLM& lm, const io::TensorMap& g, bool decode_update) {
  infer::SessionOptions options;
  options.decode_update = decode_update;
  infer::Session session(lm, options);
  const torch::Tensor prompt = g.at("prompt"), tokens = g.at("greedy"), scores = g.at("greedy_logits");
  std::vector<int64_t> p(prompt.data_ptr<int64_t>(), prompt.data_ptr<int64_t>() + prompt.numel());
  torch::Tensor logits = session.append(p);
  Greedy r;
  r.steps = tokens.numel();
  for (int64_t i = 0; i < r.steps; ++i) {
    r.max_rel = std::max(r.max_rel, rel(logits, scores[i]));
    const int64_t token = tokens[i].item<int64_t>();
    r.same += logits.argmax().item<int64_t>() == token;
    logits = session.decode(token);
  }
  return r;
}

}  // namespace

TEST(HfGoldens, LogitsMatchTheReferences) {
  const double tolerance = index()["tolerance"].get<double>();
  ASSERT_GE(index()["cases"].size(), 16u);
  std::printf("| case | reference | max rel. error |\n|---|---|---|\n");
  for (const json& c : index()["cases"]) {
    const std::string name = c["name"], dir = kGoldens + "/" + name;
    SCOPED_TRACE(name);
    model::CausalLM lm = model::load_model(dir);
    lm->eval();
    const io::TensorMap g = io::read_safetensors(dir + "/golden.safetensors");
    const double e = rel(forward_logits(lm, g.at("input_ids"), g.at("rows")), g.at("logits"));
    std::printf("| %s | %s | %.2e |\n", name.c_str(), c["reference"].get<std::string>().c_str(), e);
    EXPECT_LT(e, tolerance) << c["what"];
  }
}

// The TTT goldens would also pass if TTT did nothing measurable: the same weights without TTT
// must be far from them.
TEST(HfGoldens, TttCasesDependOnTtt) {
  int ttt_cases = 0;
  for (const json& c : index()["cases"]) {
    const std::string name = c["name"], dir = kGoldens + "/" + name;
    if (name.rfind("ttt_", 0) != 0) continue;
    SCOPED_TRACE(name);
    ++ttt_cases;
    model::LoadOptions options;
    options.without_ttt = true;
    model::CausalLM plain = model::load_model(dir, options);
    const io::TensorMap g = io::read_safetensors(dir + "/golden.safetensors");
    EXPECT_GT(rel(forward_logits(plain, g.at("input_ids"), g.at("rows")), g.at("logits")), 0.1);
  }
  EXPECT_EQ(ttt_cases, 4);
}

// The official inference model (inference_model/, TTTDynamicCache): greedy generation from a prompt
// that ends inside a chunk, across two more chunk boundaries.
TEST(HfGoldens, GreedyGenerationMatchesTheOfficialInferenceModel) {
  int generation_cases = 0;
  std::printf("| case | decode update | max rel. error | same argmax |\n|---|---|---|---|\n");
  for (const json& c : index()["cases"]) {
    if (!c.contains("generation")) continue;
    const std::string name = c["name"], dir = kGoldens + "/" + name;
    SCOPED_TRACE(name);
    ++generation_cases;
    model::CausalLM lm = model::load_model(dir);
    lm->eval();
    const io::TensorMap g = io::read_safetensors(dir + "/golden.safetensors");
    // The official inference updates the fast weights whenever a chunk fills while decoding:
    // our ttt_decode_update on.
    const Greedy on = greedy(lm, g, true);
    std::printf("| %s | on | %.2e | %lld/%lld |\n", name.c_str(), on.max_rel, (long long)on.same,
                (long long)on.steps);
    EXPECT_LT(on.max_rel, 1e-4);
    EXPECT_EQ(on.same, on.steps);
    // Off keeps W as the prompt left it: the logits part from the official ones after the first
    // chunk that fills while decoding.
    const Greedy off = greedy(lm, g, false);
    std::printf("| %s | off | %.2e | %lld/%lld |\n", name.c_str(), off.max_rel, (long long)off.same,
                (long long)off.steps);
    EXPECT_GT(off.max_rel, 1e-2);
  }
  EXPECT_EQ(generation_cases, 4);
}

// Published configs: they parse and give the published parameter counts, computed from the sizes
// (no weights allocated). Exact counts: transformers 4.57.3 on the meta device (make-goldens.py).
TEST(RealConfigs, ParameterCountsArePublishedOnes) {
  const json expected = read_json(kConfigs + "/expected.json");
  ASSERT_EQ(expected.size(), 5u);
  for (const auto& [name, e] : expected.items()) {
    SCOPED_TRACE(name);
    const model::ModelConfig c = model::ModelConfig::load(kConfigs + "/" + name + ".json");
    const int64_t total = model::parameter_count(c);
    const int64_t embeddings = c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2);
    EXPECT_EQ(total, e["parameters"].get<int64_t>());
    EXPECT_EQ(total - embeddings, e["non_embedding"].get<int64_t>());
    // The model card's rounded figures.
    for (const json& p : e["published"]) {
      const double count = p["what"] == "parameters" ? double(total) : double(total - embeddings);
      const double scale = std::pow(10.0, p["decimals"].get<int>());
      EXPECT_NEAR(std::round(count / p["unit"].get<double>() * scale) / scale, p["value"].get<double>(), 1e-9)
          << p["what"] << " " << p["source"];
    }
  }
  // Details the counts depend on.
  const model::ModelConfig llama = model::ModelConfig::load(kConfigs + "/llama-3.1-8b.json");
  EXPECT_EQ(llama.rope.type, "llama3");
  EXPECT_EQ(llama.rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(llama.head_dim, 128);
  const model::ModelConfig qwen = model::ModelConfig::load(kConfigs + "/qwen3-0.6b.json");
  EXPECT_TRUE(qwen.qk_norm && qwen.tie_word_embeddings);
  EXPECT_EQ(qwen.head_dim * qwen.num_attention_heads, 2 * qwen.hidden_size);  // head_dim is not hidden / heads
  const model::ModelConfig qwen2 = model::ModelConfig::load(kConfigs + "/qwen2.5-0.5b.json");
  EXPECT_TRUE(qwen2.qkv_bias() && !qwen2.o_bias() && !qwen2.qk_norm);  // Qwen2: q/k/v biases only
  EXPECT_EQ(qwen2.layer_window, std::vector<int64_t>(24, 0));  // sliding_window is set, use_sliding_window is not
}

// The count from the config is the count of the module built from it (every golden config, TTT
// layers, biases, tied heads and head_dim != hidden / heads among them).
TEST(RealConfigs, ParameterCountIsTheBuiltModulesCount) {
  for (const json& c : index()["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const model::ModelConfig config = model::ModelConfig::load(kGoldens + "/" + name + "/config.json");
    model::CausalLM lm(config);
    int64_t n = 0;
    for (const auto& p : lm->named_parameters())
      if (!(config.tie_word_embeddings && p.key() == "lm_head.weight")) n += p.value().numel();
    EXPECT_EQ(model::parameter_count(config), n);
  }
}
