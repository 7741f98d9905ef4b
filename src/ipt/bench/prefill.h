#pragma once
// `ipt bench prefill`: whole-sequence prefill throughput and peak memory per length, with and
// without TTT (the same weights loaded as a plain model), and optionally with every layer's
// attention turned into a sliding window at load time — the paper's efficiency figure. Each row
// runs in a child process of its own, so its peak memory is its own.
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "ipt/bench/worker.h"

namespace ipt::bench {

struct PrefillOptions {
  std::string model;
  std::vector<int64_t> lengths{4096, 16384, 32768};
  int64_t up_to = 0;   // 8192, 16384, … up to this (replaces lengths), stopping at the first that fails
  int64_t window = 0;  // also measure every layer with a sliding window of this size
};

// One row, measured in this process (the worker).
struct PrefillRun {
  std::string model;
  int64_t length = 0;
  bool ttt = true;     // false: the TTT layers loaded as plain MLPs
  int64_t window = 0;  // 0: the model's own attention
  c10::ScalarType dtype = c10::ScalarType::Float;
  c10::Device device = c10::Device(c10::kCPU);
};

// One forward over `length` random ids ending with the next-token logits, after a 64-token
// warm-up: {"length", "ttt", "dtype", "device", "window", "tokens_per_s", "seconds", "peak_mb"
// [, "gpu_peak_mb"]}.
nlohmann::json measure_prefill(const PrefillRun& run);

// The lengths a run measures: `lengths`, or 8192, 16384, … up to `up_to`.
std::vector<int64_t> prefill_lengths(const PrefillOptions& options);

// Every length × window × TTT side, each in a worker (`bench prefill --worker-length ...`) in
// `dtype` ("float32" or "bfloat16"): {"model", "threads", "dtype", "results" [, "stopped"]}.
nlohmann::json run_prefill(const PrefillOptions& options, const std::string& dtype, const WorkerLauncher& workers);

// The table: one row per result, the TTT / no-TTT ratios on each no-TTT row.
void print_prefill_table(const nlohmann::json& report, std::ostream& out);

}  // namespace ipt::bench
