#pragma once
// Multi-process commands (`--nproc-per-node N`): the launcher re-runs this process's own command
// line N times without that flag, as ranks of one group (parallel/gloo.h); each rank then joins the
// group from the torchrun-style environment the launcher set.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "ipt/common/error.h"
#include "ipt/parallel/gloo.h"

namespace ipt::cli {

// This process's command line as it was typed (argv[0] replaced by the executable's path).
inline std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string arg; std::getline(in, arg, '\0');) args.push_back(arg);
  IPT_CHECK(!args.empty(), "cannot read this process's command line (/proc/self/cmdline)");
  args[0] = parallel::current_executable();
  return args;
}

// `args` without `--nproc-per-node N` / `--nproc-per-node=N`.
inline std::vector<std::string> without_nproc_flag(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--nproc-per-node") {
      ++i;  // and its value
      continue;
    }
    if (args[i].rfind("--nproc-per-node=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

// Starts `nproc` local ranks of this command and returns their exit status.
inline int relaunch_local(int nproc) {
  IPT_CHECK(!parallel::Rendezvous::in_environment(), "--nproc-per-node inside a distributed launch (WORLD_SIZE is set)");
  return parallel::launch_local(nproc, without_nproc_flag(own_command_line()));
}

// The group this process belongs to when launched as one rank of several; nullptr otherwise.
inline std::unique_ptr<parallel::GlooCommunicator> join_group_from_environment() {
  if (!parallel::Rendezvous::in_environment()) return nullptr;
  return std::make_unique<parallel::GlooCommunicator>(parallel::Rendezvous::from_env());
}

}  // namespace ipt::cli
