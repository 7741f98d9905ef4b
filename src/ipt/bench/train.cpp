#include "ipt/bench/train.h"

#include <torch/torch.h>

#include <iomanip>
#include <sstream>

#include "ipt/bench/flops.h"
#include "ipt/bench/gemm.h"
#include "ipt/common/device.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/common/stopwatch.h"
#include "ipt/model/checkpoint.h"
#include "ipt/ops/loss/lm_loss.h"
#include "ipt/train/optimizer.h"

namespace ipt::bench {

nlohmann::json measure_train_steps(const TrainOptions& o, bool ttt, bool checkpointing, bool mixed,
                                   const c10::Device& device) {
  IPT_CHECK(o.seq_len > 0 && o.steps > 0, "--seq-len and --steps must be positive");
  model::LoadOptions load;
  load.without_ttt = !ttt;
  load.device = device;
  model::CausalLM master = model::load_model(o.model, load);
  // Mixed precision as the trainer does it (train.enable_mixed_precision): a bf16 copy computes,
  // its gradients are added into the float32 master, the master steps, the copy follows.
  model::CausalLM lm = master;
  if (mixed) {
    load.dtype = torch::kBFloat16;
    lm = model::load_model(o.model, load);
  }
  lm->train();
  lm->set_gradient_checkpointing(checkpointing);
  train::NamedParameters params, compute_params;
  for (const auto& p : master->named_parameters()) params.emplace_back(p.key(), p.value());
  for (const auto& p : lm->named_parameters()) compute_params.emplace_back(p.key(), p.value());
  train::AdamW adam(params, {});
  if (mixed) {  // the optimizer writes each updated master into its bf16 copy, as the trainer's does
    std::vector<torch::Tensor> copies;
    for (const auto& [name, p] : compute_params) copies.push_back(p);
    adam.set_compute_copies(std::move(copies));
  }
  const int64_t d = lm->config().hidden_size;
  torch::manual_seed(0);
  torch::Tensor ids = torch::randint(0, lm->config().vocab_size, {1, o.seq_len + 1}, torch::kInt64).to(load.device);
  torch::Tensor input = ids.narrow(1, 0, o.seq_len), labels = ids.narrow(1, 1, o.seq_len).reshape({-1});
  double forward_ms = 0, backward_ms = 0, optimizer_ms = 0;  // where a step's time goes
  auto train_step = [&] {
    Stopwatch phase;
    torch::Tensor hidden = lm->hidden_states(input);
    torch::Tensor loss = ops::lm_loss(hidden.reshape({-1, d}), lm->head_weight(), labels).loss;
    forward_ms += phase.ms();
    Stopwatch backward;
    loss.backward();  // gradients were reset: the backward hands them over, nothing is added to zeros
    if (mixed) {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) {  // into the master's float32 buffer, as the trainer does
        torch::Tensor& g = compute_params[i].second.mutable_grad();
        if (!g.defined()) continue;
        torch::Tensor& master_grad = params[i].second.mutable_grad();
        if (!master_grad.defined()) master_grad = torch::empty_like(params[i].second);
        master_grad.copy_(g);
        g.reset();
      }
    }
    backward_ms += backward.ms();
    Stopwatch optimizer;
    adam.step(1e-4, train::clip_scale(train::grad_norm(params), 1.0));
    synchronize(load.device);  // (grad_norm reads the norm back already; the step's kernels too)
    if (!mixed)
      for (auto& [name, p] : params) p.mutable_grad().reset();
    optimizer_ms += optimizer.ms();
  };
  train_step();  // warm-up: thread pools, first touch of gradient and moment buffers
  forward_ms = backward_ms = optimizer_ms = 0;
  reset_cuda_peak(load.device);
  Stopwatch watch;
  for (int64_t i = 0; i < o.steps; ++i) train_step();
  const double seconds = watch.ms() / 1000 / static_cast<double>(o.steps);
  const double tokens_per_s = static_cast<double>(o.seq_len) / seconds;
  return {{"ttt", ttt},
          {"precision", mixed ? "mixed" : "float32"},
          {"checkpointing", checkpointing},
          {"tokens_per_s", tokens_per_s},
          {"seconds_per_step", seconds},
          {"forward_ms", forward_ms / o.steps},
          {"backward_ms", backward_ms / o.steps},
          {"optimizer_ms", optimizer_ms / o.steps},
          {"model_gflops_per_s", training_flops_per_token(lm->config(), o.seq_len) * tokens_per_s / 1e9},
          {"device", describe_device(load.device)},
          {"peak_mb", load.device.is_cuda() ? cuda_peak_allocated_mb(load.device) : peak_rss_mb()}};
}

void check_train_options(const TrainOptions& o) {
  IPT_CHECK(o.seq_len > 0 && o.steps > 0, "--seq-len and --steps must be positive");
  for (const auto& p : o.precisions)
    IPT_CHECK(p == "float32" || p == "mixed", "bench train --precision: '", p, "' (expected float32 or mixed)");
}

nlohmann::json run_train(const TrainOptions& o, const c10::Device& device, const WorkerLauncher& workers) {
  const bool has_ttt = model::ModelConfig::load(o.model + "/config.json").ttt_mode;
  check_train_options(o);
  // MFU against the GEMM rate of the precision's compute type, measured now.
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
        nlohmann::json r = workers.run(args.str());
        r["mfu"] = r["model_gflops_per_s"].get<double>() / (precision == "mixed" ? gemm_bf16 : gemm);
        report["results"].push_back(r);
      }
  return report;
}

void print_train_table(const TrainOptions& o, const nlohmann::json& report, std::ostream& out) {
  out << "train  " << o.model << "  seq-len " << o.seq_len << "  threads " << at::get_num_threads() << "  GEMM "
      << std::fixed << std::setprecision(1) << report["gemm_gflops"].get<double>() << " GFLOP/s float32, "
      << report["gemm_bf16_gflops"].get<double>() << " bfloat16\n\n"
      << "| precision | TTT | checkpointing | tokens/s | model GFLOP/s | MFU | fwd / bwd / opt ms | peak MB | tok/s vs no TTT |\n"
      << "|:---|:---:|:---:|---:|---:|---:|---:|---:|---:|\n";
  const auto& rs = report["results"];
  for (size_t i = 0; i < rs.size(); ++i) {
    const auto& r = rs[i];
    out << "| " << r["precision"].get<std::string>() << " | " << (r["ttt"].get<bool>() ? "yes" : "no") << " | "
        << (r["checkpointing"].get<bool>() ? "yes" : "no") << " | " << std::setprecision(0)
        << r["tokens_per_s"].get<double>() << " | " << std::setprecision(1) << r["model_gflops_per_s"].get<double>()
        << " | " << r["mfu"].get<double>() * 100 << "% | " << std::setprecision(0) << r["forward_ms"].get<double>()
        << " / " << r["backward_ms"].get<double>() << " / " << r["optimizer_ms"].get<double>() << " | "
        << r["peak_mb"].get<double>() << " | ";
    if (r["ttt"].get<bool>() && i > 0)
      out << std::setprecision(3) << r["tokens_per_s"].get<double>() / rs[i - 1]["tokens_per_s"].get<double>();
    out << " |\n";
  }
}

}  // namespace ipt::bench
