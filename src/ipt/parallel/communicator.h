#pragma once
// The collective operations context parallelism needs, behind one small interface: c10d process
// groups (Gloo on CPU, NCCL on CUDA) implement it across processes and machines; ThreadGroup
// implements it between threads of one process, so the algorithms can be tested and simulated
// without launching anything.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

namespace ipt::parallel {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank's tensor, in rank order; every rank passes the same shape and dtype.
  virtual std::vector<torch::Tensor> all_gather(const torch::Tensor& t) = 0;
  // Elementwise sum over ranks, in place.
  virtual void all_reduce_sum(torch::Tensor& t) = 0;

  // Every rank's tensor where shapes differ along `dim` only (padded to the longest for the
  // exchange, cut back after).
  std::vector<torch::Tensor> all_gather_uneven(const torch::Tensor& t, int64_t dim);
};

// Forwards to another communicator and adds up the wall time spent inside collectives (what
// `ipt bench prefill --cp-size` reports as communication).
class TimedCommunicator : public Communicator {
 public:
  explicit TimedCommunicator(Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::vector<torch::Tensor> all_gather(const torch::Tensor& t) override;
  void all_reduce_sum(torch::Tensor& t) override;
  double milliseconds() const { return ms_; }
  int64_t calls() const { return calls_; }

 private:
  Communicator& inner_;
  double ms_ = 0;
  int64_t calls_ = 0;
};

// `size` ranks run by threads of this process; run() starts one thread per rank, hands each its
// communicator, waits for all and rethrows the first exception.
class ThreadGroup {
 public:
  static void run(int size, const std::function<void(Communicator&)>& body);
};

}  // namespace ipt::parallel
