#pragma once
// Benchmarks measure peak memory per configuration by running each in a fresh child process of
// this same executable (`ipt ... --worker ...`) that prints one JSON line.
#include <nlohmann/json.hpp>

#include <string>

namespace ipt::cli {

// Runs `ipt -t THREADS [--no-malloc-tuning] ARGS` and parses its stdout as JSON.
nlohmann::json run_worker(const std::string& args);

}  // namespace ipt::cli
