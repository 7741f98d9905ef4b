// data.synthetic_mix: the per-row draw realises the configured fractions and is fixed by the seed,
// synthetic rows follow the loader's layout (labels, padding, answer-only loss), a zero mix
// changes nothing, a run with a mix resumes bit-exactly, and bad mixes fail before any work.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "ipt/common/error.h"
#include "ipt/data/prepare.h"
#include "ipt/data/shards.h"
#include "ipt/io/safetensors.h"
#include "ipt/model/checkpoint.h"
#include "ipt/tokenizer/tokenizer.h"
#include "ipt/train/synthetic_mix.h"
#include "ipt/train/trainer.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

using namespace ipt;
namespace fs = std::filesystem;

using ipt::test::expect_error;

namespace {

const std::string kSource = IPT_SOURCE_DIR;

fs::path scratch_root() { return fs::temp_directory_path() / ("ipt_test_mix_" + ipt::test::process_tag()); }

class ScratchCleanup : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(scratch_root()); }
};
const auto* const g_cleanup = ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

fs::path scratch_dir(const std::string& name) {
  fs::path dir = scratch_root() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

const tok::Tokenizer& tokenizer() {
  static const tok::Tokenizer t = tok::Tokenizer::load(kSource + "/corpus/tokenizer");
  return t;
}

// The sample corpus as the docs prepare it (vocabulary 4096, the tokenizer's).
const fs::path& sample_data() {
  static const fs::path dir = [] {
    const fs::path d = scratch_dir("sample");
    data::PrepareOptions o;
    o.inputs = {kSource + "/corpus/sample"};
    o.out = d.string();
    data::prepare(tokenizer(), o);
    return d;
  }();
  return dir;
}

std::string base_yaml(const std::string& output_dir) {
  return "model:\n"
         "  init_preset: test\n"
         "  tokenizer_path: " + kSource + "/corpus/tokenizer\n"
         "  foundation: {ttt_mode: true, ttt_layers: [1], ttt_chunk: 32}\n"
         "data:\n"
         "  train_path: " + sample_data().string() + "\n"
         "  max_seq_len: 128\n"
         "  synthetic_mix: {passkey: 0.25, induction: 0.25}\n"
         "train:\n"
         "  output_dir: " + output_dir + "\n"
         "  global_batch_size: 4\n"
         "  micro_batch_size: 2\n"
         "  lr: 0.003\n"
         "  max_steps: 4\n"
         "  adam_eps: 1.0e-6\n"  // damps AdamW's magnification of rounding noise (multi-process tests)
         "  seed: 3\n";
}

train::TrainerOptions quiet() {
  train::TrainerOptions o;
  o.progress = false;
  o.plot = false;
  return o;
}

std::map<std::string, torch::Tensor> weights(train::Trainer& t) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : t.model()->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

train::SyntheticRows make_rows(int64_t seq_len, train::SyntheticLoss loss) {
  train::SyntheticRowOptions o;
  o.seq_len = seq_len;
  o.loss = loss;
  o.pad_id = 7;
  data::Dataset dataset(sample_data().string());
  return train::SyntheticRows(tok::Tokenizer::load(kSource + "/corpus/tokenizer"),
                              data::Haystack(train::haystack_documents({}, dataset, tokenizer())), o);
}

}  // namespace

TEST(SyntheticMix, RealisedFractionsMatchTheConfig) {
  const train::MixDraw draw({{"passkey", 0.2}, {"vt", 0.1}, {"cwe", 0.0}}, 11);
  std::map<std::string, int64_t> seen;
  const int64_t steps = 500, rows = 40;  // 20000 draws: one standard deviation is ~0.003
  int64_t synthetic = 0;
  for (int64_t step = 0; step < steps; ++step) {
    for (int64_t row = 0; row < rows; ++row)
      if (auto task = draw.task_for(step, row)) ++seen[*task];
    synthetic += draw.synthetic_rows(step, rows);
  }
  const double n = static_cast<double>(steps * rows);
  EXPECT_NEAR(seen["passkey"] / n, 0.2, 0.012);
  EXPECT_NEAR(seen["vt"] / n, 0.1, 0.01);
  EXPECT_EQ(seen.count("cwe"), 0u);
  EXPECT_EQ(synthetic, seen["passkey"] + seen["vt"]);
  EXPECT_FALSE(train::MixDraw({}, 1).active());
  EXPECT_FALSE(train::MixDraw({{"passkey", 0.0}}, 1).task_for(0, 0).has_value());
  const train::MixDraw all({{"induction", 1.0}}, 2);
  EXPECT_EQ(all.synthetic_rows(5, 100), 100);
}

