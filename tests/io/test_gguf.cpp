// GGUF: dequantization bit-exact against gguf-py's reference (fixtures from
// scripts/make-gguf-fixtures.py), metadata of every type, malformed files each with their own
// error, and imported llama / qwen3 / qwen2 models scoring exactly like their Hugging Face originals.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "ipt/common/error.h"
#include "ipt/io/gguf.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/gguf_import.h"
#include "ipt/tokenizer/tokenizer.h"
#include "support/temp_dir.h"

using namespace ipt;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(IPT_SOURCE_DIR) / "tests" / "fixtures" / "gguf";

// Same bits (NaN-free data), element for element.
void expect_bit_equal(const torch::Tensor& a, const torch::Tensor& b) {
  ASSERT_EQ(a.sizes(), b.sizes());
  ASSERT_EQ(a.scalar_type(), torch::kFloat32);
  ASSERT_EQ(b.scalar_type(), torch::kFloat32);
  auto ac = a.contiguous(), bc = b.contiguous();
  ASSERT_EQ(std::memcmp(ac.data_ptr(), bc.data_ptr(), ac.numel() * 4), 0)
      << "max |diff| " << (ac - bc).abs().max().item<float>();
}

// A GGUF file built field by field, so each malformed case changes exactly one thing.
struct Builder {
  std::string bytes;
  template <typename T>
  Builder& put(T v) {
    bytes.append(reinterpret_cast<const char*>(&v), sizeof(T));
    return *this;
  }
  Builder& str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes += s;
    return *this;
  }
  Builder& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bytes += "GGUF";
    return put(version).put(n_tensors).put(n_kv);
  }
  Builder& kv_u32(const std::string& key, uint32_t v) { return str(key).put<uint32_t>(4).put(v); }
  // A tensor info: name, dims (ggml order), type, offset.
  Builder& tensor(const std::string& name, std::vector<int64_t> ne, uint32_t type, uint64_t offset) {
    str(name).put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (int64_t n : ne) put(n);
    return put(type).put(offset);
  }
  Builder& pad(size_t alignment = 32) {
    bytes.append((alignment - bytes.size() % alignment) % alignment, '\0');
    return *this;
  }
  Builder& data(size_t n) {
    bytes.append(n, '\x01');
    return *this;
  }
};

io::GgufFile parse(const std::string& bytes) {
  return io::parse_gguf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "test.gguf");
}

void expect_error(const std::string& bytes, const std::string& needle) {
  try {
    parse(bytes);
    ADD_FAILURE() << "no error; expected one containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// A valid file: one key, one F32 tensor [2, 3] (ne = {3, 2}), 24 bytes of data.
std::string valid() {
  Builder b;
  b.header(3, 1, 1).kv_u32("general.alignment", 32).tensor("w", {3, 2}, 0, 0).pad().data(24);
  return b.bytes;
}

torch::Tensor logits_of(model::CausalLM& lm, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  return lm->logits(lm->hidden_states(ids));
}

}  // namespace

TEST(Gguf, DequantizesEveryTypeBitExactly) {
  for (const char* type : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}) {
    SCOPED_TRACE(type);
    const io::GgufFile f = io::read_gguf((kFixtures / "types" / (std::string(type) + ".gguf")).string());
    const io::GgufTensorInfo* data = f.find_tensor("data");
    const io::GgufTensorInfo* expected = f.find_tensor("expected");
    ASSERT_TRUE(data && expected);
    EXPECT_STREQ(io::ggml_type_info(data->type)->name, type);
    EXPECT_EQ(data->shape(), (std::vector<int64_t>{4, 512}));
    expect_bit_equal(f.dequantize(*data), f.dequantize(*expected));
  }
}

