#pragma once
// `ipt bench prefill --cp-size N`: context-parallel prefill. N local processes (one Gloo group,
// started with parallel::launch_local) each prefill their slice of one sequence; each reports its
// time, the time it spent in collectives and its peak memory, and the table sets the largest
// rank's peak against one rank's.
#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "ipt/bench/prefill.h"
#include "ipt/parallel/communicator.h"

namespace ipt::bench {

// One rank, in this process (`ipt bench prefill-cp-rank`): its slice of a random `length`-token
// sequence, timed between two collectives so that every rank measures the same interval; writes
// {"rank", "slice", "seconds", "communication_seconds", "peak_mb"} to OUT_DIR/rank-R.json. `group`
// is null for a single process.
void measure_prefill_rank(const std::string& model, int64_t length, bool ttt, parallel::Communicator* group,
                          const std::string& out_dir);

// One length prefilled by `cp_size` ranks of `executable` (the ipt binary): {"length", "ttt",
// "cp_size", "threads_per_rank", "tokens_per_s", "seconds", "communication_seconds",
// "peak_mb" (largest rank), "rank_peak_mb": [...]}.
nlohmann::json measure_prefill_context_parallel(const std::string& executable, const std::string& model,
                                                int64_t length, bool ttt, int cp_size);

// Every length of `options` (its window must be 0) × TTT side × rank count: {"model", "threads",
// "results"}.
nlohmann::json run_prefill_context_parallel(const std::string& executable, const PrefillOptions& options,
                                            const std::vector<int>& cp_sizes);

void print_prefill_context_parallel_table(const nlohmann::json& report, std::ostream& out);

}  // namespace ipt::bench
