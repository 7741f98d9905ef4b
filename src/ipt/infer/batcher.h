#pragma once
// Continuous batching for concurrent generations. Each request's thread decodes through the
// batcher as it would through its session; tokens that are waiting together run as one batched
// step (Session::decode_batch: every weight row is read once for all of them). A step starts as
// soon as every generation that is decoding has its next token waiting (sampling a token takes
// microseconds), or once the oldest waiting token has waited `max_wait` — a generation that is
// busy elsewhere (a slow client, a stop-string check) holds the others back that long at most.
// Generations join and leave between any two steps.
#include <torch/torch.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace ipt::infer {

class Session;

class DecodeBatcher {
 public:
  explicit DecodeBatcher(int max_batch, std::chrono::microseconds max_wait = std::chrono::microseconds(2000));

  // A generation takes part between join() and leave() (Session::generate does both).
  void join();
  void leave();
  // session.decode(token), possibly in a step with other sessions. A batch that fails (one
  // session's bad token) is retried one session at a time, so an error stays with its session.
  torch::Tensor decode(Session& session, int64_t token);

  struct Stats {
    int64_t steps = 0, tokens = 0;  // tokens / steps = the mean batch
  };
  Stats stats() const;

 private:
  struct Waiting {
    Session* session;
    int64_t token;
    torch::Tensor logits;
    std::exception_ptr error;
    bool done = false;
  };
  void run(std::vector<Waiting*>& batch);

  const int max_batch_;
  const std::chrono::microseconds max_wait_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::vector<Waiting*> queue_;
  int decoding_ = 0;     // generations between join() and leave()
  bool running_ = false; // a step is computing (one at a time: it uses every core)
  // When the last step ended: a token's wait counts from its arrival or from then, whichever is
  // later (a step takes longer than max_wait; the tokens that arrived during it are not late).
  std::chrono::steady_clock::time_point idle_since_ = std::chrono::steady_clock::now();
  Stats stats_;
};

}  // namespace ipt::infer
