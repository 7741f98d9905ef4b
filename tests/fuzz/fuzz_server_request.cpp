// HTTP request bodies, through Server::handle: the routes, parsing and handlers the server runs.
// The input's first byte picks the route; the rest is the body.
#include "fuzz_model.h"
#include "fuzz_target.h"
#include "ipt/infer/server.h"

namespace {
ipt::infer::Server& server() {
  static const std::unique_ptr<ipt::infer::Server> instance = [] {
    ipt::infer::ServerOptions options;
    options.parallel = 1;
    options.default_max_tokens = 4;
    options.max_sessions = 4;
    return std::make_unique<ipt::infer::Server>(ipt::fuzz::fuzz_model(), IPT_SOURCE_DIR "/corpus/tokenizer", options);
  }();
  return *instance;
}
}  // namespace

IPT_FUZZ_TARGET(server_request) {
  if (size == 0) return;
  static const char* const routes[][2] = {{"POST", "/v1/completions"}, {"POST", "/v1/chat/completions"},
                                          {"POST", "/v1/sessions"}, {"GET", "/v1/sessions/s1"},
                                          {"DELETE", "/v1/sessions/s1"}};
  const auto& [method, path] = routes[data[0] % 5];
  torch::NoGradGuard no_grad;
  const auto reply = server().handle(method, path, std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  // Every answer is a status the API documents, with a JSON body (or an event stream).
  IPT_FUZZ_EXPECT(reply.status == 200 || reply.status == 201 || (reply.status >= 400 && reply.status < 500),
                  "status ", reply.status, ": ", reply.body);
}
