#include "ipt/parallel/communicator.h"

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "ipt/common/error.h"

namespace ipt::parallel {

std::vector<torch::Tensor> Communicator::all_gather_uneven(const torch::Tensor& t, int64_t dim) {
  IPT_CHECK(dim >= 0 && dim < t.dim(), "all_gather_uneven: dim ", dim, " is outside a ", t.dim(), "-d tensor");
  torch::Tensor length = torch::tensor({t.size(dim)}, torch::kInt64);
  std::vector<torch::Tensor> lengths = all_gather(length);
  int64_t longest = 0;
  for (const torch::Tensor& l : lengths) longest = std::max(longest, l.item<int64_t>());
  std::vector<int64_t> padded_shape = t.sizes().vec();
  padded_shape[dim] = longest;
  torch::Tensor padded = torch::zeros(padded_shape, t.options());
  padded.narrow(dim, 0, t.size(dim)).copy_(t);
  std::vector<torch::Tensor> parts = all_gather(padded);
  for (size_t r = 0; r < parts.size(); ++r) parts[r] = parts[r].narrow(dim, 0, lengths[r].item<int64_t>());
  return parts;
}

std::vector<torch::Tensor> TimedCommunicator::all_gather(const torch::Tensor& t) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<torch::Tensor> out = inner_.all_gather(t);
  ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ++calls_;
  return out;
}

void TimedCommunicator::all_reduce_sum(torch::Tensor& t) {
  const auto start = std::chrono::steady_clock::now();
  inner_.all_reduce_sum(t);
  ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ++calls_;
}

namespace {

// Shared slots plus a reusable barrier (generation counter).
struct Shared {
  explicit Shared(int n) : size(n), slots(n) {}
  void barrier() {
    std::unique_lock<std::mutex> lock(mutex);
    const int64_t generation = this->generation;
    if (++arrived == size) {
      arrived = 0;
      ++this->generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return this->generation != generation; });
    }
  }
  int size;
  std::vector<torch::Tensor> slots;
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;
  int64_t generation = 0;
};

class ThreadMember : public Communicator {
 public:
  ThreadMember(Shared& shared, int rank) : shared_(shared), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return shared_.size; }

  std::vector<torch::Tensor> all_gather(const torch::Tensor& t) override {
    shared_.slots[rank_] = t.detach().clone();
    shared_.barrier();
    std::vector<torch::Tensor> out;
    for (const torch::Tensor& s : shared_.slots) {
      IPT_CHECK(s.sizes() == t.sizes() && s.scalar_type() == t.scalar_type(),
                "all_gather: ranks passed different shapes or dtypes: ", s.sizes(), " vs ", t.sizes());
      out.push_back(s.clone());
    }
    shared_.barrier();  // nobody overwrites a slot before everyone has read it
    return out;
  }

  void all_reduce_sum(torch::Tensor& t) override {
    std::vector<torch::Tensor> parts = all_gather(t);
    torch::Tensor sum = torch::zeros_like(t);
    for (const torch::Tensor& p : parts) sum.add_(p);  // rank order: every rank gets identical bits
    torch::NoGradGuard no_grad;
    t.copy_(sum);
  }

 private:
  Shared& shared_;
  int rank_;
};

}  // namespace

void ThreadGroup::run(int size, const std::function<void(Communicator&)>& body) {
  IPT_CHECK(size >= 1, "ThreadGroup: size must be >= 1, got ", size);
  Shared shared(size);
  std::vector<std::exception_ptr> errors(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      ThreadMember member(shared, r);
      try {
        body(member);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace ipt::parallel
