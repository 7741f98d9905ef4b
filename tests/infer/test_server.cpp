// The HTTP server on loopback with a real client (httplib::Client): completions and chat equal a
// direct Session, streaming equals non-streaming, parallel equals sequential, sessions continue
// (also after eviction to disk) and stay isolated, every bad request gets its 4xx, `ipt serve`
// stops cleanly on SIGTERM, and the OpenAI fields (logprobs, stream_options, stop) are honoured
// or refused by name.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "ipt/infer/chat.h"
#include "ipt/infer/server.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/presets.h"
#include "ipt/tokenizer/tokenizer.h"
#include "support/temp_dir.h"

using namespace ipt;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A `test`-preset model with the bundled 4096-token tokenizer, TTT in layer 1 (chunk 8, random
// TTT tensors so updates matter), written once per test binary.
const std::string& model_dir() {
  static const std::string dir = [] {
    const fs::path d = fs::temp_directory_path() / ("ipt-server-model-" + ipt::test::process_tag());
    model::ModelConfig c = model::preset_config("test", "qwen3", 4096);
    c.ttt_mode = true;
    c.ttt_layers = {1};
    c.ttt_chunk = 8;
    c.max_position_embeddings = 96;  // small, so the context limit is easy to reach
    model::CausalLM lm(c);
    lm->init_weights(3);
    {
      torch::NoGradGuard no_grad;
      torch::manual_seed(4);
      for (auto& p : lm->named_parameters())
        if (p.key().find("ttt_") != std::string::npos) p.value().normal_(0.0, 0.3);
    }
    model::save_model(lm, d.string());
    model::copy_tokenizer_files(std::string(IPT_SOURCE_DIR) + "/corpus/tokenizer", d.string());
    return d.string();
  }();
  return dir;
}

model::CausalLM& shared_model() {
  static model::CausalLM lm = model::load_model(model_dir());
  return lm;
}

struct Running {
  std::unique_ptr<infer::Server> server;
  std::thread thread;
  int port = 0;
  explicit Running(infer::ServerOptions o = {}) {
    o.port = 0;
    server = std::make_unique<infer::Server>(shared_model(), model_dir(), o);
    port = server->bind();
    thread = std::thread([this] { server->listen(); });
  }
  ~Running() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60);
    return c;
  }
  std::pair<int, json> post(const std::string& path, const std::string& body) const {
    auto res = client().Post(path.c_str(), body, "application/json");
    if (!res) return {-1, json()};
    return {res->status, json::parse(res->body, nullptr, false)};
  }
  std::pair<int, json> post(const std::string& path, const json& body) const { return post(path, body.dump()); }
};

// The data events of a server-sent-event body, up to [DONE] (which must come last).
std::vector<json> events(const std::string& body) {
  std::vector<json> out;
  size_t pos = 0;
  bool done = false;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    EXPECT_FALSE(done) << "event after [DONE]";
    if (data == "[DONE]") done = true;
    else out.push_back(json::parse(data));
    pos = end;
  }
  EXPECT_TRUE(done) << body;
  return out;
}

// What a Session computes directly for a completion (greedy, stopping at end-of-sequence tokens).
std::string direct(infer::Session& s, const std::vector<int64_t>& prompt, int64_t max_tokens,
                   const std::vector<int64_t>& stops) {
  static tok::Tokenizer tokenizer = tok::Tokenizer::load(model_dir());
  infer::SamplerOptions o;
  o.temperature = 0;
  infer::Sampler sampler(o);
  if (!prompt.empty()) s.append(prompt);
  auto out = s.generate(max_tokens, sampler, stops);
  return tokenizer.decode(std::vector<int32_t>(out.begin(), out.end()), true);
}

std::vector<int64_t> encode(const std::string& text) {
  static tok::Tokenizer tokenizer = tok::Tokenizer::load(model_dir());
  std::vector<int64_t> ids;
  for (int32_t id : tokenizer.encode(text)) ids.push_back(id);
  return ids;
}

std::vector<int64_t> eos() {
  static tok::Tokenizer tokenizer = tok::Tokenizer::load(model_dir());
  std::vector<int64_t> ids = shared_model()->config().eos_token_ids;
  ids.push_back(*tokenizer.eos_id());
  return ids;
}

json greedy(json body) {
  body["temperature"] = 0;
  return body;
}

}  // namespace

