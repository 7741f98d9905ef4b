#pragma once
// An OpenAI-compatible HTTP server over one loaded model (cpp-httplib):
//   POST /v1/completions, POST /v1/chat/completions (stream: true -> server-sent events),
//   GET /v1/models, GET /health, POST /v1/sessions, GET and DELETE /v1/sessions/{id}.
// A request with "session_id" continues that session (its KV caches and fast weights); sessions
// are created with POST /v1/sessions, kept least-recently-used under a count and byte budget, and
// written to --session-dir when evicted or deleted (then loaded again on their next use).
// Requests run in up to `parallel` worker slots at once; the rest wait (up to max_queue, then 503).
// Every bad request gets a 4xx with {"error": {"message", "type", "param", "code"}}.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipt/infer/session.h"
#include "ipt/model/decoder.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::infer {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                          // 0 = any free port (see Server::bind)
  int parallel = 1;                         // requests computing at once
  bool batching = true;                     // concurrent generations decode in shared steps (continuous
                                            // batching, infer/batcher.h) of up to `parallel` tokens
  int max_queue = 64;                       // requests waiting for a slot before 503
  int64_t max_sessions = 16;                // sessions kept in memory
  int64_t session_bytes = 1ll << 30;        // their memory budget (caches + fast weights)
  std::string session_dir;                  // "" = evicted sessions are dropped
  int64_t default_max_tokens = 128;         // when a request gives no max_tokens
  std::string model_name = "ipt";           // the id /v1/models reports
  SessionOptions session;                   // defaults for every new session (context, TTT, ...)
};

class Server {
 public:
  // `model_dir` holds tokenizer.json (and tokenizer_config.json with the chat template).
  Server(const model::CausalLM& lm, const std::string& model_dir, ServerOptions options);
  ~Server();

  int bind();    // binds host:port (port 0: a free one); returns the port
  void listen(); // serves until stop(); call bind() first
  void stop();   // from any thread: stop accepting, let running requests finish
  // Writes every session still in memory to the session directory (no-op without one).
  void persist_sessions();

  // One request through the same routes, parsing and handlers as over HTTP, without a socket
  // (used by the request-body fuzz target; a streamed answer comes back as its whole event text).
  struct Reply {
    int status;
    std::string body;
  };
  Reply handle(const std::string& method, const std::string& path, const std::string& body);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ipt::infer
