#pragma once
// `ipt bench all`: one llama-bench-like table over the other benchmarks on one model, each run in
// child processes (their worker modes): prefill (ppN) with its MFU against the GEMM rate measured
// here, decode (tgN after a ppN prompt) and a training step over ppN tokens where the executable
// has those benchmarks, each with and without TTT and their ratio; the TTT operator at the model's
// size; the tokenizer's MB/s.
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <ostream>
#include <string>

#include "ipt/bench/worker.h"
#include "ipt/model/config.h"

namespace ipt::bench {

struct AllOptions {
  std::string model, tokenizer, text = "corpus/sample/1941_franklin_d_roosevelt_d.txt";
  int64_t pp = 512, tg = 128, op_length = 4096;
  std::string dtype = "float32";  // the compute dtype every row runs in (float32 or bfloat16)
  c10::Device device = c10::Device(c10::kCPU);
  bool has_decode = true, has_train = true;  // does the executable have `bench decode` / `bench train`
};

// {"model", "threads" (the workers' -t), "dtype", "device", "cpu_bf16", "rows": [{"test", "unit",
// "ttt", "no_ttt", "ratio", "note"}]} (a missing side is null; "ratio" only where both are there).
nlohmann::json run_all(const AllOptions& options, const WorkerLauncher& workers);

void print_all_table(const nlohmann::json& report, const model::ModelConfig& config, std::ostream& out);

}  // namespace ipt::bench
