#include "ipt/infer/session_store.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <vector>

#include "ipt/common/error.h"
#include "ipt/infer/request_error.h"

namespace ipt::infer {

namespace fs = std::filesystem;

// `busy` is held by the request using it (one request per session at a time).
struct SessionStore::Entry {
  std::mutex busy;
  std::unique_ptr<Session> session;  // null while it lives on disk only
  uint64_t last_used = 0;
  int64_t bytes = 0;
  bool gone = false;  // evicted after a request found it: look it up again
};

bool valid_session_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
}

Session& SessionStore::Lease::session() { return *entry_->session; }

SessionStore::SessionStore(const model::CausalLM& lm, SessionStoreOptions options)
    : lm_(lm), options_(std::move(options)) {
  IPT_CHECK(options_.max_sessions >= 1, "serve: --max-sessions must be >= 1, got ", options_.max_sessions);
  if (persistent()) check_directory();
}

SessionStore::~SessionStore() = default;

void SessionStore::check_directory() {
  fs::create_directories(options_.session_dir);
  int complete = 0;
  for (const auto& entry : fs::directory_iterator(options_.session_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".session.tmp.") != std::string::npos) {  // common/durable_write's temporaries
      std::cerr << "serve: removing " << entry.path().string() << " (an interrupted session write)\n";
      fs::remove(entry.path());
      continue;
    }
    if (entry.path().extension() != ".session") continue;
    try {
      Session::load(lm_, entry.path().string());
      ++complete;
    } catch (const Error& e) {
      unreadable_[entry.path().stem().string()] = e.what();
      std::cerr << "serve: session file " << entry.path().string() << " is refused: " << e.what() << "\n";
    }
  }
  std::cerr << "serve: " << complete << " session(s) in " << options_.session_dir << " can be continued"
            << (unreadable_.empty() ? "" : ", " + std::to_string(unreadable_.size()) + " refused") << "\n";
}

std::string SessionStore::path_of(const std::string& id) const {
  return (fs::path(options_.session_dir) / (id + ".session")).string();
}

bool SessionStore::exists(const std::string& id) const {
  return sessions_.count(id) || (persistent() && fs::exists(path_of(id)));
}

std::string SessionStore::create(const SessionOptions& session_options, std::string id) {
  if (!id.empty() && !valid_session_id(id))
    reject("'id' must be 1-64 characters of letters, digits, '-' and '_'", "id", "invalid_value");
  auto entry = std::make_shared<Entry>();
  entry->session = std::make_unique<Session>(lm_, session_options);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (id.empty()) {
      static thread_local std::mt19937_64 rng(std::random_device{}());
      do {
        std::ostringstream fresh;
        fresh << "sess-" << std::hex << rng();
        id = fresh.str();
      } while (exists(id));
    } else if (exists(id)) {
      reject("session '" + id + "' already exists", "id", "session_exists", 409);
    }
    entry->last_used = ++clock_;
    sessions_[id] = entry;
  }
  enforce_budget();
  return id;
}

SessionStore::Lease SessionStore::acquire(const std::string& id) {
  if (!valid_session_id(id)) reject("'session_id' must be 1-64 letters, digits, '-' or '_'", "session_id", "invalid_value");
  for (;;) {
    std::shared_ptr<Entry> entry;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = sessions_.find(id);
      if (it != sessions_.end()) {
        entry = it->second;
      } else if (persistent() && fs::exists(path_of(id))) {
        entry = std::make_shared<Entry>();
        sessions_[id] = entry;
      } else {
        reject("no session '" + id + "' (create one with POST /v1/sessions)", "session_id", "session_not_found", 404);
      }
    }
    std::unique_lock<std::mutex> busy(entry->busy);
    if (entry->gone) continue;  // evicted between the lookup and the lock
    if (!entry->session) {
      try {
        entry->session = std::make_unique<Session>(Session::load(lm_, path_of(id)));
      } catch (const Error& e) {
        std::lock_guard<std::mutex> lock(mutex_);
        entry->gone = true;
        sessions_.erase(id);
        reject(std::string("session '") + id + "' could not be loaded: " + e.what(), "session_id", "session_unreadable",
               409);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      entry->last_used = ++clock_;
    }
    Lease lease;
    lease.entry_ = std::move(entry);
    lease.lock_ = std::move(busy);
    return lease;
  }
}

void SessionStore::release(Lease& lease) {
  if (!lease.entry_) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    lease.entry_->bytes = lease.entry_->session ? lease.entry_->session->memory_bytes() : 0;
  }
  lease.lock_.unlock();
  lease.entry_.reset();
  enforce_budget();
}

void SessionStore::remove(Lease& lease, const std::string& id) {
  if (persistent()) lease.session().save(path_of(id));
  std::lock_guard<std::mutex> lock(mutex_);
  lease.entry_->gone = true;
  lease.entry_->session.reset();
  sessions_.erase(id);
}

SessionStore::Reservation::Reservation(SessionStore& store, const Session& session, int64_t max_new_tokens)
    : store_(&store) {
  const int64_t tokens = std::min(session.context(), session.position() + max_new_tokens);
  bytes_ = std::max<int64_t>(0, session.memory_bytes_at(tokens) - session.memory_bytes());
  {
    std::lock_guard<std::mutex> lock(store_->mutex_);
    store_->reserved_bytes_ += bytes_;
  }
  store_->enforce_budget();
}

SessionStore::Reservation::~Reservation() {
  std::lock_guard<std::mutex> lock(store_->mutex_);
  store_->reserved_bytes_ -= bytes_;
}

// Until the count and the byte budget (kept sessions plus what running requests reserved) hold.
void SessionStore::enforce_budget() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<uint64_t, std::string>> order;
  int64_t count = 0, bytes = reserved_bytes_;
  for (const auto& [id, e] : sessions_)
    if (e->session) {
      order.emplace_back(e->last_used, id);
      ++count;
      bytes += e->bytes;
    }
  std::sort(order.begin(), order.end());
  for (const auto& [used, id] : order) {
    if (count <= options_.max_sessions && bytes <= options_.session_bytes) break;
    std::shared_ptr<Entry> e = sessions_.at(id);
    std::unique_lock<std::mutex> busy(e->busy, std::try_to_lock);
    if (!busy.owns_lock()) continue;  // in use: never evicted mid-request
    if (persistent()) e->session->save(path_of(id));
    --count;
    bytes -= e->bytes;
    e->session.reset();
    e->gone = true;
    sessions_.erase(id);
  }
}

void SessionStore::persist_all() {
  if (!persistent()) return;
  std::map<std::string, std::shared_ptr<Entry>> kept;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    kept = sessions_;
  }
  for (const auto& [id, e] : kept) {  // lock order: a session before the store, as requests do
    std::lock_guard<std::mutex> busy(e->busy);
    if (e->session && !e->gone) e->session->save(path_of(id));
  }
}

size_t SessionStore::size() {
  std::lock_guard<std::mutex> lock(mutex_);
  return sessions_.size();
}

size_t SessionStore::refused() {
  std::lock_guard<std::mutex> lock(mutex_);
  return unreadable_.size();
}

}  // namespace ipt::infer
