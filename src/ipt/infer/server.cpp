// The HTTP half of `ipt serve`: routes, streaming (server-sent events) and the glue between the
// OpenAI protocol (openai_request / openai_response), the session store and completions. Nothing
// below the HTTP layer lives here.
#include "ipt/infer/server.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <filesystem>
#include <functional>
#include <regex>

#include "ipt/common/error.h"
#include "ipt/infer/batcher.h"
#include "ipt/infer/chat.h"
#include "ipt/infer/completion.h"
#include "ipt/infer/openai_request.h"
#include "ipt/infer/openai_response.h"
#include "ipt/infer/request_error.h"
#include "ipt/infer/session_store.h"
#include "ipt/infer/slots.h"

namespace ipt::infer {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

void send_error(httplib::Response& res, const RequestError& e) {
  res.status = e.status;
  if (e.status == 503) res.set_header("Retry-After", "1");  // as OpenAI-style clients expect
  res.set_content(json_text(error_body(e)), "application/json");
}

}  // namespace

struct Server::Impl {
  const model::CausalLM& lm;
  ServerOptions options;
  tok::Tokenizer tokenizer;
  std::optional<ChatTemplate> chat;
  std::string chat_error;
  httplib::Server http;
  Slots slots;
  std::unique_ptr<DecodeBatcher> batcher;  // null: each generation decodes alone
  std::unique_ptr<SessionStore> store;
  std::vector<int64_t> eos_ids;
  std::atomic<uint64_t> request_counter{0};
  socket_t listen_socket = -1;

  Impl(const model::CausalLM& model, const std::string& dir, ServerOptions o)
      : lm(model), options(std::move(o)), tokenizer(load_tokenizer(dir)), slots(options.parallel, options.max_queue) {
    if (options.batching && options.parallel > 1) batcher = std::make_unique<DecodeBatcher>(options.parallel);
    IPT_CHECK(options.parallel >= 1, "serve: --parallel must be >= 1, got ", options.parallel);
    IPT_CHECK(options.max_queue >= 0, "serve: the queue length must be >= 0");
    IPT_CHECK(options.max_sessions >= 1, "serve: --max-sessions must be >= 1, got ", options.max_sessions);
    IPT_CHECK(options.default_max_tokens >= 0, "serve: the default max_tokens must be >= 0");
    IPT_CHECK(static_cast<int64_t>(tokenizer.vocab_size()) <= lm->config().vocab_size, "serve: the tokenizer in ", dir,
              " has ", tokenizer.vocab_size(), " tokens but the model only ", lm->config().vocab_size);
    options.session.sample_vocab = static_cast<int64_t>(tokenizer.vocab_size());  // only ids it can decode
    Session probe(lm, options.session);  // validates the session defaults now, not per request
    store = std::make_unique<SessionStore>(lm, SessionStoreOptions{options.max_sessions, options.session_bytes,
                                                                   options.session_dir});
    try {
      chat = ChatTemplate::detect(tokenizer, dir);
    } catch (const Error& e) {
      chat_error = e.what();  // completions still work; chat requests get this message
    }
    eos_ids = lm->config().eos_token_ids;
    if (auto eos = tokenizer.eos_id()) eos_ids.push_back(*eos);
    routes();
  }

  static tok::Tokenizer load_tokenizer(const std::string& dir) {
    IPT_CHECK(fs::exists(fs::path(dir) / "tokenizer.json"), "serve: the model directory ", dir,
              " has no tokenizer.json (ipt init --tokenizer DIR copies one in)");
    return tok::Tokenizer::load(dir);
  }

  // ---- generation ----------------------------------------------------------------------------

  std::vector<int64_t> encode(const std::string& text, bool first) const { return prompt_ids(tokenizer, text, first); }

  static void check_context(const Session& session, const GenerationRequest& g) {
    const int64_t total = session.position() + static_cast<int64_t>(g.completion.prompt.size());
    if (total > session.context())
      reject("the prompt needs " + std::to_string(total) + " tokens (" + std::to_string(session.position()) +
                 " already in the session) but the context holds " + std::to_string(session.context()),
             g.is_chat ? "messages" : "prompt", "context_length_exceeded");
    if (total == 0) reject("the prompt is empty", g.is_chat ? "messages" : "prompt", "invalid_value");
    // As OpenAI does: a max_tokens the client asked for must fit after the prompt, or the request
    // would hold a slot until the context is full. The server's default is only an upper bound.
    if (!g.max_tokens_field.empty() && g.completion.max_tokens > session.context() - total)
      reject("the prompt needs " + std::to_string(total) + " tokens and '" + g.max_tokens_field + "' asks for " +
                 std::to_string(g.completion.max_tokens) + " more, but the context holds " +
                 std::to_string(session.context()),
             g.max_tokens_field, "context_length_exceeded");
  }

