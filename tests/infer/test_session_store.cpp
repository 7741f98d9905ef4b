// infer/session_store without HTTP: ids, one request per session, least-recently-used eviction
// under the count budget, persistence to a directory and loading back, refused files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ipt/infer/request_error.h"
#include "ipt/infer/session_store.h"
#include "ipt/model/presets.h"
#include "support/temp_dir.h"

using namespace ipt;
using infer::SessionStore;
namespace fs = std::filesystem;
using ipt::test::TempDir;

namespace {

model::CausalLM& tiny_model() {
  static model::CausalLM lm = [] {
    model::CausalLM m(model::preset_config("test"));
    m->init_weights(1);
    return m;
  }();
  return lm;
}

// The RequestError `f` throws (status 0 when none).
template <class F>
infer::RequestError error_of(F f) {
  try {
    f();
  } catch (const infer::RequestError& e) {
    return e;
  }
  return {0, "", "", ""};
}

int64_t position_of(SessionStore& store, const std::string& id) {
  SessionStore::Lease lease = store.acquire(id);
  const int64_t position = lease.session().position();
  store.release(lease);
  return position;
}

}  // namespace

TEST(SessionStore, CreatesAndContinuesSessionsById) {
  SessionStore store(tiny_model(), {});
  const std::string fresh = store.create({});
  EXPECT_EQ(fresh.rfind("sess-", 0), 0u);
  EXPECT_EQ(store.create({}, "chat-1"), "chat-1");
  {
    SessionStore::Lease lease = store.acquire("chat-1");
    lease.session().append({1, 2, 3});
    store.release(lease);
    EXPECT_FALSE(lease.held());
  }
  EXPECT_EQ(position_of(store, "chat-1"), 3);
  EXPECT_EQ(position_of(store, fresh), 0);
  EXPECT_EQ(store.size(), 2u);
}

TEST(SessionStore, RefusesBadUnknownAndTakenIds) {
  SessionStore store(tiny_model(), {});
  store.create({}, "a");
  infer::RequestError taken = error_of([&] { store.create({}, "a"); });
  EXPECT_EQ(taken.status, 409);
  EXPECT_EQ(taken.code, "session_exists");
  infer::RequestError bad = error_of([&] { store.create({}, "no/slash"); });
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.param, "id");
  infer::RequestError unknown = error_of([&] { store.acquire("b"); });
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.code, "session_not_found");
  EXPECT_EQ(error_of([&] { store.acquire(std::string(65, 'x')); }).param, "session_id");
}

TEST(SessionStore, EvictsLeastRecentlyUsedBeyondTheCount) {
  SessionStore store(tiny_model(), {2, 1ll << 30, ""});
  store.create({}, "first");
  store.create({}, "second");
  position_of(store, "first");  // now "second" is the least recently used
  store.create({}, "third");
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(error_of([&] { store.acquire("second"); }).status, 404);  // no directory: dropped
  EXPECT_EQ(position_of(store, "first"), 0);
}

TEST(SessionStore, EvictedSessionsComeBackFromTheDirectory) {
  TempDir dir;
  {
    SessionStore store(tiny_model(), {1, 1ll << 30, dir.path.string()});
    store.create({}, "kept");
    {
      SessionStore::Lease lease = store.acquire("kept");
      lease.session().append({5, 6, 7, 8});
      store.release(lease);
    }
    store.create({}, "other");  // evicts "kept" to disk
    EXPECT_TRUE(fs::exists(dir.path / "kept.session"));
    EXPECT_EQ(position_of(store, "kept"), 4);  // loaded again
    store.persist_all();
  }
  // A new store (a restarted server) continues both; a torn file is refused by name, not fatal;
  // a killed write's temporary is removed.
  std::ofstream(dir.path / "torn.session") << "half a file";
  std::ofstream(dir.path / "x.session.tmp.1.0") << "partial";
  SessionStore again(tiny_model(), {4, 1ll << 30, dir.path.string()});
  EXPECT_EQ(again.refused(), 1u);
  EXPECT_FALSE(fs::exists(dir.path / "x.session.tmp.1.0"));
  EXPECT_EQ(position_of(again, "kept"), 4);
  EXPECT_EQ(position_of(again, "other"), 0);
  EXPECT_EQ(error_of([&] { again.acquire("torn"); }).code, "session_unreadable");
}

TEST(SessionStore, RemoveSavesFirstWithADirectory) {
  TempDir dir;
  SessionStore store(tiny_model(), {4, 1ll << 30, dir.path.string()});
  store.create({}, "gone");
  SessionStore::Lease lease = store.acquire("gone");
  store.remove(lease, "gone");
  EXPECT_TRUE(fs::exists(dir.path / "gone.session"));
  EXPECT_EQ(store.size(), 0u);
}
