#pragma once
// Process start-up: thread counts and allocator behaviour (see docs/runtime.md for the measurements).

namespace ipt {

struct RuntimeOptions {
  int threads = 0;            // 0 = all cores
  bool tune_allocator = true; // keep freed heap memory for reuse instead of returning it to the OS
};

// Call once, before any tensor work. Safe to call again (later calls only change the thread count).
void init_runtime(const RuntimeOptions& options);

// Peak resident set size of this process so far, in MiB (ru_maxrss).
double peak_rss_mb();

}  // namespace ipt
