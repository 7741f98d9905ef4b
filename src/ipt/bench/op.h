#pragma once
// `ipt bench op`: the TTT operator's algorithms (reference, recurrent, scan) on random inputs,
// forward and forward+backward time, GFLOP/s against the GEMM rate measured in the same run, and
// each algorithm's peak memory (each runs in a child process of its own, so the peak is its own).
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "ipt/bench/worker.h"

namespace ipt::bench {

struct OpOptions {
  int64_t L = 32768, d = 1024, h = 4096, chunk = 256, scan_group = 8;
  double lr = 0.3, clip = 0.0;
  int repeat = 1;
  std::vector<std::string> algorithms{"reference", "recurrent", "scan"};
  std::string dtype = "float32";  // the inputs' type: bfloat16 runs the mixed operator (bf16 products, float32 masters)
};

// One algorithm in this process (the worker): fwd (no grad) and fwd+bwd, best of `repeat`, then
// the peak memory: {"algorithm", "dtype", "device", "fwd_ms", "fwdbwd_ms", "peak_mb", "inputs_mb",
// "fwd_gflops"}.
nlohmann::json measure_op_algorithm(const OpOptions& options, const std::string& algorithm, const c10::Device& device);

// The command line of that worker (`bench op --worker ALGORITHM ...`).
std::string op_worker_args(const OpOptions& options, const std::string& algorithm);

// Throws on an unknown algorithm (run_op checks too; a caller may check before it says anything).
void check_op_options(const OpOptions& options);

// Every algorithm, each in a worker: {"dtype", "device", "gemm_gflops", "config", "results"}.
nlohmann::json run_op(const OpOptions& options, const c10::Device& device, const WorkerLauncher& workers);

void print_op_table(const OpOptions& options, const nlohmann::json& report, std::ostream& out);

}  // namespace ipt::bench
