// Chat templates rendered byte for byte as transformers renders them: the goldens come from
// scripts/make-chat-goldens.py (transformers' render_jinja_template, the function
// apply_chat_template(..., tokenize=False) calls) on eight real templates
// (tests/fixtures/chat_templates/README.md names their models and licenses).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/infer/chat.h"
#include "ipt/infer/jinja/template.h"
#include "ipt/io/gguf.h"

using namespace ipt;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

const fs::path kDir = fs::path(IPT_SOURCE_DIR) / "tests/fixtures/chat_templates";

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const ojson& goldens() {
  static const ojson g = ojson::parse(slurp(kDir / "goldens.json"));
  return g;
}

infer::ChatTemplate template_for(const ojson& c) {
  std::map<std::string, std::string> special;
  for (const auto& [k, v] : c["special_tokens"].items()) special[k] = v.get<std::string>();
  const std::string name = c["template"].get<std::string>();
  return infer::ChatTemplate(slurp(kDir / name), special, name);
}

std::string render(const ojson& c) {
  infer::ChatRenderOptions o;
  o.add_generation_prompt = c["add_generation_prompt"].get<bool>();
  o.tools = c["tools"];
  o.variables = c["variables"];
  return template_for(c).render_json(c["messages"], o);
}

}  // namespace

TEST(ChatGoldens, EveryCaseIsByteIdenticalToTransformers) {
  std::set<std::string> templates;
  int compared = 0;
  for (const auto& c : goldens()["cases"]) {
    const std::string what = c["template"].get<std::string>() + " / " + c["case"].get<std::string>();
    templates.insert(c["template"].get<std::string>());
    if (c.contains("expected")) {
      EXPECT_EQ(render(c), c["expected"].get<std::string>()) << what;
    } else {  // transformers raised: so must we, with the message of a raise_exception (TemplateError)
      try {
        render(c);
        ADD_FAILURE() << what << ": rendered, but transformers raised " << c["error"];
      } catch (const Error& e) {
        if (c["error_type"] == "TemplateError")
          EXPECT_NE(std::string(e.what()).find(c["error"].get<std::string>()), std::string::npos) << what << ": " << e.what();
      }
    }
    ++compared;
  }
  EXPECT_GE(templates.size(), 8u);
  EXPECT_GE(compared, 55);
}

TEST(ChatGoldens, CoverToolsThinkingAndTheSmolLMDefaultSystemPrompt) {
  bool tools = false, thinking_on = false, thinking_off = false, smol_default = false;
  for (const auto& c : goldens()["cases"]) {
    if (!c.contains("expected")) continue;
    const std::string expected = c["expected"].get<std::string>();
    if (!c["tools"].is_null() && expected.find("get_weather") != std::string::npos) tools = true;
    if (c["variables"].value("enable_thinking", true) == false && expected.find("<think>\n\n</think>") != std::string::npos)
      thinking_off = true;
    if (c["variables"].value("enable_thinking", false) == true) thinking_on = true;
    if (c["template"] == "smollm2-135m-instruct.jinja" &&
        expected.find("You are a helpful AI assistant named SmolLM, trained by Hugging Face") != std::string::npos)
      smol_default = true;
  }
  EXPECT_TRUE(tools);
  EXPECT_TRUE(thinking_on);
  EXPECT_TRUE(thinking_off);
  EXPECT_TRUE(smol_default);
}

// Small templates (expressions, filters, tests, whitespace control, scoping) against transformers'
// Jinja environment itself: the same text, or an error where it raised one.
TEST(ChatGoldens, SmallTemplatesMatchTransformersJinjaEnvironment) {
  const ojson g = ojson::parse(slurp(kDir / "jinja_goldens.json"));
  const infer::jinja::Value vars = infer::jinja::Value::from_json(g["variables"]);
  int errors = 0;
  for (const auto& c : g["cases"]) {
    const std::string source = c["template"].get<std::string>();
    if (c.contains("expected")) {
      try {
        EXPECT_EQ(infer::jinja::Template(source, "t").render(vars.dict()), c["expected"].get<std::string>()) << source;
      } catch (const Error& e) {
        ADD_FAILURE() << source << ": " << e.what();
      }
    } else {
      EXPECT_THROW(infer::jinja::Template(source, "t").render(vars.dict()), Error) << source << " (transformers: " << c["error"] << ")";
      ++errors;
    }
  }
  EXPECT_GE(g["cases"].size(), 90u);
  EXPECT_GE(errors, 5);
}

// The SmolLM2 GGUF carries the template the fixture holds (so the goldens are that model's).
TEST(ChatGoldens, SmolLM2GgufCarriesTheFixtureTemplate) {
  const char* cache = std::getenv("IPT_CACHE");
  const char* home = std::getenv("HOME");
  const fs::path path = (cache && *cache ? fs::path(cache) : fs::path(home ? home : "") / ".cache" / "inplace-ttt") /
                        "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not present (scripts/get-models.sh fetches it)";
  const io::GgufFile gguf = io::read_gguf(path.string());
  EXPECT_EQ(gguf.get_string("tokenizer.chat_template"), slurp(kDir / "smollm2-135m-instruct.jinja"));
}
