// Tokenizer tests: exact ids against Hugging Face's `tokenizers` (goldens from
// scripts/make-goldens.py for the real Qwen3 tokenizer, a tokenizer trained by our own trainer, a
// LLaMA-3-pipeline tokenizer trained by `tokenizers`, and the real Llama 3.2 tokenizer when present),
// round trips, invalid UTF-8, the pipeline components one by one, and errors for what is not supported.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/tokenizer/bpe.h"
#include "ipt/tokenizer/byte_level.h"
#include "ipt/tokenizer/normalizer.h"
#include "ipt/tokenizer/regex.h"
#include "ipt/tokenizer/tokenizer.h"
#include "ipt/tokenizer/trainer.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::tok {
namespace {

using json = nlohmann::json;

const std::string kFixtures = std::string(IPT_SOURCE_DIR) + "/tests/fixtures/tokenizers";

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// One line of a *_expected.jsonl: a text, or raw bytes (hex, not valid UTF-8) with the string
// Python's errors="replace" makes of them, and the ids `tokenizers` gives (for bytes: for that
// string), with or without the post-processor's template.
struct Golden {
  std::string text;      // what is encoded (raw bytes for hex lines)
  std::string repaired;  // what decoding gives back before normalization
  std::vector<int32_t> ids;
  bool add_special_tokens = false;
};

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<Golden> read_goldens(const std::string& file) {
  std::vector<Golden> goldens;
  std::istringstream lines(read(kFixtures + "/" + file));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    json j = json::parse(line);
    Golden g;
    if (j.contains("hex")) {
      g.text = from_hex(j["hex"].get<std::string>());
      g.repaired = j["repaired"].get<std::string>();
    } else {
      g.text = g.repaired = j["text"].get<std::string>();
    }
    g.ids = j["ids"].get<std::vector<int32_t>>();
    g.add_special_tokens = j.value("add_special_tokens", false);
    goldens.push_back(std::move(g));
  }
  return goldens;
}

std::string nfc(const std::string& s) {
  auto changed = normalize(s, NormalForm::kNFC);
  return changed ? *changed : s;
}

const Tokenizer& qwen3() {
  static const Tokenizer tokenizer = Tokenizer::load(kFixtures + "/qwen3");
  return tokenizer;
}

const Tokenizer& trained() {
  static const Tokenizer tokenizer = Tokenizer::load(kFixtures + "/trained");
  return tokenizer;
}

