// Training configs: the official recipe loads, every key reaches its field, overrides, errors
// that name the key, batch arithmetic, and the learning-rate schedule's shape.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "ipt/common/error.h"
#include "ipt/train/config.h"
#include "ipt/model/ttt_keys.h"
#include "support/temp_dir.h"

using namespace ipt;
using namespace ipt::train;

namespace {

// The official release's Qwen3 continual-training recipe, as its users have it.
const char* kOfficialRecipe = R"(
model:
  model_path: /path/to/your_base_model
  foundation:
    ttt_layers: [0, 6, 12, 18, 24, 30, 36]
    ttt_mode: true
    ttt_proj: true
    ttt_lr: 3
    ttt_chunk: 4096
data:
  train_path: /path/to/your_data
  train_size: 20000000000
  dataloader_type: native
  datasets_type: iterable
  data_type: plaintext
  max_seq_len: 65536
  text_keys: content_split
  drop_last: true
train:
  output_dir: /path/to/your_output_dir
  data_parallel_mode: fsdp2
  ulysses_parallel_size: 1
  global_batch_size: 64
  micro_batch_size: 1
  rmpad: false
  use_wandb: true
  max_steps: 5000
  rmpad_with_pos_ids: false
  dyn_bsz_margin: 0
  dyn_bsz: false
  optimizer: adamw
  lr: 5.0e-6
  lr_warmup_ratio: 0.02
  lr_decay_style: cosine
  lr_decay_ratio: 0.90
  weight_decay: 0.1
  max_grad_norm: 1.0
  enable_mixed_precision: true
  enable_gradient_checkpointing: true
  enable_full_shard: true
  init_device: meta
  ckpt_manager: dcp
  save_steps: 500
  save_hf_weights: true
)";

void expect_error(const std::string& yaml, const std::string& fragment, std::vector<std::string> overrides = {}) {
  try {
    parse_train_config(yaml, overrides);
    ADD_FAILURE() << "expected an error mentioning '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(TrainConfig, OfficialRecipeLoads) {
  TrainConfig c = parse_train_config(kOfficialRecipe);
  EXPECT_EQ(c.model.model_path, "/path/to/your_base_model");
  EXPECT_EQ(c.model.foundation["ttt_layers"], (std::vector<int64_t>{0, 6, 12, 18, 24, 30, 36}));
  EXPECT_EQ(c.model.foundation["ttt_mode"], true);
  EXPECT_EQ(c.model.foundation["ttt_lr"], 3.0);
  EXPECT_EQ(c.model.foundation["ttt_chunk"], 4096);
  EXPECT_FALSE(c.model.foundation.contains("ttt_target"));  // not given: the checkpoint's value stays
  EXPECT_EQ(c.data.train_path, std::vector<std::string>{"/path/to/your_data"});
  EXPECT_EQ(c.data.max_seq_len, 65536);
  EXPECT_EQ(c.train.global_batch_size, 64);
  EXPECT_DOUBLE_EQ(c.train.lr, 5e-6);
  EXPECT_DOUBLE_EQ(c.train.lr_decay_ratio, 0.9);
  EXPECT_TRUE(c.train.enable_gradient_checkpointing);
  EXPECT_EQ(c.train.save_steps, 500);
  EXPECT_EQ(c.notes.size(), 16u);  // every official-only key reported, none silently dropped
}

TEST(TrainConfig, Overrides) {
  TrainConfig c = parse_train_config(kOfficialRecipe, {"train.lr=1e-4", "model.foundation.ttt_chunk=512",
                                                        "data.train_path=[a, b]", "train.trainable=ttt",
                                                        "model.foundation.ttt_decay=0.9"});
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-4);
  EXPECT_EQ(c.model.foundation["ttt_decay"], 0.9);
  EXPECT_EQ(c.model.foundation["ttt_chunk"], 512);
  EXPECT_EQ(c.data.train_path, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.train.trainable, "ttt");
  expect_error(kOfficialRecipe, "must look like", {"train.lr"});
  expect_error(kOfficialRecipe, "must name a section and a key", {"lr=3"});
  expect_error(kOfficialRecipe, "train.lrr: unknown key", {"train.lrr=3"});
}

// Every key of the TTT table (model/ttt_keys.h) is a model.foundation key with its config.json value.
TEST(TrainConfig, EveryTttKeyIsAFoundationKey) {
  for (const auto& key : ipt::model::ttt_keys()) {
    SCOPED_TRACE(key.name);
    const std::string name = key.name;
    std::string yaml;
    nlohmann::json expected;
    if (name == "ttt_layers") yaml = "[1, 3]", expected = {1, 3};
    else if (name == "ttt_chunk") yaml = "96", expected = 96;
    else if (name == "ttt_mode" || name == "ttt_proj" || name == "ttt_decode_update") yaml = "false", expected = false;
    else if (!key.choices.empty()) yaml = key.choices.back(), expected = key.choices.back();
    else yaml = "0.5", expected = 0.5;
    const TrainConfig c = parse_train_config("model:\n  foundation:\n    " + name + ": " + yaml + "\n");
    ASSERT_EQ(c.model.foundation.size(), 1u);
    EXPECT_EQ(c.model.foundation.at(name), expected);
  }
}

