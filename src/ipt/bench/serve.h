#pragma once
// `ipt bench serve`: a load test of the HTTP server (infer/server.h) on loopback. The server runs
// in this process on a free port with `parallel` slots and a `queue`; for each client count, that
// many client threads send a mixed workload for `duration` seconds: completions, chat, streamed
// completions and chat, requests continuing the client's own session, and (every tenth) a malformed
// request. Every answer is classified: 200/201 for the valid ones, 4xx for the malformed ones, 503
// server_busy when the queue is full. A dropped connection, a 5xx, a 4xx for a valid request, a 2xx
// for a malformed one, or a body that is not the JSON / event stream the API promises is an error.
// Also reported: latency percentiles of the valid requests (bench/stats.h) and the process's peak
// memory against the model and the session budget.
//
// Part of the `ipt_server` library (its client is cpp-httplib's), not of the core.
#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "ipt/model/checkpoint.h"

namespace ipt::bench {

struct ServeOptions {
  std::string model;
  std::vector<int> clients{4};        // one row per count
  int parallel = 2, queue = 8;        // the server's slots and waiting places
  int requests = 0;                   // per client and row (0: until `duration` is over)
  int64_t max_tokens = 16, session_budget_mb = 256;
  double duration = 10;               // seconds per row
};

// Throws on options out of range (run_serve checks them too; a caller may check before it says
// anything else).
void check_serve_options(const ServeOptions& options);

// Loads the model with `load`, runs a warm-up row of `parallel` clients and then one row per client
// count. Writes the table to `out` as rows finish, or with `as_json` one JSON object at the end
// ({"model", "dtype", "parallel", "queue", "max_tokens", "duration_s", "session_budget_mb",
// "weights_mb", "rss_after_load_mb", "rss_after_warmup_mb", "rows"}). Throws when an answer was not
// what the API promises or a row's peak memory exceeded the model plus the session budget.
void run_serve(const ServeOptions& options, const model::LoadOptions& load, std::ostream& out, bool as_json);

}  // namespace ipt::bench
