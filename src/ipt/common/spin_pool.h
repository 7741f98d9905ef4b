#pragma once
// A process-wide pool of threads for short parallel work with many barriers (the decode step has
// ~240 per token). libgomp stops spinning at its barriers once it manages more threads than there
// are cores — a second thread's OpenMP team is enough (a server's request threads) — and then every
// barrier is a futex sleep and wake-up: measured, a decode step from such a thread ran at a third of
// its speed. These threads spin (then yield) at barriers, and sleep only between runs.
#include <atomic>
#include <functional>

namespace ipt {

// A barrier for the threads of one SpinPool::run.
class SpinBarrier {
 public:
  explicit SpinBarrier(int threads) : threads_(threads) {}
  void wait();

 private:
  const int threads_;
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> generation_{0};
};

// Runs fn(thread, threads) on `threads` threads — the caller is thread 0 — and returns when every
// one has returned. One run at a time in the process (a second caller waits for the first).
// fn must not throw.
void spin_pool_run(int threads, const std::function<void(int thread, int threads)>& fn);

// The static share of [0, n) that `thread` of `threads` takes (as OpenMP's schedule(static)).
inline void static_range(int64_t n, int thread, int threads, int64_t& begin, int64_t& end) {
  const int64_t chunk = (n + threads - 1) / threads;
  begin = std::min(n, thread * chunk);
  end = std::min(n, begin + chunk);
}

}  // namespace ipt
