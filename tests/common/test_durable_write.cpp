// common/durable_write: the destination holds the old file or the whole new one; a failed write
// names the path, leaves the old file intact and leaves nothing behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include "ipt/common/durable_write.h"
#include "ipt/common/error.h"
#include "support/expect_error.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using ipt::test::expect_error;
using ipt::test::TempDir;

namespace {

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST(DurableWrite, WritesAndReplacesLeavingNoTemporary) {
  TempDir dir;
  const fs::path file = dir.path / "config.json";
  ipt::write_file_durably(file.string(), "first\n");
  EXPECT_EQ(read(file), "first\n");
  ipt::write_file_durably(file.string(), "second\n");
  EXPECT_EQ(read(file), "second\n");
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"config.json"});
}

TEST(DurableWrite, NothingVisibleBeforeCommitNothingLeftWithout) {
  TempDir dir;
  const fs::path file = dir.path / "shard.bin";
  {
    ipt::DurableFile out(file.string());
    out.write("part");
    out.sync();
    EXPECT_FALSE(fs::exists(file));
  }  // never committed: the temporary goes
  EXPECT_TRUE(names_in(dir.path).empty());
  ipt::DurableFile out(file.string());
  out.write("whole");
  out.commit();
  EXPECT_EQ(read(file), "whole");
}

TEST(DurableWrite, TemporaryNamesAreUniqueAndBesideTheDestination) {
  const std::string a = ipt::temp_path_for("/x/y.session"), b = ipt::temp_path_for("/x/y.session");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("/x/y.session.tmp.", 0), 0u) << a;  // the server's session check removes these
}

// A write that fails part-way (the file size limit, as a full disk would): the error names the
// destination, the old file is intact, no temporary is left.
TEST(DurableWrite, FailedWriteKeepsTheOldFile) {
  TempDir dir;
  const fs::path file = dir.path / "model.safetensors";
  ipt::write_file_durably(file.string(), "old contents");
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  const auto previous = std::signal(SIGXFSZ, SIG_IGN);  // write() returns EFBIG instead of a signal
  rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  expect_error([&] { ipt::write_file_durably(file.string(), std::string(100000, 'x')); }, file.string());
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous);
  EXPECT_EQ(read(file), "old contents");
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"model.safetensors"});
}

TEST(DurableWrite, ReadOnlyDirectoryIsAnErrorNamingThePath) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into read-only directories";
  TempDir dir;
  const fs::path file = dir.path / "config.json";
  ipt::write_file_durably(file.string(), "old");
  fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
  expect_error([&] { ipt::write_file_durably(file.string(), "new"); }, file.string());
  fs::permissions(dir.path, fs::perms::owner_all);
  EXPECT_EQ(read(file), "old");
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"config.json"});
}

TEST(DurableWrite, MissingDirectoryIsAnErrorNamingThePath) {
  TempDir dir;
  const fs::path file = dir.path / "absent" / "config.json";
  expect_error([&] { ipt::write_file_durably(file.string(), "text"); }, file.string());
  EXPECT_TRUE(names_in(dir.path).empty());
}

// Renaming over a directory fails after the temporary was written: it must go too.
TEST(DurableWrite, FailedRenameLeavesNothingBehind) {
  TempDir dir;
  const fs::path target = dir.path / "checkpoint";
  fs::create_directories(target / "inside");
  expect_error([&] { ipt::write_file_durably(target.string(), "text"); }, target.string());
  EXPECT_TRUE(fs::is_directory(target / "inside"));
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"checkpoint"});
}

TEST(DurableWrite, InstallsDirectoryReplacingTheOldOne) {
  TempDir dir;
  const fs::path target = dir.path / "checkpoint-5", staged = dir.path / ".checkpoint-5.tmp";
  fs::create_directories(target);
  std::ofstream(target / "old.txt") << "old";
  fs::create_directories(staged / "sub");
  std::ofstream(staged / "sub" / "new.txt") << "new";
  ipt::install_directory_durably(staged.string(), target.string());
  EXPECT_EQ(read(target / "sub" / "new.txt"), "new");
  EXPECT_FALSE(fs::exists(target / "old.txt"));
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"checkpoint-5"});
}

TEST(DurableWrite, FailedDirectoryInstallKeepsTheOldOne) {
  TempDir dir;
  const fs::path target = dir.path / "model", staged = dir.path / ".model.tmp";
  fs::create_directories(target);
  std::ofstream(target / "config.json") << "old";
  expect_error([&] { ipt::install_directory_durably(staged.string(), target.string()); }, target.string());
  EXPECT_EQ(read(target / "config.json"), "old");
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"model"});
}