TEST(Gguf, ReadsMetadataOfEveryType) {
  const io::GgufFile f = io::read_gguf((kFixtures / "metadata.gguf").string());
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, 64u);
  EXPECT_EQ(f.data_offset % 64, 0u);
  EXPECT_EQ(f.get_int("t.u8"), 200);
  EXPECT_EQ(f.get_int("t.i8"), -100);
  EXPECT_EQ(f.get_int("t.u16"), 60000);
  EXPECT_EQ(f.get_int("t.i16"), -30000);
  EXPECT_EQ(f.get_int("t.u32"), 4000000000LL);
  EXPECT_EQ(f.get_int("t.i32"), -2000000000LL);
  EXPECT_EQ(f.get_float("t.f32"), 0.25);
  EXPECT_TRUE(f.get_bool("t.bool"));
  EXPECT_EQ(f.get_string("t.str"), "h\xc3\xa9llo");
  EXPECT_EQ(f.get_int("t.u64"), int64_t(1) << 40);
  EXPECT_EQ(f.get_int("t.i64"), -(int64_t(1) << 40));
  EXPECT_EQ(f.get_float("t.f64"), 1.0 / 3.0);
  EXPECT_EQ(f.get_strings("t.arr_str"), (std::vector<std::string>{"a", "", "\xc3\xbcn\xc3\xaf"}));
  EXPECT_EQ(f.get_ints("t.arr_i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_floats("t.arr_f32"), (std::vector<double>{0.5, -1.5}));
  EXPECT_TRUE(torch::equal(f.dequantize(*f.find_tensor("t")), torch::arange(6, torch::kFloat32).reshape({2, 3})));
  // Typed getters name the key and both types.
  EXPECT_THROW(f.get_int("missing.key"), Error);
  try {
    f.get_string("t.u8");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'t.u8' must be a string, got uint8"), std::string::npos) << e.what();
  }
}

TEST(Gguf, ParsesAHandBuiltFile) {
  const std::string bytes = valid();
  const io::GgufFile f = parse(bytes);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.tensors[0].bytes, 24u);
  EXPECT_EQ(f.tensors[0].offset, f.data_offset);
  // Version 2 has the same layout.
  std::string v2 = bytes;
  v2[4] = 2;
  EXPECT_EQ(parse(v2).version, 2u);
}

