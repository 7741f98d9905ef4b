// ipt serve: an OpenAI-compatible HTTP server over one model (src/ipt/infer/server.h).
// SIGINT / SIGTERM stop it gracefully: no new connections, running requests finish, sessions are
// written to --session-dir.
#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include "command.h"
#include "model_flags.h"
#include "ipt/common/error.h"
#include "ipt/infer/server.h"
#include "ipt/model/checkpoint.h"

namespace ipt::cli {
namespace {

struct ServeOptions {
  std::string model, decode_update;
  infer::ServerOptions server;
  double session_budget_mb = 1024;
  std::optional<double> clip;
  bool no_ttt = false;
  DtypeFlag dtype;
  DecodeQuantFlag decode_quant;
  std::string batching = "on";
  DeviceFlag device;
};

int run(ServeOptions o) {
  // Block the stop signals in every thread (threads inherit the mask); one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  torch::NoGradGuard no_grad;
  IPT_CHECK(o.session_budget_mb > 0, "serve: --session-budget-mb must be > 0");
  o.server.session_bytes = static_cast<int64_t>(o.session_budget_mb * (1 << 20));
  o.server.session.ttt = !o.no_ttt;
  o.server.batching = o.batching == "on";
  if (!o.decode_update.empty()) o.server.session.decode_update = o.decode_update == "on";
  o.server.session.ttt_clip = o.clip;
  if (o.server.model_name.empty()) o.server.model_name = std::filesystem::path(o.model).filename().string();
  model::LoadOptions load;
  load.device = o.device.resolve("serve");
  load.dtype = o.dtype.resolve(o.model, "serve", load.device);
  load.decode_quantization = o.decode_quant.resolve();
  model::CausalLM lm = model::load_model(o.model, load);
  infer::Server server(lm, o.model, o.server);
  const int port = server.bind();
  std::cout << "listening on http://" << o.server.host << ":" << port << "  (model " << o.server.model_name
            << ", " << o.server.parallel << " slot(s))" << std::endl;
  std::thread listener([&] { server.listen(); });
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::cout << "signal " << signal_number << ": shutting down" << std::endl;
  server.stop();
  listener.join();
  server.persist_sessions();
  std::cout << "stopped" << std::endl;
  return 0;
}

Register serve_command("", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<ServeOptions>();
  o->server.model_name.clear();  // default: the model directory's name
  CLI::App* cmd = parent.add_subcommand("serve", "OpenAI-compatible HTTP server (completions, chat, sessions)");
  add_model_option(cmd, o->model);
  o->dtype.add_to(cmd);
  o->decode_quant.add_to(cmd);
  o->device.add_to(cmd);
  cmd->add_option("--host", o->server.host, "address to listen on (default 127.0.0.1)");
  cmd->add_option("--port", o->server.port, "port (default 8080; 0 = any free port, printed)");
  cmd->add_option("--parallel", o->server.parallel, "requests computed at once (default 1); the rest queue")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batching", o->batching,
                  "on: concurrent generations decode together, one step for up to --parallel tokens (continuous "
                  "batching, default); off: each decodes alone")
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_option("--queue", o->server.max_queue, "requests that may wait for a slot before 503 (default 64)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-sessions", o->server.max_sessions, "sessions kept in memory (default 16)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--session-budget-mb", o->session_budget_mb, "memory budget of kept sessions in MiB (default 1024)");
  cmd->add_option("--session-dir", o->server.session_dir, "write evicted / deleted / remaining sessions here");
  cmd->add_option("-c,--ctx-size", o->server.session.context, "context per session (default: max_position_embeddings)");
  cmd->add_option("--max-tokens", o->server.default_max_tokens, "max_tokens when a request gives none (default 128)");
  cmd->add_option("--name", o->server.model_name, "model id reported by /v1/models (default: the directory name)");
  cmd->add_flag("--no-ttt", o->no_ttt, "sessions keep the fast weights at W0");
  cmd->add_option("--ttt-decode-update", o->decode_update, "on | off (default: the model's ttt_decode_update)")
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_option("--ttt-clip", o->clip, "clip each fast-weight update (default: the model's ttt_clip)");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
