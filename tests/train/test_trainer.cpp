// The training loop on a test-size model and a small synthetic dataset: the loss falls, gradient
// accumulation, data parallelism (two processes over Gloo) and context parallelism (2 ranks per
// sequence, and a 2 x 2 grid on odd-length packed rows) give the one-big-batch update,
// resume is bit-exact, `ttt`-only training touches only TTT tensors, a converted model starts at
// the base model's loss, gradient checkpointing changes nothing, and bad configs fail up front.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "ipt/common/error.h"
#include "ipt/data/shards.h"
#include "ipt/io/safetensors.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/presets.h"
#include "ipt/train/trainer.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

using namespace ipt;
namespace fs = std::filesystem;

using ipt::test::expect_error;

namespace {

fs::path scratch_root() { return fs::temp_directory_path() / ("ipt_test_trainer_" + ipt::test::process_tag()); }

// Removes this process's scratch directories after the last test.
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

// Documents counting upwards from a random start (mod 250): learnable, so the loss must fall.
fs::path counting_dataset(const std::string& name, int64_t documents, int64_t min_length, uint64_t seed) {
  const fs::path dir = scratch_dir(name);
  std::mt19937_64 rng(seed);
  data::ShardWriter writer(dir.string(), 256);
  for (int64_t d = 0; d < documents; ++d) {
    const int64_t length = min_length + static_cast<int64_t>(rng() % 40);
    const int64_t start = static_cast<int64_t>(rng() % 250);
    std::vector<int64_t> doc;
    for (int64_t i = 0; i < length; ++i) doc.push_back((start + i) % 250);
    writer.add(doc);
  }
  writer.finish();
  return dir;
}

const fs::path& train_data() {
  static const fs::path dir = counting_dataset("data_train", 120, 40, 1);
  return dir;
}
const fs::path& val_data() {
  static const fs::path dir = counting_dataset("data_val", 20, 40, 2);
  return dir;
}

std::string base_yaml(const std::string& output_dir) {
  return "model:\n"
         "  init_preset: test\n"
         "  foundation: {ttt_mode: true, ttt_layers: [1], ttt_chunk: 16}\n"
         "data:\n"
         "  train_path: " + train_data().string() + "\n"
         "  max_seq_len: 32\n"
         "train:\n"
         "  output_dir: " + output_dir + "\n"
         "  global_batch_size: 4\n"
         "  micro_batch_size: 2\n"
         "  lr: 0.003\n"
         "  lr_warmup_ratio: 0.1\n"
         "  max_steps: 4\n"
         "  seed: 7\n";
}

train::TrainConfig make_config(const std::string& output_dir, const std::vector<std::string>& overrides = {}) {
  return train::parse_train_config(base_yaml(output_dir), overrides);
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

double max_relative_difference(const std::map<std::string, torch::Tensor>& a,
                               const std::map<std::string, torch::Tensor>& b) {
  double worst = 0;
  for (const auto& [name, t] : a) {
    const torch::Tensor& u = b.at(name);
    worst = std::max(worst, ((t - u).abs().max() / u.abs().max().clamp_min(1e-12)).item<double>());
  }
  return worst;
}

void replace_once(std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
}

}  // namespace

TEST(AdamW, MatchesScalarReference) {
  // A small and a large float32 parameter (the fused one-pass update, the large one split across
  // threads), a norm gain (exempt from decay) and a float64 one (the tensor-expression path),
  // against the update written out per element in double.
  torch::manual_seed(3);
  train::NamedParameters params{{"layer.weight", torch::randn({5, 3})},
                                {"layer.norm.weight", torch::randn({3})},
                                {"big.weight", torch::randn({300, 1001})},
                                {"double.weight", torch::randn({4, 3}, torch::kFloat64)}};
  std::vector<torch::Tensor> ref, m, v;
  for (const auto& [name, p] : params) {
    ref.push_back(p.to(torch::kFloat64));
    m.push_back(torch::zeros_like(ref.back()));
    v.push_back(torch::zeros_like(ref.back()));
  }
  train::AdamWOptions o{0.9, 0.95, 1e-8, 0.1};
  train::AdamW adam(params, o);
  for (int step = 1; step <= 3; ++step) {
    const double lr = 0.01 * step;
    for (size_t i = 0; i < params.size(); ++i) {
      torch::Tensor g = torch::randn_like(params[i].second);
      params[i].second.mutable_grad() = g.clone();
      torch::Tensor g64 = g.to(torch::kFloat64);
      auto* r = ref[i].data_ptr<double>();
      auto* gm = g64.data_ptr<double>();
      auto* mm = m[i].data_ptr<double>();
      auto* vv = v[i].data_ptr<double>();
      const bool decays = i != 1;  // the norm gain is exempt
      for (int64_t k = 0; k < ref[i].numel(); ++k) {
        if (decays) r[k] *= 1 - lr * o.weight_decay;
        mm[k] = 0.9 * mm[k] + 0.1 * gm[k];
        vv[k] = 0.95 * vv[k] + 0.05 * gm[k] * gm[k];
        const double mhat = mm[k] / (1 - std::pow(0.9, step)), vhat = vv[k] / (1 - std::pow(0.95, step));
        r[k] -= lr * mhat / (std::sqrt(vhat) + 1e-8);
      }
    }
    adam.step(lr);
  }
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(params[i].second.to(torch::kFloat64), ref[i], 1e-5, 1e-6)) << params[i].first;
    const auto state = adam.state();
    EXPECT_TRUE(torch::allclose(state.at("exp_avg/" + params[i].first).to(torch::kFloat64), m[i], 1e-5, 1e-7));
    EXPECT_TRUE(torch::allclose(state.at("exp_avg_sq/" + params[i].first).to(torch::kFloat64), v[i], 1e-5, 1e-8));
  }
  EXPECT_FALSE(train::decays("model.embed_tokens.weight"));
  EXPECT_FALSE(train::decays("model.layers.0.input_layernorm.weight"));
  EXPECT_TRUE(train::decays("model.layers.0.mlp.ttt_proj.weight"));
}