TEST(Server, CompletionsStreamingAndModels) {
  Running r;
  auto [status, body] = r.post("/v1/completions", greedy({{"prompt", "The state of the union"}, {"max_tokens", 12}}));
  ASSERT_EQ(status, 200) << body;
  EXPECT_EQ(body["object"], "text_completion");
  infer::Session s(shared_model());
  EXPECT_EQ(body["choices"][0]["text"], direct(s, encode("The state of the union"), 12, eos()));
  EXPECT_EQ(body["usage"]["prompt_tokens"], static_cast<int64_t>(encode("The state of the union").size()));

  auto res = r.client().Post("/v1/completions",
                             greedy({{"prompt", "The state of the union"}, {"max_tokens", 12}, {"stream", true}}).dump(),
                             "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  std::string streamed;
  auto chunks = events(res->body);
  ASSERT_FALSE(chunks.empty());
  for (const auto& c : chunks) streamed += c["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(streamed, body["choices"][0]["text"]);
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], body["choices"][0]["finish_reason"]);

  auto models = r.client().Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["object"], "model");
  auto health = r.client().Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");

  // A stop string cuts the text and is not part of it.
  auto [st, stopped] = r.post("/v1/completions", greedy({{"prompt", "The state of the union"}, {"max_tokens", 12},
                                                          {"stop", json::array({std::string(1, body["choices"][0]["text"].get<std::string>().at(3))})}}));
  ASSERT_EQ(st, 200);
  EXPECT_EQ(stopped["choices"][0]["finish_reason"], "stop");
  EXPECT_LE(stopped["choices"][0]["text"].get<std::string>().size(), 3u);
}