TEST(SyntheticMix, ASampleThatCannotFitIsRedrawnNotFatal) {
  // niah keys are corpus word pairs of varying token length, so near the shortest row a prompt fits
  // in, some seeds' single draw fails and others' succeeds. A training row must come from every seed.
  for (int64_t L = 96; L <= 320; L += 8) {
    const train::SyntheticRows rows = make_rows(L, train::SyntheticLoss::kAnswer);
    int rescued = 0;  // seeds whose own draw failed and whose redraw fits
    for (uint64_t seed = 0; seed < 60; ++seed) {
      int64_t start = 0;
      std::vector<int64_t> once;
      try {
        once = rows.draw("niah_single_1", seed, &start);
      } catch (const Error&) {
      }
      try {
        int64_t redrawn_start = 0;
        const std::vector<int64_t> ids = rows.tokens("niah_single_1", seed, &redrawn_start);
        EXPECT_LE(static_cast<int64_t>(ids.size()), L + 1);
        if (!once.empty()) {
          EXPECT_EQ(ids, once) << "a draw that fits is kept";
        }
        rescued += once.empty();
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("8 draws from seed"), std::string::npos) << e.what();
      }
    }
    if (rescued > 0) return;
  }
  FAIL() << "no row length between 96 and 320 where a niah draw failed and its redraw fitted";
}

TEST(SyntheticMix, DrawsAndRowsAreFixedBySeed) {
  const std::map<std::string, double> mix{{"passkey", 0.3}, {"induction", 0.3}};
  const train::MixDraw a(mix, 5), b(mix, 5), c(mix, 6);
  int differing = 0;
  for (int64_t row = 0; row < 200; ++row) {
    EXPECT_EQ(a.task_for(3, row), b.task_for(3, row));
    EXPECT_EQ(a.sample_seed(3, row), b.sample_seed(3, row));
    differing += a.task_for(3, row) != c.task_for(3, row);
  }
  EXPECT_GT(differing, 20);
  EXPECT_NE(a.sample_seed(3, 0), a.sample_seed(4, 0));
  EXPECT_NE(a.sample_seed(3, 0), a.sample_seed(3, 1));

  const train::SyntheticRows rows = make_rows(128, train::SyntheticLoss::kAll);
  int64_t ids1[128], labels1[128], ids2[128], labels2[128], ids3[128], labels3[128];
  std::vector<int64_t> cu;
  rows.fill("passkey", 42, ids1, labels1, &cu);
  rows.fill("passkey", 42, ids2, labels2, &cu);
  rows.fill("passkey", 43, ids3, labels3, &cu);
  EXPECT_TRUE(std::equal(ids1, ids1 + 128, ids2) && std::equal(labels1, labels1 + 128, labels2));
  EXPECT_FALSE(std::equal(ids1, ids1 + 128, ids3));
}