// The trained tokenizer.json, edited by `edit`, loaded.
Tokenizer variant(const std::function<void(json&)>& edit) {
  json j = json::parse(read(kFixtures + "/trained/tokenizer.json"));
  edit(j);
  return Tokenizer::from_json(j.dump(), "", "variant.json");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Random valid UTF-8 drawn from ranges that stress the pipeline.
std::string random_text(std::mt19937& rng, size_t code_points) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E}, {0x20, 0x7E}, {0x20, 0x7E}, {0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0x24F}, {0x300, 0x36F},
      {0x370, 0x3FF}, {0x400, 0x4FF}, {0x590, 0x6FF}, {0x900, 0x97F}, {0xE00, 0xE7F}, {0x1100, 0x11FF},
      {0x2000, 0x206F}, {0x3000, 0x30FF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xFE00, 0xFE0F}, {0xFF00, 0xFFEF},
      {0x1F300, 0x1FAFF}, {0x10000, 0x10FFFF}, {0x80, 0x9F}, {0x0, 0x1F}};
  std::string out;
  std::uniform_int_distribution<size_t> pick(0, ranges.size() - 1);
  for (size_t i = 0; i < code_points; ++i) {
    auto [lo, hi] = ranges[pick(rng)];
    char32_t c = std::uniform_int_distribution<uint32_t>(lo, hi)(rng);
    if (c >= 0xD800 && c <= 0xDFFF) c = 'x';
    append_utf8(out, c);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Goldens

// Every golden: the same ids (invalid UTF-8 included), and decoding gives the text back (after the
// tokenizer's NFC normalizer where it has one). Returns how many lines were checked.
size_t check_goldens(const Tokenizer& tok, const std::string& file, bool nfc_normalizer) {
  const auto goldens = read_goldens(file);
  size_t invalid = 0, templated = 0;
  for (const Golden& g : goldens) {
    EXPECT_EQ(tok.encode(g.text, g.add_special_tokens), g.ids) << file << ": " << g.repaired;
    invalid += g.text != g.repaired;
    templated += g.add_special_tokens;
    if (g.add_special_tokens) continue;
    EXPECT_EQ(tok.decode(g.ids), nfc_normalizer ? nfc(g.repaired) : g.repaired) << file << ": " << g.repaired;
  }
  EXPECT_GE(invalid, 10u) << file;
  EXPECT_EQ(templated, 1u) << file;
  return goldens.size();
}

TEST(TokenizerGolden, Qwen3MatchesTokenizers) {
  EXPECT_GE(check_goldens(qwen3(), "qwen3_expected.jsonl", true), 60u);
}

TEST(TokenizerGolden, TrainedTokenizerMatchesTokenizers) {
  // Our trainer's file, read by `tokenizers`: the canonical implementation loads what we write.
  EXPECT_GE(check_goldens(trained(), "trained_expected.jsonl", true), 60u);
}

TEST(TokenizerGolden, Llama3PipelineMatchesTokenizers) {
  // Trained by `tokenizers` with LLaMA-3's pipeline: its split regex (digits in threes), ByteLevel
  // without regex, ignore_merges, no normalizer, a <|begin_of_text|> template in a Sequence.
  const Tokenizer tok = Tokenizer::load(kFixtures + "/llama3_style");
  EXPECT_GE(check_goldens(tok, "llama3_style_expected.jsonl", false), 60u);
}

TEST(TokenizerGolden, RealLlama32MatchesTokenizers) {
  // The real file is not committed (Llama license, 9 MB): make-goldens.py puts it in .venv/cache/.
  const std::string path = std::string(IPT_SOURCE_DIR) + "/.venv/cache/llama3.2/tokenizer.json";
  if (!std::ifstream(path)) GTEST_SKIP() << path << " not present (scripts/make-goldens.py --only tokenizers)";
  const Tokenizer tok = Tokenizer::load(path);
  EXPECT_GE(tok.vocab_size(), 128256);
  EXPECT_GE(check_goldens(tok, "llama3.2_expected.jsonl", false), 60u);
}

TEST(TokenizerGolden, TrainerReproducesCommittedTokenizer) {
  TrainOptions options;
  options.vocab_size = 1000;
  BpeTrainer trainer(options);
  trainer.feed(read(kFixtures + "/train_corpus.txt"));
  const TrainResult result = trainer.train();
  EXPECT_EQ(result.tokenizer_json, read(kFixtures + "/trained/tokenizer.json"));
  EXPECT_EQ(result.config_json, read(kFixtures + "/trained/tokenizer_config.json"));
  EXPECT_EQ(result.merges, 1000u - 256u - 3u);
  // Training twice gives the same file.
  EXPECT_EQ(trainer.train().tokenizer_json, result.tokenizer_json);
}

// ---------------------------------------------------------------------------------------------
// Round trips and invalid input

TEST(TokenizerRoundTrip, RandomValidUtf8) {
  // No normalizer: decode(encode(x)) == x exactly; with Qwen3's NFC: == NFC(x).
  const Tokenizer raw = variant([](json& j) { j["normalizer"] = nullptr; });
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    const std::string text = random_text(rng, 1 + i % 97);
    ASSERT_TRUE(is_valid_utf8(text));
    EXPECT_EQ(raw.decode(raw.encode(text)), text);
    EXPECT_EQ(qwen3().decode(qwen3().encode(text)), nfc(text));
  }
}

TEST(TokenizerRoundTrip, SpecialTokensStayWholeAndSkippable) {
  const std::string text = "<|im_start|>user\nhi<|im_end|><|endoftext|>";
  const auto ids = qwen3().encode(text);
  ASSERT_EQ(ids.front(), 151644);
  EXPECT_EQ(qwen3().decode(ids), text);
  EXPECT_EQ(qwen3().decode(ids, /*skip_special_tokens=*/true), "user\nhi");
  // "<think>" is added but not special: kept when skipping specials.
  EXPECT_EQ(qwen3().decode(qwen3().encode("<think>x</think>"), true), "<think>x</think>");
  for (int32_t id : qwen3().encode("<|im_start <|im_end")) EXPECT_LT(id, 151643);
}

