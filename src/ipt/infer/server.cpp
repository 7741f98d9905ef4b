#include "ipt/infer/server.h"

#include "ipt/infer/batcher.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/infer/chat.h"
#include "ipt/infer/openai.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::infer {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

// A request the client got wrong (or one the server cannot take now): status + OpenAI error body.
struct RequestError {
  int status;
  std::string message, param, code, type = "invalid_request_error";
};

[[noreturn]] void reject(std::string message, std::string param = "", std::string code = "", int status = 400) {
  throw RequestError{status, std::move(message), std::move(param), std::move(code)};
}

json error_body(const RequestError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

// JSON text; invalid UTF-8 (from a model's bytes or echoed input) becomes U+FFFD instead of throwing.
std::string text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const RequestError& e) {
  res.status = e.status;
  if (e.status == 503) res.set_header("Retry-After", "1");  // as OpenAI-style clients expect
  res.set_content(text(error_body(e)), "application/json");
}

// Typed optional fields: absent or null = not given; any other type is a 400 naming the field.
const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) reject(std::string("'") + key + "' must be a number", key, "invalid_type");
  const double x = v->get<double>();
  if (!std::isfinite(x)) reject(std::string("'") + key + "' must be finite", key, "invalid_value");
  return x;
}

std::optional<int64_t> integer_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) reject(std::string("'") + key + "' must be an integer", key, "invalid_type");
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    reject(std::string("'") + key + "' is too large", key, "invalid_value");
  return v->get<int64_t>();
}

std::optional<bool> bool_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) reject(std::string("'") + key + "' must be a boolean", key, "invalid_type");
  return v->get<bool>();
}

std::optional<std::string> string_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) reject(std::string("'") + key + "' must be a string", key, "invalid_type");
  return v->get<std::string>();
}

json parse_body(const httplib::Request& req) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) reject("the request body is not valid JSON", "", "invalid_json");
  if (!body.is_object()) reject("the request body must be a JSON object", "", "invalid_json");
  return body;
}

bool valid_session_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
}

// Bytes of `s` up to `end` without a trailing incomplete UTF-8 sequence (never split a character
// across two stream events).
size_t utf8_safe_end(const std::string& s, size_t end) {
  size_t i = end, back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) --i, ++back;
  if (i == 0) return end;
  const auto lead = static_cast<unsigned char>(s[i - 1]);
  const size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  return back + 1 < need ? i - 1 : end;
}

class Slots {
 public:
  Slots(int count, int max_queue) : free_(count), max_queue_(max_queue) {}
  bool acquire() {
    std::unique_lock<std::mutex> lock(m_);
    if (free_ == 0 && waiting_ >= max_queue_) return false;
    ++waiting_;
    cv_.wait(lock, [&] { return free_ > 0; });
    --waiting_;
    --free_;
    return true;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(m_);
      ++free_;
    }
    cv_.notify_one();
  }
  std::pair<int, int> state() {
    std::lock_guard<std::mutex> lock(m_);
    return {free_, waiting_};
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int free_, waiting_ = 0, max_queue_;
};

struct SlotHold {
  Slots* slots = nullptr;
  explicit SlotHold(Slots& s) {
    if (!s.acquire()) throw RequestError{503, "the server is busy: every worker slot is taken and the queue is full",
                                         "", "server_busy", "server_error"};
    slots = &s;
  }
  ~SlotHold() {
    if (slots) slots->release();
  }
  SlotHold(const SlotHold&) = delete;
  SlotHold& operator=(const SlotHold&) = delete;
};

