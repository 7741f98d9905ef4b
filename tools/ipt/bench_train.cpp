// ipt bench train: training throughput (forward + loss + backward + AdamW step on one sequence),
// peak memory and model FLOP utilisation, with and without TTT and with and without gradient
// checkpointing, each configuration in its own child process (so peak memory is its own).
#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <sstream>

#include "command.h"
#include "model_flags.h"
#include "worker.h"
#include "ipt/bench/flops.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/bench/gemm.h"
#include "ipt/model/checkpoint.h"
#include "ipt/ops/loss/lm_loss.h"
#include "ipt/train/optimizer.h"

namespace ipt::cli {
namespace {

struct BenchTrainOptions {
  std::string model;
  int64_t seq_len = 2048, steps = 3;
  bool json = false;
  std::vector<std::string> precisions{"float32", "mixed"};
  int worker_ttt = -1, worker_checkpointing = -1, worker_mixed = 0;  // internal
  DeviceFlag device;
};

nlohmann::json worker(const BenchTrainOptions& o) {
  model::LoadOptions load;
  load.without_ttt = o.worker_ttt == 0;
  load.device = o.device.resolve("bench train", false);
  model::CausalLM master = model::load_model(o.model, load);
  // Mixed precision as the trainer does it (train.enable_mixed_precision): a bf16 copy computes,
  // its gradients are added into the float32 master, the master steps, the copy follows.
  model::CausalLM lm = master;
  if (o.worker_mixed == 1) {
    load.dtype = torch::kBFloat16;
    lm = model::load_model(o.model, load);
  }
  lm->train();
  lm->set_gradient_checkpointing(o.worker_checkpointing == 1);
  train::NamedParameters params, compute_params;
  for (const auto& p : master->named_parameters()) params.emplace_back(p.key(), p.value());
  for (const auto& p : lm->named_parameters()) compute_params.emplace_back(p.key(), p.value());
  train::AdamW adam(params, {});
  const int64_t d = lm->config().hidden_size;
  torch::manual_seed(0);
  torch::Tensor ids = torch::randint(0, lm->config().vocab_size, {1, o.seq_len + 1}, torch::kInt64).to(load.device);
  torch::Tensor input = ids.narrow(1, 0, o.seq_len), labels = ids.narrow(1, 1, o.seq_len).reshape({-1});
  double forward_ms = 0, backward_ms = 0, optimizer_ms = 0;  // where a step's time goes
  auto train_step = [&] {
    for (auto& [name, p] : params)
      if (p.grad().defined()) p.mutable_grad().zero_();
    Stopwatch phase;
    if (o.worker_mixed == 1) {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) compute_params[i].second.copy_(params[i].second);
    }
    torch::Tensor hidden = lm->hidden_states(input);
    torch::Tensor loss = ops::lm_loss(hidden.reshape({-1, d}), lm->head_weight(), labels).loss;
    forward_ms += phase.ms();
    Stopwatch backward;
    loss.backward();
    if (o.worker_mixed == 1) {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) {
        torch::Tensor& g = compute_params[i].second.mutable_grad();
        params[i].second.mutable_grad() = g.to(torch::kFloat32);
        g.zero_();
      }
    }
    backward_ms += backward.ms();
    Stopwatch optimizer;
    train::clip_grad_norm(params, 1.0);
    adam.step(1e-4);
    synchronize(load.device);  // (clip_grad_norm reads the norm back already; the step's kernels too)
    optimizer_ms += optimizer.ms();
  };
  train_step();  // warm-up: thread pools, first touch of gradient and moment buffers
  forward_ms = backward_ms = optimizer_ms = 0;
  reset_cuda_peak(load.device);
  Stopwatch watch;
  for (int64_t i = 0; i < o.steps; ++i) train_step();
  const double seconds = watch.ms() / 1000 / static_cast<double>(o.steps);
  const double tokens_per_s = static_cast<double>(o.seq_len) / seconds;
  return {{"ttt", o.worker_ttt == 1},
          {"precision", o.worker_mixed == 1 ? "mixed" : "float32"},
          {"checkpointing", o.worker_checkpointing == 1},
          {"tokens_per_s", tokens_per_s},
          {"seconds_per_step", seconds},
          {"forward_ms", forward_ms / o.steps},
          {"backward_ms", backward_ms / o.steps},
          {"optimizer_ms", optimizer_ms / o.steps},
          {"model_gflops_per_s", bench::training_flops_per_token(lm->config(), o.seq_len) * tokens_per_s / 1e9},
          {"device", describe_device(load.device)},
          {"peak_mb", load.device.is_cuda() ? cuda_peak_allocated_mb(load.device) : peak_rss_mb()}};
}

