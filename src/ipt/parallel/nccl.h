#pragma once
// Collectives for tensors on the GPU: a c10d ProcessGroupNCCL over the store of an existing group
// (GlooCommunicator's), so one torchrun/Slurm rendezvous serves both. Only the CUDA build (the
// torch2 build against a CUDA libtorch) has it; elsewhere create() says so.
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <vector>

namespace c10d {
class Store;
}

namespace ipt::parallel {

class NcclGroup {
 public:
  virtual ~NcclGroup() = default;
  // Every rank calls it at the same point (the first collective on a GPU tensor does).
  static std::unique_ptr<NcclGroup> create(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                           std::chrono::milliseconds timeout);
  virtual std::vector<torch::Tensor> all_gather(const torch::Tensor& t) = 0;
  virtual void all_reduce_sum(torch::Tensor& t) = 0;
};

}  // namespace ipt::parallel