TEST(TrainConfig, ErrorsNameTheKey) {
  expect_error("train:\n  lr: fast\n", "train.lr: expected a number, got 'fast'");
  expect_error("train:\n  max_stepz: 3\n", "train.max_stepz: unknown key");
  expect_error("model:\n  foundation:\n    ttt_lr: [1]\n", "model.foundation.ttt_lr: expected a number");
  expect_error("model:\n  foundation:\n    ttt_target: tokens\n", "model.foundation.ttt_target: 'tokens' is not one of");
  expect_error(kOfficialRecipe, "model.foundation.ttt_decay must be in (0, 1]", {"model.foundation.ttt_decay=0"});
  expect_error(kOfficialRecipe, "model.foundation.ttt_chunk must be > 0", {"model.foundation.ttt_chunk=0"});
  expect_error(kOfficialRecipe, "model.foundation.ttt_chunk: expected an integer", {"model.foundation.ttt_chunk=1.5"});
  expect_error("model:\n  foundation:\n    ttt_speed: 2\n", "model.foundation.ttt_speed: unknown key (known: ttt_mode,");
  expect_error("optim:\n  lr: 1\n", "optim: unknown section");
  expect_error("train:\n  lr_decay_style: step\n", "train.lr_decay_style");
  expect_error("train:\n  ulysses_parallel_size: 2\n", "train.ulysses_parallel_size");
  expect_error("data:\n  synthetic_mix:\n    needle: 0.1\n", "unknown synthetic task");
  expect_error("train: [1, 2\n", "not valid YAML");
}

TEST(TrainConfig, ValidationBeforeAnyWork) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ipt-train-config-" + ipt::test::process_tag());
  fs::create_directories(dir / "model");
  fs::create_directories(dir / "data");
  std::ofstream(dir / "model" / "config.json") << "{}";
  std::ofstream(dir / "data" / "meta.json") << "{}";
  const std::string base = "model:\n  model_path: " + (dir / "model").string() + "\ndata:\n  train_path: " +
                           (dir / "data").string() + "\ntrain:\n  output_dir: " + (dir / "out").string() +
                           "\n  global_batch_size: 8\n  micro_batch_size: 2\n";
  TrainConfig ok = parse_train_config(base);
  EXPECT_NO_THROW(validate(ok, 1));
  EXPECT_EQ(ok.accumulation_steps(1), 4);
  EXPECT_EQ(ok.accumulation_steps(2), 2);
  EXPECT_THROW(validate(ok, 3), Error);  // 8 is not a multiple of 2 x 3
  auto fails = [&](const std::string& override_text, const std::string& fragment) {
    try {
      validate(parse_train_config(base, {override_text}), 1);
      ADD_FAILURE() << override_text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  fails("data.train_path=/nonexistent", "is not a token dataset");
  fails("model.model_path=/nonexistent", "no config.json");
  fails("model.init_preset=tiny", "exactly one of");
  fails("train.global_batch_size=7", "must be a positive multiple");
  fails("train.lr_warmup_ratio=1.5", "lr_warmup_ratio");
  fails("train.max_steps=0", "max_steps");
  fails("train.eval_steps=10", "needs data.val_path");
  fails("data.synthetic_mix={passkey: 0.7, vt: 0.5}", "add up to");
  fs::remove_all(dir);
}

TEST(TrainConfig, LearningRateSchedule) {
  TrainSection t;
  t.lr = 1.0;
  t.lr_min = 0.1;
  t.max_steps = 100;
  t.lr_warmup_ratio = 0.1;
  t.lr_decay_ratio = 0.5;
  t.lr_decay_style = "cosine";
  EXPECT_DOUBLE_EQ(learning_rate(t, 0), 0.1);  // warmup: (step + 1) / 10
  EXPECT_DOUBLE_EQ(learning_rate(t, 9), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(t, 30), 1.0);  // stable until the last 50 steps
  EXPECT_DOUBLE_EQ(learning_rate(t, 49), 1.0);
  EXPECT_NEAR(learning_rate(t, 74), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 25.0 / 50.0)), 1e-12);
  EXPECT_DOUBLE_EQ(learning_rate(t, 99), 0.1);
  t.lr_decay_style = "linear";
  EXPECT_NEAR(learning_rate(t, 74), 0.1 + 0.9 * (1 - 25.0 / 50.0), 1e-12);
  t.lr_decay_style = "constant";
  EXPECT_DOUBLE_EQ(learning_rate(t, 99), 1.0);
  t.lr_decay_style = "cosine";
  t.lr_decay_ratio = 1.0;  // decay fills everything after warmup
  EXPECT_LT(learning_rate(t, 11), 1.0);
  for (int64_t s = 10; s < 99; ++s) EXPECT_GE(learning_rate(t, s), learning_rate(t, s + 1));
}