TEST(TokenizerUtf8, InvalidBytesBecomeReplacementCharacters) {
  // One U+FFFD per maximal invalid subpart (Unicode ch. 3; Rust from_utf8_lossy, Python "replace").
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(to_valid_utf8("a\xFF" "b"), "a" + fffd + "b");
  EXPECT_EQ(to_valid_utf8("\xE0\x80"), fffd + fffd);                // E0 needs A0..BF next
  EXPECT_EQ(to_valid_utf8("\xE1\x80"), fffd);                       // truncated 3-byte sequence
  EXPECT_EQ(to_valid_utf8("\xF0\x9F\x98" "x"), fffd + "x");         // truncated emoji
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), fffd + fffd + fffd);     // surrogate
  EXPECT_EQ(to_valid_utf8("\xC0\xAF"), fffd + fffd);                // overlong
  EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
  EXPECT_EQ(to_valid_utf8("ok \xC3\xA9"), "ok \xC3\xA9");
  // Encoding invalid input = encoding its repaired form; the round trip gives the repaired form.
  const std::string bad = "caf\xC3 \xFF\xFE<|im_end|>\x80x";
  EXPECT_EQ(qwen3().encode(bad), qwen3().encode(to_valid_utf8(bad)));
  EXPECT_EQ(qwen3().decode(qwen3().encode(bad)), to_valid_utf8(bad));
  // Decoding ids that end inside a character repairs too; decode_bytes gives the raw bytes.
  const std::string rare = "𓀀𓀁𠀀";
  const auto ids = qwen3().encode(rare);
  int cut_inside = 0;
  for (size_t k = 0; k <= ids.size(); ++k) {
    const std::vector<int32_t> prefix(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k));
    EXPECT_TRUE(is_valid_utf8(qwen3().decode(prefix)));
    cut_inside += !is_valid_utf8(qwen3().decode_bytes(prefix));
  }
  EXPECT_GT(cut_inside, 0);
  EXPECT_EQ(qwen3().decode_bytes(ids), rare);
}

TEST(TokenizerUtf8, ByteLevelAlphabet) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = byte_to_char(static_cast<unsigned char>(b));
    EXPECT_TRUE(seen.insert(c).second);
    EXPECT_EQ(char_to_byte(c), std::optional<unsigned char>(static_cast<unsigned char>(b)));
  }
  EXPECT_EQ(byte_to_char(' '), 0x120u);   // 'Ġ'
  EXPECT_EQ(byte_to_char('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(byte_to_char('A'), char32_t('A'));
  EXPECT_EQ(byte_level_decode(byte_level_encode(std::string("\x00\xFF a\n", 5))), std::string("\x00\xFF a\n", 5));
}

// ---------------------------------------------------------------------------------------------
// Parallel encoding

TEST(TokenizerParallel, SameIdsAsSingleThread) {
  ASSERT_TRUE(qwen3().parallel_safe());
  std::string text;
  std::mt19937 rng(7);
  for (int i = 0; i < 400; ++i) {
    for (const Golden& g : read_goldens(i % 2 ? "qwen3_expected.jsonl" : "trained_expected.jsonl"))
      if (rng() % 5 == 0) text += g.text + (rng() % 2 ? "\n" : "\n\n  ");
    text += random_text(rng, 50) + "\nx\n";
  }
  ASSERT_GT(text.size(), 300000u);
  const auto single = qwen3().encode(text);
  EXPECT_EQ(qwen3().encode_parallel(text, 2), single);
  EXPECT_EQ(qwen3().encode_parallel(text, 5), single);
  EXPECT_EQ(trained().encode_parallel(text, 3), trained().encode(text));
}

// ---------------------------------------------------------------------------------------------
// Components

TEST(TokenizerRegex, OnigurumaTranslation) {
  EXPECT_EQ(translate_oniguruma("\\s+(?!\\S)", "t"), "\\p{White_Space}+(?!\\P{White_Space})");
  EXPECT_EQ(translate_oniguruma("(?i:'s|'t)", "t"), "(?:'[sS\xC5\xBF]|'[tT])");  // U+017F folds to s
  EXPECT_EQ(translate_oniguruma("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+", "t"), "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+");
  EXPECT_NE(error_of([] { translate_oniguruma("[a[b]]", "t"); }).find("not supported"), std::string::npos);
  EXPECT_NE(error_of([] { translate_oniguruma("(?i)abc", "t"); }).find("not supported"), std::string::npos);
  EXPECT_NE(error_of([] { Regex::from_oniguruma("(unclosed", "t"); }).find("invalid regex"), std::string::npos);

  RegexScratch scratch;
  std::vector<std::pair<uint32_t, uint32_t>> m;
  // U+0085 is White_Space (Oniguruma, Rust, transformers.js) though not in PCRE2's own \s.
  Regex::from_oniguruma("\\s+", "t").find_all("a\xC2\x85 b", scratch, m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], std::make_pair(1u, 4u));
  // Case folding in (?i:...) as Oniguruma's (the Rust `tokenizers`): "'S" and "'ſ" match, "'x" not;
  // the Kelvin sign folds to k.
  Regex contractions = Regex::from_oniguruma("(?i:'s)", "t");
  contractions.find_all("'S 'ſ 'x", scratch, m);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], std::make_pair(0u, 2u));
  EXPECT_EQ(m[1], std::make_pair(3u, 6u));
  Regex::from_oniguruma("(?i:k)", "t").find_all("\xE2\x84\xAA", scratch, m);
  EXPECT_EQ(m.size(), 1u);
  // A literal pattern escapes metacharacters; a long run of spaces does not exhaust the JIT stack.
  Regex::literal("a.b", "t").find_all("axb a.b", scratch, m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].first, 4u);
  const std::string spaces(1 << 20, ' ');
  Regex::from_oniguruma("\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", "t").find_all(spaces + "x", scratch, m);
  ASSERT_EQ(m.size(), 2u);  // all spaces but the last, then the last (it precedes "x")
  EXPECT_EQ(m[0], std::make_pair(0u, static_cast<uint32_t>(spaces.size() - 1)));
}

