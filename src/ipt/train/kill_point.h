#pragma once
// Private to src/ipt/train: the trainer's fault injection, shared by its step and checkpoint code.
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace ipt::train {

// Fault injection for the crash tests (tests/cli/test_kill.cpp): IPT_KILL_AT=POINT:STEP makes the
// process SIGKILL itself at that point while working on that step, as an OOM kill or a power cut
// would. Points: step (gradients computed, weights not yet updated), checkpoint-model (weights
// written, optimizer state not), checkpoint-state (everything but trainer_state.json written).
inline void kill_point(const char* point, int64_t step) {
  static const char* const spec = std::getenv("IPT_KILL_AT");
  if (spec && std::string(spec) == std::string(point) + ":" + std::to_string(step)) ::raise(SIGKILL);
}

}  // namespace ipt::train
