#pragma once
// Context-parallel prefill measurement behind `ipt bench prefill --cp-size N`: N local processes
// (one Gloo group) each prefill their slice of one sequence; each reports its time, the time it
// spent in collectives and its peak memory.
#include <nlohmann/json.hpp>

#include <string>

namespace ipt::cli {

// {"length", "ttt", "cp_size", "tokens_per_s", "seconds", "communication_seconds",
//  "peak_mb" (largest rank), "rank_peak_mb": [...]}
nlohmann::json measure_prefill_context_parallel(const std::string& model, int64_t length, bool ttt, int cp_size);

}  // namespace ipt::cli