  json logprobs(const GenerationRequest& g, const std::vector<TokenLogprob>& tokens) const {
    const Spell spell = [this](int64_t id) { return tokenizer.decode_bytes({static_cast<int32_t>(id)}, false); };
    return logprobs_body(g.is_chat, g.completion.logprobs, tokens, spell);
  }

  // One request's resources, released in this order when it ends (the reservation before the
  // lease, which then counts what the session became).
  struct Job {
    GenerationRequest g;
    SessionStore::Lease lease;
    std::unique_ptr<Session> own;
    Session* session = nullptr;
    std::unique_ptr<SlotHold> slot;
    std::unique_ptr<SessionStore::Reservation> reservation;
    ResponseHeader header;
  };

  Completion run(Job& job, const EmitText& emit) {
    return complete(*job.session, tokenizer, job.g.completion, emit, batcher.get());
  }

  // The session part of a session request's answer, as it stands after the generation.
  void note_session(Job& job) {
    if (job.g.session_id.empty()) return;
    job.header.session = {{"id", job.g.session_id},
                          {"position", job.session->position()},
                          {"ttt_updates", job.session->ttt_updates()}};
  }

  // Prepares, runs and answers one generation request (plain or streamed).
  void respond(const GenerationRequest& g, const std::function<void(Session&, GenerationRequest&)>& prepare_prompt,
               httplib::Response& res) {
    auto job = std::make_shared<Job>();
    job->g = g;
    job->g.completion.sample_vocab = options.session.sample_vocab;
    if (!g.session_id.empty()) {
      job->lease = store->acquire(g.session_id);
      job->session = &job->lease.session();
    } else {
      job->own = std::make_unique<Session>(lm, options.session);
      job->session = job->own.get();
    }
    prepare_prompt(*job->session, job->g);
    check_context(*job->session, job->g);
    job->slot = std::make_unique<SlotHold>(slots);
    job->reservation = std::make_unique<SessionStore::Reservation>(
        *store, *job->session, static_cast<int64_t>(job->g.completion.prompt.size()) + job->g.completion.max_tokens);
    job->header = {(g.is_chat ? "chatcmpl-" : "cmpl-") + std::to_string(++request_counter), std::time(nullptr),
                   options.model_name, g.is_chat, g.include_usage, nullptr};
    if (!g.stream) {
      Completion out = run(*job, {});
      note_session(*job);
      res.set_content(json_text(final_body(job->header, out, logprobs(job->g, out.logprobs))), "application/json");
      finish(*job, out);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [this, job](size_t, httplib::DataSink& sink) {
      auto send = [&](const json& chunk) {
        const std::string event = "data: " + json_text(chunk) + "\n\n";
        return sink.write(event.data(), event.size());
      };
      const ResponseHeader& h = job->header;
      try {
        if (h.chat) send(chunk_body(h, json{{"role", "assistant"}, {"content", ""}}, nullptr));
        Completion out = run(*job, [&](const std::string& text, std::vector<TokenLogprob> tokens) {
          const json scored = logprobs(job->g, tokens);
          return send(h.chat ? chunk_body(h, json{{"content", text}}, nullptr, scored)
                             : chunk_body(h, text, nullptr, scored));
        });
        send(h.chat ? chunk_body(h, json::object(), out.finish_reason) : chunk_body(h, "", out.finish_reason));
        if (h.include_usage) send(usage_chunk(h, out));  // OpenAI's last chunk: no choices, the usage
        finish(*job, out);
      } catch (const std::exception& e) {
        send(error_body({500, e.what(), "", "internal_error", "server_error"}));
      }
      const std::string done = "data: [DONE]\n\n";
      sink.write(done.data(), done.size());
      sink.done();
      job->slot.reset();
      job->reservation.reset();
      job->own.reset();
      store->release(job->lease);
      return true;
    });
  }

  // After a chat turn in a session: remember the transcript so the next request can send the
  // whole conversation again and only the new part is appended.
  void finish(Job& job, const Completion& out) {
    if (job.g.is_chat && !job.g.session_id.empty()) {
      job.session->set_note("transcript", job.session->note("transcript") + job.g.appended_text + out.text);
      job.session->set_note("turn_open", "1");
    }
    job.slot.reset();
    job.reservation.reset();
    store->release(job.lease);
  }

  // ---- endpoints -----------------------------------------------------------------------------

