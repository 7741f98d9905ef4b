#pragma once
// `ipt bench decode`: decode tokens/s after a random prompt of each context length, with and
// without TTT (the same weights, fast weights frozen), each configuration in a child process of
// its own; and, with streams, the aggregate tokens/s of that many concurrent generations, each on
// its own thread as the server runs them, decoding in shared steps (continuous batching) and each
// alone.
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "ipt/bench/worker.h"

namespace ipt::bench {

struct DecodeOptions {
  std::string model;
  std::vector<int64_t> contexts{1024, 8192};
  std::vector<int> streams;  // concurrent generations (aggregate throughput), instead of contexts
  int64_t tokens = 64;       // decoded per measurement (per stream)
  std::string decode_quant = "none";  // none, q8_0, q4_1, q4_0: the single-token step's weight blocks
  std::string decode_step = "on";     // off: the session's sequence path, for comparison
};

// What a worker loads: the model as the parent resolved it.
struct DecodeModel {
  c10::ScalarType dtype = c10::ScalarType::Float;
  c10::Device device = c10::Device(c10::kCPU);
};

// One context, in this process (the worker): a `context`-token prompt, then `tokens` greedy steps:
// {"context", "dtype", "decode_quant", "decode_step", "device", "ttt", "tokens",
// "decode_tokens_per_s", "prefill_tokens_per_s", "decode_updates", "peak_mb"}.
nlohmann::json measure_decode(const DecodeOptions& options, const DecodeModel& model, int64_t context, bool ttt);

// `streams` sessions after a short prompt each, generating `tokens` at once from their own
// threads, through one batcher (`batching`) or each alone: {"streams", "batching", "tokens",
// "aggregate_tokens_per_s", "mean_batch", "peak_mb"}.
nlohmann::json measure_decode_streams(const DecodeOptions& options, const DecodeModel& model, int streams,
                                      bool batching);

// Every context × TTT side (or every stream count × batching on/off), each in a worker (`bench
// decode --worker-context ...` / `--worker-streams ...`) in `dtype`: {"model", "threads", "dtype",
// "tokens", "decode_quant" [, "decode_step"], "results"}.
nlohmann::json run_decode(const DecodeOptions& options, const std::string& dtype, const WorkerLauncher& workers);

// The table of run_decode's report (either kind).
void print_decode_table(const DecodeOptions& options, const nlohmann::json& report, std::ostream& out);

}  // namespace ipt::bench
