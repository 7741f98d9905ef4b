// The table of TTT settings (model/ttt_keys.h): every key round-trips through config.json, is
// documented, and refuses wrong values with an error that names where the value came from.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/model/config.h"
#include "ipt/model/presets.h"
#include "ipt/model/ttt_keys.h"
#include "support/expect_error.h"

namespace ipt::model {
namespace {

using json = nlohmann::json;

// The `ipt init --preset test` shape: 2 layers, so TTT layer lists stay within [0, 2).
ModelConfig small_config() { return preset_config("test", "llama", 64); }

// A valid value of the key's type that differs from `c`'s.
json other_value(const ModelConfig& c, const TttKey& key) {
  const json now = get_ttt_key(c, key);
  if (!key.choices.empty()) return key.choices[0] == now ? key.choices[1] : key.choices[0];
  if (now.is_boolean()) return !now.get<bool>();
  if (now.is_number_integer()) return now.get<int64_t>() + 3;
  if (now.is_number()) return 0.5;  // in range for lr, clip and decay, and none of their defaults
  return std::vector<int64_t>{1};
}

TEST(TttKeys, EveryKeyRoundTripsThroughConfigJson) {
  for (const TttKey& key : ttt_keys()) {
    SCOPED_TRACE(key.name);
    ModelConfig c = small_config();
    const json value = other_value(c, key);
    ASSERT_NE(value, get_ttt_key(c, key));
    set_ttt_key(c, key, value, key.name);
    EXPECT_EQ(get_ttt_key(c, key), value);
    const json written = c.to_json();
    ASSERT_TRUE(written.contains(key.name));
    EXPECT_EQ(written.at(key.name), value);
    const ModelConfig back = ModelConfig::from_json(written);
    EXPECT_EQ(get_ttt_key(back, key), value);
    EXPECT_EQ(back.to_json(), written);
  }
}

TEST(TttKeys, TheOfficialUpdateWritesNoDecayKey) {
  ModelConfig c = small_config();
  EXPECT_FALSE(c.to_json().contains("ttt_decay"));  // absent = the official update, as the official code reads it
  c.ttt_decay = 0.9;
  EXPECT_EQ(c.to_json().at("ttt_decay"), 0.9);
}

TEST(TttKeys, WrongValuesAreErrorsNamingTheSourceAndLeaveTheConfigAlone) {
  ModelConfig c = small_config();
  const json before = c.to_json();
  auto refused = [&](const char* name, const json& value, const std::string& fragment) {
    SCOPED_TRACE(std::string(name) + " = " + value.dump());
    test::expect_error([&] { set_ttt_key(c, *find_ttt_key(name), value, std::string("X.") + name); },
                       std::string("X.") + name + fragment);
    EXPECT_EQ(c.to_json(), before);
  };
  refused("ttt_lr", "fast", " must be a number, got \"fast\"");
  refused("ttt_chunk", 1.5, " must be an integer, got 1.5");
  refused("ttt_chunk", 0, " must be > 0, got 0");
  refused("ttt_mode", 1, " must be true or false");
  refused("ttt_layers", json::array({0, 1.5}), " must be a list of layer indices");
  refused("ttt_target", "tokens", ": 'tokens' is not one of hidden_states or input_embed");
  refused("ttt_decay", 0.0, " must be in (0, 1]");
  refused("ttt_decay", 1.5, " must be in (0, 1]");
  refused("ttt_clip", -1.0, " must be >= 0, got -1");
  EXPECT_EQ(find_ttt_key("ttt_speed"), nullptr);
}

TEST(TttKeys, CommandLineTextParsesToTheKeysType) {
  auto parse = [](const char* name, const std::string& text) {
    return parse_ttt_text(*find_ttt_key(name), text, "--flag");
  };
  EXPECT_EQ(parse("ttt_layers", "0,6,12"), json::array({0, 6, 12}));
  EXPECT_EQ(parse("ttt_layers", "5"), json::array({5}));
  EXPECT_EQ(parse("ttt_proj", "off"), false);
  EXPECT_EQ(parse("ttt_decode_update", "on"), true);
  EXPECT_EQ(parse("ttt_lr", "0.03"), 0.03);
  EXPECT_EQ(parse("ttt_chunk", "512"), 512);
  EXPECT_EQ(parse("ttt_target", "input_embed"), "input_embed");
  test::expect_error([&] { parse("ttt_chunk", "512x"); }, "--flag must be an integer, got '512x'");
  test::expect_error([&] { parse("ttt_lr", "0.1,0.2"); }, "--flag must be a number, got '0.1,0.2'");
  test::expect_error([&] { parse("ttt_layers", "1,,2"); }, "--flag must be a list of layer indices");
  test::expect_error([&] { parse("ttt_proj", "maybe"); }, "--flag must be true or false, got 'maybe'");
  EXPECT_EQ(ttt_flag_name(*find_ttt_key("ttt_conv_padding")), "--ttt-conv-padding");
}

// docs/models.md lists the keys a user can set; the table is what the code reads.
TEST(TttKeys, EveryKeyIsDocumented) {
  std::ifstream in(std::string(IPT_SOURCE_DIR) + "/docs/models.md");
  ASSERT_TRUE(in);
  std::stringstream text;
  text << in.rdbuf();
  for (const TttKey& key : ttt_keys())
    EXPECT_NE(text.str().find(std::string("`") + key.name + "`"), std::string::npos)
        << key.name << " is not in docs/models.md";
}

}  // namespace
}  // namespace ipt::model