TEST(AdamW, ClipsGlobalNorm) {
  train::NamedParameters params{{"a", torch::zeros({2})}, {"b", torch::zeros({1})}};
  params[0].second.mutable_grad() = torch::tensor({3.0f, 0.0f});
  params[1].second.mutable_grad() = torch::tensor({4.0f});
  EXPECT_NEAR(train::clip_grad_norm(params, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(params[1].second.grad().item<float>(), 0.8f, 1e-5);
  EXPECT_NEAR(train::clip_grad_norm(params, 0.0), 1.0, 1e-5);  // 0 = measure only
}

TEST(AdamW, ScaleAtReadEqualsClippingFirstAndCopiesFollowInBf16) {
  // step(lr, clip_scale(norm)) against clip_grad_norm then step(lr): the same bits, for the fused
  // float32 path (a large parameter, threads, an odd tail) and the tensor expression (float64).
  // The bf16 compute copies equal each updated master rounded to bf16, NaN included.
  torch::manual_seed(6);
  auto make = [] {
    torch::manual_seed(7);
    return train::NamedParameters{{"w", torch::randn({301, 777})}, {"d", torch::randn({5, 3}, torch::kFloat64)}};
  };
  train::NamedParameters clipped = make(), scaled = make();
  train::AdamW by_clipping(clipped, {}), by_scale(scaled, {});
  std::vector<torch::Tensor> copies{torch::zeros({301, 777}, torch::kBFloat16), torch::zeros({5, 3}, torch::kBFloat16)};
  by_scale.set_compute_copies(copies);
  for (int step = 1; step <= 3; ++step) {
    for (size_t i = 0; i < clipped.size(); ++i) {
      torch::Tensor g = torch::randn_like(clipped[i].second) * 3;
      clipped[i].second.mutable_grad() = g.clone();
      scaled[i].second.mutable_grad() = g.clone();
    }
    const double norm = train::clip_grad_norm(clipped, 1.0);
    by_clipping.step(0.01);
    const double same_norm = train::grad_norm(scaled);
    EXPECT_EQ(norm, same_norm);
    EXPECT_LT(train::clip_scale(norm, 1.0), 1.0);
    by_scale.step(0.01, train::clip_scale(same_norm, 1.0));
    for (size_t i = 0; i < clipped.size(); ++i) {
      EXPECT_TRUE(torch::equal(clipped[i].second, scaled[i].second)) << clipped[i].first << " step " << step;
      EXPECT_TRUE(torch::equal(copies[i], scaled[i].second.to(torch::kBFloat16))) << clipped[i].first;
    }
  }
  EXPECT_EQ(train::clip_scale(0.5, 1.0), 1.0);
  EXPECT_EQ(train::clip_scale(5.0, 0.0), 1.0);  // 0 = no clipping
  // NaN and rounding ties in the copy: a parameter set so, stepped with zero learning rate.
  train::NamedParameters p{{"x", torch::tensor({std::nanf(""), 1.00390625f, 1.01171875f, -2.5f})}};
  p[0].second.mutable_grad() = torch::zeros({4});
  torch::Tensor copy = torch::zeros({4}, torch::kBFloat16);
  train::AdamW adam(p, {0.9, 0.95, 1e-8, 0.0});
  adam.set_compute_copies({copy});
  adam.step(0.0);
  EXPECT_TRUE(std::isnan(copy[0].item<float>()));
  EXPECT_TRUE(torch::equal(copy.narrow(0, 1, 3), p[0].second.narrow(0, 1, 3).to(torch::kBFloat16)));
  EXPECT_THROW(adam.set_compute_copies({torch::zeros({3}, torch::kBFloat16)}), Error);
}

TEST(AdamW, GlobalNormOfLargeGradientsMatchesDouble) {
  // Float32 gradients large enough to be summed on several threads, one float64 and one
  // non-contiguous (the tensor-expression path), against the norm computed in double.
  torch::manual_seed(5);
  torch::Tensor a = torch::randn({1000, 777}), b = torch::randn({3, 5}, torch::kFloat64), c = torch::randn({40, 30});
  train::NamedParameters params{{"a", torch::zeros_like(a)}, {"b", torch::zeros_like(b)}, {"c", torch::zeros({30, 40})}};
  params[0].second.mutable_grad() = a.clone();
  params[1].second.mutable_grad() = b.clone();
  params[2].second.mutable_grad() = c.t();
  const double expected = std::sqrt(a.to(torch::kFloat64).pow(2).sum().item<double>() + b.pow(2).sum().item<double>() +
                                    c.to(torch::kFloat64).pow(2).sum().item<double>());
  EXPECT_NEAR(train::clip_grad_norm(params, 0.0), expected, expected * 1e-12);
}

TEST(Trainer, LossFalls) {
  const fs::path out = scratch_dir("loss_falls");
  train::Trainer t(make_config(out.string(), {"train.max_steps=40", "train.lr=0.01", "data.val_path=" + val_data().string()}),
                   nullptr, quiet());
  const double before = t.evaluate();
  std::vector<double> losses;
  for (int i = 0; i < 40; ++i) losses.push_back(t.step().loss);
  const double after = t.evaluate();
  const double first = (losses[0] + losses[1]) / 2, last = (losses[38] + losses[39]) / 2;
  EXPECT_GT(first, 5.0);  // ~ln 256 at the start
  EXPECT_LT(last, first - 1.5) << "train loss " << first << " -> " << last;
  EXPECT_LT(after, before - 1.5) << "validation loss " << before << " -> " << after;
}

TEST(Trainer, AccumulationEqualsOneBigBatch) {
  // Padded rows of one document each: one micro-batch of 4 runs as a [4, L] batch, against four
  // micro-batches of one row. The summed gradients must agree to float32 rounding; the weights
  // after three AdamW steps a little less tightly (AdamW divides by sqrt(v), so the rounding noise
  // of near-zero gradient entries grows by up to the step size).
  struct Result {
    std::map<std::string, torch::Tensor> first_gradients, weights;
  };
  auto run = [&](const std::string& name, int64_t micro, bool mixed) {
    std::vector<std::string> o = {"data.layout=padded", "train.max_steps=3",
                                  "train.micro_batch_size=" + std::to_string(micro)};
    if (mixed) o.push_back("train.enable_mixed_precision=true");
    train::Trainer t(make_config(scratch_dir(name).string(), o), nullptr, quiet());
    Result r;
    t.step();
    for (const auto& p : t.model()->named_parameters()) r.first_gradients[p.key()] = p.value().grad().clone();
    t.step();
    t.step();
    r.weights = weights(t);
    return r;
  };
  const Result one = run("accum_1", 4, false), four = run("accum_4", 1, false);
  EXPECT_LT(max_relative_difference(four.first_gradients, one.first_gradients), 1e-5);
  EXPECT_LT(max_relative_difference(four.weights, one.weights), 5e-4);
  // Mixed precision: the first micro-batch's bf16 gradients are copied into the float32 master,
  // the others added; the sums agree to bf16 rounding (a lost or doubled micro-batch would be off
  // by a quarter or more).
  const Result mixed_one = run("accum_mixed_1", 4, true), mixed_four = run("accum_mixed_4", 1, true);
  EXPECT_LT(max_relative_difference(mixed_four.first_gradients, mixed_one.first_gradients), 3e-2);
}

TEST(Trainer, ResumeIsBitExact) {
  const fs::path out = scratch_dir("resume_full"), out2 = scratch_dir("resume_half");
  train::TrainConfig config = make_config(out.string(), {"train.save_steps=2"});
  train::Trainer full(config, nullptr, quiet());
  full.train();
  ASSERT_TRUE(fs::exists(out / "checkpoint-2" / "trainer_state.json"));
  ASSERT_TRUE(fs::exists(out / "checkpoint-4" / "model.safetensors"));
  EXPECT_EQ(train::latest_checkpoint(out.string()), (out / "checkpoint-4").string());

  train::TrainerOptions resume = quiet();
  resume.resume = (out / "checkpoint-2").string();
  train::Trainer half(make_config(out2.string(), {"train.save_steps=2"}), nullptr, resume);
  EXPECT_EQ(half.step_count(), 2);
  half.train();
  EXPECT_EQ(half.step_count(), 4);
  EXPECT_TRUE(half.data_position() == full.data_position());
  auto a = weights(full), b = weights(half);
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  // The checkpoint is a loadable Hugging Face model directory.
  model::CausalLM loaded = model::load_model((out / "checkpoint-4").string());
  for (const auto& p : loaded->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), a.at(p.key()))) << p.key();
  // metrics.jsonl has one line per step.
  std::ifstream metrics(out / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  EXPECT_EQ(lines, 4);
}

TEST(Trainer, TttOnlyChangesTttTensors) {
  // Also in mixed precision (after the first step the optimizer writes only the trainable tensors
  // into the bf16 compute model; the bit-exact resume of MixedPrecision... covers those copies).
  for (const bool mixed : {false, true}) {
    std::vector<std::string> o = {"train.trainable=ttt"};
    if (mixed) o.push_back("train.enable_mixed_precision=true");
    train::Trainer t(make_config(scratch_dir("ttt_only").string(), o), nullptr, quiet());
    auto before = weights(t);
    t.step();
    t.step();
    auto after = weights(t);
    int changed = 0;
    for (const auto& [name, w] : before) {
      const bool ttt = name.find(".mlp.ttt_") != std::string::npos;
      if (ttt) changed += !torch::equal(w, after.at(name));
      else EXPECT_TRUE(torch::equal(w, after.at(name))) << name << " changed";
    }
    EXPECT_EQ(changed, 2) << "mixed " << mixed;  // ttt_conv and ttt_proj of layer 1
  }
  expect_error([] { train::Trainer(make_config(scratch_dir("ttt_none").string(),
                                               {"train.trainable=ttt", "model.foundation.ttt_mode=false"}),
                                   nullptr, quiet()); },
               "no TTT layers");
}

TEST(Trainer, ConvertedModelStartsAtBaseLoss) {
  const fs::path base = scratch_dir("base_model");
  model::ModelConfig c = model::preset_config("test");
  c.ttt_mode = false;
  model::CausalLM lm(c);
  lm->init_weights(5);
  model::save_model(lm, base.string());
  auto first_loss = [&](const std::string& name, const std::string& foundation) {
    std::string yaml = base_yaml(scratch_dir(name).string());
    replace_once(yaml, "init_preset: test", "model_path: " + base.string());
    replace_once(yaml, "{ttt_mode: true, ttt_layers: [1], ttt_chunk: 16}", foundation);
    train::Trainer t(train::parse_train_config(yaml), nullptr, quiet());
    return t.step().loss;
  };
  const double plain = first_loss("convert_plain", "{ttt_mode: false}");
  const double converted = first_loss("convert_ttt", "{ttt_mode: true, ttt_layers: [0, 1], ttt_chunk: 8}");
  EXPECT_NEAR(converted, plain, 1e-5 * plain);
}

TEST(Trainer, GradientCheckpointingChangesNothing) {
  auto run = [&](const std::string& name, bool checkpointing) {
    train::Trainer t(make_config(scratch_dir(name).string(),
                                 {std::string("train.enable_gradient_checkpointing=") + (checkpointing ? "true" : "false"),
                                  "model.foundation.ttt_layers=[0, 1]"}),
                     nullptr, quiet());
    t.step();
    t.step();
    return weights(t);
  };
  EXPECT_LT(max_relative_difference(run("ckpt_off", false), run("ckpt_on", true)), 1e-6);
  // Only the TTT tensors train: layer 0's inputs need no gradient (the plain path runs there).
  auto ttt_only = [&](const std::string& name, bool checkpointing) {
    train::Trainer t(make_config(scratch_dir(name).string(),
                                 {std::string("train.enable_gradient_checkpointing=") + (checkpointing ? "true" : "false"),
                                  "train.trainable=ttt"}),
                     nullptr, quiet());
    t.step();
    return weights(t);
  };
  EXPECT_LT(max_relative_difference(ttt_only("ckpt_ttt_off", false), ttt_only("ckpt_ttt_on", true)), 1e-6);
}

// Runs `ipt train` on `config_yaml` as `nproc` local Gloo processes with `flags`; returns the
// weights of its last checkpoint (step `steps`).
std::map<std::string, torch::Tensor> train_processes(const fs::path& out, const std::string& config_yaml, int nproc,
                                                     const std::string& flags, int steps) {
  const fs::path config_file = out / "config.yaml";
  std::ofstream(config_file) << config_yaml;
  const std::string command = std::string(IPT_BINARY_DIR) + "/ipt -t 1 train --config " + config_file.string() +
                              " --nproc-per-node " + std::to_string(nproc) + " -q --no-plot " + flags;
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  io::TensorMap weights = io::load_checkpoint((out / ("checkpoint-" + std::to_string(steps))).string());
  return {weights.begin(), weights.end()};
}

double last_val_loss(const fs::path& dir) {
  std::ifstream in(dir / "metrics.jsonl");
  std::string line, last;
  while (std::getline(in, line)) last = line;
  return nlohmann::json::parse(last).at("val_loss").get<double>();
}

// Per-step training losses from metrics.jsonl.
std::vector<double> step_losses(const fs::path& dir) {
  std::ifstream in(dir / "metrics.jsonl");
  std::vector<double> losses;
  for (std::string line; std::getline(in, line);) losses.push_back(nlohmann::json::parse(line).at("loss").get<double>());
  return losses;
}

TEST(Trainer, TwoGlooProcessesEqualOneProcess) {
  const fs::path out = scratch_dir("dp_two"), single = scratch_dir("dp_one");
  // adam_eps 1e-6 as in the context-parallel tests below: with 1e-8 AdamW's first steps move each
  // weight by ~lr * sign(gradient), so rounding in near-zero gradient entries (the all-reduce sums
  // in another order) becomes weight differences of ~1e-4 although losses agree to ~1e-7.
  const std::vector<std::string> eval{"data.val_path=" + val_data().string(), "train.eval_steps=4",
                                      "train.adam_eps=1e-6"};
  const fs::path config_file = out / "config.yaml";
  std::ofstream(config_file) << base_yaml(out.string());
  std::string command = std::string(IPT_BINARY_DIR) + "/ipt -t 1 train --config " + config_file.string() +
                        " --nproc-per-node 2 -q --no-plot";
  for (const auto& o : eval) command += " --" + o;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  train::Trainer one(make_config(single.string(), eval), nullptr, quiet());
  one.train();
  io::TensorMap two = io::load_checkpoint((out / "checkpoint-4").string());
  std::map<std::string, torch::Tensor> two_weights(two.begin(), two.end());
  EXPECT_LT(max_relative_difference(weights(one), two_weights), 2e-5);
  const std::vector<double> losses_two = step_losses(out), losses_one = step_losses(single);
  ASSERT_EQ(losses_two.size(), losses_one.size());
  for (size_t i = 0; i < losses_one.size(); ++i) EXPECT_NEAR(losses_two[i], losses_one[i], 1e-5 * losses_one[i]) << "step " << i + 1;
  // Validation scores the same rows whatever the number of ranks.
  EXPECT_NEAR(last_val_loss(out), last_val_loss(single), 1e-5);
}

// Two ranks share every sequence (context parallel, dp = 1): the same weights and validation loss
// as one process with the same global batch.
TEST(Trainer, ContextParallelTwoProcessesEqualOneProcess) {
  const fs::path out = scratch_dir("cp_two"), single = scratch_dir("cp_one");
  // adam_eps 1e-6: AdamW's first steps move each weight by ~lr * sign(gradient), which turns
  // float rounding in near-zero gradients into weight differences; eps damps that noise.
  const std::vector<std::string> eval{"data.val_path=" + val_data().string(), "train.eval_steps=4",
                                      "train.adam_eps=1e-6"};
  std::string flags = "--train.cp_size=2";
  for (const auto& o : eval) flags += " --" + o;
  const auto two = train_processes(out, base_yaml(out.string()), 2, flags, 4);
  train::Trainer one(make_config(single.string(), eval), nullptr, quiet());
  one.train();
  EXPECT_LT(max_relative_difference(weights(one), two), 5e-5);
  EXPECT_NEAR(last_val_loss(out), last_val_loss(single), 1e-5);
}

// A 2 x 2 grid (2 data-parallel groups of 2 context-parallel ranks) on rows of 33 tokens (odd, so
// slices differ in length) packed with short documents, some of which span the cut between
// slices (in 10 of the 12 rows, counted once with a debug print):
// still the weights of one process.
TEST(Trainer, ContextParallelGridWithPackedDocumentsAcrossTheCut) {
  static const fs::path short_docs = counting_dataset("data_short", 80, 6, 3);  // 6..45 tokens
  const fs::path out = scratch_dir("cp_grid"), single = scratch_dir("cp_grid_one");
  auto yaml = [&](const fs::path& dir) {
    std::string text = base_yaml(dir.string());
    replace_once(text, train_data().string(), short_docs.string());
    replace_once(text, "max_seq_len: 32", "max_seq_len: 33");
    replace_once(text, "ttt_chunk: 16", "ttt_chunk: 5");
    replace_once(text, "micro_batch_size: 2", "micro_batch_size: 1");
    replace_once(text, "max_steps: 4", "max_steps: 3\n  adam_eps: 1.0e-6");  // as above
    return text;
  };
  const auto grid = train_processes(out, yaml(out), 4, "--cp-size 2", 3);
  train::Trainer one(train::parse_train_config(yaml(single)), nullptr, quiet());
  one.train();
  EXPECT_LT(max_relative_difference(weights(one), grid), 5e-5);
}

TEST(Trainer, ContextParallelBadCombosFailBeforeAnyWork) {
  const fs::path out = scratch_dir("cp_bad");
  expect_error([&] { make_config(out.string(), {"train.cp_size=two"}); }, "train.cp_size: expected an integer");
  expect_error([&] { train::Trainer(make_config(out.string(), {"train.cp_size=0"}), nullptr, quiet()); },
               "train.cp_size must be >= 1");
  expect_error([&] { train::Trainer(make_config(out.string(), {"train.cp_size=2"}), nullptr, quiet()); },
               "train.cp_size (2) must divide the number of ranks (1)");
  const fs::path config_file = out / "config.yaml";
  std::ofstream(config_file) << base_yaml((out / "run").string());
  // Runs `ipt train` with `flags`; expects it to fail and returns its stderr.
  auto failing_run = [&](const std::string& flags) {
    const std::string command = std::string(IPT_BINARY_DIR) + "/ipt -t 1 train --config " + config_file.string() +
                                " -q --no-plot " + flags + " 2> " + (out / "stderr").string();
    EXPECT_NE(std::system(command.c_str()), 0) << command;
    std::ifstream err(out / "stderr");
    return std::string((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  };
  // The launcher checks before starting any rank.
  const std::string not_dividing = failing_run("--nproc-per-node 2 --cp-size 3");
  EXPECT_NE(not_dividing.find("train.cp_size (3) must divide the number of ranks (2)"), std::string::npos)
      << not_dividing;
  // Rows too short to cut on the TTT chunk grid (32 tokens, chunk 16, 3 slices) fail before step 1.
  const std::string too_short = failing_run("--nproc-per-node 3 --cp-size 3");
  EXPECT_NE(too_short.find("cannot cut a sequence of 32 rows into 3 non-empty slices"), std::string::npos)
      << too_short;
  EXPECT_FALSE(fs::exists(out / "run"));  // nothing written
}

TEST(Trainer, BadConfigsFailBeforeAnyWork) {
  const std::string out = scratch_dir("bad").string();
  expect_error([&] { make_config(out, {"train.learning_rate=1"}); }, "train.learning_rate: unknown key");
  expect_error([&] { make_config(out, {"train.max_steps=many"}); }, "train.max_steps: expected an integer");
  expect_error([&] { train::Trainer(make_config(out, {"train.global_batch_size=3"}), nullptr, quiet()); },
               "must be a positive multiple");
  expect_error([&] { train::Trainer(make_config(out, {"data.train_path=/nonexistent/data"}), nullptr, quiet()); },
               "not a token dataset");
  expect_error([&] { train::Trainer(make_config(out, {"train.eval_steps=2"}), nullptr, quiet()); },
               "needs data.val_path");
  train::TrainerOptions resume = quiet();
  resume.resume = "latest";
  expect_error([&] { train::Trainer(make_config(out), nullptr, resume); }, "no checkpoint-STEP directory");
  EXPECT_FALSE(fs::exists(fs::path(out) / "metrics.jsonl"));
}

TEST(Trainer, UnwritableCheckpointIsAClearError) {
  const fs::path out = scratch_dir("unwritable");
  std::ofstream(out / "blocker") << "a file where the output directory should be";
  train::Trainer t(make_config((out / "blocker" / "run").string(), {"train.max_steps=1"}), nullptr, quiet());
  t.step();
  expect_error([&] { t.save_checkpoint(); }, "cannot write checkpoint");
}

// train.enable_mixed_precision: a bf16 copy computes, the float32 master steps. The loss follows
// the float32 run closely and falls as far, the master stays float32, and resume is bit-exact.
TEST(Trainer, MixedPrecisionTracksFloat32AndResumesBitExact) {
  const std::vector<std::string> common = {"train.max_steps=30", "train.lr=0.01"};
  auto losses = [&](const std::string& name, bool mixed) {
    std::vector<std::string> o = common;
    if (mixed) o.push_back("train.enable_mixed_precision=true");
    train::Trainer t(make_config(scratch_dir(name).string(), o), nullptr, quiet());
    std::vector<double> out;
    for (int i = 0; i < 30; ++i) out.push_back(t.step().loss);
    for (const auto& p : t.model()->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32);
    return out;
  };
  const std::vector<double> f32 = losses("mixed_f32", false), bf16 = losses("mixed_bf16", true);
  EXPECT_NEAR(bf16[0], f32[0], 0.02 * f32[0]);          // the same start, in bf16 rounding
  EXPECT_NE(bf16[0], f32[0]) << "the bf16 copy did not run";
  EXPECT_LT(bf16[29], bf16[0] - 1.5);                   // it learns ...
  EXPECT_NEAR(bf16[29], f32[29], 0.1 * f32[29] + 0.1);  // ... about as far as float32

  const fs::path out = scratch_dir("mixed_full"), out2 = scratch_dir("mixed_half");
  const std::vector<std::string> o = {"train.save_steps=2", "train.enable_mixed_precision=true"};
  train::Trainer full(make_config(out.string(), o), nullptr, quiet());
  full.train();
  train::TrainerOptions resume = quiet();
  resume.resume = (out / "checkpoint-2").string();
  train::Trainer half(make_config(out2.string(), o), nullptr, resume);
  half.train();
  auto a = weights(full), b = weights(half);
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
}