TEST(Server, ChatMatchesTheTemplateAndStreams) {
  Running r;
  const json messages = json::array({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hello"}}});
  auto [status, body] = r.post("/v1/chat/completions", greedy({{"messages", messages}, {"max_tokens", 10}}));
  ASSERT_EQ(status, 200) << body;
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(model_dir());
  const auto chat = infer::ChatTemplate::detect(tokenizer, model_dir());
  infer::Session s(shared_model());
  EXPECT_EQ(body["choices"][0]["message"]["content"],
            direct(s, encode(chat.render({{"system", "Be brief."}, {"user", "Hello"}})), 10, chat.stop_ids()));

  auto res = r.client().Post("/v1/chat/completions",
                             greedy({{"messages", messages}, {"max_tokens", 10}, {"stream", true}}).dump(), "application/json");
  ASSERT_TRUE(res);
  auto chunks = events(res->body);
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_EQ(chunks.front()["choices"][0]["delta"]["role"], "assistant");
  std::string content;
  for (const auto& c : chunks)
    if (c["choices"][0]["delta"].contains("content")) content += c["choices"][0]["delta"]["content"].get<std::string>();
  EXPECT_EQ(content, body["choices"][0]["message"]["content"]);
  EXPECT_EQ(chunks.back()["object"], "chat.completion.chunk");
}

TEST(Server, ParallelRequestsEqualSequentialOnes) {
  infer::ServerOptions o;
  o.parallel = 3;
  Running r(o);
  auto request = [](int i) {
    return json{{"prompt", "Request number " + std::to_string(i)}, {"max_tokens", 10}, {"temperature", 0.9},
                {"seed", 100 + i}};
  };
  std::vector<std::string> sequential;
  for (int i = 0; i < 6; ++i) sequential.push_back(r.post("/v1/completions", request(i)).second["choices"][0]["text"]);
  std::vector<std::future<std::string>> parallel;
  for (int i = 0; i < 6; ++i)
    parallel.push_back(std::async(std::launch::async, [&, i] {
      return r.post("/v1/completions", request(i)).second["choices"][0]["text"].get<std::string>();
    }));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(parallel[i].get(), sequential[i]) << i;
}

TEST(Server, SessionsContinueStayIsolatedAndSurviveEviction) {
  const fs::path dir = fs::temp_directory_path() / ("ipt-server-sessions-" + ipt::test::process_tag());
  infer::ServerOptions o;
  o.max_sessions = 1;  // every new session evicts the other one to disk
  o.session_dir = dir.string();
  o.parallel = 2;
  Running r(o);
  auto create = [&] {
    auto [status, body] = r.post("/v1/sessions", json::object());
    EXPECT_EQ(status, 201) << body;
    return body["id"].get<std::string>();
  };
  const std::string a = create();
  auto ask = [&](const std::string& id, const std::string& prompt) {
    auto [status, body] = r.post("/v1/completions", greedy({{"prompt", prompt}, {"max_tokens", 6}, {"session_id", id}}));
    EXPECT_EQ(status, 200) << body;
    return body["choices"][0]["text"].get<std::string>();
  };
  std::vector<std::string> got{ask(a, "First part")};
  const std::string b = create();  // evicts a
  ask(b, "Something else entirely, longer than a chunk of eight tokens");
  got.push_back(ask(a, " and the second"));  // a comes back from disk
  ask(b, "more");
  got.push_back(ask(a, " third"));

  // The same turns in one Session, never stopped, with nothing interleaved.
  infer::Session s(shared_model());
  std::vector<std::string> expected{direct(s, encode("First part"), 6, eos())};
  expected.push_back(direct(s, encode(" and the second"), 6, eos()));
  expected.push_back(direct(s, encode(" third"), 6, eos()));
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(fs::exists(dir / (b + ".session")));

  auto info = r.client().Get(("/v1/sessions/" + a).c_str());
  ASSERT_TRUE(info);
  EXPECT_EQ(json::parse(info->body)["position"], s.position());
  auto del = r.client().Delete(("/v1/sessions/" + a).c_str());
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  fs::remove_all(dir);
}

TEST(Server, ChatSessionAppendsOnlyTheNewTurn) {
  Running r;
  const std::string id = r.post("/v1/sessions", json{{"id", "chat-1"}}).second["id"];
  EXPECT_EQ(id, "chat-1");
  json messages = json::array({{{"role", "user"}, {"content", "Hi there"}}});
  auto [s1, first] = r.post("/v1/chat/completions", greedy({{"messages", messages}, {"max_tokens", 5}, {"session_id", id}}));
  ASSERT_EQ(s1, 200) << first;
  messages.push_back({{"role", "assistant"}, {"content", first["choices"][0]["message"]["content"]}});
  messages.push_back({{"role", "user"}, {"content", "And then?"}});
  auto [s2, second] = r.post("/v1/chat/completions", greedy({{"messages", messages}, {"max_tokens", 5}, {"session_id", id}}));
  ASSERT_EQ(s2, 200) << second;
  // Only the close of the previous turn and the new user turn were appended.
  const int64_t new_part = static_cast<int64_t>(encode("<|im_end|>\n<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\n").size());
  EXPECT_EQ(second["usage"]["prompt_tokens"], new_part);
  EXPECT_EQ(second["session"]["position"].get<int64_t>(),
            first["session"]["position"].get<int64_t>() + new_part + second["usage"]["completion_tokens"].get<int64_t>());
  EXPECT_EQ(r.post("/v1/sessions", json{{"id", "chat-1"}}).first, 409);
}

TEST(Server, BadRequestsGetOpenAiErrors) {
  Running r;
  const std::string session = r.post("/v1/sessions", json::object()).second["id"];
  struct Case {
    std::string path, body, param;
    int status;
  };
  std::string long_prompt;  // ~150 tokens, past the context of 96
  for (int i = 0; i < 150; ++i) long_prompt += " word";
  const std::vector<Case> cases = {
      {"/v1/completions", "{not json", "", 400},
      {"/v1/completions", "[1, 2]", "", 400},
      {"/v1/completions", "{\"prompt\": \"\xff\xfe\"}", "", 400},  // invalid UTF-8 is not JSON
      {"/v1/completions", R"({"max_tokens": 3})", "prompt", 400},
      {"/v1/completions", R"({"prompt": 5})", "prompt", 400},
      {"/v1/completions", R"({"prompt": ["a", "b"]})", "prompt", 400},
      {"/v1/completions", R"({"prompt": [1, 99999]})", "prompt", 400},
      {"/v1/completions", R"({"prompt": "a", "max_tokens": "3"})", "max_tokens", 400},
      {"/v1/completions", R"({"prompt": "a", "max_tokens": -1})", "max_tokens", 400},
      {"/v1/completions", R"({"prompt": "a", "temperature": -1})", "temperature", 400},
      {"/v1/completions", R"({"prompt": "a", "temperature": "hot"})", "temperature", 400},
      {"/v1/completions", R"({"prompt": "a", "top_p": 0})", "top_p", 400},
      {"/v1/completions", R"({"prompt": "a", "top_k": -2})", "top_k", 400},
      {"/v1/completions", R"({"prompt": "a", "min_p": 2})", "min_p", 400},
      {"/v1/completions", R"({"prompt": "a", "seed": -5})", "seed", 400},
      {"/v1/completions", R"({"prompt": "a", "n": 2})", "n", 400},
      {"/v1/completions", R"({"prompt": "a", "stream": "yes"})", "stream", 400},
      {"/v1/completions", R"({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]})", "stop", 400},
      {"/v1/completions", R"({"prompt": "a", "stop": [""]})", "stop", 400},
      {"/v1/completions", R"({"prompt": "a", "model": 7})", "model", 400},
      {"/v1/completions", R"({"prompt": "a", "frequency_penalty": 0.5})", "frequency_penalty", 400},
      {"/v1/completions", R"({"prompt": "a", "session_id": "no-such-session"})", "session_id", 404},
      {"/v1/completions", R"({"prompt": "a", "session_id": "../etc/passwd"})", "session_id", 400},
      {"/v1/completions", R"({"prompt": "a", "session_id": 12})", "session_id", 400},
      {"/v1/completions", json{{"prompt", long_prompt}}.dump(), "prompt", 400},
      {"/v1/completions", json{{"prompt", ""}}.dump(), "prompt", 400},
      {"/v1/completions", R"({"prompt": "a", "max_tokens": 1000000000})", "max_tokens", 400},
      {"/v1/completions", R"({"prompt": "a", "max_tokens": 9223372036854775807})", "max_tokens", 400},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "a"}], "max_completion_tokens": 1000000000})",
       "max_completion_tokens", 400},
      {"/v1/chat/completions", R"({"prompt": "a"})", "prompt", 400},  // a completions field: not accepted here
      {"/v1/chat/completions", R"({"max_tokens": 3})", "messages", 400},
      {"/v1/chat/completions", R"({"messages": []})", "messages", 400},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "a"}]})", "messages", 400},
      {"/v1/chat/completions", R"({"messages": [{"content": "a"}]})", "messages", 400},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": 3}]})", "messages", 400},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages", 400},
      {"/v1/sessions", R"({"ttt_clip": -1})", "ttt_clip", 400},
      {"/v1/sessions", R"({"ttt": "yes"})", "ttt", 400},
      {"/v1/sessions", R"({"id": "a/b"})", "id", 400},
  };
  for (const Case& c : cases) {
    auto res = r.client().Post(c.path.c_str(), c.body, "application/json");
    ASSERT_TRUE(res) << c.body;
    EXPECT_EQ(res->status, c.status) << c.path << " " << c.body << " -> " << res->body;
    json body = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(body.contains("error")) << res->body;
    for (const char* key : {"message", "type", "param", "code"}) EXPECT_TRUE(body["error"].contains(key)) << key;
    EXPECT_FALSE(body["error"]["message"].get<std::string>().empty());
    if (!c.param.empty()) {
      EXPECT_EQ(body["error"]["param"], c.param) << c.body;
    }
  }
  // A session whose next prompt no longer fits its context.
  auto [status, body] = r.post("/v1/completions", json{{"prompt", long_prompt}, {"session_id", session}});
  EXPECT_EQ(status, 400);
  EXPECT_EQ(body["error"]["code"], "context_length_exceeded");
  // A max_tokens that cannot fit after the prompt is refused the way OpenAI refuses it.
  auto [huge_status, huge] = r.post("/v1/completions", json{{"prompt", "a"}, {"max_tokens", 1000000000}});
  EXPECT_EQ(huge_status, 400);
  EXPECT_EQ(huge["error"]["code"], "context_length_exceeded");
  auto missing = r.client().Get("/v1/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(json::parse(missing->body).contains("error"));
  EXPECT_EQ(r.client().Get("/v1/sessions/unknown")->status, 404);
  // Still serving.
  EXPECT_EQ(r.post("/v1/completions", greedy({{"prompt", "ok"}, {"max_tokens", 2}})).first, 200);
}