// A kept session; `busy` is held by the request using it (one request per session at a time).
struct Entry {
  std::mutex busy;
  std::unique_ptr<Session> session;  // null while it lives on disk only
  uint64_t last_used = 0;
  int64_t bytes = 0;
  bool gone = false;  // evicted after a request found it: look it up again
};

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
  std::vector<int64_t> eos_ids;
  std::atomic<uint64_t> request_counter{0};

  std::mutex store_mutex;
  std::map<std::string, std::shared_ptr<Entry>> sessions;
  std::map<std::string, std::string> unreadable;  // id -> why its file in --session-dir was refused
  uint64_t clock = 0;
  int64_t reserved_bytes = 0;  // what running requests' sessions may still grow by (Reservation)
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
    if (!options.session_dir.empty()) check_session_dir();
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

  // ---- sessions ------------------------------------------------------------------------------

  // At start: every session file in --session-dir is loaded once to prove it complete. A torn or
  // foreign file is named and left out (its id answers with that reason), never a failed start;
  // temporary files of a write that was killed are removed (the file they were replacing is intact).
  void check_session_dir() {
    fs::create_directories(options.session_dir);
    int complete = 0;
    for (const auto& entry : fs::directory_iterator(options.session_dir)) {
      const std::string name = entry.path().filename().string();
      if (name.find(".session.tmp.") != std::string::npos) {
        std::cerr << "serve: removing " << entry.path().string() << " (an interrupted session write)\n";
        fs::remove(entry.path());
        continue;
      }
      if (entry.path().extension() != ".session") continue;
      try {
        Session::load(lm, entry.path().string());
        ++complete;
      } catch (const Error& e) {
        unreadable[entry.path().stem().string()] = e.what();
        std::cerr << "serve: session file " << entry.path().string() << " is refused: " << e.what() << "\n";
      }
    }
    std::cerr << "serve: " << complete << " session(s) in " << options.session_dir << " can be continued"
              << (unreadable.empty() ? "" : ", " + std::to_string(unreadable.size()) + " refused") << "\n";
  }

  std::string session_path(const std::string& id) const { return (fs::path(options.session_dir) / (id + ".session")).string(); }

  std::string new_session_id() {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    std::ostringstream id;
    id << "sess-" << std::hex << rng();
    return id.str();
  }

  std::string create_session(const json& body) {
    SessionOptions o = options.session;
    if (auto ttt = bool_field(body, "ttt")) o.ttt = *ttt;
    if (auto update = bool_field(body, "ttt_decode_update")) o.decode_update = *update;
    if (auto clip = number_field(body, "ttt_clip")) {
      if (*clip < 0) reject("'ttt_clip' must be >= 0", "ttt_clip", "invalid_value");
      o.ttt_clip = *clip;
    }
    std::string id = string_field(body, "id").value_or("");
    if (!id.empty() && !valid_session_id(id))
      reject("'id' must be 1-64 characters of letters, digits, '-' and '_'", "id", "invalid_value");
    auto entry = std::make_shared<Entry>();
    entry->session = std::make_unique<Session>(lm, o);
    {
      std::lock_guard<std::mutex> lock(store_mutex);
      if (id.empty()) {
        do id = new_session_id();
        while (sessions.count(id) || (!options.session_dir.empty() && fs::exists(session_path(id))));
      } else if (sessions.count(id) || (!options.session_dir.empty() && fs::exists(session_path(id)))) {
        reject("session '" + id + "' already exists", "id", "session_exists", 409);
      }
      entry->last_used = ++clock;
      sessions[id] = entry;
    }
    enforce_budget();
    return id;
  }

  struct Lease {
    std::shared_ptr<Entry> entry;
    std::unique_lock<std::mutex> lock;
    Session& session() { return *entry->session; }
  };

  Lease acquire(const std::string& id) {
    if (!valid_session_id(id)) reject("'session_id' must be 1-64 letters, digits, '-' or '_'", "session_id", "invalid_value");
    for (;;) {
      std::shared_ptr<Entry> entry;
      {
        std::lock_guard<std::mutex> lock(store_mutex);
        auto it = sessions.find(id);
        if (it != sessions.end()) {
          entry = it->second;
        } else if (!options.session_dir.empty() && fs::exists(session_path(id))) {
          entry = std::make_shared<Entry>();
          sessions[id] = entry;
        } else {
          reject("no session '" + id + "' (create one with POST /v1/sessions)", "session_id", "session_not_found", 404);
        }
      }
      std::unique_lock<std::mutex> busy(entry->busy);
      if (entry->gone) continue;  // evicted between the lookup and the lock
      if (!entry->session) {
        try {
          entry->session = std::make_unique<Session>(Session::load(lm, session_path(id)));
        } catch (const Error& e) {
          std::lock_guard<std::mutex> lock(store_mutex);
          entry->gone = true;
          sessions.erase(id);
          reject(std::string("session '") + id + "' could not be loaded: " + e.what(), "session_id", "session_unreadable",
                 409);
        }
      }
      {
        std::lock_guard<std::mutex> lock(store_mutex);
        entry->last_used = ++clock;
      }
      return {entry, std::move(busy)};
    }
  }

  void release(Lease& lease) {
    if (!lease.entry) return;
    {
      std::lock_guard<std::mutex> lock(store_mutex);
      lease.entry->bytes = lease.entry->session ? lease.entry->session->memory_bytes() : 0;
    }
    lease.lock.unlock();
    lease.entry.reset();
    enforce_budget();
  }

  // What a running request's session may grow to, held against the budget until it ends: the
  // request-private sessions and the growth of kept ones are then evicted room, not overdraft.
  struct Reservation {
    Impl* server = nullptr;
    int64_t bytes = 0;
    Reservation(Impl& s, const Session& session, int64_t max_new_tokens) : server(&s) {
      const int64_t tokens = std::min(session.context(), session.position() + max_new_tokens);
      bytes = std::max<int64_t>(0, session.memory_bytes_at(tokens) - session.memory_bytes());
      {
        std::lock_guard<std::mutex> lock(server->store_mutex);
        server->reserved_bytes += bytes;
      }
      server->enforce_budget();
    }
    ~Reservation() {
      std::lock_guard<std::mutex> lock(server->store_mutex);
      server->reserved_bytes -= bytes;
    }
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
  };

  // Evicts idle sessions, least recently used first, until the count and the byte budget (kept
  // sessions plus what running requests reserved) hold.
  void enforce_budget() {
    std::lock_guard<std::mutex> lock(store_mutex);
    std::vector<std::pair<uint64_t, std::string>> order;
    int64_t count = 0, bytes = reserved_bytes;
    for (const auto& [id, e] : sessions)
      if (e->session) {
        order.emplace_back(e->last_used, id);
        ++count;
        bytes += e->bytes;
      }
    std::sort(order.begin(), order.end());
    for (const auto& [used, id] : order) {
      if (count <= options.max_sessions && bytes <= options.session_bytes) break;
      std::shared_ptr<Entry> e = sessions.at(id);
      std::unique_lock<std::mutex> busy(e->busy, std::try_to_lock);
      if (!busy.owns_lock()) continue;  // in use: never evicted mid-request
      if (!options.session_dir.empty()) e->session->save(session_path(id));
      --count;
      bytes -= e->bytes;
      e->session.reset();
      e->gone = true;
      sessions.erase(id);
    }
  }

  void persist_all() {
    if (options.session_dir.empty()) return;
    std::map<std::string, std::shared_ptr<Entry>> kept;
    {
      std::lock_guard<std::mutex> lock(store_mutex);
      kept = sessions;
    }
    for (const auto& [id, e] : kept) {  // lock order: a session before the store, as requests do
      std::lock_guard<std::mutex> busy(e->busy);
      if (e->session && !e->gone) e->session->save(session_path(id));
    }
  }

  // ---- generation ----------------------------------------------------------------------------

  struct Generation {
    std::vector<int64_t> prompt;  // tokens to append first
    int64_t max_tokens = 0;
    std::string max_tokens_field;  // the field the client set ("" = the server's default)
    SamplerOptions sampling;
    std::vector<std::string> stops;
    std::vector<int64_t> stop_ids;
    bool stream = false, is_chat = false;
    bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
    int64_t logprobs = -1;       // -1: none; else how many top alternatives per token
    ChatRenderOptions chat_options;
    std::string session_id;
    std::string appended_text;  // chat sessions: the prompt text appended (for the transcript)
  };

  struct Outcome {
    std::string text, finish_reason;
    int64_t prompt_tokens = 0, completion_tokens = 0;
    std::vector<TokenLogprob> logprobs;  // with Generation::logprobs >= 0: the returned text's tokens
  };

  void parse_common(const json& body, Generation& g, bool chat_request) {
    if (auto unknown = unaccepted_field(body, chat_request))
      reject("'" + *unknown + "' is not supported by this server", *unknown, "unsupported_field");
    if (auto model = field(body, "model"); model && !model->is_string()) reject("'model' must be a string", "model", "invalid_type");
    auto max_tokens = integer_field(body, "max_tokens");
    if (max_tokens) g.max_tokens_field = "max_tokens";
    if (chat_request && !max_tokens) {
      max_tokens = integer_field(body, "max_completion_tokens");
      if (max_tokens) g.max_tokens_field = "max_completion_tokens";
    }
    g.max_tokens = max_tokens.value_or(options.default_max_tokens);
    if (g.max_tokens < 0) reject("'" + g.max_tokens_field + "' must be >= 0", g.max_tokens_field, "invalid_value");
    SamplerOptions& s = g.sampling;
    s.temperature = number_field(body, "temperature").value_or(1.0);  // OpenAI's default
    s.top_p = number_field(body, "top_p").value_or(1.0);
    s.top_k = integer_field(body, "top_k").value_or(0);
    s.min_p = number_field(body, "min_p").value_or(0.0);
    s.repeat_penalty = number_field(body, "repeat_penalty").value_or(1.0);
    if (auto seed = integer_field(body, "seed")) {
      if (*seed < 0) reject("'seed' must be >= 0", "seed", "invalid_value");
      s.seed = static_cast<uint64_t>(*seed);
    } else {
      s.seed = std::random_device{}();
    }
    if (s.temperature < 0) reject("'temperature' must be >= 0", "temperature", "invalid_value");
    if (s.top_p <= 0 || s.top_p > 1) reject("'top_p' must be in (0, 1]", "top_p", "invalid_value");
    if (s.top_k < 0) reject("'top_k' must be >= 0", "top_k", "invalid_value");
    if (s.min_p < 0 || s.min_p > 1) reject("'min_p' must be in [0, 1]", "min_p", "invalid_value");
    if (s.repeat_penalty <= 0) reject("'repeat_penalty' must be > 0", "repeat_penalty", "invalid_value");
    for (const char* unsupported : {"frequency_penalty", "presence_penalty"})
      if (number_field(body, unsupported).value_or(0.0) != 0.0)
        reject(std::string("'") + unsupported + "' is not supported (use repeat_penalty)", unsupported, "unsupported");
    if (integer_field(body, "n").value_or(1) != 1) reject("only n = 1 is supported", "n", "unsupported");
    try {
      validate(s);
    } catch (const Error& e) {
      reject(e.what(), "", "invalid_value");
    }
    g.stream = bool_field(body, "stream").value_or(false);
    if (const json* so = field(body, "stream_options")) {
      if (!so->is_object()) reject("'stream_options' must be an object", "stream_options", "invalid_type");
      if (!g.stream) reject("'stream_options' is only allowed with stream: true", "stream_options", "invalid_value");
      for (const auto& [key, value] : so->items())
        if (key != "include_usage" && !value.is_null())
          reject("'stream_options." + key + "' is not supported by this server", "stream_options", "unsupported_field");
      g.include_usage = bool_field(*so, "include_usage").value_or(false);
    }
    parse_logprobs(body, g, chat_request);
    if (auto bias = field(body, "logit_bias"); bias && !(bias->is_object() && bias->empty()))
      reject("'logit_bias' is not supported", "logit_bias", "unsupported");
    if (const json* stop = field(body, "stop")) {
      if (stop->is_string()) {
        g.stops.push_back(stop->get<std::string>());
      } else if (stop->is_array() && stop->size() <= 4) {
        for (const auto& item : *stop) {
          if (!item.is_string()) reject("'stop' must be a string or an array of up to 4 strings", "stop", "invalid_type");
          g.stops.push_back(item.get<std::string>());
        }
      } else {
        reject("'stop' must be a string or an array of up to 4 strings", "stop", "invalid_type");
      }
      for (const auto& s : g.stops)
        if (s.empty()) reject("'stop' strings must not be empty", "stop", "invalid_value");
    }
    g.session_id = string_field(body, "session_id").value_or("");
  }

  // Chat: logprobs (bool) + top_logprobs (0..20); completions: logprobs (int 0..5), as OpenAI has them.
  void parse_logprobs(const json& body, Generation& g, bool chat_request) {
    if (chat_request) {
      const bool wanted = bool_field(body, "logprobs").value_or(false);
      const auto top = integer_field(body, "top_logprobs");
      if (top && (*top < 0 || *top > 20)) reject("'top_logprobs' must be in [0, 20]", "top_logprobs", "invalid_value");
      if (top && !wanted) reject("'top_logprobs' needs 'logprobs': true", "top_logprobs", "invalid_value");
      if (wanted) g.logprobs = top.value_or(0);
      return;
    }
    if (const json* v = field(body, "logprobs")) {
      if (!v->is_number_integer()) reject("'logprobs' must be an integer (0 to 5) on /v1/completions", "logprobs", "invalid_type");
      const int64_t n = v->get<int64_t>();
      if (n < 0 || n > 5) reject("'logprobs' must be in [0, 5]", "logprobs", "invalid_value");
      g.logprobs = n;
    }
    if (bool_field(body, "echo").value_or(false)) reject("'echo' is not supported", "echo", "unsupported");
    if (integer_field(body, "best_of").value_or(1) != 1) reject("only best_of = 1 is supported", "best_of", "unsupported");
  }

  std::vector<int64_t> encode(const std::string& text, bool first) const {
    std::vector<int64_t> ids;
    if (first && tokenizer.config().add_bos_token && tokenizer.bos_id()) ids.push_back(*tokenizer.bos_id());
    for (int32_t id : tokenizer.encode(text)) ids.push_back(id);
    return ids;
  }

  void check_context(const Session& session, const Generation& g) const {
    const int64_t total = session.position() + static_cast<int64_t>(g.prompt.size());
    if (total > session.context())
      reject("the prompt needs " + std::to_string(total) + " tokens (" + std::to_string(session.position()) +
                 " already in the session) but the context holds " + std::to_string(session.context()),
             g.is_chat ? "messages" : "prompt", "context_length_exceeded");
    if (total == 0) reject("the prompt is empty", g.is_chat ? "messages" : "prompt", "invalid_value");
    // As OpenAI does: a max_tokens the client asked for must fit after the prompt, or the request
    // would hold a slot until the context is full. The server's default is only an upper bound.
    if (!g.max_tokens_field.empty() && g.max_tokens > session.context() - total)
      reject("the prompt needs " + std::to_string(total) + " tokens and '" + g.max_tokens_field + "' asks for " +
                 std::to_string(g.max_tokens) + " more, but the context holds " + std::to_string(session.context()),
             g.max_tokens_field, "context_length_exceeded");
  }

  // Text as it becomes final, with the scored tokens whose text starts in it; false = client gone.
  using Emit = std::function<bool(const std::string& text, std::vector<TokenLogprob> tokens)>;

  // Runs one generation; `emit` receives the text as it becomes final (stop strings held back
  // until they can no longer match).
  Outcome run(Session& session, const Generation& g, const Emit& emit) {
    Outcome out;
    out.prompt_tokens = static_cast<int64_t>(g.prompt.size());
    if (!g.prompt.empty()) session.append(g.prompt);
    Sampler sampler(g.sampling);
    size_t hold = 0;
    for (const auto& s : g.stops) hold = std::max(hold, s.size() - 1);
    std::string bytes;
    size_t emitted = 0, scanned = 0;  // bytes sent to the client; bytes searched for stop strings
    size_t characters = 0;            // code points in `bytes` (text_offset of the next token)
    std::vector<TokenLogprob> scored;  // with logprobs: every generated token, and where its text starts
    std::vector<size_t> starts;
    size_t handed = 0;  // scored tokens given to emit so far
    // The scored tokens not yet handed out whose text starts before byte `end`.
    auto scored_before = [&](size_t end) {
      std::vector<TokenLogprob> part;
      while (handed < scored.size() && starts[handed] < end) part.push_back(scored[handed++]);
      return part;
    };
    bool stop_hit = false, client_gone = false;
    auto on_token = [&](int64_t token) {
      if (g.logprobs >= 0) {  // the logits this token was sampled from (decode runs after the callback)
        scored.push_back(token_logprob(session.last_logits(), token, g.logprobs, options.session.sample_vocab));
        scored.back().text_offset = characters;
        starts.push_back(bytes.size());
      }
      const std::string piece = tokenizer.decode_bytes({static_cast<int32_t>(token)}, true);
      for (unsigned char c : piece) characters += (c & 0xC0) != 0x80;
      bytes += piece;
      size_t cut = std::string::npos;
      for (const auto& s : g.stops) cut = std::min(cut, bytes.find(s, scanned));
      if (cut != std::string::npos) {
        bytes.resize(cut);
        stop_hit = true;
        return false;
      }
      scanned = bytes.size() > hold ? bytes.size() - hold : 0;  // a match must end in a later token
      const size_t end = utf8_safe_end(bytes, scanned);
      if (emit && end > emitted) {
        // Invalid bytes (a model can emit any byte) become U+FFFD, as in the final text.
        if (!emit(tok::to_valid_utf8(std::string_view(bytes).substr(emitted, end - emitted)), scored_before(end)))
          client_gone = true;
        emitted = end;
      }
      return !client_gone;
    };
    const auto tokens = session.generate(g.max_tokens, sampler, g.stop_ids, on_token, batcher.get());
    out.completion_tokens = static_cast<int64_t>(tokens.size());
    // Tokens wholly inside a stop string are not part of the answer; the rest are.
    std::vector<TokenLogprob> rest = scored_before(stop_hit ? bytes.size() : std::string::npos);
    // The final text with invalid UTF-8 repaired (a generation can stop inside a character).
    if (emit && !client_gone && (bytes.size() > emitted || !rest.empty()))
      emit(tok::to_valid_utf8(std::string_view(bytes).substr(std::min(emitted, bytes.size()))), rest);
    out.text = stop_hit ? tok::to_valid_utf8(bytes) : tokenizer.decode(std::vector<int32_t>(tokens.begin(), tokens.end()), true);
    out.finish_reason = stop_hit || session.stopped_at_stop() ? "stop" : "length";
    if (g.logprobs >= 0) out.logprobs.assign(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(handed));
    return out;
  }

  std::string spell(int64_t id) const { return tokenizer.decode_bytes({static_cast<int32_t>(id)}, false); }

  json logprobs_json(const Generation& g, const std::vector<TokenLogprob>& tokens) const {
    if (g.logprobs < 0) return nullptr;
    const Spell speller = [this](int64_t id) { return spell(id); };
    return g.is_chat ? chat_logprobs(tokens, speller) : completion_logprobs(tokens, speller);
  }

  // Prepares, runs and answers one generation request (plain or streamed).
  void respond(const Generation& g, const std::function<void(Session&, Generation&)>& prepare_prompt,
               httplib::Response& res) {
    auto job = std::make_shared<Job>();
    job->g = g;
    if (!g.session_id.empty()) {
      job->lease = acquire(g.session_id);
      job->session = &job->lease.session();
    } else {
      job->own = std::make_unique<Session>(lm, options.session);
      job->session = job->own.get();
    }
    prepare_prompt(*job->session, job->g);
    check_context(*job->session, job->g);
    job->slot = std::make_unique<SlotHold>(slots);
    job->reservation = std::make_unique<Reservation>(
        *this, *job->session, static_cast<int64_t>(job->g.prompt.size()) + job->g.max_tokens);
    job->id = (g.is_chat ? "chatcmpl-" : "cmpl-") + std::to_string(++request_counter);
    job->created = std::time(nullptr);
    if (!g.stream) {
      Outcome out = run(*job->session, job->g, {});
      res.set_content(text(final_body(*job, out)), "application/json");
      finish(*job, out);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [this, job](size_t, httplib::DataSink& sink) {
      auto send = [&](const json& chunk) {
        const std::string event = "data: " + text(chunk) + "\n\n";
        return sink.write(event.data(), event.size());
      };
      try {
        if (job->g.is_chat) send(chunk_body(*job, json{{"role", "assistant"}, {"content", ""}}, nullptr));
        Outcome out = run(*job->session, job->g, [&](const std::string& text, std::vector<TokenLogprob> tokens) {
          const json logprobs = logprobs_json(job->g, tokens);
          return send(job->g.is_chat ? chunk_body(*job, json{{"content", text}}, nullptr, logprobs)
                                     : chunk_body(*job, text, nullptr, logprobs));
        });
        send(job->g.is_chat ? chunk_body(*job, json::object(), out.finish_reason)
                            : chunk_body(*job, "", out.finish_reason));
        if (job->g.include_usage) {  // OpenAI's last chunk: no choices, the request's usage
          json last = chunk_body(*job, "", nullptr);
          last["choices"] = json::array();
          last["usage"] = usage(out);
          send(last);
        }
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
      release(job->lease);
      return true;
    });
  }

  struct Job {
    Generation g;
    Lease lease;
    std::unique_ptr<Session> own;
    Session* session = nullptr;
    std::unique_ptr<SlotHold> slot;
    std::unique_ptr<Reservation> reservation;  // dropped before the lease, which counts what it became
    std::string id;
    std::time_t created = 0;
  };

  // After a chat turn in a session: remember the transcript so the next request can send the
  // whole conversation again and only the new part is appended.
  void finish(Job& job, const Outcome& out) {
    if (job.g.is_chat && !job.g.session_id.empty()) {
      job.session->set_note("transcript", job.session->note("transcript") + job.g.appended_text + out.text);
      job.session->set_note("turn_open", "1");
    }
    job.slot.reset();
    job.reservation.reset();
    release(job.lease);
  }

  json session_info(const Job& job) const {
    return {{"id", job.g.session_id}, {"position", job.session->position()}, {"ttt_updates", job.session->ttt_updates()}};
  }

  static json usage(const Outcome& out) {
    return {{"prompt_tokens", out.prompt_tokens},
            {"completion_tokens", out.completion_tokens},
            {"total_tokens", out.prompt_tokens + out.completion_tokens}};
  }

  json final_body(const Job& job, const Outcome& out) const {
    json choice = {{"index", 0}, {"finish_reason", out.finish_reason}};
    if (job.g.is_chat) choice["message"] = {{"role", "assistant"}, {"content", out.text}};
    else choice["text"] = out.text;
    choice["logprobs"] = logprobs_json(job.g, out.logprobs);
    json body = {{"id", job.id},
                 {"object", job.g.is_chat ? "chat.completion" : "text_completion"},
                 {"created", job.created},
                 {"model", options.model_name},
                 {"choices", json::array({choice})},
                 {"usage", usage(out)}};
    if (!job.g.session_id.empty()) body["session"] = session_info(job);
    return body;
  }

  json chunk_body(const Job& job, const json& delta_or_text, const json& finish_reason,
                  const json& logprobs = nullptr) const {
    json choice = {{"index", 0}, {"finish_reason", finish_reason}};
    choice[job.g.is_chat ? "delta" : "text"] = delta_or_text;
    choice["logprobs"] = logprobs;
    json chunk = {{"id", job.id},
                  {"object", job.g.is_chat ? "chat.completion.chunk" : "text_completion"},
                  {"created", job.created},
                  {"model", options.model_name},
                  {"choices", json::array({choice})}};
    if (job.g.include_usage) chunk["usage"] = nullptr;  // every chunk but the last, as OpenAI sends them
    return chunk;
  }

  // ---- endpoints -----------------------------------------------------------------------------

  void completions(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    Generation g;
    parse_common(body, g, false);
    g.stop_ids = eos_ids;
    const json* prompt = field(body, "prompt");
    std::string text;
    std::vector<int64_t> ids;
    bool given_ids = false;
    if (!prompt) {
      if (g.session_id.empty()) reject("'prompt' is required", "prompt", "missing_field");
    } else if (prompt->is_string()) {
      text = prompt->get<std::string>();
    } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
      text = (*prompt)[0].get<std::string>();
    } else if (prompt->is_array() && std::all_of(prompt->begin(), prompt->end(), [](const json& v) { return v.is_number_integer(); })) {
      given_ids = true;
      for (const auto& v : *prompt) {
        const int64_t id = v.get<int64_t>();
        if (id < 0 || id >= lm->config().vocab_size)
          reject("prompt token " + std::to_string(id) + " is outside the vocabulary [0, " +
                     std::to_string(lm->config().vocab_size) + ")", "prompt", "invalid_value");
        ids.push_back(id);
      }
    } else {
      reject("'prompt' must be a string, an array of one string or an array of token ids (batches are not supported)",
             "prompt", "invalid_type");
    }
    respond(g, [&](Session& session, Generation& gen) {
      gen.prompt = given_ids ? ids : (text.empty() ? std::vector<int64_t>{} : encode(text, session.position() == 0));
    }, res);
  }

  // The messages as the template will see them: each object as sent (tool_calls, name, ... pass
  // through, in their order), its content made one string (text parts joined; null = "").
  static ojson parse_messages(const ojson& body) {
    auto it = body.find("messages");
    if (it == body.end() || it->is_null()) reject("'messages' is required", "messages", "missing_field");
    if (!it->is_array() || it->empty()) reject("'messages' must be a non-empty array", "messages", "invalid_type");
    ojson out = ojson::array();
    for (const auto& m : *it) {
      if (!m.is_object()) reject("each message must be an object", "messages", "invalid_type");
      auto role = m.find("role");
      if (role == m.end() || !role->is_string() || role->get<std::string>().empty())
        reject("each message needs a 'role' string", "messages", "invalid_type");
      static const char* roles[] = {"system", "user", "assistant", "tool", "developer"};
      if (std::none_of(std::begin(roles), std::end(roles), [&](const char* r) { return *role == r; }))
        reject("unknown message role '" + role->get<std::string>() + "'", "messages", "invalid_value");
      std::string content;
      auto c = m.find("content");
      if (c != m.end() && !c->is_null()) {
        if (c->is_string()) {
          content = c->get<std::string>();
        } else if (c->is_array()) {
          for (const auto& part : *c) {
            if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
              reject("message content parts must be {\"type\": \"text\", \"text\": string}", "messages", "invalid_type");
            content += part["text"].get<std::string>();
          }
        } else {
          reject("message 'content' must be a string or an array of text parts", "messages", "invalid_type");
        }
      }
      ojson message = m;
      message["content"] = content;
      out.push_back(std::move(message));
    }
    return out;
  }

  // chat_template_kwargs: more variables for the template (enable_thinking, ...), as vLLM takes them.
  static ChatRenderOptions parse_chat_options(const json& body) {
    ChatRenderOptions o;
    if (const json* kwargs = field(body, "chat_template_kwargs")) {
      if (!kwargs->is_object()) reject("'chat_template_kwargs' must be an object", "chat_template_kwargs", "invalid_type");
      for (const auto& [key, value] : kwargs->items()) {
        if (key == "messages" || key == "tools" || key == "documents" || key == "add_generation_prompt")
          reject("'chat_template_kwargs' must not set '" + key + "'", "chat_template_kwargs", "invalid_value");
        o.variables[key] = ojson::parse(value.dump());
      }
    }
    return o;
  }

  void chat_completions(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    Generation g;
    g.is_chat = true;
    parse_common(body, g, true);
    const ojson messages = parse_messages(ojson::parse(req.body));
    g.chat_options = parse_chat_options(body);
    if (!chat) reject("this model has no chat format: " + chat_error, "messages", "no_chat_format");
    g.stop_ids = chat->stop_ids();
    for (int64_t id : lm->config().eos_token_ids)
      if (std::find(g.stop_ids.begin(), g.stop_ids.end(), id) == g.stop_ids.end()) g.stop_ids.push_back(id);
    respond(g, [&](Session& session, Generation& gen) {
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
      gen.prompt = encode(text, false);  // the template writes the begin token where the model wants one
      gen.appended_text = text;
    }, res);
  }

  // The chat template's text; its refusals (raise_exception, bad input) are the client's 400.
  std::string render(const ojson& messages, const ChatRenderOptions& options) const {
    try {
      return chat->render_json(messages, options);
    } catch (const Error& e) {
      reject(std::string("the chat template could not render these messages: ") + e.what(), "messages", "invalid_value");
    }
  }

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

  void models(const httplib::Request&, httplib::Response& res) {
    json model = {{"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "ipt"}};
    res.set_content(text(json{{"object", "list"}, {"data", json::array({model})}}), "application/json");
  }

  void health(const httplib::Request&, httplib::Response& res) {
    auto [free, waiting] = slots.state();
    size_t kept, refused;
    {
      std::lock_guard<std::mutex> lock(store_mutex);
      kept = sessions.size();
      refused = unreadable.size();
    }
    res.set_content(json{{"status", "ok"}, {"slots_idle", free}, {"slots_total", options.parallel},
                         {"queued", waiting}, {"sessions", kept}, {"sessions_refused", refused}}.dump(),
                    "application/json");
  }

  void post_session(const httplib::Request& req, httplib::Response& res) {
    const json body = req.body.empty() ? json::object() : parse_body(req);
    const std::string id = create_session(body);
    res.status = 201;
    res.set_content(json{{"id", id}, {"object", "session"}}.dump(), "application/json");
  }

  void get_session(const httplib::Request& req, httplib::Response& res) {
    Lease lease = acquire(req.matches[1]);
    const Session& s = lease.session();
    json body = {{"id", std::string(req.matches[1])}, {"object", "session"}, {"position", s.position()},
                 {"ttt_updates", s.ttt_updates()}, {"memory_bytes", s.memory_bytes()}, {"context", s.context()}};
    release(lease);
    res.set_content(text(body), "application/json");
  }

  void delete_session(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    Lease lease = acquire(id);
    if (!options.session_dir.empty()) lease.session().save(session_path(id));
    {
      std::lock_guard<std::mutex> lock(store_mutex);
      lease.entry->gone = true;
      lease.entry->session.reset();
      sessions.erase(id);
    }
    res.set_content(json{{"id", id}, {"object", "session.deleted"}, {"deleted", true},
                         {"saved", !options.session_dir.empty()}}.dump(),
                    "application/json");
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

void Server::persist_sessions() { impl_->persist_all(); }

Server::Reply Server::handle(const std::string& method, const std::string& path, const std::string& body) {
  return impl_->handle(method, path, body);
}

}  // namespace ipt::infer
