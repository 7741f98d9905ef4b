#pragma once
// The sessions a server keeps, by id, apart from HTTP: created with an id (or a fresh one), held by
// one request at a time, evicted least recently used under a count and a byte budget, and — with a
// directory — written there when evicted, deleted or at shutdown, and loaded again on their next use.
// Errors are RequestErrors (404 unknown id, 409 exists or unreadable), so a server answers them as they are.
//
//   SessionStore store(lm, {.max_sessions = 4, .session_bytes = 1 << 30, .session_dir = "sessions"});
//   const std::string id = store.create(session_options);
//   SessionStore::Lease lease = store.acquire(id);
//   lease.session().append(prompt);  ...  store.release(lease);
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "ipt/infer/session.h"
#include "ipt/model/decoder.h"

namespace ipt::infer {

struct SessionStoreOptions {
  int64_t max_sessions = 16;          // sessions kept in memory
  int64_t session_bytes = 1ll << 30;  // their memory budget (caches + fast weights)
  std::string session_dir;            // "" = evicted sessions are dropped
};

// 1-64 letters, digits, '-' and '_' (ids are file names in the session directory).
bool valid_session_id(const std::string& id);

class SessionStore {
 public:
  struct Entry;  // one kept session (session_store.cpp)

  // Checks the session directory (if any): every file is loaded once to prove it complete; a torn or
  // foreign file is named on stderr and refused (its id answers with that reason), never a failed
  // start; temporary files of a killed write are removed.
  SessionStore(const model::CausalLM& lm, SessionStoreOptions options);
  ~SessionStore();

  // A session held by one request (others using the same id wait).
  class Lease {
   public:
    Session& session();
    bool held() const { return entry_ != nullptr; }

   private:
    friend class SessionStore;
    std::shared_ptr<Entry> entry_;
    std::unique_lock<std::mutex> lock_;
  };

  // A new session with `options`; `id` "" = a fresh one. RequestError naming "id" when it is
  // malformed or taken.
  std::string create(const SessionOptions& options, std::string id = "");
  Lease acquire(const std::string& id);  // loads it from the directory when it lives there only
  void release(Lease& lease);            // no-op for an empty lease
  // Ends the session: written to the directory first when there is one.
  void remove(Lease& lease, const std::string& id);

  // What a running request's session may grow to, held against the budget until it ends, so that
  // request-private sessions and the growth of kept ones are evicted room, not overdraft.
  class Reservation {
   public:
    Reservation(SessionStore& store, const Session& session, int64_t max_new_tokens);
    ~Reservation();
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;

   private:
    SessionStore* store_;
    int64_t bytes_ = 0;
  };

  void persist_all();  // every session in memory to the directory (no-op without one)

  size_t size();     // sessions known (in memory or being loaded)
  size_t refused();  // files in the directory refused at start
  bool persistent() const { return !options_.session_dir.empty(); }

 private:
  void check_directory();
  void enforce_budget();  // evicts idle sessions, least recently used first
  std::string path_of(const std::string& id) const;
  bool exists(const std::string& id) const;  // needs mutex_

  const model::CausalLM& lm_;
  SessionStoreOptions options_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> sessions_;
  std::map<std::string, std::string> unreadable_;  // id -> why its file was refused
  uint64_t clock_ = 0;
  int64_t reserved_bytes_ = 0;
};

}  // namespace ipt::infer