TEST(Server, ServeCommandStopsOnSigterm) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const std::string ipt = std::string(IPT_BINARY_DIR) + "/ipt";
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    execl(ipt.c_str(), ipt.c_str(), "-t", "1", "serve", "-m", model_dir().c_str(), "--port", "0", nullptr);
    _exit(127);
  }
  close(out[1]);
  FILE* stream = fdopen(out[0], "r");
  char line[512] = {0};
  ASSERT_TRUE(fgets(line, sizeof(line), stream)) << "no output from ipt serve";
  const std::string first(line);
  const size_t colon = first.find(':', first.find("127.0.0.1"));
  ASSERT_NE(colon, std::string::npos) << first;
  const int port = std::stoi(first.substr(colon + 1));
  httplib::Client client("127.0.0.1", port);
  auto res = client.Post("/v1/completions", greedy({{"prompt", "Hi"}, {"max_tokens", 3}}).dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  kill(pid, SIGTERM);
  std::string rest;
  while (fgets(line, sizeof(line), stream)) rest += line;
  fclose(stream);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << " " << rest;
  EXPECT_NE(rest.find("stopped"), std::string::npos) << rest;
}

// `ipt serve --session-dir` SIGKILLed while it writes sessions, then started again: every complete
// session file is continued where it was; a torn file (a truncated copy, as a full disk or a
// non-atomic copy leaves) is refused by name without stopping the start; leftovers of an
// interrupted write are removed.
namespace {
struct ServeProcess {
  pid_t pid = -1;
  FILE* stream = nullptr;  // the server's stdout and stderr
  int port = 0;
  std::string startup;     // what it printed up to the listening line

