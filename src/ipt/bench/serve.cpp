#include "ipt/bench/serve.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iomanip>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "ipt/bench/stats.h"
#include "ipt/common/error.h"
#include "ipt/common/stopwatch.h"
#include "ipt/infer/server.h"

namespace ipt::bench {
namespace {

using json = nlohmann::json;

// The process's resident memory now (not its peak: the rows sample it while they run).
double rss_mb() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1 << 20);
}

// The kernel's count of handshakes dropped because a listen queue was full (system-wide; -1 when
// /proc/net/netstat cannot be read). A dropped handshake surfaces later as a reset connection.
int64_t listen_overflows() {
  std::ifstream netstat("/proc/net/netstat");
  std::string names, values;
  while (std::getline(netstat, names) && std::getline(netstat, values)) {
    if (names.rfind("TcpExt:", 0) != 0) continue;
    std::istringstream n(names), v(values);
    std::string name, value;
    while (n >> name && v >> value)
      if (name == "ListenOverflows") return std::stoll(value);
  }
  return -1;
}

enum class Kind { kCompletion, kChat, kStreamCompletion, kStreamChat, kSession, kMalformed };
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kCompletion: return "completion";
    case Kind::kChat: return "chat";
    case Kind::kStreamCompletion: return "stream completion";
    case Kind::kStreamChat: return "stream chat";
    case Kind::kSession: return "session";
    case Kind::kMalformed: return "malformed";
  }
  return "?";
}

// The malformed requests a careless client sends; each must get a 4xx with an error body.
const std::vector<std::pair<std::string, std::string>>& malformed_requests() {
  static const std::vector<std::pair<std::string, std::string>> requests = {
      {"/v1/completions", "{not json"},
      {"/v1/completions", R"({"prompt": "a", "max_tokens": -1})"},
      {"/v1/completions", R"({"prompt": "a", "max_tokens": 1000000000})"},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "a"}]})"},
      {"/v1/completions", R"({"prompt": "a", "temperature": "hot"})"},
      {"/v1/completions", R"({"prompt": "a", "session_id": "no-such-session"})"}};
  return requests;
}

// A streamed body: `data: {...}` events, the last one `data: [DONE]`, none an error event.
bool well_formed_stream(const std::string& body) {
  if (body.size() < 14 || body.compare(body.size() - 14, 14, "data: [DONE]\n\n") != 0) return false;
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = body.find("\n\n", at);
    if (end == std::string::npos || body.compare(at, 6, "data: ") != 0) return false;
    const std::string payload = body.substr(at + 6, end - at - 6);
    if (payload != "[DONE]") {
      const json event = json::parse(payload, nullptr, false);
      if (event.is_discarded() || event.contains("error") || !event.contains("choices")) return false;
    }
    at = end + 2;
  }
  return true;
}

struct Row {
  int clients = 0;
  double seconds = 0, peak_rss_mb = 0;
  int64_t listen_overflows = 0;
  int64_t ok = 0, rejected_as_expected = 0, busy = 0;
  std::map<std::string, int64_t> errors;  // what went wrong -> count
  std::string first_error;
  std::vector<double> latencies;          // valid requests answered 200
  std::map<std::string, int64_t> by_kind; // valid and malformed requests sent, by kind
};

