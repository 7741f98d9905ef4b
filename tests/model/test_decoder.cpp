// The decoder: configs parse (and refuse what they must), the drop-in conversion keeps the base
// model's logits, packed documents equal separate runs, sliding windows matter, gradients flow.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipt/common/error.h"
#include "ipt/model/config.h"
#include "ipt/model/decoder.h"

using namespace ipt;
using model::CausalLM;
using model::ModelConfig;
using json = nlohmann::json;

namespace {

json tiny_json(const std::string& arch) {
  return {{"architectures", {arch}}, {"vocab_size", 97}, {"hidden_size", 32}, {"intermediate_size", 64},
          {"num_hidden_layers", 4}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 8},
          {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"max_position_embeddings", 512},
          {"tie_word_embeddings", arch == "Qwen3ForCausalLM"}, {"initializer_range", 0.1},
          {"some_future_key", {{"kept", true}}}};
}

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

void expect_config_error(json j, const std::string& fragment) {
  try {
    ModelConfig::from_json(j);
    ADD_FAILURE() << "expected: " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(ModelConfig, ParsesAndRoundTrips) {
  json j = tiny_json("Qwen3ForCausalLM");
  j["use_sliding_window"] = true;
  j["sliding_window"] = 16;
  j["max_window_layers"] = 2;
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 128}};
  j["eos_token_id"] = {5, 6};
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.layer_window, (std::vector<int64_t>{0, 0, 16, 16}));
  EXPECT_EQ(c.rope.type, "yarn");
  EXPECT_EQ(c.rope.original_max_position_embeddings, 128);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{5, 6}));
  EXPECT_FALSE(c.ttt_mode);
  EXPECT_EQ(c.ttt_layers, (std::vector<int64_t>{0}));  // the official default {0, 6, ..., 30} within 4 layers
  EXPECT_EQ(c.ttt_chunk, 8192);
  json back = c.to_json();
  EXPECT_EQ(back["some_future_key"]["kept"], true);
  EXPECT_EQ(back["rope_scaling"]["rope_type"], "yarn");
  ModelConfig again = ModelConfig::from_json(back);
  EXPECT_EQ(again.layer_window, c.layer_window);
  EXPECT_EQ(again.to_json(), back);
  EXPECT_FALSE(back.contains("ttt_decay"));  // the official update writes no key of ours
  j["ttt_decay"] = 0.9;
  EXPECT_EQ(ModelConfig::from_json(j).to_json()["ttt_decay"], 0.9);
}

// Without the key, the official default applies as the official code applies it (membership): a 30-layer
// model gets {0, 6, 12, 18, 24}, and the config it writes back stays valid with ttt_mode flipped on.
TEST(ModelConfig, DefaultTttLayersStopAtTheModelsDepth) {
  json j = tiny_json("LlamaForCausalLM");
  j["num_hidden_layers"] = 30;
  j["ttt_mode"] = true;
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.ttt_layers, (std::vector<int64_t>{0, 6, 12, 18, 24}));
  j["ttt_layers"] = {0, 30};  // named explicitly, an entry past the depth is still an error
  expect_config_error(j, "ttt_layers entry 30 is outside [0, 30)");
}

TEST(ModelConfig, ErrorsNameTheKey) {
  json j = tiny_json("LlamaForCausalLM");
  j["architectures"] = {"MistralForCausalLM"};
  expect_config_error(j, "architecture 'MistralForCausalLM' is not supported");
  j = tiny_json("LlamaForCausalLM");
  j["hidden_act"] = "gelu";
  expect_config_error(j, "hidden_act 'gelu'");
  j = tiny_json("LlamaForCausalLM");
  j["num_key_value_heads"] = 3;
  expect_config_error(j, "not a multiple of num_key_value_heads");
  j = tiny_json("LlamaForCausalLM");
  j.erase("head_dim");
  j["hidden_size"] = 30;
  expect_config_error(j, "not divisible by num_attention_heads");
  j = tiny_json("LlamaForCausalLM");
  j["ttt_mode"] = true;
  j["ttt_layers"] = {0, 4};
  expect_config_error(j, "ttt_layers entry 4 is outside [0, 4)");
  j["ttt_layers"] = {1, 1};
  expect_config_error(j, "lists layer 1 twice");
  for (double decay : {0.0, 1.5, -1.0}) {
    j = tiny_json("LlamaForCausalLM");
    j["ttt_decay"] = decay;
    expect_config_error(j, "'ttt_decay' must be in (0, 1]");
  }
  j = tiny_json("LlamaForCausalLM");
  j["ttt_chunk"] = "big";
  expect_config_error(j, "'ttt_chunk' must be an integer");
  j = tiny_json("LlamaForCausalLM");
  j["rope_scaling"] = {{"type", "longrope"}};
  expect_config_error(j, "rope_scaling type 'longrope'");
  j = tiny_json("LlamaForCausalLM");
  j["layer_types"] = {"full_attention", "sliding_attention", "full_attention", "full_attention"};
  expect_config_error(j, "'sliding_window' is not set");
}