  explicit ServeProcess(const std::string& session_dir) {
    int out[2];
    EXPECT_EQ(pipe(out), 0);
    const std::string ipt = std::string(IPT_BINARY_DIR) + "/ipt";
    pid = fork();
    if (pid == 0) {
      dup2(out[1], 1);
      dup2(out[1], 2);
      close(out[0]);
      execl(ipt.c_str(), ipt.c_str(), "-t", "1", "serve", "-m", model_dir().c_str(), "--port", "0", "--session-dir",
            session_dir.c_str(), "--max-sessions", "1", nullptr);
      _exit(127);
    }
    close(out[1]);
    stream = fdopen(out[0], "r");
    char line[1024];
    while (fgets(line, sizeof(line), stream)) {
      startup += line;
      const std::string l(line);
      const size_t at = l.find("127.0.0.1:");
      if (at != std::string::npos) {
        port = std::stoi(l.substr(at + 10));
        break;
      }
    }
  }
  void kill9() {
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    fclose(stream);
  }
};
}  // namespace

TEST(Server, RestartsAfterSigkillAndRefusesTornSessions) {
  const fs::path dir = fs::temp_directory_path() / ("ipt-kill-sessions-" + ipt::test::process_tag());
  fs::remove_all(dir);
  std::map<std::string, int64_t> positions;
  {
    ServeProcess server(dir.string());
    ASSERT_GT(server.port, 0) << server.startup;
    httplib::Client client("127.0.0.1", server.port);
    // --max-sessions 1: creating and using each session evicts (writes) the one before.
    for (const std::string id : {"alpha", "beta", "gamma", "delta"}) {
      ASSERT_EQ(client.Post("/v1/sessions", json{{"id", id}}.dump(), "application/json")->status, 201);
      auto res = client.Post("/v1/completions", greedy({{"prompt", "Session " + id}, {"session_id", id}, {"max_tokens", 4}}).dump(),
                             "application/json");
      ASSERT_TRUE(res);
      ASSERT_EQ(res->status, 200) << res->body;
      positions[id] = json::parse(res->body)["session"]["position"];
    }
    // Keep it writing (each request evicts another session) and kill it in the middle.
    std::thread load([&] {
      httplib::Client c("127.0.0.1", server.port);
      for (int i = 0; i < 50; ++i)
        c.Post("/v1/completions", greedy({{"prompt", "x"}, {"session_id", i % 2 ? "alpha" : "beta"}, {"max_tokens", 1}}).dump(),
               "application/json");
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    server.kill9();
    load.join();
  }
  // What survived on disk: each file either complete or absent (writes are atomic renames).
  ASSERT_TRUE(fs::exists(dir / "gamma.session"));
  fs::copy_file(dir / "gamma.session", dir / "torn.session");
  fs::resize_file(dir / "torn.session", fs::file_size(dir / "gamma.session") / 2);
  std::ofstream(dir / "alpha.session.tmp.99999") << "half a write";

  ServeProcess again(dir.string());
  ASSERT_GT(again.port, 0) << "the server did not start again:\n" << again.startup;
  EXPECT_NE(again.startup.find("torn.session is refused"), std::string::npos) << again.startup;
  EXPECT_FALSE(fs::exists(dir / "alpha.session.tmp.99999"));
  httplib::Client client("127.0.0.1", again.port);
  for (const std::string id : {"gamma"}) {  // written at its eviction, never touched by the killed load
    auto res = client.Get(("/v1/sessions/" + id).c_str());
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << id << " " << res->body;
    EXPECT_EQ(json::parse(res->body)["position"], positions[id]) << id;
  }
  for (const std::string id : {"alpha", "beta"}) {  // complete at some point of the killed load
    auto res = client.Get(("/v1/sessions/" + id).c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << id << " " << res->body;
    EXPECT_GE(json::parse(res->body)["position"].get<int64_t>(), positions[id]) << id;
  }
  auto torn = client.Get("/v1/sessions/torn");
  ASSERT_TRUE(torn);
  EXPECT_EQ(torn->status, 409) << torn->body;  // session_unreadable
  EXPECT_NE(torn->body.find("torn.session"), std::string::npos) << torn->body;
  EXPECT_EQ(json::parse(client.Get("/health")->body)["sessions_refused"], 1);
  again.kill9();
  fs::remove_all(dir);
}

// memory_bytes_at(n) bounds what a session holds after n tokens (the server reserves it).
TEST(Server, SessionMemoryBoundHoldsAsItGrows) {
  infer::SessionOptions so;
  so.kv_block = 8;
  infer::Session s(shared_model(), so);
  const std::vector<int64_t> prompt = encode("A prompt of a few words, longer than one block of eight");
  const int64_t bound = s.memory_bytes_at(static_cast<int64_t>(prompt.size()) + 20);
  s.append(prompt);
  EXPECT_LE(s.memory_bytes(), s.memory_bytes_at(s.position()));
  infer::SamplerOptions greedy_sampling;
  greedy_sampling.temperature = 0;
  infer::Sampler sampler(greedy_sampling);
  s.generate(20, sampler);
  EXPECT_LE(s.memory_bytes(), bound);
  EXPECT_GT(s.memory_bytes(), 0);
}

// A running request's possible growth counts against the session budget: a request that may grow
// large evicts an idle kept session; a small one does not.
TEST(Server, RunningRequestsReserveTheirGrowthInTheBudget) {
  infer::ServerOptions o;
  o.session.kv_block = 8;
  // Room for the kept session (it holds at most 24 tokens here) plus a private request of a few
  // tokens, but not plus one that may grow to 80.
  infer::Session fresh(shared_model(), o.session);
  const int64_t kept = fresh.memory_bytes_at(24), held = fresh.memory_bytes();
  const int64_t small_growth = fresh.memory_bytes_at(8) - held, large_growth = fresh.memory_bytes_at(80) - held;
  ASSERT_GT(large_growth, small_growth);
  o.session_bytes = kept + (small_growth + large_growth) / 2;
  Running r(o);
  auto [created, session] = r.post("/v1/sessions", json::object());
  ASSERT_EQ(created, 201) << session;
  const std::string id = session["id"];
  auto use = [&](const std::string& sid) {
    return r.post("/v1/completions", greedy({{"prompt", "Hello"}, {"max_tokens", 2}, {"session_id", sid}})).first;
  };
  ASSERT_EQ(use(id), 200);
  auto [small, small_body] = r.post("/v1/completions", greedy({{"prompt", "Hi"}, {"max_tokens", 2}}));
  ASSERT_EQ(small, 200) << small_body;
  EXPECT_EQ(use(id), 200) << "a small private request evicted the kept session";
  auto [large, large_body] = r.post("/v1/completions", greedy({{"prompt", "Hi"}, {"max_tokens", 80}}));
  ASSERT_EQ(large, 200) << large_body;
  EXPECT_EQ(use(id), 404) << "the long request's reservation should have evicted the idle session";
}

// ---- OpenAI fields: honoured (logprobs, stream_options.include_usage, stop) or refused by name ----

namespace {

const json kHello = json::array({{{"role", "user"}, {"content", "Hello there"}}});

// The log-softmax of the model's logits after `prompt` (what the first logprob must equal).
torch::Tensor first_logprobs(const std::vector<int64_t>& prompt) {
  infer::Session s(shared_model());
  return torch::log_softmax(s.append(prompt).to(torch::kFloat), 0);
}

}  // namespace

TEST(Server, ChatLogprobsAreTheModelsLogSoftmaxAndStreamTheSame) {
  Running r;
  auto [status, body] = r.post("/v1/chat/completions", greedy({{"messages", kHello}, {"max_tokens", 6},
                                                                {"logprobs", true}, {"top_logprobs", 3}}));
  ASSERT_EQ(status, 200) << body;
  const json& content = body["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), body["usage"]["completion_tokens"].get<size_t>());
  std::string text;
  for (const auto& t : content) {
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    // Greedy: the chosen token is the likeliest, and the alternatives come likeliest first.
    EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]);
    EXPECT_DOUBLE_EQ(t["top_logprobs"][0]["logprob"].get<double>(), t["logprob"].get<double>());
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(), t["top_logprobs"][1]["logprob"].get<double>());
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    std::string bytes;
    for (const auto& b : t["bytes"]) bytes += static_cast<char>(b.get<int>());
    EXPECT_EQ(bytes, t["token"].get<std::string>());
    text += bytes;
  }
  EXPECT_EQ(text, body["choices"][0]["message"]["content"]);
  // The first token's logprob is the model's own distribution after the rendered prompt.
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(model_dir());
  const auto chat = infer::ChatTemplate::detect(tokenizer, model_dir());
  const torch::Tensor logp = first_logprobs(encode(chat.render({{"user", "Hello there"}})));
  const int32_t best = static_cast<int32_t>(logp.argmax().item<int64_t>());  // greedy picks it
  EXPECT_EQ(content[0]["token"], tokenizer.decode_bytes({best}));
  EXPECT_NEAR(content[0]["logprob"].get<double>(), logp[best].item<double>(), 1e-4);
  const double second = std::get<0>(logp.topk(2))[1].item<double>();
  EXPECT_NEAR(content[0]["top_logprobs"][1]["logprob"].get<double>(), second, 1e-4);

  // Streaming: the same tokens and numbers, spread over the chunks that carry their text.
  auto res = r.client().Post("/v1/chat/completions",
                             greedy({{"messages", kHello}, {"max_tokens", 6}, {"logprobs", true}, {"top_logprobs", 3},
                                     {"stream", true}}).dump(), "application/json");
  ASSERT_TRUE(res);
  json streamed = json::array();
  for (const auto& c : events(res->body)) {
    const json& lp = c["choices"][0]["logprobs"];
    if (lp.is_null()) continue;
    for (const auto& t : lp["content"]) streamed.push_back(t);
  }
  EXPECT_EQ(streamed, content);
  // Without logprobs the field is null, as OpenAI sends it.
  auto [plain_status, plain] = r.post("/v1/chat/completions", greedy({{"messages", kHello}, {"max_tokens", 2}}));
  EXPECT_TRUE(plain["choices"][0]["logprobs"].is_null());
}

TEST(Server, CompletionLogprobsInTheLegacyShape) {
  Running r;
  const json request = greedy({{"prompt", "The state of the union"}, {"max_tokens", 8}, {"logprobs", 2}});
  auto [status, body] = r.post("/v1/completions", request);
  ASSERT_EQ(status, 200) << body;
  const json& lp = body["choices"][0]["logprobs"];
  const size_t n = body["usage"]["completion_tokens"].get<size_t>();
  ASSERT_EQ(lp["tokens"].size(), n);
  ASSERT_EQ(lp["token_logprobs"].size(), n);
  ASSERT_EQ(lp["top_logprobs"].size(), n);
  ASSERT_EQ(lp["text_offset"].size(), n);
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(lp["text_offset"][i].get<size_t>(), text.size());  // ASCII here: characters = bytes
    text += lp["tokens"][i].get<std::string>();
    EXPECT_LE(lp["top_logprobs"][i].size(), 2u);
    EXPECT_TRUE(lp["top_logprobs"][i].contains(lp["tokens"][i].get<std::string>()));  // greedy: the best is it
  }
  EXPECT_EQ(text, body["choices"][0]["text"]);
  EXPECT_NEAR(lp["token_logprobs"][0].get<double>(), first_logprobs(encode("The state of the union")).max().item<double>(), 1e-4);

  json stream_request = request;
  stream_request["stream"] = true;
  auto res = r.client().Post("/v1/completions", stream_request.dump(), "application/json");
  ASSERT_TRUE(res);
  json tokens = json::array(), logprobs = json::array();
  for (const auto& c : events(res->body)) {
    const json& part = c["choices"][0]["logprobs"];
    if (part.is_null()) continue;
    for (const auto& t : part["tokens"]) tokens.push_back(t);
    for (const auto& v : part["token_logprobs"]) logprobs.push_back(v);
  }
  EXPECT_EQ(tokens, lp["tokens"]);
  EXPECT_EQ(logprobs, lp["token_logprobs"]);
}

