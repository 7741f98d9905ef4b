#pragma once
// Process start-up: thread counts and allocator behaviour (see docs/runtime.md for the measurements),
// and what the CPU offers for reduced-precision matrix products.
#include <string>

namespace ipt {

struct RuntimeOptions {
  int threads = 0;            // 0 = all cores
  bool tune_allocator = true; // keep freed heap memory for reuse instead of returning it to the OS
};

// Call once, before any tensor work. Safe to call again (later calls only change the thread count).
void init_runtime(const RuntimeOptions& options);

// Threads our own parallel regions use (the decode step): what init_runtime set, the same from
// every thread (libtorch's at::get_num_threads() is per thread: a server's worker thread sees 1);
// before init_runtime, at::get_num_threads() of the caller.
int compute_threads();

// While alive, libtorch's parallel regions started from this thread run on this thread alone
// (OpenMP's thread count of this thread only; nothing global changes). For the libtorch work
// between decode steps (a fast-weight chunk update, its re-pack): a region there wakes OpenMP's
// workers, which then spin past its end on the cores the decode step's own threads need.
class SerialTorchScope {
 public:
  SerialTorchScope();
  ~SerialTorchScope();
  SerialTorchScope(const SerialTorchScope&) = delete;
  SerialTorchScope& operator=(const SerialTorchScope&) = delete;

 private:
  int saved_;
};

// The CPU's bfloat16 matrix instructions as /proc/cpuinfo names them ("amx_bf16 avx512_bf16",
// "avx512_bf16", ...), or "" when it has none (then bfloat16 products are emulated, slowly).
std::string cpu_bf16_features();

// Peak resident set size of this process so far, in MiB (ru_maxrss).
double peak_rss_mb();

}  // namespace ipt