int run(const BenchTrainOptions& o) {
  IPT_CHECK(o.seq_len > 0 && o.steps > 0, "--seq-len and --steps must be positive");
  if (o.worker_ttt >= 0) {
    std::cout << worker(o).dump() << std::endl;
    return 0;
  }
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  for (const auto& p : o.precisions)
    IPT_CHECK(p == "float32" || p == "mixed", "bench train --precision: '", p, "' (expected float32 or mixed)");
  // MFU against the GEMM rate of the precision's compute type, measured now.
  const torch::Device device = o.device.resolve("bench train", !o.json);  // the workers inherit it
  const int gemm_n = device.is_cuda() ? 8192 : 2048;
  const double gemm = measure_gemm_gflops(gemm_n, 5, torch::kFloat32, device);
  const double gemm_bf16 = measure_gemm_gflops(gemm_n, 5, torch::kBFloat16, device);
  nlohmann::json report = {{"model", o.model},   {"seq_len", o.seq_len}, {"steps", o.steps},
                           {"threads", at::get_num_threads()}, {"device", describe_device(device)}, {"gemm_gflops", gemm}, {"gemm_bf16_gflops", gemm_bf16},
                           {"cpu_bf16", cpu_bf16_features()}, {"results", nlohmann::json::array()}};
  for (const std::string& precision : o.precisions)
    for (int checkpointing : {0, 1})
      for (int ttt : has_ttt ? std::vector<int>{0, 1} : std::vector<int>{0}) {
        std::ostringstream args;
        args << "bench train -m '" << o.model << "' --seq-len " << o.seq_len << " --steps " << o.steps
             << " --worker-ttt " << ttt << " --worker-checkpointing " << checkpointing << " --worker-mixed "
             << (precision == "mixed");
        nlohmann::json r = run_worker(args.str());
        r["mfu"] = r["model_gflops_per_s"].get<double>() / (precision == "mixed" ? gemm_bf16 : gemm);
        report["results"].push_back(r);
      }
  if (o.json) {
    std::cout << report.dump(2) << std::endl;
    return 0;
  }
  std::cout << "train  " << o.model << "  seq-len " << o.seq_len << "  threads " << at::get_num_threads()
            << "  GEMM " << std::fixed << std::setprecision(1) << gemm << " GFLOP/s float32, " << gemm_bf16
            << " bfloat16\n\n"
            << "| precision | TTT | checkpointing | tokens/s | model GFLOP/s | MFU | fwd / bwd / opt ms | peak MB | tok/s vs no TTT |\n"
            << "|:---|:---:|:---:|---:|---:|---:|---:|---:|---:|\n";
  const auto& rs = report["results"];
  for (size_t i = 0; i < rs.size(); ++i) {
    const auto& r = rs[i];
    std::cout << "| " << r["precision"].get<std::string>() << " | " << (r["ttt"].get<bool>() ? "yes" : "no") << " | "
              << (r["checkpointing"].get<bool>() ? "yes" : "no")
              << " | " << std::setprecision(0) << r["tokens_per_s"].get<double>() << " | " << std::setprecision(1)
              << r["model_gflops_per_s"].get<double>() << " | " << r["mfu"].get<double>() * 100 << "% | "
              << std::setprecision(0) << r["forward_ms"].get<double>() << " / " << r["backward_ms"].get<double>() << " / "
              << r["optimizer_ms"].get<double>() << " | " << r["peak_mb"].get<double>() << " | ";
    if (r["ttt"].get<bool>() && i > 0)
      std::cout << std::setprecision(3) << r["tokens_per_s"].get<double>() / rs[i - 1]["tokens_per_s"].get<double>();
    std::cout << " |\n";
  }
  return 0;
}

Register bench_train("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<BenchTrainOptions>();
  CLI::App* cmd = parent.add_subcommand("train", "training tokens/s, peak memory and MFU, with/without TTT and checkpointing");
  add_model_option(cmd, o->model);
  cmd->add_option("--seq-len", o->seq_len, "tokens per training sequence");
  cmd->add_option("--steps", o->steps, "timed steps per configuration (after one warm-up step)");
  cmd->add_option("--precision", o->precisions, "float32 and/or mixed (bf16 compute, float32 master; default both)")
      ->delimiter(',');
  o->device.add_to(cmd);
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--worker-mixed", o->worker_mixed)->group("");
  cmd->add_option("--worker-ttt", o->worker_ttt)->group("");
  cmd->add_option("--worker-checkpointing", o->worker_checkpointing)->group("");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