  void completions(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    GenerationRequest g;
    parse_common(body, g, false, options.default_max_tokens);
    g.completion.stop_ids = eos_ids;
    const CompletionPrompt prompt = parse_completion_prompt(body, lm->config().vocab_size, !g.session_id.empty());
    respond(g, [&](Session& session, GenerationRequest& gen) {
      gen.completion.prompt = prompt.given_ids ? prompt.ids
                              : prompt.text.empty() ? std::vector<int64_t>{}
                                                    : encode(prompt.text, session.position() == 0);
    }, res);
  }

  void chat_completions(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    GenerationRequest g;
    g.is_chat = true;
    parse_common(body, g, true, options.default_max_tokens);
    const ojson messages = parse_messages(ojson::parse(req.body));
    g.chat_options = parse_chat_options(body);
    if (!chat) reject("this model has no chat format: " + chat_error, "messages", "no_chat_format");
    std::vector<int64_t>& stop_ids = g.completion.stop_ids;
    stop_ids = chat->stop_ids();
    for (int64_t id : lm->config().eos_token_ids)
      if (std::find(stop_ids.begin(), stop_ids.end(), id) == stop_ids.end()) stop_ids.push_back(id);
    respond(g, [&](Session& session, GenerationRequest& gen) {
      const std::string full = render(messages, gen.chat_options);
      std::string text = full;
      if (!gen.session_id.empty() && session.position() > 0) {
        // The session already holds the conversation so far: append only what is new. A turn the
        // model ended with its stop token lacks the template's turn end (the token is not fed).
        const std::string open = session.note("turn_open") == "1" ? chat->turn_end() : "";
        const std::string known = session.note("transcript") + open;
        if (!session.note("transcript").empty() && full.compare(0, known.size(), known) == 0) {
          text = open + full.substr(known.size());
        } else {  // the client sent only the new messages: rendered without the leading bos_token
          ChatRenderOptions without_bos = gen.chat_options;
          without_bos.variables["bos_token"] = "";
          text = open + render(messages, without_bos);
        }
      }
      gen.completion.prompt = encode(text, false);  // the template writes the begin token where the model wants one
      gen.appended_text = text;
    }, res);
  }

  // The chat template's text; its refusals (raise_exception, bad input) are the client's 400.
  std::string render(const ojson& messages, const ChatRenderOptions& render_options) const {
    try {
      return chat->render_json(messages, render_options);
    } catch (const Error& e) {
      reject(std::string("the chat template could not render these messages: ") + e.what(), "messages", "invalid_value");
    }
  }

