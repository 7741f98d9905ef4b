// Context parallelism across real processes: `ipt score --nproc-per-node N --cp-size N` (Gloo over
// loopback, the launcher's torchrun-style environment) equals scoring in one process, for 2 and 3
// ranks on a length that divides by neither, with TTT updates that are not zero.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "ipt/model/checkpoint.h"
#include "ipt/model/config.h"
#include "ipt/model/score.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace ipt;

namespace {

std::pair<int, std::string> run_ipt(const std::string& args) {
  const std::string command = std::string(IPT_BINARY_DIR) + "/ipt -t 1 " + args + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe.get())) output.append(buffer.data(), n);
  const int status = pclose(pipe.release());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace

TEST(ContextParallelProcesses, ScoreEqualsOneProcess) {
  const fs::path dir = fs::temp_directory_path() / ("ipt-cp-" + ipt::test::process_tag());
  fs::create_directories(dir);
  nlohmann::json j = {{"architectures", {"Qwen3ForCausalLM"}}, {"vocab_size", 64}, {"hidden_size", 32},
                      {"intermediate_size", 64}, {"num_hidden_layers", 3}, {"num_attention_heads", 4},
                      {"num_key_value_heads", 2}, {"head_dim", 8}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0},
                      {"max_position_embeddings", 512}, {"tie_word_embeddings", true}, {"initializer_range", 0.1},
                      {"ttt_mode", true}, {"ttt_layers", {0, 2}}, {"ttt_chunk", 8}, {"ttt_lr", 0.5},
                      {"layer_types", {"full_attention", "sliding_attention", "full_attention"}}, {"sliding_window", 12}};
  model::CausalLM lm(model::ModelConfig::from_json(j));
  lm->init_weights(7);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : lm->named_parameters())
      if (p.key().find("ttt_conv") != std::string::npos) p.value().normal_(0, 0.3);  // updates are not zero
  }
  model::save_model(lm, (dir / "model").string());
  std::vector<int64_t> ids;
  {
    std::ofstream out(dir / "ids.txt");
    for (int64_t i = 0; i < 101; ++i) {
      ids.push_back((i * 29 + i * i) % 64);
      out << ids.back() << " ";
    }
  }
  const double expected = model::score_tokens(lm, ids).mean_nll();
  const std::string common = "score -m " + (dir / "model").string() + " --ids " + (dir / "ids.txt").string() + " --json --dtype float32";
  for (int ranks : {2, 3}) {
    const auto [status, output] =
        run_ipt(common + " --cp-size " + std::to_string(ranks) + " --nproc-per-node " + std::to_string(ranks));
    ASSERT_EQ(status, 0) << output;
    const nlohmann::json r = nlohmann::json::parse(output);
    EXPECT_EQ(r["tokens"], 100);
    EXPECT_NEAR(r["mean_nll"].get<double>(), expected, 1e-5) << ranks << " ranks";
    EXPECT_EQ(r["context_parallel"]["ranks"], ranks);
  }
  // A group whose size is not --cp-size is refused before any work.
  const auto [status, output] = run_ipt(common + " --cp-size 3 --nproc-per-node 2");
  EXPECT_EQ(status, 1);
  EXPECT_NE(output.find("must equal --cp-size"), std::string::npos) << output;
  fs::remove_all(dir);
}