TEST(SyntheticMix, RowsFollowTheLoaderLayout) {
  const int64_t L = 384;
  for (const char* task : {"passkey", "niah_single_1", "niah_multivalue", "vt", "induction"}) {
    SCOPED_TRACE(task);
    const train::SyntheticRows all = make_rows(L, train::SyntheticLoss::kAll);
    const train::SyntheticRows answer = make_rows(L, train::SyntheticLoss::kAnswer);
    int64_t answer_start = 0;
    const std::vector<int64_t> seq = all.tokens(task, 9, &answer_start);
    const int64_t n = static_cast<int64_t>(seq.size());
    ASSERT_LE(n, L + 1) << "prompt + answer + eos fit the row (the last token only as a label)";
    EXPECT_GT(n, L * 8 / 10) << "the haystack fills most of the row";
    EXPECT_EQ(seq.back(), *tokenizer().eos_id());
    // The answer decodes to the sample's answers (what RULER's scoring looks for).
    const std::vector<int32_t> answer_ids(seq.begin() + answer_start, seq.end() - 1);
    EXPECT_FALSE(tokenizer().decode(answer_ids).empty());
    EXPECT_LT(seq.size() - answer_start, 40u) << "a short answer and eos";

    std::vector<int64_t> ids(L), labels(L), ids_a(L), labels_a(L), cu, cu_a;
    all.fill(task, 9, ids.data(), labels.data(), &cu);
    answer.fill(task, 9, ids_a.data(), labels_a.data(), &cu_a);
    EXPECT_EQ(ids, ids_a);
    EXPECT_EQ(cu, cu_a);
    if (n < L) EXPECT_EQ(cu, (std::vector<int64_t>{0, n, L}));
    else EXPECT_EQ(cu, (std::vector<int64_t>{0, L}));
    for (int64_t i = 0; i < L; ++i) {
      // Reference: the next token inside the sample, nothing on its last token and the padding.
      const int64_t expected_id = i < n ? seq[i] : 7;  // 7: the pad id
      const int64_t expected_label = i + 1 < n ? seq[i + 1] : data::kIgnoreLabel;
      ASSERT_EQ(ids[i], expected_id) << i;
      ASSERT_EQ(labels[i], expected_label) << i;
      // Answer-only loss: only the labels that are answer tokens (or eos) count.
      ASSERT_EQ(labels_a[i], i + 1 >= answer_start ? expected_label : data::kIgnoreLabel) << i;
    }
  }
}

TEST(SyntheticMix, ZeroMixLeavesTrainingUnchanged) {
  auto run = [&](const std::string& name, const std::string& mix) {
    train::Trainer t(train::parse_train_config(base_yaml(scratch_dir(name).string()),
                                               {"data.synthetic_mix=" + mix, "train.max_steps=2"}),
                     nullptr, quiet());
    t.step();
    t.step();
    return weights(t);
  };
  auto none = run("mix_none", "{}"), zero = run("mix_zero", "{passkey: 0.0}"), some = run("mix_some", "{passkey: 0.5}");
  int changed = 0;
  for (const auto& [name, w] : none) {
    EXPECT_TRUE(torch::equal(w, zero.at(name))) << name;
    changed += !torch::equal(w, some.at(name));
  }
  EXPECT_GT(changed, 0) << "a non-zero mix must change the batches";
}

TEST(SyntheticMix, MetricsAndResumeAreBitExact) {
  const fs::path out = scratch_dir("mix_full"), out2 = scratch_dir("mix_half");
  train::Trainer full(train::parse_train_config(base_yaml(out.string()), {"train.save_steps=2"}), nullptr, quiet());
  full.train();

  train::TrainerOptions resume = quiet();
  resume.resume = (out / "checkpoint-2").string();
  train::Trainer half(train::parse_train_config(base_yaml(out2.string()), {"train.save_steps=2"}), nullptr, resume);
  half.train();
  const auto state = nlohmann::json::parse(std::ifstream(out / "checkpoint-2" / "trainer_state.json"));
  EXPECT_EQ(state.at("synthetic_mix").at("passkey").get<double>(), 0.25);
  auto a = weights(full), b = weights(half);
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;

  // metrics.jsonl reports each step's realised fraction: the draw's, in quarters of the batch of 4.
  const train::MixDraw draw({{"passkey", 0.25}, {"induction", 0.25}}, 3);
  std::ifstream metrics(out / "metrics.jsonl");
  int64_t step = 0;
  double total = 0;
  for (std::string line; std::getline(metrics, line); ++step) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_DOUBLE_EQ(j.at("synthetic_fraction").get<double>(), draw.synthetic_rows(step, 4) / 4.0) << line;
    total += j.at("synthetic_fraction").get<double>();
  }
  EXPECT_EQ(step, 4);
  EXPECT_GT(total, 0) << "the resumed steps must include synthetic rows for the test to mean something";
  EXPECT_GT(draw.synthetic_rows(2, 4) + draw.synthetic_rows(3, 4), 0);
}

