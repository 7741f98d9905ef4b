#pragma once
// A fresh, empty directory under the system's temporary directory, removed with everything in it
// when the object goes; unique per process and per object.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>

namespace ipt::test {

// A name part unique to this process: the pid alone repeats when two test runs share a machine (CI
// runs two builds' suites in one container, and pids start from the same place), and a directory
// left by the earlier run would then be found by the later one.
inline const std::string& process_tag() {
  static const std::string tag = [] {
    std::random_device entropy;
    const unsigned long long salt = (static_cast<unsigned long long>(entropy()) << 32) ^ entropy();
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", salt);
    return std::to_string(::getpid()) + "-" + hex;
  }();
  return tag;
}

struct TempDir {
  std::filesystem::path path;

  explicit TempDir(const std::string& prefix = "ipt-test") {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           (prefix + "-" + process_tag() + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, ignored);  // a test may have locked it
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace ipt::test