TEST(TokenizerNormalizer, FastPathAgreesWithUtf8proc) {
  // Every code point the fast path passes through is NFC on its own and next to a starter.
  for (char32_t c : std::vector<char32_t>{0x41, 0xE9, 0x2FF, 0x4E00, 0x9FFF, 0xAC00, 0xD7A3, 0x3042, 0x30AB,
                                          0x3000, 0xFF21, 0x1F600, 0x200D, 0xFE0F}) {
    std::string s = "a";
    append_utf8(s, c);
    s += "b";
    append_utf8(s, c);
    EXPECT_FALSE(normalize(s, NormalForm::kNFC).has_value()) << uint32_t(c);
  }
  EXPECT_EQ(nfc("cafe\xCC\x81"), "caf\xC3\xA9");
  // NFC of stretches equals NFC of the whole (NFC(NFD(x)) runs utf8proc on all of x).
  std::mt19937 rng(5);
  for (int i = 0; i < 300; ++i) {
    const std::string text = random_text(rng, 1 + i % 61);
    auto nfd = normalize(text, NormalForm::kNFD);
    EXPECT_EQ(nfc(text), nfc(nfd ? *nfd : text));
  }
  EXPECT_EQ(nfc("\xE3\x81\x8B\xE3\x82\x99"), "\xE3\x81\x8C");  // か + voicing mark -> が
  EXPECT_EQ(*normalize("\xEF\xAC\x81", NormalForm::kNFKC), "fi");
}

TEST(TokenizerBpe, ScanAndHeapMergeAlike) {
  // Random merge tables over a small alphabet; both algorithms must pick the same merges.
  std::mt19937 rng(99);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<std::tuple<int32_t, int32_t, int32_t>> merges;
    int32_t next = 8;
    for (int i = 0; i < 60; ++i) {
      const int32_t a = static_cast<int32_t>(rng() % next), b = static_cast<int32_t>(rng() % next);
      merges.emplace_back(a, b, next++);
    }
    std::vector<int32_t> bytes(256);
    for (int i = 0; i < 256; ++i) bytes[i] = i % 8;
    BpeModel model(bytes, merges, {}, false);
    for (int w = 0; w < 200; ++w) {
      std::vector<int32_t> word(1 + rng() % 300);
      for (auto& s : word) s = static_cast<int32_t>(rng() % 8);
      auto by_scan = word, by_heap = word;
      model.merge_by_scan(by_scan);
      model.merge_by_heap(by_heap);
      ASSERT_EQ(by_scan, by_heap);
    }
  }
}

TEST(TokenizerBpe, HugePreTokensAreFast) {
  // One pre-token of 200 kB of punctuation, 256 kB runs of spaces: O(n log n), exact round trip.
  const std::string dashes(200000, '=');
  const std::string spaces(1 << 18, ' ');
  EXPECT_EQ(qwen3().decode(qwen3().encode(dashes)), dashes);
  EXPECT_EQ(qwen3().decode(qwen3().encode(spaces + "x" + spaces)), spaces + "x" + spaces);
}

