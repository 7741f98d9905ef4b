#include "ipt/infer/batcher.h"

#include <algorithm>

#include "ipt/common/error.h"
#include "ipt/infer/session.h"

namespace ipt::infer {

DecodeBatcher::DecodeBatcher(int max_batch, std::chrono::microseconds max_wait)
    : max_batch_(max_batch), max_wait_(max_wait) {
  IPT_CHECK(max_batch >= 1, "decode batcher: the largest batch must be >= 1, got ", max_batch);
  IPT_CHECK(max_wait.count() >= 0, "decode batcher: the longest wait must be >= 0");
}

void DecodeBatcher::join() {
  std::lock_guard<std::mutex> lock(m_);
  ++decoding_;
}

void DecodeBatcher::leave() {
  std::lock_guard<std::mutex> lock(m_);
  --decoding_;
  cv_.notify_all();  // the others may now be all there is
}

DecodeBatcher::Stats DecodeBatcher::stats() const {
  std::lock_guard<std::mutex> lock(m_);
  return stats_;
}

void DecodeBatcher::run(std::vector<Waiting*>& batch) {
  std::vector<Session*> sessions;
  std::vector<int64_t> tokens;
  for (Waiting* w : batch) {
    sessions.push_back(w->session);
    tokens.push_back(w->token);
  }
  try {
    std::vector<torch::Tensor> logits = Session::decode_batch(sessions, tokens);
    for (size_t i = 0; i < batch.size(); ++i) batch[i]->logits = logits[i];
  } catch (const std::exception&) {
    // decode_batch checks every token before it changes any session: decode one by one.
    for (Waiting* w : batch) {
      try {
        w->logits = w->session->decode(w->token);
      } catch (...) {
        w->error = std::current_exception();
      }
    }
  }
}

torch::Tensor DecodeBatcher::decode(Session& session, int64_t token) {
  Waiting me{&session, token, {}, nullptr, false};
  std::unique_lock<std::mutex> lock(m_);
  queue_.push_back(&me);
  cv_.notify_all();
  const auto arrived = std::chrono::steady_clock::now();
  while (!me.done) {
    const auto deadline = std::max(arrived, idle_since_) + max_wait_;
    const bool everyone = static_cast<int>(queue_.size()) >= std::max(1, decoding_);
    const bool full = static_cast<int>(queue_.size()) >= max_batch_;
    const bool late = std::chrono::steady_clock::now() >= deadline;
    if (!running_ && !queue_.empty() && (everyone || full || late)) {
      // This thread runs the step for the longest-waiting tokens (its own, or a later one).
      const size_t n = std::min(queue_.size(), static_cast<size_t>(max_batch_));
      std::vector<Waiting*> batch(queue_.begin(), queue_.begin() + n);
      queue_.erase(queue_.begin(), queue_.begin() + n);
      running_ = true;
      lock.unlock();
      run(batch);
      lock.lock();
      running_ = false;
      idle_since_ = std::chrono::steady_clock::now();
      stats_.steps += 1;
      stats_.tokens += static_cast<int64_t>(n);
      for (Waiting* w : batch) w->done = true;
      cv_.notify_all();
      continue;
    }
    if (running_ || late) cv_.wait(lock);
    else cv_.wait_until(lock, deadline);
  }
  lock.unlock();
  if (me.error) std::rethrow_exception(me.error);
  return me.logits;
}

}  // namespace ipt::infer