TEST(SyntheticMix, BadMixesFailBeforeAnyWork) {
  const std::string out = scratch_dir("mix_bad").string();
  auto config = [&](const std::vector<std::string>& overrides) { return train::parse_train_config(base_yaml(out), overrides); };
  expect_error([&] { config({"data.synthetic_mix={needle: 0.1}"}); }, "needle: unknown synthetic task (valid: niah_single_1");
  expect_error([&] { config({"data.synthetic_mix={passkey: 0.7, vt: 0.5}"}); }, "add up to 1.2 > 1");
  expect_error([&] { config({"data.synthetic_mix={passkey: -0.1}"}); }, "must be in [0, 1]");
  expect_error([&] { config({"data.synthetic_mix={passkey: lots}"}); }, "expected a number");
  expect_error([&] { config({"data.synthetic_loss=prompt"}); }, "data.synthetic_loss");
  expect_error([&] { train::Trainer(config({"data.synthetic_haystack=/nonexistent/text"}), nullptr, quiet()); },
               "data.synthetic_haystack: /nonexistent/text does not exist");
  std::string no_tokenizer = base_yaml(out);
  no_tokenizer.replace(no_tokenizer.find("  tokenizer_path:"), no_tokenizer.find("  foundation") - no_tokenizer.find("  tokenizer_path:"), "");
  expect_error([&] { train::Trainer(train::parse_train_config(no_tokenizer), nullptr, quiet()); },
               "data.synthetic_mix needs the model's tokenizer: set model.tokenizer_path");
  expect_error([&] { train::Trainer(config({"data.max_seq_len=8"}), nullptr, quiet()); }, "too short for synthetic");
  expect_error([&] { train::Trainer(config({"data.synthetic_mix={vt: 0.1}"}), nullptr, quiet()); },
               "data.synthetic_mix.vt: task vt does not fit in 129 tokens");
  EXPECT_FALSE(fs::exists(fs::path(out) / "metrics.jsonl"));
}

// The rows a mix replaces depend on the row's place in the global batch, not on the rank that reads
// it: `processes` Gloo ranks (with `flags`, e.g. a context-parallel grid) give one process's weights.
static void expect_processes_equal_one(const std::string& name, int processes, const std::string& flags) {
  const fs::path out = scratch_dir(name + "_many"), single = scratch_dir(name + "_one");
  const fs::path config_file = out / "config.yaml";
  std::ofstream(config_file) << base_yaml(out.string());
  const std::string command = std::string(IPT_BINARY_DIR) + "/ipt -t 1 train --config " + config_file.string() +
                              " --nproc-per-node " + std::to_string(processes) + " -q --no-plot " + flags;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  train::Trainer one(train::parse_train_config(base_yaml(single.string())), nullptr, quiet());
  one.train();
  io::TensorMap two = io::load_checkpoint((out / "checkpoint-4").string());
  // Summation order differs between one process and an all-reduce; AdamW magnifies that rounding
  // on near-zero gradient entries to ~3e-5 here, while a single different row moves weights by > 1e-3.
  for (const auto& [name, w] : weights(one)) {
    const torch::Tensor& u = two.at(name);
    EXPECT_LT(((w - u).abs().max() / u.abs().max().clamp_min(1e-12)).item<double>(), 1e-4) << name;
  }
  auto fractions = [](const fs::path& dir) {
    std::ifstream in(dir / "metrics.jsonl");
    std::vector<double> f;
    for (std::string line; std::getline(in, line);) f.push_back(nlohmann::json::parse(line).at("synthetic_fraction"));
    return f;
  };
  EXPECT_EQ(fractions(out), fractions(single));
}

TEST(SyntheticMix, TwoGlooProcessesEqualOneProcess) { expect_processes_equal_one("mix_dp", 2, ""); }

// 2 data-parallel groups of 2 context-parallel ranks, one row per micro-batch: synthetic rows (two
// pieces: the sample and its padding) are cut into slices like natural ones.
TEST(SyntheticMix, ContextParallelGridEqualsOneProcess) {
  expect_processes_equal_one("mix_cp", 4, "--train.cp_size=2 --train.micro_batch_size=1");
}

TEST(SyntheticMix, ExampleConfigParses) {
  // configs/tiny-scratch-mix.yaml as shipped: its keys and mix stay valid (running it needs data/sample).
  const train::TrainConfig c = train::load_train_config(kSource + "/configs/tiny-scratch-mix.yaml");
  EXPECT_EQ(c.data.synthetic_mix.size(), 3u);
  EXPECT_EQ(c.data.synthetic_loss, "all");
  double total = 0;
  for (const auto& [task, fraction] : c.data.synthetic_mix) total += fraction;
  EXPECT_NEAR(total, 0.25, 1e-12);
}