TEST(TokenizerConfig, Qwen3Config) {
  const auto& c = qwen3().config();
  EXPECT_FALSE(c.bos_token.has_value());
  EXPECT_EQ(c.eos_token, std::optional<std::string>("<|im_end|>"));
  EXPECT_EQ(qwen3().eos_id(), std::optional<int32_t>(151645));
  EXPECT_EQ(qwen3().pad_id(), std::optional<int32_t>(151643));
  EXPECT_TRUE(c.has_chat_template);
  EXPECT_EQ(qwen3().vocab_size(), 151669u);
  EXPECT_EQ(qwen3().added_tokens().size(), 26u);
  EXPECT_EQ(qwen3().token_to_id("Ġthe"), std::optional<int32_t>(279));
  EXPECT_EQ(qwen3().id_to_token(279), "Ġthe");
  EXPECT_EQ(trained().eos_id(), trained().token_to_id("<|endoftext|>"));
  EXPECT_TRUE(trained().config().has_chat_template);
}

TEST(TokenizerFeatures, IgnoreMergesAndTemplate) {
  // A vocab word unreachable by merges: whole with ignore_merges (LLaMA-3), bytes without.
  auto add_word = [](json& j) { j["model"]["vocab"]["zqzq"] = 5000; };
  const Tokenizer plain = variant(add_word);
  const Tokenizer whole = variant([&](json& j) {
    add_word(j);
    j["model"]["ignore_merges"] = true;
  });
  EXPECT_EQ(whole.encode("zqzq"), std::vector<int32_t>{5000});
  EXPECT_GT(plain.encode("zqzq").size(), 1u);
  // TemplateProcessing (LLaMA-3's BOS) under a Sequence post-processor.
  const Tokenizer framed = variant([](json& j) {
    j["post_processor"] = json::parse(R"({"type":"Sequence","processors":[
      {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false},
      {"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|endoftext|>","type_id":0}},
        {"Sequence":{"id":"A","type_id":0}}],"pair":[],"special_tokens":{"<|endoftext|>":
        {"id":"<|endoftext|>","ids":[997],"tokens":["<|endoftext|>"]}}}]})");
  });
  const auto body = framed.encode("hi");
  auto with = framed.encode("hi", true);
  ASSERT_EQ(with.size(), body.size() + 1);
  EXPECT_EQ(with[0], 997);
  // GPT-2 style: ByteLevel with its own regex and a prefix space, no Split.
  const Tokenizer gpt2 = variant([](json& j) {
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  });
  EXPECT_EQ(gpt2.encode("hello"), gpt2.encode(" hello"));
  EXPECT_FALSE(gpt2.parallel_safe());
  EXPECT_EQ(gpt2.decode(gpt2.encode("a  b\n\nc")), " a  b\n\nc");
}

