#pragma once
// Fuzz targets for every parser that reads bytes a user or a network peer controls.
//
// A target passes an input when the input either loads or is refused with the project's own
// error (ipt::Error). Anything else escaping — another exception, a crash, a sanitizer report, a
// hang — is a finding. One source file per target, declared with IPT_FUZZ_TARGET(name):
//   - built with -DIPT_LIBFUZZER (scripts/fuzz.sh), the file is a libFuzzer binary;
//   - built into test_fuzz (make test), it registers itself, and tests/fuzz/replay.cpp feeds it
//     its seed corpus and every regression input (tests/fuzz/corpus/NAME, tests/fuzz/regressions/NAME).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include "ipt/common/error.h"
#include "support/temp_dir.h"

namespace ipt::fuzz {

using Target = std::function<void(const uint8_t* data, size_t size)>;

inline std::map<std::string, Target>& targets() {
  static std::map<std::string, Target> all;
  return all;
}

struct Registrar {
  Registrar(const char* name, Target target) { targets()[name] = std::move(target); }
};

// A property a target checks beyond "no crash": its failure is a finding, not a refusal.
#define IPT_FUZZ_EXPECT(cond, ...) \
  do {                             \
    if (!(cond)) throw std::logic_error(::ipt::detail::concat("fuzz finding: ", __VA_ARGS__)); \
  } while (0)

// Runs one input; only the project's own error is an accepted way to refuse it.
inline void run_one(const Target& target, const uint8_t* data, size_t size) {
  try {
    target(data, size);
  } catch (const ipt::Error&) {
  }
}

// A per-process scratch directory (in /dev/shm when it exists: targets that read files write each
// input there, so they exercise the same file-reading code a user's file goes through).
inline std::filesystem::path scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("ipt-fuzz-" + ipt::test::process_tag());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::string write_scratch(const std::string& name, const void* data, size_t size) {
  const std::filesystem::path path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path.string();
}

}  // namespace ipt::fuzz

#define IPT_FUZZ_CONCAT_(a, b) a##b
#ifdef IPT_LIBFUZZER
#define IPT_FUZZ_TARGET(name)                                                          \
  static void IPT_FUZZ_CONCAT_(fuzz_, name)(const uint8_t* data, size_t size);         \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {            \
    ipt::fuzz::run_one(IPT_FUZZ_CONCAT_(fuzz_, name), data, size);                     \
    return 0;                                                                          \
  }                                                                                    \
  static void IPT_FUZZ_CONCAT_(fuzz_, name)(const uint8_t* data, size_t size)
#else
#define IPT_FUZZ_TARGET(name)                                                          \
  static void IPT_FUZZ_CONCAT_(fuzz_, name)(const uint8_t* data, size_t size);         \
  static ipt::fuzz::Registrar IPT_FUZZ_CONCAT_(registrar_, name)(#name, IPT_FUZZ_CONCAT_(fuzz_, name)); \
  static void IPT_FUZZ_CONCAT_(fuzz_, name)(const uint8_t* data, size_t size)
#endif