TEST(Server, StopStringsTrimTheTextAndItsLogprobs) {
  Running r;
  auto [s0, full] = r.post("/v1/completions", greedy({{"prompt", "The state of the union"}, {"max_tokens", 12}, {"logprobs", 0}}));
  ASSERT_EQ(s0, 200);
  const std::string text = full["choices"][0]["text"];
  ASSERT_GE(text.size(), 6u);
  const std::string stop = text.substr(3, 3);
  const std::string kept = text.substr(0, text.find(stop));
  // The tokens kept are those whose text starts before the stop string (one may run into it).
  json expected_tokens = json::array();
  const json& lp = full["choices"][0]["logprobs"];
  for (size_t i = 0; i < lp["tokens"].size(); ++i)
    if (lp["text_offset"][i].get<size_t>() < kept.size()) expected_tokens.push_back(lp["tokens"][i]);
  ASSERT_LT(expected_tokens.size(), lp["tokens"].size());
  for (bool stream : {false, true}) {
    const json request = greedy({{"prompt", "The state of the union"}, {"max_tokens", 12}, {"stop", json::array({"zzzz", stop})},
                                 {"logprobs", 0}, {"stream", stream}});
    auto res = r.client().Post("/v1/completions", request.dump(), "application/json");
    ASSERT_TRUE(res);
    std::string got, finish;
    json tokens = json::array();
    auto take = [&](const json& choice) {
      got += choice["text"].get<std::string>();
      if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
      if (!choice["logprobs"].is_null())
        for (const auto& t : choice["logprobs"]["tokens"]) tokens.push_back(t);
    };
    if (stream) {
      for (const auto& c : events(res->body)) take(c["choices"][0]);
    } else {
      take(json::parse(res->body)["choices"][0]);
    }
    EXPECT_EQ(got, kept) << stream;
    EXPECT_EQ(finish, "stop") << stream;
    EXPECT_EQ(tokens, expected_tokens) << stream;
  }
}

