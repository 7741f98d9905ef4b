#include "ipt/common/spin_pool.h"

#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace ipt {

namespace {

// Spin this many times before yielding the core (another process may need it to reach the barrier).
constexpr int kSpinsBeforeYield = 1024;
// A worker spins this long for the next run before it sleeps.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(3000);

inline void pause_or_yield(int& spins) {
  if (++spins < kSpinsBeforeYield) {
    _mm_pause();
  } else {
    std::this_thread::yield();
    spins = 0;
  }
}

class Pool {
 public:
  void run(int threads, const std::function<void(int, int)>& fn) {
    std::lock_guard<std::mutex> one_run(run_mutex_);
    if (pid_ != getpid()) {  // a forked child has none of its parent's workers: start its own
      workers_.clear();
      pid_ = getpid();
    }
    while (static_cast<int>(workers_.size()) < threads - 1) {
      const int index = static_cast<int>(workers_.size()) + 1;
      // It waits for the next run (not the last one, whose job is gone).
      const uint64_t current = generation_.load(std::memory_order_acquire);
      workers_.emplace_back([this, index, current] { work(index, current); });
      workers_.back().detach();  // the pool lives as long as the process
    }
    job_ = &fn;
    job_threads_ = threads;
    remaining_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    fn(0, threads);
    int spins = 0;
    while (remaining_.load(std::memory_order_acquire) > 0) pause_or_yield(spins);
  }

 private:
  void work(int index, uint64_t seen) {
    for (;;) {
      // Wait for the next run: spin a while (decode steps follow each other closely), then sleep.
      const auto spin_until = std::chrono::steady_clock::now() + kSpinBeforeSleep;
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen) {
        if (std::chrono::steady_clock::now() < spin_until) {
          pause_or_yield(spins);
          continue;
        }
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (index < job_threads_) (*job_)(index, job_threads_);
      remaining_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::mutex run_mutex_, sleep_mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> remaining_{0};
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 1;
  pid_t pid_ = getpid();
};

}  // namespace

void SpinBarrier::wait() {
  if (threads_ <= 1) return;
  const unsigned generation = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == threads_ - 1) {
    arrived_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    return;
  }
  int spins = 0;
  while (generation_.load(std::memory_order_acquire) == generation) pause_or_yield(spins);
}

void spin_pool_run(int threads, const std::function<void(int, int)>& fn) {
  static Pool* pool = new Pool();  // never destroyed: its detached workers outlive static destruction
  if (threads <= 1) {
    fn(0, 1);
    return;
  }
  pool->run(threads, fn);
}

}  // namespace ipt