// The drop-in property (docs/operator.md): converting a model (TTT in some layers, conv = 0, P diagonal)
// leaves its logits unchanged, over sequences spanning several chunks.
TEST(Decoder, DropInConversionKeepsLogits) {
  for (const char* arch : {"Qwen3ForCausalLM", "LlamaForCausalLM"}) {
    ModelConfig base_config = ModelConfig::from_json(tiny_json(arch));
    CausalLM base(base_config);
    base->init_weights(1);
    ModelConfig ttt_config = base_config;
    ttt_config.ttt_mode = true;
    ttt_config.ttt_layers = {0, 2};
    ttt_config.ttt_chunk = 8;
    CausalLM converted(ttt_config);
    {
      torch::NoGradGuard no_grad;
      auto dst = converted->named_parameters();
      for (const auto& p : base->named_parameters()) dst[p.key()].copy_(p.value());
    }
    converted->init_ttt_drop_in(2);
    EXPECT_EQ(converted->named_parameters().size(), base->named_parameters().size() + 4);
    torch::Tensor ids = torch::randint(0, 97, {2, 45}, torch::kInt64);
    torch::NoGradGuard no_grad;
    torch::Tensor a = base->logits(base->hidden_states(ids)), b = converted->logits(converted->hidden_states(ids));
    EXPECT_LE(rel(b, a), 1e-6) << arch;
    // And TTT with a non-zero target does change them (the check above can fail).
    converted->named_parameters()["model.layers.0.mlp.ttt_conv.weight"].normal_(0, 0.5);
    EXPECT_GT(rel(converted->logits(converted->hidden_states(ids)), a), 1e-4);
  }
}

TEST(Decoder, PackedDocumentsEqualSeparateRuns) {
  json j = tiny_json("Qwen3ForCausalLM");
  j["ttt_mode"] = true;
  j["ttt_layers"] = {1, 3};
  j["ttt_chunk"] = 4;
  j["ttt_target"] = "input_embed";
  j["layer_types"] = {"full_attention", "sliding_attention", "full_attention", "sliding_attention"};
  j["sliding_window"] = 5;
  CausalLM lm(ModelConfig::from_json(j));
  lm->init_weights(3);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : lm->named_parameters())
      if (p.key().find("ttt_conv") != std::string::npos) p.value().normal_(0, 0.3);
  }
  lm->to(torch::kFloat64);
  torch::Tensor ids = torch::randint(0, 97, {1, 30}, torch::kInt64);
  std::vector<int64_t> cu{0, 1, 14, 30};
  torch::NoGradGuard no_grad;
  torch::Tensor packed = lm->hidden_states(ids, cu);
  for (size_t d = 1; d < cu.size(); ++d) {
    const int64_t b = cu[d - 1], n = cu[d] - b;
    EXPECT_LE(rel(packed.narrow(1, b, n), lm->hidden_states(ids.narrow(1, b, n))), 1e-12) << d;
  }
  // The sliding window matters: the same model with full attention differs on long documents.
  j["layer_types"] = {"full_attention", "full_attention", "full_attention", "full_attention"};
  CausalLM full(ModelConfig::from_json(j));
  {
    auto dst = full->named_parameters();
    for (const auto& p : lm->named_parameters()) dst[p.key()].copy_(p.value());
  }
  full->to(torch::kFloat64);
  EXPECT_GT(rel(full->hidden_states(ids.narrow(1, 14, 16)), lm->hidden_states(ids.narrow(1, 14, 16))), 1e-6);
}

TEST(Decoder, GradientsReachEveryParameter) {
  json j = tiny_json("LlamaForCausalLM");
  j["ttt_mode"] = true;
  j["ttt_layers"] = {0};
  j["ttt_chunk"] = 4;
  CausalLM lm(ModelConfig::from_json(j));
  lm->init_weights(4);
  {
    torch::NoGradGuard no_grad;
    lm->named_parameters()["model.layers.0.mlp.ttt_conv.weight"].normal_(0, 0.3);
  }
  torch::Tensor ids = torch::randint(0, 97, {2, 13}, torch::kInt64);
  lm->logits(lm->hidden_states(ids)).pow(2).mean().backward();
  for (const auto& p : lm->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  EXPECT_THROW(lm->hidden_states(torch::full({1, 3}, 97, torch::kInt64)), Error);
  EXPECT_THROW(lm->hidden_states(ids, {0, 13}), Error);  // packing needs one row
}