TEST(Gguf, MalformedFilesEachGiveTheirOwnError) {
  expect_error("GGU", "bad magic");
  expect_error("GGML" + valid().substr(4), "bad magic");
  {
    std::string s = valid();
    s[4] = 1;
    expect_error(s, "version 1 is not supported");
  }
  {
    std::string s = valid();
    std::swap(s[4], s[7]);  // big-endian version 3
    expect_error(s, "version 50331648 is not supported");
  }
  expect_error(valid().substr(0, 10), "n_tensors: file ends at byte 10");
  expect_error(Builder().header(3, 0, uint64_t(1) << 60).bytes, "n_kv 1152921504606846976 is impossible");
  expect_error(Builder().header(3, uint64_t(1) << 40, 0).bytes, "n_tensors 1099511627776 is impossible");
  expect_error(Builder().header(3, 0, 1).put<uint64_t>(1000).bytes + std::string(20, 'k'), "metadata key 0: string length 1000 exceeds");
  expect_error(Builder().header(3, 0, 1).str("k").put<uint32_t>(8).put<uint64_t>(uint64_t(1) << 62).bytes,
               "metadata 'k': string length 4611686018427387904 exceeds");
  expect_error(Builder().header(3, 0, 1).str("k").put<uint32_t>(13).put<uint32_t>(0).bytes,
               "metadata 'k': unknown value type 13");
  expect_error(Builder().header(3, 0, 1).str("k").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(uint64_t(1) << 50).bytes,
               "metadata 'k' array length 1125899906842624 is impossible");
  expect_error(Builder().header(3, 0, 1).str("k").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(1).bytes,
               "arrays of arrays");
  expect_error(Builder().header(3, 0, 1).str("k").put<uint32_t>(7).put<uint8_t>(2).bytes, "bool value 2");
  expect_error(Builder().header(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2).bytes, "metadata key 'k' appears twice");
  expect_error(Builder().header(3, 0, 1).kv_u32("general.alignment", 48).bytes, "'general.alignment' = 48 is not a power of two");
  expect_error(Builder().header(3, 0, 1).str("general.alignment").put<uint32_t>(8).str("x").bytes,
               "'general.alignment' must be uint32");
  expect_error(Builder().header(3, 1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0).pad().data(4).bytes,
               "tensor 'w': n_dims 5 is outside [1, 4]");
  expect_error(Builder().header(3, 1, 0).tensor("w", {-3}, 0, 0).pad().data(4).bytes, "tensor 'w': ne[0] = -3 is negative");
  expect_error(Builder().header(3, 1, 0).tensor("w", {32}, 99, 0).pad().data(64).bytes, "tensor 'w': unknown tensor type 99");
  expect_error(Builder().header(3, 1, 0).tensor("w", {33}, 2, 0).pad().data(64).bytes,
               "ne[0] = 33 is not a multiple of the Q4_0 block size 32");
  expect_error(Builder().header(3, 1, 0).tensor("w", {int64_t(1) << 40, int64_t(1) << 40}, 0, 0).pad().data(4).bytes,
               "tensor 'w' size is larger than the file");
  expect_error(Builder().header(3, 1, 0).tensor("w", {3, 2}, 0, 0).pad().data(20).bytes,
               "tensor 'w': offset 0 + 24 bytes runs past the end of the data section (20 bytes)");
  expect_error(Builder().header(3, 1, 0).tensor("w", {3, 2}, 0, uint64_t(1) << 63).pad().data(24).bytes,
               "runs past the end of the data section");
  expect_error(Builder().header(3, 1, 0).tensor("w", {3, 2}, 0, 8).pad().data(64).bytes,
               "tensor 'w': offset 8 is not a multiple of the alignment 32");
  expect_error(Builder().header(3, 2, 0).tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32).pad().data(96).bytes,
               "tensors 'a' and 'b' overlap");
  expect_error(Builder().header(3, 2, 0).tensor("a", {4}, 0, 0).tensor("a", {4}, 0, 32).pad().data(64).bytes,
               "tensor 'a' appears twice");
  // A type the reader knows but cannot dequantize is refused when dequantizing, naming tensor and type.
  const std::string q2k = Builder().header(3, 1, 0).tensor("w", {256}, 10, 0).pad().data(84).bytes;
  const io::GgufFile f = parse(q2k);
  try {
    f.dequantize(f.tensors[0]);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w': tensor type Q2_K cannot be dequantized"), std::string::npos) << e.what();
  }
}

// Every truncation of a valid file is an ipt::Error, never a crash.
TEST(Gguf, EveryTruncationIsAnError) {
  const std::string bytes = valid();
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_THROW(parse(bytes.substr(0, n)), Error) << n << " bytes";
}

TEST(Gguf, PermutationRoundTrips) {
  torch::Tensor w = torch::randn({4 * 8, 5});
  EXPECT_TRUE(torch::equal(model::gguf_unpermute_rows(model::gguf_permute_rows(w, 4), 4), w));
  EXPECT_FALSE(torch::equal(model::gguf_permute_rows(w, 4), w));
}

