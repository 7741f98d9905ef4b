// safetensors: round trips (every dtype, bit-exact), sharding, model save/load, and every
// malformed-file case producing its own error.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ipt/common/error.h"
#include "ipt/io/safetensors.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/config.h"
#include "support/temp_dir.h"

using namespace ipt;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("ipt-io-" + ipt::test::process_tag() + "-" + std::to_string(next()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  static int next() {
    static int n = 0;
    return n++;
  }
};

}  // namespace

TEST(Safetensors, RoundTripEveryDtypeBitExact) {
  TempDir dir;
  io::TensorMap t{{"f32", torch::randn({3, 4})},
                  {"f64", torch::randn({2}, torch::kFloat64)},
                  {"bf16", torch::randn({5, 2}).to(torch::kBFloat16)},
                  {"f16", torch::randn({7}).to(torch::kFloat16)},
                  {"i64", torch::arange(10, torch::kInt64)},
                  {"i32", torch::arange(3, torch::kInt32)},
                  {"u8", torch::arange(4, torch::kUInt8)},
                  {"bool", torch::tensor({true, false})},
                  {"scalar", torch::tensor(3.5)},
                  {"empty", torch::zeros({0, 3})}};
  const auto path = dir.path / "x.safetensors";
  io::write_safetensors(path.string(), t, {{"format", "pt"}});
  std::map<std::string, std::string> meta;
  io::TensorMap back = io::read_safetensors(path.string(), &meta);
  EXPECT_EQ(meta.at("format"), "pt");
  ASSERT_EQ(back.size(), t.size());
  for (const auto& [name, tensor] : t) {
    EXPECT_EQ(back[name].scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(back[name], tensor)) << name;
  }
  EXPECT_EQ(fs::file_size(path) % 8, 0u);  // header padded to 8 bytes, data aligned
}