TEST(Server, StreamOptionsIncludeUsageSendsAFinalUsageChunk) {
  Running r;
  auto res = r.client().Post("/v1/chat/completions",
                             greedy({{"messages", kHello}, {"max_tokens", 4}, {"stream", true},
                                     {"stream_options", {{"include_usage", true}}}}).dump(), "application/json");
  ASSERT_TRUE(res);
  const auto chunks = events(res->body);
  ASSERT_GE(chunks.size(), 3u);
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    EXPECT_TRUE(chunks[i].contains("usage") && chunks[i]["usage"].is_null()) << chunks[i];
    EXPECT_EQ(chunks[i]["choices"].size(), 1u);
  }
  const json& last = chunks.back();
  EXPECT_TRUE(last["choices"].empty());
  EXPECT_EQ(last["usage"]["completion_tokens"], 4);
  EXPECT_GT(last["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(last["usage"]["total_tokens"], last["usage"]["prompt_tokens"].get<int>() + 4);
  // Without include_usage no chunk has the field.
  auto plain = r.client().Post("/v1/completions", greedy({{"prompt", "Hi"}, {"max_tokens", 2}, {"stream", true}}).dump(),
                               "application/json");
  for (const auto& c : events(plain->body)) EXPECT_FALSE(c.contains("usage")) << c;
}

TEST(Server, FieldsNotImplementedAreRefusedByName) {
  Running r;
  struct Case {
    std::string path;
    json extra;
    std::string param;
  };
  const json m = kHello;
  const std::vector<Case> cases = {
      {"/v1/chat/completions", {{"tools", json::array({{{"type", "function"}}})}}, "tools"},
      {"/v1/chat/completions", {{"tool_choice", "auto"}}, "tool_choice"},
      {"/v1/chat/completions", {{"response_format", {{"type", "json_object"}}}}, "response_format"},
      {"/v1/chat/completions", {{"logit_bias", {{"5", 10}}}}, "logit_bias"},
      {"/v1/chat/completions", {{"top_logprobs", 2}}, "top_logprobs"},                        // without logprobs
      {"/v1/chat/completions", {{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs"},   // OpenAI's limit is 20
      {"/v1/chat/completions", {{"logprobs", 2}}, "logprobs"},                                // chat takes a boolean
      {"/v1/chat/completions", {{"stream_options", {{"include_usage", true}}}}, "stream_options"},  // without stream
      {"/v1/chat/completions", {{"n", 3}}, "n"},
      {"/v1/chat/completions", {{"chat_template_kwargs", {{"messages", 1}}}}, "chat_template_kwargs"},
      {"/v1/chat/completions", {{"chat_template_kwargs", "x"}}, "chat_template_kwargs"},
      {"/v1/completions", {{"suffix", "x"}}, "suffix"},
      {"/v1/completions", {{"echo", true}}, "echo"},
      {"/v1/completions", {{"best_of", 2}}, "best_of"},
      {"/v1/completions", {{"logprobs", 6}}, "logprobs"},
      {"/v1/completions", {{"logprobs", true}}, "logprobs"},
      {"/v1/completions", {{"max_completion_tokens", 3}}, "max_completion_tokens"},
  };
  for (const Case& c : cases) {
    json body = c.path == "/v1/completions" ? json{{"prompt", "a"}} : json{{"messages", m}};
    for (const auto& [k, v] : c.extra.items()) body[k] = v;
    auto [status, reply] = r.post(c.path, body);
    EXPECT_EQ(status, 400) << body << " -> " << reply;
    EXPECT_EQ(reply["error"]["param"], c.param) << body << " -> " << reply;
    EXPECT_NE(reply["error"]["message"].get<std::string>().find(c.param), std::string::npos) << reply;
  }
  // Accepted at their defaults, and null counts as absent.
  for (const json& extra : {json{{"n", 1}}, json{{"logprobs", false}}, json{{"tools", nullptr}}, json{{"user", "u1"}},
                            json{{"frequency_penalty", 0}}, json{{"logit_bias", json::object()}}}) {
    json body = {{"messages", m}, {"max_tokens", 1}};
    for (const auto& [k, v] : extra.items()) body[k] = v;
    EXPECT_EQ(r.post("/v1/chat/completions", body).first, 200) << body;
  }
}