// The imported model equals its Hugging Face original: same config, the same logits exactly (so the
// q/k un-permutation, the F16 and Q8_0 paths and the name mapping are right), the same tokenizer ids.
TEST(Gguf, ImportedModelsScoreLikeTheirOriginals) {
  for (const char* name : {"tiny-llama", "tiny-qwen3", "tiny-qwen2"}) {
    SCOPED_TRACE(name);
    const io::GgufFile f = io::read_gguf((kFixtures / (std::string(name) + ".gguf")).string());
    model::GgufImport imported = model::import_gguf(f);
    model::ModelConfig config = model::ModelConfig::from_json(imported.config);
    model::CausalLM ours = model::model_from_tensors(config, imported.tensors, {}, name);
    model::CausalLM original = model::load_model((kFixtures / (std::string(name) + "-hf")).string());
    const model::ModelConfig& oc = original->config();
    EXPECT_EQ(config.architecture, oc.architecture);
    EXPECT_EQ(config.head_dim, oc.head_dim);
    EXPECT_EQ(config.num_key_value_heads, oc.num_key_value_heads);
    EXPECT_EQ(config.rope.theta, oc.rope.theta);
    EXPECT_FLOAT_EQ(config.rms_norm_eps, oc.rms_norm_eps);
    EXPECT_EQ(config.tie_word_embeddings, oc.tie_word_embeddings);
    EXPECT_EQ(config.max_position_embeddings, oc.max_position_embeddings);
    EXPECT_EQ(config.eos_token_ids, oc.eos_token_ids);
    EXPECT_EQ(config.qkv_bias(), std::string(name) == "tiny-qwen2");  // Qwen2: q/k/v biases, never an o bias
    EXPECT_FALSE(config.o_bias());
    torch::Tensor ids = torch::randint(0, 1000, {2, 24}, torch::kInt64);
    EXPECT_TRUE(torch::equal(logits_of(ours, ids), logits_of(original, ids)));

    const tok::Tokenizer t = tok::Tokenizer::from_json(imported.tokenizer.dump(), imported.tokenizer_config.dump(), name);
    const tok::Tokenizer reference = tok::Tokenizer::load((kFixtures / (std::string(name) + "-hf")).string());
    std::ifstream texts(fs::path(IPT_SOURCE_DIR) / "tests" / "fixtures" / "tokenizers" / "texts.jsonl");
    int checked = 0;
    for (std::string line; std::getline(texts, line);) {
      const std::string text = nlohmann::json::parse(line).at("text").get<std::string>();
      EXPECT_EQ(t.encode(text), reference.encode(text)) << text;
      ++checked;
    }
    EXPECT_GT(checked, 10);
    EXPECT_EQ(t.bos_id(), reference.bos_id());
    EXPECT_EQ(t.eos_id(), reference.eos_id());
    EXPECT_TRUE(t.config().has_chat_template);
  }
}

// SmolLM2's vocabulary lacks the tokens of a few bytes (control characters): those bytes are
// dropped, as `tokenizers` does without an unk_token; a vocabulary without 'Ġ' is refused.
TEST(Gguf, TokenizerWithoutSomeByteTokensDropsThoseBytes) {
  const io::GgufFile f = io::read_gguf((kFixtures / "tiny-qwen3.gguf").string());
  nlohmann::json tokenizer, config;
  model::import_gguf_tokenizer(f, tokenizer, config);
  const tok::Tokenizer full = tok::Tokenizer::from_json(tokenizer.dump(), config.dump());
  nlohmann::json& vocab = tokenizer["model"]["vocab"];
  vocab.erase("\xc4\x84");  // 'Ą', byte 4 in byte-level spelling
  const tok::Tokenizer partial = tok::Tokenizer::from_json(tokenizer.dump(), config.dump());
  EXPECT_EQ(partial.encode("abc d\x04\x04 e\x04"), full.encode("abc d e"));
  EXPECT_NE(full.encode("abc d\x04\x04 e\x04"), full.encode("abc d e"));
  vocab.erase("\xc4\xa0");  // 'Ġ', the space
  EXPECT_THROW(tok::Tokenizer::from_json(tokenizer.dump(), config.dump()), Error);
}

TEST(Gguf, ImportErrorsNameTheKeyOrTensor) {
  const io::GgufFile f = io::read_gguf((kFixtures / "types" / "F32.gguf").string());
  try {
    model::import_gguf(f);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'general.architecture' = 'test' is not supported"), std::string::npos)
        << e.what();
  }
}

TEST(Gguf, ConvertCommandWritesALoadableModelDir) {
  const fs::path out = fs::temp_directory_path() / ("ipt-gguf-" + ipt::test::process_tag());
  const std::string cmd = std::string(IPT_BINARY_DIR) + "/ipt convert --from-gguf " +
                          (kFixtures / "tiny-qwen3.gguf").string() + " --out " + out.string() +
                          " --dtype bfloat16 --ttt-layers 1 --force > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (const char* file : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(out / file)) << file;
  model::CausalLM lm = model::load_model(out.string());
  EXPECT_TRUE(lm->config().ttt_mode);
  EXPECT_EQ(lm->config().ttt_layers, (std::vector<int64_t>{1}));
  EXPECT_EQ(lm->config().torch_dtype, "bfloat16");
  tok::Tokenizer::load(out.string());
  fs::remove_all(out);
}
