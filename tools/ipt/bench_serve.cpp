// ipt bench serve: a load test of the HTTP server on loopback. The server runs in this process on
// a free port; N client threads send M completion requests each (bounded by --time-limit), and
// the report gives requests/s, latency percentiles and the error count (which must be zero: the
// command fails otherwise).
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <thread>

#include "command.h"
#include "ipt/common/error.h"
#include "ipt/eval/timing.h"
#include "ipt/infer/server.h"
#include "ipt/model/checkpoint.h"

namespace ipt::cli {
namespace {

struct ServeBenchOptions {
  std::string model;
  int clients = 4, requests = 8, parallel = 0;
  int64_t max_tokens = 16;
  double time_limit = 120;
  bool stream = false, json = false;
};

double percentile(std::vector<double> sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * (sorted.size() - 1) + 0.5));
  return sorted[i];
}

int run(const ServeBenchOptions& o) {
  IPT_CHECK(o.clients > 0 && o.requests > 0, "bench serve: --clients and --requests must be > 0");
  IPT_CHECK(o.time_limit > 0, "bench serve: --time-limit must be > 0");
  torch::NoGradGuard no_grad;
  model::CausalLM lm = model::load_model(o.model);
  infer::ServerOptions so;
  so.port = 0;
  so.parallel = o.parallel > 0 ? o.parallel : o.clients;
  so.max_queue = o.clients;
  infer::Server server(lm, o.model, so);
  const int port = server.bind();
  std::thread listener([&] { server.listen(); });

  std::mutex m;
  std::vector<double> latencies;
  std::atomic<int> errors{0};
  std::string first_error;
  Stopwatch wall;
  std::vector<std::thread> clients;
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(static_cast<time_t>(o.time_limit) + 1);
      for (int r = 0; r < o.requests && wall.ms() < o.time_limit * 1000; ++r) {
        nlohmann::json body = {{"prompt", "Client " + std::to_string(c) + " asks question " + std::to_string(r) + ":"},
                               {"max_tokens", o.max_tokens}, {"temperature", 0.8}, {"seed", c * 1000 + r},
                               {"stream", o.stream}};
        Stopwatch latency;
        auto res = client.Post("/v1/completions", body.dump(), "application/json");
        const double ms = latency.ms();
        std::lock_guard<std::mutex> lock(m);
        if (!res || res->status != 200) {
          if (errors++ == 0) first_error = res ? std::to_string(res->status) + " " + res->body : httplib::to_string(res.error());
        } else {
          latencies.push_back(ms);
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  const double seconds = wall.ms() / 1000;
  server.stop();
  listener.join();

  std::sort(latencies.begin(), latencies.end());
  const nlohmann::json report = {{"model", o.model}, {"clients", o.clients}, {"parallel", so.parallel},
                                 {"max_tokens", o.max_tokens}, {"stream", o.stream},
                                 {"requests", latencies.size() + errors}, {"errors", errors.load()},
                                 {"seconds", seconds}, {"requests_per_s", latencies.size() / seconds},
                                 {"tokens_per_s", latencies.size() * o.max_tokens / seconds},
                                 {"latency_ms", {{"p50", percentile(latencies, 0.5)}, {"p90", percentile(latencies, 0.9)},
                                                 {"p99", percentile(latencies, 0.99)}}}};
  if (o.json) {
    std::cout << report.dump(2) << std::endl;
  } else {
    std::cout << std::fixed << std::setprecision(2) << "serve  " << o.model << "  clients " << o.clients << "  slots "
              << so.parallel << "  max_tokens " << o.max_tokens << (o.stream ? "  stream" : "") << "\n"
              << "requests " << report["requests"] << "  errors " << errors << "  " << seconds << " s  "
              << report["requests_per_s"].get<double>() << " req/s  (at most " << report["tokens_per_s"].get<double>()
              << " generated tok/s)\nlatency ms  p50 " << report["latency_ms"]["p50"].get<double>() << "  p90 "
              << report["latency_ms"]["p90"].get<double>() << "  p99 " << report["latency_ms"]["p99"].get<double>() << "\n";
  }
  IPT_CHECK(errors == 0, "bench serve: ", errors.load(), " request(s) failed; first: ", first_error);
  return 0;
}

Register bench_serve("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<ServeBenchOptions>();
  CLI::App* cmd = parent.add_subcommand("serve", "load test of the HTTP server on loopback (requests/s, latency)");
  cmd->add_option("-m,--model", o->model, "model directory (with tokenizer.json)")->required();
  cmd->add_option("--clients", o->clients, "concurrent clients (default 4)");
  cmd->add_option("--requests", o->requests, "requests per client (default 8)");
  cmd->add_option("--parallel", o->parallel, "server worker slots (default: one per client)");
  cmd->add_option("--max-tokens", o->max_tokens, "tokens generated per request (default 16)");
  cmd->add_option("--time-limit", o->time_limit, "seconds after which clients send no new request (default 120)");
  cmd->add_flag("--stream", o->stream, "ask for server-sent events");
  cmd->add_flag("--json", o->json, "print one JSON object");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