  void models(const httplib::Request&, httplib::Response& res) {
    json model = {{"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "ipt"}};
    res.set_content(json_text(json{{"object", "list"}, {"data", json::array({model})}}), "application/json");
  }

  void health(const httplib::Request&, httplib::Response& res) {
    auto [free, waiting] = slots.state();
    res.set_content(json{{"status", "ok"}, {"slots_idle", free}, {"slots_total", options.parallel},
                         {"queued", waiting}, {"sessions", store->size()}, {"sessions_refused", store->refused()}}
                        .dump(),
                    "application/json");
  }

  void post_session(const httplib::Request& req, httplib::Response& res) {
    const json body = req.body.empty() ? json::object() : parse_body(req.body);
    const SessionRequest request = parse_session_request(body, options.session);
    const std::string id = store->create(request.options, request.id);
    res.status = 201;
    res.set_content(json{{"id", id}, {"object", "session"}}.dump(), "application/json");
  }

  void get_session(const httplib::Request& req, httplib::Response& res) {
    SessionStore::Lease lease = store->acquire(req.matches[1]);
    const Session& s = lease.session();
    json body = {{"id", std::string(req.matches[1])}, {"object", "session"}, {"position", s.position()},
                 {"ttt_updates", s.ttt_updates()}, {"memory_bytes", s.memory_bytes()}, {"context", s.context()}};
    store->release(lease);
    res.set_content(json_text(body), "application/json");
  }

  void delete_session(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    SessionStore::Lease lease = store->acquire(id);
    store->remove(lease, id);
    res.set_content(json{{"id", id}, {"object", "session.deleted"}, {"deleted", true},
                         {"saved", store->persistent()}}.dump(),
                    "application/json");
  }

  // ---- routes --------------------------------------------------------------------------------

  // Every route, for the HTTP server and for handle() alike; handlers throw RequestError.
  struct Route {
    std::string method, pattern;
    std::function<void(const httplib::Request&, httplib::Response&)> handler;
  };

  std::vector<Route> route_table() {
    auto method = [this](void (Impl::*handler)(const httplib::Request&, httplib::Response&)) {
      return [this, handler](const httplib::Request& req, httplib::Response& res) { (this->*handler)(req, res); };
    };
    return {{"POST", "/v1/completions", method(&Impl::completions)},
            {"POST", "/v1/chat/completions", method(&Impl::chat_completions)},
            {"GET", "/v1/models", method(&Impl::models)},
            {"GET", "/health", method(&Impl::health)},
            {"POST", "/v1/sessions", method(&Impl::post_session)},
            {"GET", R"(/v1/sessions/([^/]+))", method(&Impl::get_session)},
            {"DELETE", R"(/v1/sessions/([^/]+))", method(&Impl::delete_session)}};
  }

  // The handler with its errors turned into OpenAI error bodies.
  static void guarded(const Route& route, const httplib::Request& req, httplib::Response& res) {
    try {
      route.handler(req, res);
    } catch (const RequestError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      send_error(res, {400, e.what(), "", "invalid_value"});
    } catch (const std::exception& e) {
      send_error(res, {500, e.what(), "", "internal_error", "server_error"});
    }
  }

  void routes() {
    for (const Route& route : route_table()) {
      auto handler = [route](const httplib::Request& req, httplib::Response& res) { guarded(route, req, res); };
      if (route.method == "POST") http.Post(route.pattern, handler);
      if (route.method == "GET") http.Get(route.pattern, handler);
      if (route.method == "DELETE") http.Delete(route.pattern, handler);
    }
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (res.body.empty())
        send_error(res, {res.status, "no route " + req.method + " " + req.path, "", "not_found"});
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      send_error(res, {500, "internal error", "", "internal_error", "server_error"});
    });
    http.set_payload_max_length(kMaxBodyBytes);
    http.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      listen_socket = sock;  // bind() widens its accept queue
    });
    const int threads = options.parallel + options.max_queue + 2;  // queued requests wait on slots
    http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  }

  static constexpr size_t kMaxBodyBytes = 64ull << 20;

  // One request through route_table() without a socket; a streamed body is collected whole.
  Server::Reply handle(const std::string& method, const std::string& path, const std::string& body) {
    IPT_CHECK(body.size() <= kMaxBodyBytes, "request body over ", kMaxBodyBytes, " bytes");
    httplib::Request req;
    req.method = method;
    req.path = path;
    req.body = body;
    httplib::Response res;
    const std::vector<Route> table = route_table();
    const Route* found = nullptr;
    for (const Route& route : table) {
      if (route.method == method && std::regex_match(path, req.matches, std::regex(route.pattern))) {
        found = &route;
        break;
      }
    }
    if (!found) {
      res.status = 404;
      send_error(res, {404, "no route " + method + " " + path, "", "not_found"});
      return {res.status, res.body};
    }
    guarded(*found, req, res);
    if (res.status == -1) res.status = 200;  // httplib fills in 200 when it writes a response
    if (res.content_provider_) {
      std::string streamed;
      bool done = false;
      httplib::DataSink sink;
      sink.write = [&](const char* data, size_t n) { streamed.append(data, n); return true; };
      sink.done = [&] { done = true; };
      sink.is_writable = [] { return true; };
      while (!done && res.content_provider_(streamed.size(), 0, sink)) {}
      return {res.status, streamed};
    }
    return {res.status, res.body};
  }
};

Server::Server(const model::CausalLM& lm, const std::string& model_dir, ServerOptions options)
    : impl_(std::make_unique<Impl>(lm, model_dir, std::move(options))) {}

Server::~Server() { stop(); }

int Server::bind() {
  const int port = impl_->options.port == 0 ? impl_->http.bind_to_any_port(impl_->options.host)
                                            : (impl_->http.bind_to_port(impl_->options.host, impl_->options.port)
                                                   ? impl_->options.port
                                                   : -1);
  IPT_CHECK(port > 0, "serve: cannot listen on ", impl_->options.host, ":", impl_->options.port);
  // cpp-httplib 0.11 listens with a backlog of 5. Clients that reconnect for every request (and
  // re-send at once after a 503) overflow that queue; an overflowed handshake is dropped by the
  // kernel and surfaces much later as a reset connection (measured: docs/inference.md "Load").
  if (impl_->listen_socket >= 0) ::listen(impl_->listen_socket, SOMAXCONN);
  return port;
}

void Server::listen() { impl_->http.listen_after_bind(); }

void Server::stop() {
  if (impl_) impl_->http.stop();
}

void Server::persist_sessions() { impl_->store->persist_all(); }

Server::Reply Server::handle(const std::string& method, const std::string& path, const std::string& body) {
  return impl_->handle(method, path, body);
}

}  // namespace ipt::infer
