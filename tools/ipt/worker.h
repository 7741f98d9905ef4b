#pragma once
// The benchmarks' child processes (ipt/bench/worker.h) run this executable with the global flags
// this process was given.
#include "command.h"
#include "ipt/bench/worker.h"
#include "ipt/parallel/gloo.h"

namespace ipt::cli {

inline bench::WorkerLauncher worker_launcher() {
  return {parallel::current_executable(), global_options().threads, global_options().no_malloc_tuning};
}

}  // namespace ipt::cli
