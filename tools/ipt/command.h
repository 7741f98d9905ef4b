#pragma once
// Subcommands register themselves here, one file each; main.cpp builds the CLI from the registry.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace ipt::cli {

// Called after parsing; returns the process exit code.
using Action = std::function<int()>;

struct Command {
  std::string parent;                          // "" for top level, "bench" for `ipt bench NAME`
  std::function<Action(CLI::App& parent)> define;  // adds its subcommand and options, returns its action
};

std::vector<Command>& registry();

struct Register {
  Register(std::string parent, std::function<Action(CLI::App&)> define) {
    registry().push_back({std::move(parent), std::move(define)});
  }
};

// Global flags every command honours (set before the action runs).
struct GlobalOptions {
  int threads = 0;
  bool no_malloc_tuning = false;
};
const GlobalOptions& global_options();

}  // namespace ipt::cli