Row run_row(const ServeOptions& o, const model::CausalLM& lm, int clients) {
  infer::ServerOptions so;
  so.port = 0;
  so.parallel = o.parallel;
  so.max_queue = o.queue;
  so.session_bytes = o.session_budget_mb << 20;
  so.max_sessions = std::max(16, clients);
  infer::Server server(lm, o.model, so);
  const int port = server.bind();
  std::thread listener([&] { server.listen(); });

  Row row;
  row.clients = clients;
  std::mutex m;
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {
    while (sampling) {
      const double now = rss_mb();
      {
        std::lock_guard<std::mutex> lock(m);
        row.peak_rss_mb = std::max(row.peak_rss_mb, now);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto error = [&](const std::string& what, const std::string& detail) {
    if (row.errors[what]++ == 0 && row.first_error.empty()) row.first_error = what + ": " + detail;
  };

  const int64_t overflows_before = listen_overflows();
  Stopwatch wall;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(static_cast<time_t>(o.duration) + 60);
      std::string session;
      for (int r = 0; wall.ms() < o.duration * 1000 && (o.requests == 0 || r < o.requests); ++r) {
        const Kind kind = r % 10 == 9 ? Kind::kMalformed : static_cast<Kind>((c + r) % 5);
        std::string path = "/v1/completions";
        json body = {{"max_tokens", o.max_tokens}, {"temperature", 0.8}, {"seed", c * 100000 + r}};
        const std::string prompt = "Client " + std::to_string(c) + " asks question " + std::to_string(r) + ":";
        if (kind == Kind::kChat || kind == Kind::kStreamChat) {
          path = "/v1/chat/completions";
          body["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
        } else {
          body["prompt"] = prompt;
        }
        const bool stream = kind == Kind::kStreamCompletion || kind == Kind::kStreamChat;
        if (stream) body["stream"] = true;
        if (kind == Kind::kSession) {
          if (session.empty()) {
            auto created = client.Post("/v1/sessions", "{}", "application/json");
            std::lock_guard<std::mutex> lock(m);
            if (!created) { error("dropped connection", "POST /v1/sessions: " + httplib::to_string(created.error())); continue; }
            if (created->status == 503) { ++row.busy; continue; }
            if (created->status != 201) { error("session not created", created->body); continue; }
            session = json::parse(created->body)["id"];
          }
          body["session_id"] = session;
        }
        std::string text = body.dump();
        if (kind == Kind::kMalformed) {
          const auto& bad = malformed_requests()[(c + r / 10) % malformed_requests().size()];
          path = bad.first;
          text = bad.second;
        }
        Stopwatch latency;
        auto res = client.Post(path.c_str(), text, "application/json");
        const double ms = latency.ms();
        std::lock_guard<std::mutex> lock(m);
        ++row.by_kind[kind_name(kind)];
        if (!res) { error("dropped connection", httplib::to_string(res.error())); continue; }
        const int status = res->status;
        if (status == 503) {
          const json e = json::parse(res->body, nullptr, false);
          if (!e.is_discarded() && e.contains("error") && e["error"]["code"] == "server_busy") ++row.busy;
          else error("503 without server_busy", res->body);
        } else if (status >= 500) {
          error(std::to_string(status), res->body);
        } else if (kind == Kind::kMalformed) {
          const json e = json::parse(res->body, nullptr, false);
          if (status >= 400 && !e.is_discarded() && e.contains("error")) ++row.rejected_as_expected;
          else error("malformed request answered " + std::to_string(status), text + " -> " + res->body);
        } else if (status != 200) {
          error("valid request answered " + std::to_string(status), text + " -> " + res->body);
          if (kind == Kind::kSession && status == 404) session.clear();  // evicted without --session-dir
        } else if (stream ? !well_formed_stream(res->body) : json::parse(res->body, nullptr, false).is_discarded()) {
          error("ill-formed body", res->body.substr(0, 300));
        } else {
          ++row.ok;
          row.latencies.push_back(ms);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  row.seconds = wall.ms() / 1000;
  row.listen_overflows = overflows_before < 0 ? -1 : listen_overflows() - overflows_before;
  sampling = false;
  sampler.join();
  server.stop();
  listener.join();
  std::sort(row.latencies.begin(), row.latencies.end());
  return row;
}

}  // namespace

void check_serve_options(const ServeOptions& o) {
  IPT_CHECK(!o.clients.empty(), "bench serve: --clients needs at least one count");
  for (int c : o.clients) IPT_CHECK(c > 0, "bench serve: --clients must be > 0, got ", c);
  IPT_CHECK(o.duration > 0, "bench serve: --duration must be > 0");
  IPT_CHECK(o.parallel > 0 && o.queue >= 0, "bench serve: --parallel must be > 0 and --queue >= 0");
  IPT_CHECK(o.max_tokens > 0 && o.session_budget_mb > 0, "bench serve: --max-tokens and --session-budget-mb must be > 0");
}

void run_serve(const ServeOptions& o, const model::LoadOptions& load, std::ostream& out, bool as_json) {
  check_serve_options(o);
  torch::NoGradGuard no_grad;
  const double rss_before = rss_mb();
  model::CausalLM lm = model::load_model(o.model, load);
  const double rss_loaded = rss_mb();
  // The model's own footprint includes one forward per slot (activations, the allocator's arenas,
  // the HTTP threads): a short warm-up row runs first, and the budget is checked against the
  // memory after it. Its answers are checked like every row's.
  ServeOptions warm = o;
  warm.requests = 5;
  const Row warmup = run_row(warm, lm, o.parallel);
  IPT_CHECK(warmup.errors.empty(), "bench serve: the warm-up failed: ", warmup.first_error);
  const double rss_model = rss_mb();
  int64_t parameter_bytes = 0;
  for (const auto& p : lm->parameters()) parameter_bytes += p.numel() * static_cast<int64_t>(p.element_size());

  json rows = json::array();
  int64_t total_errors = 0;
  std::string first_error;
  if (!as_json)
    out << "serve  " << o.model << "  --parallel " << o.parallel << " --queue " << o.queue << "  max_tokens "
        << o.max_tokens << "  " << o.duration << " s per row  session budget " << o.session_budget_mb << " MiB\n"
        << "model " << std::fixed << std::setprecision(1) << parameter_bytes / double(1 << 20)
        << " MiB of weights; process " << rss_loaded << " MiB after loading (" << rss_before << " before), "
        << rss_model << " MiB after a warm-up of " << o.parallel << " clients\n"
        << "clients  requests   ok  4xx(bad)  503(busy)  errors  req/s   p50 ms   p99 ms  peak MiB  listen overflows\n";
  for (int clients : o.clients) {
    const Row r = run_row(o, lm, clients);
    int64_t errors = 0;
    for (const auto& [what, n] : r.errors) errors += n;
    total_errors += errors;
    if (first_error.empty()) first_error = r.first_error;
    const int64_t requests = r.ok + r.rejected_as_expected + r.busy + errors;
    json row = {{"clients", clients},
                {"seconds", r.seconds},
                {"requests", requests},
                {"ok", r.ok},
                {"rejected_malformed", r.rejected_as_expected},
                {"busy_503", r.busy},
                {"errors", errors},
                {"error_kinds", r.errors},
                {"by_kind", r.by_kind},
                {"requests_per_s", requests / r.seconds},
                {"latency_ms", {{"p50", percentile_of_sorted(r.latencies, 0.5)}, {"p90", percentile_of_sorted(r.latencies, 0.9)},
                                {"p99", percentile_of_sorted(r.latencies, 0.99)}}},
                {"peak_rss_mb", r.peak_rss_mb},
                {"listen_overflows", r.listen_overflows},
                {"within_budget", r.peak_rss_mb <= rss_model + static_cast<double>(o.session_budget_mb)}};
    rows.push_back(row);
    if (!as_json)
      out << std::setw(7) << clients << std::setw(10) << requests << std::setw(5) << r.ok << std::setw(10)
          << r.rejected_as_expected << std::setw(11) << r.busy << std::setw(8) << errors << std::setw(7)
          << std::setprecision(1) << requests / r.seconds << std::setw(9) << percentile_of_sorted(r.latencies, 0.5)
          << std::setw(9) << percentile_of_sorted(r.latencies, 0.99) << std::setw(10) << r.peak_rss_mb << std::setw(18)
          << r.listen_overflows << "\n"
          << std::flush;
  }
  const json report = {{"model", o.model},
                       {"dtype", load.dtype == torch::kBFloat16 ? "bfloat16" : "float32"},
                       {"parallel", o.parallel},
                       {"queue", o.queue},
                       {"max_tokens", o.max_tokens},
                       {"duration_s", o.duration},
                       {"session_budget_mb", o.session_budget_mb},
                       {"weights_mb", parameter_bytes / double(1 << 20)},
                       {"rss_after_load_mb", rss_loaded},
                       {"rss_after_warmup_mb", rss_model},
                       {"rows", rows}};
  if (as_json) out << report.dump(2) << std::endl;
  IPT_CHECK(total_errors == 0, "bench serve: ", total_errors, " answer(s) were not what the API promises; first: ", first_error);
  for (const auto& row : rows)
    IPT_CHECK(row["within_budget"].get<bool>(), "bench serve: ", row["clients"], " clients: peak memory ", row["peak_rss_mb"],
              " MiB exceeds the model (", rss_model, " MiB) plus the session budget (", o.session_budget_mb, " MiB)");
}

}  // namespace ipt::bench