TEST(TokenizerFeatures, SplitBehaviors) {
  auto with_split = [](const std::string& behavior, bool invert) {
    return variant([&](json& j) {
      j["normalizer"] = nullptr;
      j["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers",
                             {{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}},
                              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    });
  };
  auto pieces = [](const Tokenizer& t, const std::string& text) {
    std::vector<std::string> out;
    t.pre_tokenize(text, [&](std::string_view p, int32_t) { out.emplace_back(p); });
    return out;
  };
  using V = std::vector<std::string>;
  const std::string text = "a-b--c-";
  EXPECT_EQ(pieces(with_split("Isolated", false), text), (V{"a", "-", "b", "-", "-", "c", "-"}));
  EXPECT_EQ(pieces(with_split("Removed", false), text), (V{"a", "b", "c"}));
  EXPECT_EQ(pieces(with_split("MergedWithPrevious", false), text), (V{"a-", "b-", "-", "c-"}));
  EXPECT_EQ(pieces(with_split("MergedWithNext", false), text), (V{"a", "-b", "-", "-c", "-"}));
  EXPECT_EQ(pieces(with_split("Contiguous", false), text), (V{"a", "-", "b", "--", "c", "-"}));
  EXPECT_EQ(pieces(with_split("Removed", true), text), (V{"-", "-", "-", "-"}));  // each match on its own
}

TEST(TokenizerFeatures, AddedTokenFlags) {
  auto with_token = [](const json& token) {
    return variant([&](json& j) {
      json t = token;
      t["id"] = 1000;
      t["special"] = true;
      t["normalized"] = false;
      j["added_tokens"].push_back(t);
    });
  };
  const Tokenizer lstrip = with_token({{"content", "<m>"}, {"lstrip", true}, {"rstrip", false}, {"single_word", false}});
  const Tokenizer rstrip = with_token({{"content", "<m>"}, {"lstrip", false}, {"rstrip", true}, {"single_word", false}});
  const Tokenizer word = with_token({{"content", "ab"}, {"lstrip", false}, {"rstrip", false}, {"single_word", true}});
  auto cat = [](std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const Tokenizer& t = trained();
  EXPECT_EQ(lstrip.encode("x  <m> y"), cat(cat(t.encode("x"), {1000}), t.encode(" y")));
  EXPECT_EQ(rstrip.encode("x <m>  y"), cat(cat(t.encode("x "), {1000}), t.encode("y")));
  EXPECT_EQ(word.encode("xab ab"), cat(cat(t.encode("xab "), {1000}), {}));
  EXPECT_EQ(word.encode("ab_"), t.encode("ab_"));
  // A normalized added token matches the NFC form of its content.
  const Tokenizer normalized = variant([](json& j) {
    j["added_tokens"].push_back({{"id", 1000}, {"content", "caf\xC3\xA9"}, {"special", false}, {"normalized", true}});
  });
  EXPECT_EQ(normalized.encode("cafe\xCC\x81!"), cat({1000}, t.encode("!")));
}

TEST(TokenizerErrors, UnsupportedComponentsAreNamed) {
  auto error_with = [](const std::function<void(json&)>& edit) { return error_of([&] { variant(edit); }); };
  EXPECT_NE(error_with([](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; })
                .find("pre_tokenizer type 'Metaspace' is not supported"),
            std::string::npos);
  EXPECT_NE(error_with([](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }).find("normalizer type 'Lowercase'"),
            std::string::npos);
  EXPECT_NE(error_with([](json& j) { j["model"]["type"] = "WordPiece"; }).find("model type 'WordPiece'"), std::string::npos);
  EXPECT_NE(error_with([](json& j) { j["decoder"] = {{"type", "Metaspace"}}; }).find("decoder type 'Metaspace'"),
            std::string::npos);
  EXPECT_NE(error_with([](json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; })
                .find("post_processor type 'RobertaProcessing'"),
            std::string::npos);
  EXPECT_NE(error_with([](json& j) { j["model"]["dropout"] = 0.1; }).find("dropout"), std::string::npos);
  EXPECT_NE(error_with([](json& j) { j["model"]["merges"].push_back("nope notatoken"); }).find("not in the vocab"),
            std::string::npos);
  EXPECT_NE(error_with([](json& j) { j["model"]["merges"].push_back(json::array({"a", "b", "c"})); }).find("merges["),
            std::string::npos);
  EXPECT_NE(error_with([](json& j) { j["model"]["vocab"].erase("Ġ"); }).find("byte-level token"), std::string::npos);
  EXPECT_NE(error_with([](json& j) {
              j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "(?<name>x)"}};
            }).find("not supported"),
            std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_json("{not json"); }).find("malformed"), std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::load("/nonexistent/dir"); }).find("/nonexistent/dir"), std::string::npos);
  EXPECT_NE(error_of([] { qwen3().decode({1 << 29}); }).find("not in the vocabulary"), std::string::npos);
  EXPECT_NE(error_of([] { qwen3().decode({-1}); }).find("not in the vocabulary"), std::string::npos);
  TrainOptions tiny;
  tiny.vocab_size = 100;
  EXPECT_NE(error_of([&] { BpeTrainer trainer(tiny); }).find("--vocab-size must be at least 259"), std::string::npos);
}

TEST(TokenizerTrainer, LearnsFrequentWordsFirst) {
  TrainOptions options;
  options.vocab_size = 256 + 3 + 9;  // "hello" takes 4 merges, " world" 5
  BpeTrainer trainer(options);
  std::string text;
  for (int i = 0; i < 100; ++i) text += "hello world\n<|endoftext|>";
  for (int i = 0; i < 3; ++i) text += "rare\n";
  trainer.feed(text);
  const TrainResult result = trainer.train();
  const Tokenizer t = Tokenizer::from_json(result.tokenizer_json, result.config_json, "trained");
  EXPECT_EQ(t.encode("hello"), std::vector<int32_t>{*t.token_to_id("hello")});
  EXPECT_EQ(t.encode(" world"), std::vector<int32_t>{*t.token_to_id("Ġworld")});
  EXPECT_EQ(t.encode("<|endoftext|>"), std::vector<int32_t>{265});
  EXPECT_FALSE(t.token_to_id("ra").has_value());  // rarer than every pair of the frequent words
  EXPECT_FALSE(t.token_to_id("<|").has_value());      // special tokens are not learnt from
}

}  // namespace
}  // namespace ipt::tok
