#pragma once
// `ipt bench train`: training throughput (forward + loss + backward + AdamW step on one sequence),
// where a step's time goes, peak memory and model FLOP utilisation against the GEMM rate measured
// in the same run, with and without TTT and with and without gradient checkpointing, in float32
// and in mixed precision; each configuration in a child process of its own (so peak memory is its
// own).
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "ipt/bench/worker.h"

namespace ipt::bench {

struct TrainOptions {
  std::string model;
  int64_t seq_len = 2048, steps = 3;  // tokens per sequence; timed steps after one warm-up step
  std::vector<std::string> precisions{"float32", "mixed"};
};

// One configuration, in this process (the worker). `mixed`: bf16 compute, float32 master weights
// and AdamW state, as train.enable_mixed_precision. {"ttt", "precision", "checkpointing",
// "tokens_per_s", "seconds_per_step", "forward_ms", "backward_ms", "optimizer_ms",
// "model_gflops_per_s", "device", "peak_mb"}.
nlohmann::json measure_train_steps(const TrainOptions& options, bool ttt, bool checkpointing, bool mixed,
                                   const c10::Device& device);

// Throws on a non-positive length or step count or an unknown precision (run_train checks too; a
// caller may check before it says anything).
void check_train_options(const TrainOptions& options);

// Every precision × checkpointing × TTT side, each in a worker (`bench train --worker-ttt ...`),
// with "mfu" against the GEMM rate of the precision's compute type: {"model", "seq_len", "steps",
// "threads", "device", "gemm_gflops", "gemm_bf16_gflops", "cpu_bf16", "results"}.
nlohmann::json run_train(const TrainOptions& options, const c10::Device& device, const WorkerLauncher& workers);

void print_train_table(const TrainOptions& options, const nlohmann::json& report, std::ostream& out);

}  // namespace ipt::bench
