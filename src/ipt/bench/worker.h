#pragma once
// Benchmarks measure each configuration in a fresh child process of the `ipt` executable (its
// hidden `--worker-*` modes), so that the child's peak memory is that configuration's own; the
// child prints one JSON line. The command lines built here are the ones tools/ipt/bench_*.cpp parse.
#include <nlohmann/json.hpp>

#include <string>

namespace ipt::bench {

struct WorkerLauncher {
  std::string executable;         // the ipt binary (usually the running one)
  int threads = 0;                // passed as -t (0: the child's default)
  bool no_malloc_tuning = false;  // passed on as --no-malloc-tuning

  // Runs `EXECUTABLE -t THREADS [--no-malloc-tuning] ARGS` through the shell and parses its stdout
  // as JSON; throws when the child fails or prints no JSON.
  nlohmann::json run(const std::string& args) const;
};

}  // namespace ipt::bench
