// make test replays every fuzz target's seed corpus and every input a fuzzing run ever found
// (tests/fuzz/corpus/NAME, tests/fuzz/regressions/NAME): each must load or be refused with
// ipt::Error. No fuzzing here; scripts/fuzz.sh TARGET SECONDS does that.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "fuzz_model.h"
#include "fuzz_target.h"
#include "ipt/infer/session.h"

namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

size_t replay_dir(const std::string& name, const fs::path& dir) {
  if (!fs::exists(dir)) return 0;
  size_t count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::vector<uint8_t> bytes = read_bytes(entry.path());
    EXPECT_NO_THROW(ipt::fuzz::run_one(ipt::fuzz::targets().at(name), bytes.data(), bytes.size()))
        << name << ": " << entry.path();
    ++count;
  }
  return count;
}

}  // namespace

TEST(Fuzz, EveryTargetReplaysItsCorpusAndRegressions) {
  const fs::path root = fs::path(IPT_SOURCE_DIR) / "tests" / "fuzz";
  ASSERT_GE(ipt::fuzz::targets().size(), 8u);
  for (const auto& [name, target] : ipt::fuzz::targets()) {
    const size_t seeds = replay_dir(name, root / "corpus" / name);
    EXPECT_GT(seeds, 0u) << name << " has no seed corpus in tests/fuzz/corpus/" << name;
    replay_dir(name, root / "regressions" / name);
  }
}

// The session seed must be a session of the model the target loads into (else fuzzing it only
// ever reaches the fingerprint check). If the fuzz model changes, rewrite it with
//   IPT_WRITE_FUZZ_SEEDS=1 build/tests/test_fuzz --gtest_filter=Fuzz.SessionSeedLoads
TEST(Fuzz, SessionSeedLoads) {
  torch::NoGradGuard no_grad;
  const fs::path seed = fs::path(IPT_SOURCE_DIR) / "tests/fuzz/corpus/session/valid.session";
  if (std::getenv("IPT_WRITE_FUZZ_SEEDS")) {
    fs::create_directories(seed.parent_path());
    ipt::infer::Session session(ipt::fuzz::fuzz_model());
    session.append({5, 17, 33, 2, 9, 41, 3, 3, 8, 1, 0, 12, 99, 7, 6, 5, 4, 3, 2, 1});  // more than one TTT chunk
    session.save(seed.string());
  }
  ASSERT_TRUE(fs::exists(seed)) << seed;
  ipt::infer::Session loaded = ipt::infer::Session::load(ipt::fuzz::fuzz_model(), seed.string());
  EXPECT_EQ(loaded.position(), 20);
}

// A deterministic sweep over the session seed: every truncation and single-byte change of the
// header region is refused with ipt::Error or loads; none crashes.
TEST(Fuzz, SessionTruncationsAndByteFlips) {
  const fs::path seed = fs::path(IPT_SOURCE_DIR) / "tests/fuzz/corpus/session/valid.session";
  const std::vector<uint8_t> bytes = read_bytes(seed);
  ASSERT_GT(bytes.size(), 64u);
  const auto& target = ipt::fuzz::targets().at("session");
  for (size_t cut = 0; cut < bytes.size(); cut += std::max<size_t>(1, bytes.size() / 97))
    EXPECT_NO_THROW(ipt::fuzz::run_one(target, bytes.data(), cut)) << "truncated at " << cut;
  for (size_t i = 0; i < std::min<size_t>(bytes.size(), 600); i += 7) {
    std::vector<uint8_t> flipped = bytes;
    flipped[i] ^= 0x5a;
    EXPECT_NO_THROW(ipt::fuzz::run_one(target, flipped.data(), flipped.size())) << "byte " << i << " changed";
  }
}