TEST(Safetensors, ShardedEqualsSingleFile) {
  TempDir a, b;
  io::TensorMap t;
  for (int i = 0; i < 10; ++i) t["layer." + std::to_string(i)] = torch::randn({64, 16});
  io::save_checkpoint(a.path.string(), t);
  io::save_checkpoint(b.path.string(), t, 3 * 64 * 16 * 4);
  EXPECT_TRUE(fs::exists(a.path / "model.safetensors"));
  EXPECT_TRUE(fs::exists(b.path / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(b.path / "model-00004-of-00004.safetensors"));
  io::TensorMap x = io::load_checkpoint(a.path.string()), y = io::load_checkpoint(b.path.string());
  ASSERT_EQ(x.size(), y.size());
  for (const auto& [name, tensor] : x) EXPECT_TRUE(torch::equal(tensor, y[name])) << name;
  // Saving single-file over a sharded directory leaves one consistent layout.
  io::save_checkpoint(b.path.string(), t);
  EXPECT_FALSE(fs::exists(b.path / "model.safetensors.index.json"));
  EXPECT_EQ(io::load_checkpoint(b.path.string()).size(), 10u);
}

TEST(Safetensors, FailedWriteKeepsThePreviousFile) {
  TempDir dir;
  const auto path = dir.path / "x.safetensors";
  io::write_safetensors(path.string(), {{"a", torch::ones({2})}});
  // An undefined tensor fails the write after the temporary file was opened.
  EXPECT_THROW(io::write_safetensors(path.string(), {{"a", torch::zeros({2})}, {"b", torch::Tensor()}}), Error);
  EXPECT_TRUE(torch::equal(io::read_safetensors(path.string())["a"], torch::ones({2})));
  for (const auto& entry : fs::directory_iterator(dir.path))
    EXPECT_EQ(entry.path().filename(), "x.safetensors") << "left behind: " << entry.path();
  // A directory that cannot be written to.
  EXPECT_THROW(io::write_safetensors("/nonexistent-dir/x.safetensors", {{"a", torch::ones({1})}}), Error);
}

TEST(Safetensors, MissingCheckpointIsAnError) {
  TempDir dir;
  EXPECT_THROW(io::load_checkpoint(dir.path.string() + "/missing"), Error);
}

// The committed fixtures (scripts/make-malformed-fixtures.py): every broken file fails with the
// error expected.json names, through the reader that opens it.
TEST(MalformedFixtures, EachFileFailsWithItsError) {
  const fs::path dir = fs::path(IPT_SOURCE_DIR) / "tests/fixtures/malformed";
  nlohmann::json expected = nlohmann::json::parse(std::ifstream(dir / "expected.json"));
  ASSERT_GE(expected.size(), 15u);
  for (const auto& [name, want] : expected.items()) {
    const std::string path = (dir / name).string(), reader = want["reader"], fragment = want["error"];
    ASSERT_TRUE(fs::exists(path)) << path;
    try {
      if (reader == "safetensors")
        io::read_safetensors(path);
      else
        model::ModelConfig::load(path);
      ADD_FAILURE() << name << " loaded; expected an error containing: " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << name << ": " << e.what();
    }
  }
}

TEST(ModelCheckpoint, SaveLoadBitExactAndMismatchesNamed) {
  nlohmann::json j = {{"architectures", {"Qwen3ForCausalLM"}}, {"vocab_size", 50}, {"hidden_size", 16},
                      {"intermediate_size", 32}, {"num_hidden_layers", 2}, {"num_attention_heads", 2},
                      {"num_key_value_heads", 1}, {"head_dim", 8}, {"ttt_mode", true}, {"ttt_layers", {1}},
                      {"ttt_chunk", 4}};
  model::CausalLM lm(model::ModelConfig::from_json(j));
  lm->init_weights(1);
  TempDir dir;
  model::save_model(lm, dir.path.string());
  model::CausalLM back = model::load_model(dir.path.string());
  auto a = lm->named_parameters(), b = back->named_parameters();
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  // bf16 storage round trip within bf16 error.
  TempDir bf;
  model::save_model(lm, bf.path.string(), torch::kBFloat16);
  model::CausalLM b16 = model::load_model(bf.path.string());
  for (const auto& p : a) EXPECT_TRUE(torch::allclose(b16->named_parameters()[p.key()], p.value(), 1e-2, 1e-3)) << p.key();
  EXPECT_EQ(model::ModelConfig::load((bf.path / "config.json").string()).torch_dtype, "bfloat16");

  // Wrong shapes, missing and extra tensors are named.
  io::TensorMap t = io::load_checkpoint(dir.path.string());
  io::TensorMap changed = t;
  changed["model.norm.weight"] = torch::ones({17});
  io::save_checkpoint(dir.path.string(), changed);
  try {
    model::load_model(dir.path.string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight (checkpoint [17], config expects [16])"), std::string::npos)
        << e.what();
  }
  changed = t;
  changed.erase("model.layers.0.self_attn.q_proj.weight");
  changed["model.layers.0.mlp.unknown.weight"] = torch::ones({1});
  io::save_checkpoint(dir.path.string(), changed);
  EXPECT_THROW(model::load_model(dir.path.string()), Error);
  // A checkpoint without TTT tensors loads with drop-in initialisation when asked.
  changed = t;
  changed.erase("model.layers.1.mlp.ttt_conv.weight");
  changed.erase("model.layers.1.mlp.ttt_proj.weight");
  io::save_checkpoint(dir.path.string(), changed);
  EXPECT_THROW(model::load_model(dir.path.string()), Error);
  model::LoadOptions drop_in;
  drop_in.drop_in_missing_ttt = true;
  model::CausalLM converted = model::load_model(dir.path.string(), drop_in);
  EXPECT_EQ(converted->named_parameters()["model.layers.1.mlp.ttt_conv.weight"].abs().sum().item<double>(), 0.0);
}
