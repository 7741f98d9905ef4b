#pragma once
// Worker slots: at most `count` requests compute at once, up to `max_queue` more wait for one, the
// rest are turned away (503) at once rather than queued without bound.
#include <condition_variable>
#include <mutex>
#include <utility>

#include "ipt/infer/request_error.h"

namespace ipt::infer {

class Slots {
 public:
  Slots(int count, int max_queue) : free_(count), max_queue_(max_queue) {}
  // Waits for a free slot; false (at once) when the queue is full.
  bool acquire() {
    std::unique_lock<std::mutex> lock(m_);
    if (free_ == 0 && waiting_ >= max_queue_) return false;
    ++waiting_;
    cv_.wait(lock, [&] { return free_ > 0; });
    --waiting_;
    --free_;
    return true;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(m_);
      ++free_;
    }
    cv_.notify_one();
  }
  std::pair<int, int> state() {  // {free, waiting}
    std::lock_guard<std::mutex> lock(m_);
    return {free_, waiting_};
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int free_, waiting_ = 0, max_queue_;
};

// One slot held for the life of a request; a full queue is a 503 server_busy.
struct SlotHold {
  Slots* slots = nullptr;
  explicit SlotHold(Slots& s) {
    if (!s.acquire()) throw RequestError{503, "the server is busy: every worker slot is taken and the queue is full",
                                         "", "server_busy", "server_error"};
    slots = &s;
  }
  ~SlotHold() {
    if (slots) slots->release();
  }
  SlotHold(const SlotHold&) = delete;
  SlotHold& operator=(const SlotHold&) = delete;
};

}  // namespace ipt::infer
